//! A build's working data between the steps: the app as the pipeline sees it, engine
//! parameters, the build tree (stored in the depot, read back into this process's cache),
//! build rows, and writing a DxF image signed with the organization's key.

use super::outcome::Progress;
use super::StepError;
use crate::depot;
use crate::error::AboutExt;
use crate::ids::{AppId, OrgId};
use crate::state::AppState;
use crate::store::{apps, builds, orgs, tasks, Conn};
use crate::util::{now_ms, rfc3339};
use edge_engine::store::ChunkStore;
use edge_engine::tree::Tree;
use edge_engine::Params;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The app a task works for.
pub struct AppCtx {
    pub id: AppId,
    pub name: String,
    pub org_id: OrgId,
    pub org_name: String,
    pub max_builds: i64,
    pub deployments: Vec<String>,
    pub cur_build: Option<i64>,
}

/// Loads the app of a task (None when it was deleted meanwhile).
pub async fn app_ctx(c: &mut Conn, app_id: &AppId) -> Result<Option<AppCtx>, sqlx::Error> {
    Ok(apps::for_pipeline(c, app_id).await?.map(|a| AppCtx {
        // A list that does not parse is no list (as it always was).
        deployments: serde_json::from_str(&a.deployments).unwrap_or_default(),
        id: a.id,
        name: a.name,
        org_id: a.org_id,
        org_name: a.org_name,
        max_builds: a.max_builds,
        cur_build: a.i_cur_build,
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

pub(crate) fn read_tree(path: &Path) -> Result<Tree, StepError> {
    let what = || format!("build tree {}", path.display());
    let bytes = std::fs::read(path).about(what)?;
    Ok(serde_json::from_slice(&bytes).about(what)?)
}

/// A build's tree (`tree_path` is its depot key; an absolute path on data from before the
/// depot had keys), read through the depot; with `chunks`, its chunks are cached here too.
pub(crate) async fn load_tree(
    st: &AppState,
    app_id: &AppId,
    tree_path: &str,
    chunks: bool,
) -> Result<Tree, StepError> {
    let path = if Path::new(tree_path).is_absolute() {
        PathBuf::from(tree_path)
    } else {
        st.depot.fetch(tree_path, "the build tree").await?
    };
    let mut tree = tokio::task::spawn_blocking(move || read_tree(&path)).await??;
    if chunks {
        st.depot.pull_chunks(app_id, &tree.chunks.keys().copied().collect::<Vec<_>>()).await?;
    }
    if !st.depot.is_shared() {
        // Settling (local depots only) may have stored chunks smaller since the tree was
        // written: the image's layout and preload figures are worked out from the sizes as
        // they are now.
        let store = ChunkStore::open(&st.depot.local(&depot::chunks_key(app_id)))
            .map_err(StepError::Engine)?;
        tree = tokio::task::spawn_blocking(move || {
            tree.refresh_stored(&store);
            tree
        })
        .await?;
    }
    Ok(tree)
}

/// Writes a build's tree under its depot key (atomically) and sends it to the depot.
pub(crate) async fn store_tree(
    st: &AppState,
    app_id: &AppId,
    group: &str,
    tree: &Tree,
) -> Result<(), StepError> {
    let tree_key = depot::tree_key(app_id, group);
    let path = st.depot.local(&tree_key);
    let dir = path.parent().ok_or("tree path")?.to_path_buf();
    let bytes = serde_json::to_vec(tree)?;
    let tmp = dir.join(format!(".{group}.tmp"));
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)
    })
    .await??;
    Ok(st.depot.push(&tree_key).await?)
}

/// A build as the pipeline needs it.
pub(crate) use crate::store::builds::BuildRow;

/// One build of an app.
pub(crate) async fn build_row(
    st: &AppState,
    app_id: &AppId,
    build_id: i64,
) -> Result<BuildRow, StepError> {
    builds::row(&st.db, app_id, build_id)
        .await?
        .ok_or_else(|| StepError::internal(format!("build {build_id} is not recorded")))
}

/// The org key as a signer, when the org has one.
pub(crate) async fn org_signer(
    st: &AppState,
    org_id: &OrgId,
) -> Result<Option<rsa::RsaPrivateKey>, StepError> {
    use rsa::pkcs8::DecodePrivateKey;
    // A connection for this one read, given back before the key is unsealed.
    let mut c = st.db.conn().await?;
    let sealed = orgs::key_sealed(&mut c, org_id).await?;
    drop(c);
    let Some(sealed) = sealed else { return Ok(None) };
    let der = st.data_key.open(&sealed).ok_or("the organization key cannot be unsealed")?;
    rsa::RsaPrivateKey::from_pkcs8_der(&der)
        .map(Some)
        .map_err(|e| StepError::internal(format!("organization key: {e}")))
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
/// the build) give the manifest's preload figures. `progress` counts the bytes of the
/// packs written of all the packs' bytes, and its note names the pack being written.
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
    progress: &Progress,
) -> Result<DxfWritten, StepError> {
    let key = org_signer(st, &app.org_id).await?;
    let owner = t.lease_owner.as_deref().ok_or("the task is not leased")?;
    let stage_key = format!("{}/dxf", depot::staging_key(&app.id, &t.group, owner));
    let dir = st.depot.local(&stage_key);
    let store = ChunkStore::open(&st.depot.local(&depot::chunks_key(&app.id)))
        .map_err(StepError::Engine)?;
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
    if st.depot.is_shared() {
        progress.note("fetching the build's chunks from the depot");
    }
    let tree = load_tree(st, &app.id, &b.tree_path, true).await?;
    let (sequence, accesses) = (sequence.to_vec(), accesses.to_vec());
    let prog = progress.clone();
    let written = tokio::task::spawn_blocking(move || -> Result<DxfWritten, StepError> {
        let order = edge_engine::image::stream_order(&tree, &sequence);
        // The packs to write are known before the first byte: the fraction is the bytes
        // written of theirs, and the note the pack those bytes are in.
        let ends = edge_engine::image::pack_ends(&tree, &order, p.pack_limit);
        prog.count_bytes(ends.last().copied().unwrap_or(0));
        match ends.len() {
            0 => prog.note("writing image"),
            n => prog.note_of_bytes(move |done| {
                let pack = ends.partition_point(|end| *end < done).min(n - 1) + 1;
                format!("writing image: pack {pack} of {n}")
            }),
        }
        let layout = edge_engine::seq::layout(&tree, &order);
        meta.preload = edge_engine::seq::preload_figures_at(
            &layout,
            &accesses,
            edge_engine::seq::PRELOAD_PERCENTILE,
        );
        let accel =
            meta.preload["100"].as_u64().and_then(|p| edge_engine::seq::acceleration(&layout, p));
        let _ = std::fs::remove_dir_all(&dir);
        let signer = key.map(|k| move |m: &[u8]| edge_engine::image::rsa_sign(&k, m));
        let sign: Option<edge_engine::image::Signer<'_>> =
            signer.as_ref().map(|f| f as edge_engine::image::Signer<'_>);
        let s = edge_engine::image::write_image(
            &tree,
            &store,
            &sequence,
            &meta,
            &dir,
            &p,
            sign,
            prog.bytes(),
        )
        .map_err(StepError::Engine)?;
        Ok(DxfWritten {
            dxf_name: s.dxf_name,
            files: s.files,
            pack_bytes: s.pack_bytes,
            total_bytes: s.total_bytes,
            preload: meta.preload,
            acceleration100: accel,
        })
    })
    .await??;
    if st.depot.is_shared() {
        progress.note("sending the image to the depot");
    }
    st.depot.push_dir(&stage_key, "manifest.json").await?;
    Ok(written)
}
