//! The import pipeline's task runners: `dltar → mkraw → mkdxf → mkpat → deploy`. Each step
//! is idempotent (files written to temporary names, then renamed; rows keyed so a second
//! run changes nothing), so a crashed step simply runs again. A runner returns its outcome
//! and the state change to commit with it; the worker commits both in one transaction,
//! only while it still holds the task's lease.

use super::{depot, download, targets::TargetSpec};
use crate::db::{i, opt_i, s};
use crate::state::AppState;
use crate::store::{deployments, published, tasks, Conn};
use crate::util::{now_ms, rfc3339};
use edge_engine::store::ChunkStore;
use edge_engine::tree::Tree;
use edge_engine::Params;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A task's progress (0..1), shared between its runner and the lease renewal.
#[derive(Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    /// Sets the fraction done.
    pub fn set(&self, f: f64) {
        self.0.store(f.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }
    /// The fraction done.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// The state change that goes with a finished task.
pub enum After {
    /// Nothing beyond the task row.
    Nothing,
    /// `dltar` done: the group enters its app's line.
    Downloaded,
    /// A failure that cancels the rest of the group.
    CancelRest,
    /// `mkraw` done: a new build id.
    Raw { tree_path: String, content_hash: String, size: u64 },
    /// `mkraw` found the current build again.
    Identical,
    /// `mkdxf` done.
    Dxf { dxf_name: String, image_bytes: u64 },
    /// `mkseq` wrote a better image of the current build; the group's `deploy` publishes it.
    Seq { build_id: i64, dxf_name: String, image_bytes: u64 },
    /// `mkseq` found no order better enough: the group's `deploy` is canceled.
    SeqNoGain { build_id: i64 },
    /// `deploy` done on every target: the image `dxf_name` (of `image_bytes`) is current.
    Deployed { targets: Vec<String>, patches: Vec<(i64, u64)>, dxf_name: String, image_bytes: u64 },
    /// `deploy` failed on a target: the app is locked.
    DeployFailed { deployment_id: String, message: String },
}

/// What a runner produced.
pub struct Done {
    pub outcome: tasks::Outcome,
    pub after: After,
}

pub(crate) fn ok(result: Value, after: After) -> Done {
    Done { outcome: tasks::Outcome { status: "done", result: Some(result), exception: None, warning: None }, after }
}

fn fail(exception: Value, after: After) -> Done {
    Done { outcome: tasks::Outcome { status: "error", result: None, exception: Some(exception), warning: None }, after }
}

fn internal(code: &str, message: impl std::fmt::Display) -> Done {
    tracing::error!(code, error = %message, "pipeline step failed");
    fail(json!({"error": {"code": code, "message": message.to_string()}}), After::CancelRest)
}

/// The app a task works for.
pub struct AppCtx {
    pub id: String,
    pub name: String,
    pub org_id: String,
    pub org_name: String,
    pub max_builds: i64,
    pub deployments: Vec<String>,
    pub cur_build: Option<i64>,
}

/// Loads the app of a task (None when it was deleted meanwhile).
pub async fn app_ctx(c: &mut Conn, app_id: &str) -> Result<Option<AppCtx>, sqlx::Error> {
    let r = sqlx::query("SELECT a.id, a.name, a.org_id, o.name AS org_name, a.max_builds, a.deployments, a.i_cur_build FROM apps a JOIN orgs o ON o.id = a.org_id WHERE a.id = $1")
        .bind(app_id)
        .fetch_optional(c)
        .await?;
    Ok(r.map(|r| AppCtx {
        id: s(&r, "id"),
        name: s(&r, "name"),
        org_id: s(&r, "org_id"),
        org_name: s(&r, "org_name"),
        max_builds: i(&r, "max_builds"),
        deployments: serde_json::from_str(&s(&r, "deployments")).unwrap_or_default(),
        cur_build: opt_i(&r, "i_cur_build"),
    }))
}

/// Engine parameters from the configuration (chunk window min = avg/4, max = avg·4).
pub fn params(st: &AppState) -> Params {
    let avg = st.cfg.chunk_avg_bytes;
    Params {
        chunk: edge_engine::ChunkParams { min: avg / 4, avg, max: avg * 4 },
        zstd_level: st.cfg.zstd_level,
        pack_limit: st.cfg.pack_limit_bytes,
    }
}

/// Runs one pipeline task.
pub async fn run(st: &Arc<AppState>, t: &tasks::Task, progress: &Progress) -> Done {
    let mut c = match st.db.conn().await {
        Ok(c) => c,
        Err(e) => return internal("database", e),
    };
    let app = match t.app_id.as_deref() {
        Some(id) => match app_ctx(&mut c, id).await {
            Ok(Some(a)) => a,
            Ok(None) => return internal("app-deleted", "the app was deleted"),
            Err(e) => return internal("database", e),
        },
        None => return internal("no-app", "pipeline task without an app"),
    };
    drop(c);
    let r = match t.kind.as_str() {
        "dltar" => download::run(st, t, progress).await,
        "mkraw" => mkraw(st, t, &app, progress).await,
        "mkdxf" => mkdxf(st, t, &app).await,
        "mkpat" => mkpat(st, t, &app, progress).await,
        "deploy" => deploy(st, t, &app, progress).await,
        "mkseq" => super::seq::mkseq(st, t, &app).await,
        other => Err(format!("unknown task type {other}")),
    };
    r.unwrap_or_else(|e| internal("internal", e))
}

fn read_tree(path: &Path) -> Result<Tree, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("build tree {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("build tree {}: {e}", path.display()))
}

/// A build's tree (`tree_path` is its depot key; an absolute path on data from before the
/// depot had keys), read through the depot; with `chunks`, its chunks are cached here too.
pub(crate) async fn load_tree(st: &AppState, app_id: &str, tree_path: &str, chunks: bool) -> Result<Tree, String> {
    let path =
        if Path::new(tree_path).is_absolute() { PathBuf::from(tree_path) } else { st.depot.fetch(tree_path, "the build tree").await? };
    let tree = tokio::task::spawn_blocking(move || read_tree(&path)).await.map_err(|e| e.to_string())??;
    if chunks {
        st.depot.pull_chunks(app_id, &tree.chunks.keys().copied().collect::<Vec<_>>()).await?;
    }
    Ok(tree)
}

async fn mkraw(st: &Arc<AppState>, t: &tasks::Task, app: &AppCtx, progress: &Progress) -> Result<Done, String> {
    let mut c = st.db.conn().await.map_err(|e| e.to_string())?;
    let cur_hash = match app.cur_build {
        Some(b) => sqlx::query("SELECT content_hash FROM builds WHERE app_id = $1 AND build_id = $2")
            .bind(&app.id)
            .bind(b)
            .fetch_optional(&mut *c)
            .await
            .map_err(|e| e.to_string())?
            .map(|r| s(&r, "content_hash")),
        None => None,
    };
    drop(c);
    // The upload may have been ingested as it arrived (preingest): then its result stands.
    let pre = super::preingest::take(st, &app.id, &t.group).await;
    let fresh = pre.is_none();
    let (res, archive_bytes) = match pre {
        // Checked again: a kept result may come from an older binary's rules.
        Some((res, n)) => {
            (res.and_then(|i| edge_engine::ingest::check_tree(&i.tree).map(|()| i).map_err(edge_engine::ingest::IngestError::Rejected)), n)
        }
        None => ingest_archive(st, &app.id, &t.group, progress).await?,
    };
    st.metrics.ingested_bytes.fetch_add(archive_bytes, Ordering::Relaxed);
    let ing = match res {
        Ok(i) => i,
        Err(edge_engine::ingest::IngestError::Rejected(r)) => {
            return Ok(fail(
                json!({"fileReadFailed": {"filename": r.filename, "typeExpected": r.type_expected, "typeDetected": r.type_detected}}),
                After::CancelRest,
            ))
        }
        Err(edge_engine::ingest::IngestError::Io(e)) => return Err(format!("reading the build: {e}")),
    };
    let content_hash = ing.tree.content_hash().hex();
    let result = json!({"fileCount": ing.tree.file_count(), "sizeBytes": ing.tree.size_bytes(), "chunkCount": ing.tree.chunks.len(), "newChunks": ing.new_chunks,
                        "ingestedDuringUpload": !fresh});
    if cur_hash.as_deref() == Some(content_hash.as_str()) {
        let mut d = ok(result, After::Identical);
        d.outcome.warning = Some(
            json!({"code": "identical-build", "message": "same content as the current build: no new image is published", "acknowledged": false}),
        );
        return Ok(d);
    }
    if fresh {
        // Chunks before the tree: a tree in the depot always finds its chunks there.
        st.depot.push_chunks(&app.id, &ing.tree.chunks.keys().copied().collect::<Vec<_>>()).await?;
        store_tree(st, &app.id, &t.group, &ing.tree).await?;
    }
    let tree_key = depot::tree_key(&app.id, &t.group);
    let size = ing.tree.size_bytes();
    let mut d = ok(result, After::Raw { tree_path: tree_key, content_hash, size });
    if ing.empty_files > 0 {
        d.outcome.warning = Some(
            json!({"code": "empty-file", "message": format!("{} zero-length file(s) in the build", ing.empty_files), "acknowledged": false}),
        );
    }
    Ok(d)
}

/// Ingests an import's archive from the depot (the `mkraw` work proper); with the
/// archive's size.
async fn ingest_archive(
    st: &Arc<AppState>,
    app_id: &str,
    group: &str,
    progress: &Progress,
) -> Result<(Result<edge_engine::ingest::Ingested, edge_engine::ingest::IngestError>, u64), String> {
    let tar = st.depot.fetch(&depot::upload_key(group), "the build archive").await?;
    let store = ChunkStore::open(&st.depot.local(&depot::chunks_key(app_id))).map_err(|e| e.to_string())?;
    let p = params(st);
    let total = std::fs::metadata(&tar).map(|m| m.len()).map_err(|e| format!("the build archive is missing: {e}"))?;
    let prog = progress.clone();
    tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&tar)?;
        let r = std::io::BufReader::with_capacity(1 << 20, f);
        Ok::<_, std::io::Error>(edge_engine::ingest::ingest(r, &store, &p, &mut |n| prog.set(n as f64 / total.max(1) as f64)))
    })
    .await
    .map_err(|e| e.to_string())?
    .map(|outcome| (outcome, total))
    .map_err(|e| e.to_string())
}

