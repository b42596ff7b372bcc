//! Play traces (client.md): a launcher's trace of its session, once parsed, checked
//! against the session, kept (the normalized document compressed in the depot, a row that
//! points at it), the oldest beyond `max_traces` dropped, and counted towards the app's
//! next sequencing run. Reading, decoding and parsing the body is the API's.

use super::launcher::Session;
use super::trainings;
use crate::depot;
use crate::error::{ApiError, ApiResult};
use crate::ids::TaskId;
use crate::state::AppState;
use crate::store::{launcher, traces};
use crate::util::{new_seq_id, now_ms};
use edge_engine::seq::Trace;
use std::path::Path;
use tokio::sync::OwnedSemaphorePermit;

/// 409 `item-exists`: one trace per session.
fn sent_already() -> ApiError {
    ApiError::conflict("item-exists", "this session has sent its trace already")
}

/// Keeps `trace`, sent in session `sess`; answers its id (`tr…`). 400 when it is of
/// another app or build than the session's; 409 `item-exists` when the session sent one
/// already (checked again as it is recorded). `permit` (a trace intake permit) is held
/// until the document is written, so the parsed traces in memory stay bounded by the
/// permits. Enough new traces queue a `mkseq` of the app.
pub(crate) async fn keep(
    st: &AppState,
    sess: &Session,
    trace: Trace,
    permit: OwnedSemaphorePermit,
) -> ApiResult<String> {
    if trace.app_name != sess.app_name || trace.build_id != sess.build_id.get() as u64 {
        return Err(ApiError::bad_request(format!(
            "the trace is for {} build {}, the session for {} build {}",
            trace.app_name, trace.build_id, sess.app_name, sess.build_id
        )));
    }
    if sess.trace_id.is_some() {
        return Err(sent_already());
    }
    // The normalized document, compressed as it is written, before the row that points at it.
    let id = new_seq_id("tr");
    let key = depot::trace_key(&sess.app_id, &id);
    let path = st.depot.local(&key);
    let events = trace.events.len() as i64;
    let p2 = path.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        write_compressed(&p2, &trace)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    // The learning step may run in another process: the trace goes to the depot first.
    if let Err(e) = st.depot.push(&key).await {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(ApiError::internal(e));
    }
    let res = record(st, sess, &id, events, stored).await;
    if res.is_err() {
        let _ = st.depot.remove(&key).await;
    }
    if let Some(t) = res? {
        tracing::info!(app = %sess.app_name, task = %t, "enough new traces: mkseq queued");
    }
    Ok(id)
}

/// Writes `trace` to `path` as zstd-compressed JSON, synced, under a temporary name first
/// (a reader never sees half a trace); answers the bytes written. Blocking.
fn write_compressed(path: &Path, trace: &Trace) -> std::io::Result<u64> {
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let enc = zstd::stream::write::Encoder::new(std::fs::File::create(&tmp)?, 3)?;
        let mut w = std::io::BufWriter::with_capacity(64 << 10, enc);
        serde_json::to_writer(&mut w, trace)?;
        w.into_inner().map_err(|e| e.into_error())?.finish()?.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    Ok(std::fs::metadata(path)?.len())
}

/// Records the trace (one per session, checked again under the write), drops the oldest
/// beyond `max_traces`, and counts it for the training; answers the `mkseq` task queued,
/// if any.
async fn record(
    st: &AppState,
    sess: &Session,
    id: &str,
    events: i64,
    bytes: u64,
) -> ApiResult<Option<TaskId>> {
    let mut tx = st.db.tx().await?;
    if !launcher::claim_trace(&mut tx, &sess.id, id).await? {
        return Err(sent_already());
    }
    let trace = traces::NewTrace {
        id,
        org_id: &sess.org_id,
        app_id: &sess.app_id,
        build_id: sess.build_id,
        session_id: &sess.id,
        events,
        bytes: bytes as i64,
        created: now_ms(),
    };
    traces::insert_trace(&mut tx, trace).await?;
    let dropped = traces::traces_beyond(&mut tx, &sess.app_id, st.cfg.max_traces as i64).await?;
    for d in &dropped {
        traces::delete_trace(&mut tx, d).await?;
    }
    let task =
        trainings::on_trace(&mut tx, &sess.org_id, &sess.org_name, &sess.app_id, &sess.app_name)
            .await?;
    tx.commit().await?;
    for d in dropped {
        let _ = st.depot.remove(&depot::trace_key(&sess.app_id, &d)).await;
    }
    Ok(task)
}
