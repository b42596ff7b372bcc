//! Learning from play traces (formats.md, client.md): the app's stored traces mapped onto a
//! build by path, the sequence the optimiser chooses, the preload figures; the `mkseq`
//! step that republishes the current build in trained order when that beats its image.

use crate::delivery::builds::{build_row, load_tree, write_dxf, AppCtx};
use crate::delivery::outcome::{ok, After, Done, Progress};
use crate::delivery::StepError;
use crate::depot;
use crate::error::AboutExt;
use crate::ids::AppId;
use crate::state::AppState;
use crate::store::{tasks, traces, trainings};
use crate::util::now_ms;
use edge_engine::seq::{self, SeqParams};
use edge_engine::tree::Tree;
use edge_engine::Hash;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// The newest traces a sequence is learned from (older ones stay stored, counted, and
/// carried over, but do not slow `mkseq` down).
pub const TRAINING_MAX: i64 = 200;

/// Stored traces are zstd-compressed `rockit-trace` documents (this process's copy).
pub fn trace_file(st: &AppState, app_id: &AppId, trace_id: &str) -> std::path::PathBuf {
    st.depot.local(&depot::trace_key(app_id, trace_id))
}

/// Caches the traces `ids` here (from the depot) before [`learn`] reads them; a trace the
/// depot lost is skipped by `learn`, not fatal.
pub async fn fetch_traces(st: &AppState, app_id: &AppId, ids: &[String]) {
    for id in ids {
        if let Err(e) = st.depot.fetch(&depot::trace_key(app_id, id), "the trace").await {
            tracing::warn!(trace = %id, error = %e, "a stored trace cannot be read");
        }
    }
}

/// Reads one stored trace.
fn load(path: &Path) -> Option<seq::Trace> {
    let f = std::fs::File::open(path).ok()?;
    // Parsed as it is decoded: the document is never held whole.
    seq::read_trace(&mut zstd::stream::read::Decoder::new(f).ok()?).ok()
}

/// What the traces say about a build.
pub struct Learned {
    /// The learned chunk sequence (traced chunks first, then the untraced rest).
    pub sequence: Vec<Hash>,
    /// Traces it was learned from.
    pub traces: u64,
    /// The traces mapped onto the build.
    pub accesses: Vec<Vec<(u64, Hash)>>,
}

/// The app's newest traces (at most [`TRAINING_MAX`]) mapped onto `tree` and the sequence
/// learned from them; `None` when no trace touches the build. Blocking (file reads and the
/// optimiser): call from a blocking thread.
pub fn learn(st: &AppState, app_id: &AppId, trace_ids: &[String], tree: &Tree) -> Option<Learned> {
    let accesses: Vec<Vec<(u64, Hash)>> = trace_ids
        .iter()
        .filter_map(|id| load(&trace_file(st, app_id, id)))
        .map(|t| seq::accesses(tree, &t))
        .filter(|a| !a.is_empty())
        .collect();
    if accesses.is_empty() {
        return None;
    }
    let p = SeqParams {
        time_budget: std::time::Duration::from_secs(st.cfg.mkseq_seconds.max(1)),
        ..SeqParams::default()
    };
    // The traced chunks in the optimiser's order, then the untraced rest by how close it
    // sits to traced data (so a session reading just past what training saw waits less).
    let sequence = seq::with_tail(tree, &accesses, &seq::optimize(tree, &accesses, &p));
    Some(Learned { sequence, traces: accesses.len() as u64, accesses })
}

/// Ids of the app's newest traces.
pub async fn trace_ids(st: &AppState, app_id: &AppId) -> Result<Vec<String>, sqlx::Error> {
    traces::newest(&st.db, app_id, TRAINING_MAX).await
}

/// The app's sequence generation (0 before any `mkseq` published).
pub async fn generation(st: &AppState, app_id: &AppId) -> Result<i64, sqlx::Error> {
    Ok(trainings::generation(&st.db, app_id).await?.unwrap_or(0))
}

/// The chunk order of a published image, read from its index in the depot.
async fn image_order(
    st: &AppState,
    org: &str,
    app: &str,
    build_id: i64,
    dxf: &str,
) -> Result<Vec<Hash>, StepError> {
    let key = edge_origin::keys::join(
        &edge_origin::keys::dxf_dir("", org, app, build_id as u64, dxf),
        "index.json",
    );
    let bytes = st
        .depot
        .read_published(&key)
        .await?
        .ok_or_else(|| crate::depot::DepotError::Missing(key.clone()))?;
    let v: Value = serde_json::from_slice(&bytes).about(|| key.clone())?;
    v["chunks"]
        .as_array()
        .ok_or("index without chunks")?
        .iter()
        .map(|c| {
            c[0].as_str()
                .and_then(Hash::from_hex)
                .ok_or_else(|| StepError::from("index chunk hash"))
        })
        .collect()
}

/// How many traces' times-to-play a `mkseq` result lists (the newest).
const TIME_TO_PLAY_SHOWN: usize = 100;

/// p90 preload at 100 Mbit/s of an order over mapped traces, and each trace's
/// time-to-play (its preload's download time at 100 Mbit/s, in seconds).
fn objective(tree: &Tree, order: &[Hash], acc: &[Vec<(u64, Hash)>]) -> (u64, Vec<f64>) {
    let layout = seq::layout(tree, order);
    let b = seq::mbit_to_bytes_per_s(100.0);
    let per: Vec<u64> = acc.iter().map(|a| seq::preload_bytes(&layout, a, b)).collect();
    let seconds = per.iter().map(|&p| (p as f64 / b * 100.0).round() / 100.0).collect();
    (seq::aggregate(&per, seq::PRELOAD_PERCENTILE).unwrap_or(0), seconds)
}