/// Writes a build's tree under its depot key (atomically) and sends it to the depot.
pub(crate) async fn store_tree(st: &AppState, app_id: &str, group: &str, tree: &Tree) -> Result<(), String> {
    let tree_key = depot::tree_key(app_id, group);
    let path = st.depot.local(&tree_key);
    let dir = path.parent().ok_or("tree path")?.to_path_buf();
    let bytes = serde_json::to_vec(tree).map_err(|e| e.to_string())?;
    let tmp = dir.join(format!(".{group}.tmp"));
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    st.depot.push(&tree_key).await
}

/// A build as the pipeline needs it.
pub(crate) struct BuildRow {
    pub build_id: i64,
    pub build_name: String,
    pub dxf_name: Option<String>,
    pub tree_path: String,
}

/// One build of an app.
pub(crate) async fn build_row(st: &AppState, app_id: &str, build_id: i64) -> Result<BuildRow, String> {
    let r = sqlx::query("SELECT build_id, build_name, dxf_name, tree_path FROM builds WHERE app_id = $1 AND build_id = $2")
        .bind(app_id)
        .bind(build_id)
        .fetch_optional(st.db.pool())
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("build {build_id} is not recorded"))?;
    Ok(BuildRow {
        build_id: i(&r, "build_id"),
        build_name: s(&r, "build_name"),
        dxf_name: crate::db::opt_s(&r, "dxf_name"),
        tree_path: s(&r, "tree_path"),
    })
}

/// The org key as a signer, when the org has one.
async fn org_signer(st: &AppState, org_id: &str) -> Result<Option<rsa::RsaPrivateKey>, String> {
    use rsa::pkcs8::DecodePrivateKey;
    let r = sqlx::query("SELECT key_sealed FROM orgs WHERE id = $1")
        .bind(org_id)
        .fetch_optional(st.db.pool())
        .await
        .map_err(|e| e.to_string())?;
    let Some(sealed) = r.and_then(|r| crate::db::opt_s(&r, "key_sealed")) else { return Ok(None) };
    let der = st.data_key.open(&sealed).ok_or("the organization key cannot be unsealed")?;
    rsa::RsaPrivateKey::from_pkcs8_der(&der).map(Some).map_err(|e| format!("organization key: {e}"))
}

async fn mkdxf(st: &Arc<AppState>, t: &tasks::Task, app: &AppCtx) -> Result<Done, String> {
    let build_id = t.build_id.ok_or("the task has no build id")?;
    let b = build_row(st, &app.id, build_id).await?;
    // The app's traces carry over to every new build (by path): its first image is
    // already in trained order.
    let ids = super::seq::trace_ids(st, &app.id).await?;
    let gen = super::seq::generation(st, &app.id).await?;
    let tree = load_tree(st, &app.id, &b.tree_path, false).await?;
    super::seq::fetch_traces(st, &app.id, &ids).await?;
    let (st2, app_id) = (st.clone(), app.id.clone());
    let learned = tokio::task::spawn_blocking(move || -> Result<_, String> {
        Ok(if ids.is_empty() { None } else { super::seq::learn(&st2, &app_id, &ids, &tree) })
    })
    .await
    .map_err(|e| e.to_string())??;
    let (sequence, traces, accesses) = match learned {
        Some(l) => (l.sequence, l.traces, l.accesses),
        None => (Vec::new(), 0, Vec::new()),
    };
    let summary = write_dxf(st, t, app, &b, &sequence, traces, if traces > 0 { gen as u64 } else { 0 }, &accesses).await?;
    Ok(ok(
        json!({"dxfName": summary.dxf_name, "packBytes": summary.pack_bytes, "sizeBytes": summary.total_bytes, "files": summary.files,
               "traces": traces, "preload": summary.preload, "acceleration100": summary.acceleration100}),
        After::Dxf { dxf_name: summary.dxf_name.clone(), image_bytes: summary.total_bytes },
    ))
}