/// `mkseq`: learn a sequence for the current build; write its image when the p90 preload
/// at 100 Mbit/s beats the published image's by `mkseq_min_gain`, else warn
/// `no-improvement` and cancel the group's `deploy`.
pub async fn mkseq(
    st: &Arc<AppState>,
    t: &tasks::Task,
    app: &AppCtx,
    progress: &Progress,
) -> Result<Done, StepError> {
    let build_id = app.cur_build.ok_or("the app has no current build")?;
    let b = build_row(st, &app.id, build_id).await?;
    let cur_dxf = b.dxf_name.clone().ok_or("the current build has no image")?;
    let ids = trace_ids(st, &app.id).await?;
    let gen = generation(st, &app.id).await?;
    let (st2, app_id) = (st.clone(), app.id.clone());
    let tree = load_tree(st, &app.id, &b.tree_path, false).await?;
    let cur_order = image_order(st, &app.org_name, &app.name, build_id, &cur_dxf).await?;
    progress.note(format!("learning the order from {} trace(s)", ids.len()));
    fetch_traces(st, &app.id, &ids).await;
    let (tree, learned) = tokio::task::spawn_blocking(move || {
        let learned = learn(&st2, &app_id, &ids, &tree);
        (tree, learned)
    })
    .await?;
    let Some(l) = learned else {
        return Ok(no_gain(build_id, json!({"traces": 0}), "no trace touches the current build"));
    };
    let new_order = edge_engine::image::stream_order(&tree, &l.sequence);
    let ((before, ttp_before), (after, ttp_after)) =
        (objective(&tree, &cur_order, &l.accesses), objective(&tree, &new_order, &l.accesses));
    // The newest traces' times-to-play on the published image and on the learned one (the
    // training page charts them).
    let newest = |v: Vec<f64>| v[v.len().saturating_sub(TIME_TO_PLAY_SHOWN)..].to_vec();
    let figures = json!({"traces": l.traces, "preload100Before": before, "preload100After": after,
        "timeToPlay100": {"before": newest(ttp_before), "after": newest(ttp_after)}});
    if before == 0 || (after as f64) > before as f64 * (1.0 - st.cfg.mkseq_min_gain) {
        let msg = format!(
            "the learned order gives a p90 preload of {after} bytes at 100 Mbit/s against {before} now: below the {:.0} % needed",
            st.cfg.mkseq_min_gain * 100.0
        );
        return Ok(no_gain(build_id, figures, &msg));
    }
    let meta_gen = gen + 1;
    let summary =
        write_dxf(st, t, app, &b, &l.sequence, l.traces, meta_gen as u64, &l.accesses, progress)
            .await?;
    let mut result = figures;
    result["dxfName"] = json!(summary.dxf_name);
    result["generation"] = json!(meta_gen);
    result["preload"] = summary.preload.clone();
    result["acceleration100"] = json!(summary.acceleration100);
    Ok(ok(
        result,
        After::Seq { build_id, dxf_name: summary.dxf_name, image_bytes: summary.total_bytes },
    ))
}

fn no_gain(build_id: i64, result: Value, message: &str) -> Done {
    let mut d = ok(result, After::SeqNoGain { build_id });
    d.outcome.warning =
        Some(json!({"code": "no-improvement", "message": message, "acknowledged": false}));
    d
}

/// After a group's `deploy` made its image (`dxf_name`) current, the training shows that
/// image's figures; a `mkseq` group also records its generation and restarts the count. A
/// rollback's group wrote no image: the figures are those of the step that wrote the one
/// it brought back.
pub async fn after_publish(
    c: &mut crate::store::Conn,
    t: &tasks::Task,
    dxf_name: &str,
) -> Result<(), sqlx::Error> {
    let app_id = t.app_id.clone().unwrap_or_default();
    let (kind, res) = match tasks::image_step(c, &t.group).await? {
        Some((kind, result)) => (kind, parse(result)),
        None => {
            let steps = tasks::image_steps_of_build(c, &app_id, t.build_id.unwrap_or(0)).await?;
            let wrote = steps.into_iter().map(|(_, r)| parse(r)).find(|r| r["dxfName"] == dxf_name);
            match wrote {
                // Not a sequence of its own: the generation count stays.
                Some(r) => ("rollback".to_string(), r),
                None => return Ok(()),
            }
        }
    };
    crate::domain::trainings::ensure(c, &t.org_id.clone().unwrap_or_default(), &app_id).await?;
    trainings::set_figures(
        c,
        &app_id,
        &res["preload"].to_string(),
        &res["acceleration100"].to_string(),
    )
    .await?;
    if kind == "mkseq" {
        trainings::record_sequence(c, &app_id, now_ms(), res["generation"].as_i64().unwrap_or(0))
            .await?;
    }
    Ok(())
}

/// A task's result JSON (`null` when absent or unreadable).
fn parse(result: Option<String>) -> Value {
    result.and_then(|v| serde_json::from_str(&v).ok()).unwrap_or(Value::Null)
}