/// What [`write_dxf`] wrote.
pub(crate) struct DxfWritten {
    pub dxf_name: String,
    pub files: Vec<String>,
    pub pack_bytes: u64,
    pub total_bytes: u64,
    /// The manifest's `preload` figures (null without traces).
    pub preload: Value,
    /// Full-download time / time-to-play at 100 Mbit/s (None without traces or preload).
    pub acceleration100: Option<f64>,
}

/// Writes the image of build `b` into the group's staging area, chunks in `sequence` order
/// first, signed with the org key when there is one; `accesses` (the traces mapped onto
/// the build) give the manifest's preload figures.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_dxf(
    st: &Arc<AppState>,
    t: &tasks::Task,
    app: &AppCtx,
    b: &BuildRow,
    sequence: &[edge_engine::Hash],
    traces: u64,
    generation: u64,
    accesses: &[Vec<(u64, edge_engine::Hash)>],
) -> Result<DxfWritten, String> {
    let key = org_signer(st, &app.org_id).await?;
    let owner = t.lease_owner.as_deref().ok_or("the task is not leased")?;
    let stage_key = format!("{}/dxf", depot::staging_key(&app.id, &t.group, owner));
    let dir = st.depot.local(&stage_key);
    let store = ChunkStore::open(&st.depot.local(&depot::chunks_key(&app.id))).map_err(|e| e.to_string())?;
    let mut meta = edge_engine::image::ImageMeta {
        org_name: app.org_name.clone(),
        app_name: app.name.clone(),
        build_id: b.build_id as u64,
        build_name: b.build_name.clone(),
        created: rfc3339(now_ms()),
        traces,
        generation,
        preload: Value::Null,
    };
    let p = params(st);
    let tree = load_tree(st, &app.id, &b.tree_path, true).await?;
    let (sequence, accesses) = (sequence.to_vec(), accesses.to_vec());
    let written = tokio::task::spawn_blocking(move || -> Result<DxfWritten, String> {
        let order = edge_engine::image::stream_order(&tree, &sequence);
        let layout = edge_engine::seq::layout(&tree, &order);
        meta.preload = edge_engine::seq::preload_figures_at(&layout, &accesses, edge_engine::seq::PRELOAD_PERCENTILE);
        let accel = meta.preload["100"].as_u64().and_then(|p| edge_engine::seq::acceleration(&layout, p));
        let _ = std::fs::remove_dir_all(&dir);
        let signer = key.map(|k| move |m: &[u8]| edge_engine::image::rsa_sign(&k, m));
        let sign: Option<edge_engine::image::Signer<'_>> = signer.as_ref().map(|f| f as edge_engine::image::Signer<'_>);
        let s = edge_engine::image::write_image(&tree, &store, &sequence, &meta, &dir, &p, sign).map_err(|e| e.to_string())?;
        Ok(DxfWritten {
            dxf_name: s.dxf_name,
            files: s.files,
            pack_bytes: s.pack_bytes,
            total_bytes: s.total_bytes,
            preload: meta.preload,
            acceleration100: accel,
        })
    })
    .await
    .map_err(|e| e.to_string())??;
    st.depot.push_dir(&stage_key, "manifest.json").await?;
    Ok(written)
}

/// Older builds a new build gets patches from: the newest `max_builds - 1` retained ones.
async fn patch_sources(st: &AppState, app: &AppCtx, build_id: i64) -> Result<Vec<BuildRow>, String> {
    let rows = sqlx::query(
        "SELECT build_id FROM builds WHERE app_id = $1 AND build_id < $2 AND status IN ('current', 'retained') ORDER BY build_id DESC",
    )
    .bind(&app.id)
    .bind(build_id)
    .fetch_all(st.db.pool())
    .await
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for r in rows.iter().take((app.max_builds - 1).max(0) as usize) {
        out.push(build_row(st, &app.id, i(r, "build_id")).await?);
    }
    Ok(out)
}

async fn mkpat(st: &Arc<AppState>, t: &tasks::Task, app: &AppCtx, progress: &Progress) -> Result<Done, String> {
    let build_id = t.build_id.ok_or("the task has no build id")?;
    let to = build_row(st, &app.id, build_id).await?;
    let sources = patch_sources(st, app, build_id).await?;
    let owner = t.lease_owner.as_deref().ok_or("the task is not leased")?;
    let base_key = format!("{}/pat", depot::staging_key(&app.id, &t.group, owner));
    let base = st.depot.local(&base_key);
    let _ = std::fs::remove_dir_all(&base);
    let to_tree = if sources.is_empty() { None } else { Some(std::sync::Arc::new(load_tree(st, &app.id, &to.tree_path, true).await?)) };
    let image_bytes: i64 = sqlx::query("SELECT image_bytes FROM builds WHERE app_id = $1 AND build_id = $2")
        .bind(&app.id)
        .bind(build_id)
        .fetch_one(st.db.pool())
        .await
        .map(|r| i(&r, "image_bytes"))
        .map_err(|e| e.to_string())?;
    let mut patches = Vec::new();
    let mut large = Vec::new();
    let n = sources.len().max(1);
    for (k, from) in sources.into_iter().enumerate() {
        let store = ChunkStore::open(&st.depot.local(&depot::chunks_key(&app.id))).map_err(|e| e.to_string())?;
        let ft = load_tree(st, &app.id, &from.tree_path, true).await?;
        let tt = to_tree.clone().ok_or("no target tree")?;
        let meta = edge_engine::patch::PatchMeta {
            org_name: app.org_name.clone(),
            app_name: app.name.clone(),
            from_build_id: from.build_id as u64,
            to_build_id: build_id as u64,
            from_dxf_name: from.dxf_name.clone().unwrap_or_default(),
            to_dxf_name: to.dxf_name.clone().unwrap_or_default(),
            created: rfc3339(now_ms()),
        };
        let dir = base.join(from.build_id.to_string());
        let p = params(st);
        let sum = tokio::task::spawn_blocking(move || {
            edge_engine::patch::write_patch(&ft, &tt, &store, &meta, &dir, &p).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        if sum.size_bytes as i64 * 2 > image_bytes {
            large.push(from.build_id);
        }
        patches.push(json!({"fromBuildId": from.build_id, "sizeBytes": sum.size_bytes, "reusedChunks": sum.reused, "deltaChunks": sum.deltas, "sentChunks": sum.sent}));
        progress.set((k + 1) as f64 / n as f64);
    }
    if !patches.is_empty() {
        st.depot.push_dir(&base_key, "patch.json").await?;
    }
    let mut d = ok(json!({"patches": patches}), After::Nothing);
    if !large.is_empty() {
        d.outcome.warning = Some(
            json!({"code": "large-patch", "message": format!("patch(es) from build(s) {large:?} exceed 50 % of the image"), "acknowledged": false}),
        );
    }
    Ok(d)
}

/// The files of a staged directory in publishing order: data, then the manifest last.
fn publish_order(dir: &Path, manifest: &str) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != manifest)
        .collect();
    names.sort();
    names.push(manifest.to_string());
    Ok(names)
}

/// The targets of an app: its deployments (all of the org's when its list is empty), in
/// order, then the depot. A deployment that cannot be resolved (an `fs` path gone bad) is
/// `Err((deployment id, name, why))`, so its publish fails naming it.
pub async fn app_targets(st: &AppState, app: &AppCtx) -> Result<Vec<Result<TargetSpec, (String, String, String)>>, String> {
    let mut c = st.db.conn().await.map_err(|e| e.to_string())?;
    let all = deployments::list(&mut c, &app.org_id).await.map_err(|e| e.to_string())?;
    let chosen: Vec<&deployments::Deployment> = if app.deployments.is_empty() {
        all.iter().collect()
    } else {
        app.deployments.iter().filter_map(|n| all.iter().find(|d| &d.name == n)).collect()
    };
    let mut out = Vec::new();
    for d in chosen {
        out.push(crate::http::deployments::target_of(st, d).map_err(|e| (d.id.clone(), d.name.clone(), e.message)));
    }
    out.push(Ok(TargetSpec::depot(st)));
    Ok(out)
}

async fn deploy(st: &Arc<AppState>, t: &tasks::Task, app: &AppCtx, progress: &Progress) -> Result<Done, String> {
    let build_id = t.build_id.ok_or("the task has no build id")?;
    // The files the group's image and patch steps staged (the runs that committed).
    let mut c = st.db.conn().await.map_err(|e| e.to_string())?;
    let steps = tasks::group(&mut c, &t.group).await.map_err(|e| e.to_string())?;
    drop(c);
    let owner_of =
        |kinds: &[&str]| steps.iter().find(|x| kinds.contains(&x.kind.as_str()) && x.status == "done").and_then(|x| x.lease_owner.clone());
    let image_owner = owner_of(&["mkdxf", "mkseq"]).ok_or("the group has no staged image")?;
    let image_key = format!("{}/dxf", depot::staging_key(&app.id, &t.group, &image_owner));
    if !st.depot.pull_dir(&image_key).await? {
        return Err("the staged image is missing from the depot".into());
    }
    let image_dir = st.depot.local(&image_key);
    let pat_dir = match owner_of(&["mkpat"]) {
        Some(o) => {
            let k = format!("{}/pat", depot::staging_key(&app.id, &t.group, &o));
            st.depot.pull_dir(&k).await?;
            Some(st.depot.local(&k))
        }
        None => None,
    };
    // The image this group staged (an import's first image, or a re-sequenced one).
    let staged: Value = std::fs::read(image_dir.join("manifest.json"))
        .map_err(|e| format!("staged image: {e}"))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("staged manifest: {e}")))?;
    let dxf = staged["dxfName"].as_str().ok_or("the staged manifest has no dxfName")?.to_string();
    let image_files = publish_order(&image_dir, "manifest.json")?;
    let mut patch_dirs: Vec<(i64, PathBuf, Vec<String>)> = Vec::new();
    if let Some(Ok(rd)) = pat_dir.as_ref().map(std::fs::read_dir) {
        for e in rd.flatten() {
            if let Ok(from) = e.file_name().to_string_lossy().parse::<i64>() {
                patch_dirs.push((from, e.path(), publish_order(&e.path(), "patch.json")?));
            }
        }
    }
    patch_dirs.sort_by_key(|p| -p.0);
    let mut targets = Vec::new();
    for tg in app_targets(st, app).await? {
        match tg {
            Ok(t) => targets.push(t),
            Err((id, name, msg)) => {
                return Ok(fail(
                    json!({"error": {"code": "publish-failed", "message": format!("{name}: {msg}")}, "deployment": {"name": name}}),
                    After::DeployFailed { deployment_id: id, message: msg },
                ))
            }
        }
    }
    let total_objects = (image_files.len() + patch_dirs.iter().map(|p| p.2.len()).sum::<usize>()) * targets.len();
    let mut done_objects = 0usize;
    for tg in &targets {
        let fail_target = |msg: String| {
            fail(
                json!({"error": {"code": "publish-failed", "message": format!("{}: {msg}", tg.name)}, "deployment": {"name": tg.name}}),
                After::DeployFailed { deployment_id: tg.deployment_id.clone(), message: msg },
            )
        };
        let origin = match tg.origin(st) {
            Ok(o) => o,
            Err(e) => return Ok(fail_target(e.to_string())),
        };
        let dxf_dir = edge_origin::keys::dxf_dir(&tg.prefix, &app.org_name, &app.name, build_id as u64, &dxf);
        // Patches and image data first; the image manifest last of all.
        let mut uploads: Vec<(String, PathBuf)> = Vec::new();
        for (from, dir, files) in &patch_dirs {
            let pd = edge_origin::keys::pat_dir(&tg.prefix, &app.org_name, &app.name, build_id as u64, *from as u64);
            uploads.extend(files.iter().map(|f| (edge_origin::keys::join(&pd, f), dir.join(f))));
        }
        let (manifest, data): (Vec<&String>, Vec<&String>) = image_files.iter().partition(|f| *f == "manifest.json");
        let mut ordered: Vec<(String, PathBuf)> = data.iter().map(|f| (edge_origin::keys::join(&dxf_dir, f), image_dir.join(f))).collect();
        ordered.extend(uploads);
        ordered.extend(manifest.iter().map(|f| (edge_origin::keys::join(&dxf_dir, f), image_dir.join(f))));
        for (key, path) in ordered {
            if let Err(e) = origin.put_file(&key, &path).await {
                return Ok(fail_target(e.to_string()));
            }
            st.metrics.published_bytes.fetch_add(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0), Ordering::Relaxed);
            let mut c = st.db.conn().await.map_err(|e| e.to_string())?;
            published::record(&mut c, &app.org_id, &app.id, &tg.deployment_id, &key, Some(build_id)).await.map_err(|e| e.to_string())?;
            done_objects += 1;
            progress.set(done_objects as f64 / total_objects.max(1) as f64);
        }
    }
    let patches: Vec<(i64, u64)> = patch_dirs
        .iter()
        .map(|(from, dir, files)| (*from, files.iter().map(|f| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0)).sum()))
        .collect();
    Ok(ok(
        json!({"dxfName": dxf, "targets": targets.iter().map(|t| t.name.clone()).collect::<Vec<_>>(), "patches": patches.iter().map(|p| json!({"fromBuildId": p.0, "sizeBytes": p.1})).collect::<Vec<_>>()}),
        After::Deployed {
            targets: targets.iter().map(|t| t.deployment_id.clone()).filter(|d| !d.is_empty()).collect(),
            patches,
            image_bytes: image_files.iter().map(|f| std::fs::metadata(image_dir.join(f)).map(|m| m.len()).unwrap_or(0)).sum(),
            dxf_name: dxf,
        },
    ))
}

/// Commits the state change of a finished task, in the transaction that records its end.
pub async fn commit(c: &mut Conn, st: &AppState, t: &tasks::Task, d: &Done) -> Result<(), sqlx::Error> {
    let app_id = t.app_id.clone().unwrap_or_default();
    match &d.after {
        After::Nothing => {}
        After::Downloaded => tasks::enter_line(c, &t.group).await?,
        After::CancelRest => {
            tasks::cancel_rest(c, &t.group, None).await?;
        }
        After::Identical => {
            tasks::cancel_rest(c, &t.group, Some(&json!({"reason": "identical-build"}))).await?;
        }
        After::Raw { tree_path, content_hash, size } => {
            let id: i64 = sqlx::query("UPDATE apps SET next_build_id = next_build_id + 1 WHERE id = $1 RETURNING next_build_id")
                .bind(&app_id)
                .fetch_one(&mut *c)
                .await
                .map(|r| i(&r, "next_build_id") - 1)?;
            sqlx::query(
                "INSERT INTO builds (app_id, build_id, org_id, build_name, size_bytes, content_hash, tree_path, task_group, status, created) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9)",
            )
            .bind(&app_id)
            .bind(id)
            .bind(t.org_id.clone().unwrap_or_default())
            .bind(t.build_name.clone().unwrap_or_else(|| format!("build-{id}")))
            .bind(*size as i64)
            .bind(content_hash)
            .bind(tree_path)
            .bind(&t.group)
            .bind(now_ms())
            .execute(&mut *c)
            .await?;
            tasks::set_group_build(c, &t.group, id).await?;
            if t.build_name.is_none() {
                sqlx::query("UPDATE tasks SET build_name = $1 WHERE task_group = $2")
                    .bind(format!("build-{id}"))
                    .bind(&t.group)
                    .execute(&mut *c)
                    .await?;
            }
        }
        After::Dxf { dxf_name, image_bytes } => {
            sqlx::query("UPDATE builds SET dxf_name = $1, image_bytes = $2 WHERE app_id = $3 AND build_id = $4")
                .bind(dxf_name)
                .bind(*image_bytes as i64)
                .bind(&app_id)
                .bind(t.build_id)
                .execute(&mut *c)
                .await?;
        }
        After::DeployFailed { deployment_id, message } => {
            sqlx::query("UPDATE apps SET error = 1, error_task = $1, updated = $2 WHERE id = $3")
                .bind(&t.name)
                .bind(now_ms())
                .bind(&app_id)
                .execute(&mut *c)
                .await?;
            if !deployment_id.is_empty() {
                deployments::set_status(c, deployment_id, false, &format!("publish failed {}: {message}", rfc3339(now_ms()))).await?;
            }
        }
        After::Seq { build_id, .. } => tasks::set_group_build(c, &t.group, *build_id).await?,
        After::SeqNoGain { build_id } => {
            tasks::set_group_build(c, &t.group, *build_id).await?;
            tasks::cancel_rest(c, &t.group, Some(&json!({"reason": "no-improvement"}))).await?;
            sqlx::query("UPDATE trainings SET since_sequence = 0, last_sequence = $1 WHERE app_id = $2")
                .bind(now_ms())
                .bind(&app_id)
                .execute(&mut *c)
                .await?;
        }
        After::Deployed { targets, patches, dxf_name, image_bytes } => {
            make_current(c, st, t, targets, patches, dxf_name, *image_bytes).await?;
            super::seq::after_publish(c, t).await?;
        }
    }
    Ok(())
}

/// Makes the deployed build current, rotates old builds out, and marks what left the
/// window as superseded (the sweep removes it after the grace period).
async fn make_current(
    c: &mut Conn,
    _st: &AppState,
    t: &tasks::Task,
    targets: &[String],
    patches: &[(i64, u64)],
    dxf_name: &str,
    image_bytes: u64,
) -> Result<(), sqlx::Error> {
    let app_id = t.app_id.clone().unwrap_or_default();
    let build_id = t.build_id.unwrap_or(0);
    let now = now_ms();
    let before = sqlx::query("SELECT dxf_name FROM builds WHERE app_id = $1 AND build_id = $2")
        .bind(&app_id)
        .bind(build_id)
        .fetch_one(&mut *c)
        .await?;
    if let Some(old) = crate::db::opt_s(&before, "dxf_name").filter(|o| o != dxf_name) {
        // A re-sequenced image replaces the build's previous one: its files leave with the
        // grace period, like a rotated build's.
        sqlx::query("UPDATE published SET superseded = $1 WHERE app_id = $2 AND build_id = $3 AND superseded IS NULL AND obj_key LIKE $4")
            .bind(now)
            .bind(&app_id)
            .bind(build_id)
            .bind(format!("%/{old}/%"))
            .execute(&mut *c)
            .await?;
    }
    sqlx::query("UPDATE builds SET dxf_name = $1, image_bytes = $2 WHERE app_id = $3 AND build_id = $4")
        .bind(dxf_name)
        .bind(image_bytes as i64)
        .bind(&app_id)
        .bind(build_id)
        .execute(&mut *c)
        .await?;
    let b = sqlx::query("SELECT build_name, dxf_name FROM builds WHERE app_id = $1 AND build_id = $2")
        .bind(&app_id)
        .bind(build_id)
        .fetch_one(&mut *c)
        .await?;
    sqlx::query("UPDATE builds SET status = 'retained' WHERE app_id = $1 AND status = 'current'").bind(&app_id).execute(&mut *c).await?;
    sqlx::query("UPDATE builds SET status = 'current' WHERE app_id = $1 AND build_id = $2")
        .bind(&app_id)
        .bind(build_id)
        .execute(&mut *c)
        .await?;
    sqlx::query(
        "UPDATE apps SET i_cur_build = $1, dxf_name = $2, build_name = $3, error = 0, error_task = NULL, updated = $4 WHERE id = $5",
    )
    .bind(build_id)
    .bind(crate::db::opt_s(&b, "dxf_name"))
    .bind(s(&b, "build_name"))
    .bind(now)
    .bind(&app_id)
    .execute(&mut *c)
    .await?;
    for (from, size) in patches {
        sqlx::query(
            "INSERT INTO patches (app_id, from_build, to_build, size_bytes, to_dxf_name, created) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&app_id)
        .bind(from)
        .bind(build_id)
        .bind(*size as i64)
        .bind(crate::db::opt_s(&b, "dxf_name").unwrap_or_default())
        .bind(now)
        .execute(&mut *c)
        .await?;
    }
    for d in targets {
        deployments::set_status(c, d, true, &format!("last publish {}", rfc3339(now))).await?;
    }
    rotate(c, &app_id).await
}

/// Keeps at most `maxBuilds` builds and the patches into the current build from them.
pub async fn rotate(c: &mut Conn, app_id: &str) -> Result<(), sqlx::Error> {
    let a = sqlx::query(
        "SELECT a.name, a.max_builds, a.i_cur_build, o.name AS org_name FROM apps a JOIN orgs o ON o.id = a.org_id WHERE a.id = $1",
    )
    .bind(app_id)
    .fetch_one(&mut *c)
    .await?;
    let (max, cur) = (i(&a, "max_builds"), opt_i(&a, "i_cur_build").unwrap_or(0));
    let rows =
        sqlx::query("SELECT build_id, dxf_name FROM builds WHERE app_id = $1 AND status IN ('current', 'retained') ORDER BY build_id DESC")
            .bind(app_id)
            .fetch_all(&mut *c)
            .await?;
    let mut live = Vec::new();
    for (k, r) in rows.iter().enumerate() {
        let id = i(r, "build_id");
        if (k as i64) < max {
            live.push(edge_origin::keys::dxf_dir("", &s(&a, "org_name"), &s(&a, "name"), id as u64, &s(r, "dxf_name")));
            if id != cur {
                live.push(edge_origin::keys::pat_dir("", &s(&a, "org_name"), &s(&a, "name"), cur as u64, id as u64));
            }
        } else {
            sqlx::query("UPDATE builds SET status = 'removed' WHERE app_id = $1 AND build_id = $2")
                .bind(app_id)
                .bind(id)
                .execute(&mut *c)
                .await?;
        }
    }
    sqlx::query("DELETE FROM patches WHERE app_id = $1 AND (to_build <> $2 OR from_build IN (SELECT build_id FROM builds WHERE app_id = $1 AND status = 'removed'))")
        .bind(app_id)
        .bind(cur)
        .execute(&mut *c)
        .await?;
    let live: Vec<String> = live.into_iter().map(|l| format!("{l}/")).collect();
    published::supersede_except(c, app_id, &live).await?;
    Ok(())
}

/// Cleans up working files once a finished task's transaction committed. A failed clean-up
/// only leaves garbage (the app's purge removes it), so it is logged, not retried.
pub async fn after_commit(st: &AppState, t: &tasks::Task, d: &Done) {
    let res = match (&d.after, t.kind.as_str()) {
        // The archive is no longer needed once it is chunked; a refused one stays, so a
        // retry gives the same verdict.
        (After::Raw { .. } | After::Identical, "mkraw") => {
            let app_id = t.app_id.as_deref().unwrap_or("_");
            super::preingest::forget(st, app_id, &t.group).await;
            if matches!(d.after, After::Identical) {
                // A pre-ingest wrote the tree of a build that is not kept.
                let _ = st.depot.remove(&depot::tree_key(app_id, &t.group)).await;
            }
            st.depot.remove(&depot::upload_key(&t.group)).await
        }
        (After::Deployed { .. }, _) => st.depot.remove_dir(&depot::group_staging_key(t.app_id.as_deref().unwrap_or("_"), &t.group)).await,
        _ => Ok(()),
    };
    if let Err(e) = res {
        tracing::warn!(task = %t.name, error = %e, "cleaning up after the task failed");
    }
}
