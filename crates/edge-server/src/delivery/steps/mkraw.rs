//! `mkraw`: the archive ingested (or the result of ingesting it while it was uploaded),
//! validated, chunked into the app's store; the build tree stored.

use crate::delivery::builds::{params, store_tree, AppCtx};
use crate::delivery::outcome::{fail, ok, After, Done, Progress};
use crate::delivery::StepError;
use crate::depot;
use crate::error::{About, AboutExt};
use crate::ids::AppId;
use crate::state::AppState;
use crate::store::{builds, tasks};
use edge_engine::store::ChunkStore;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub(crate) async fn mkraw(
    st: &Arc<AppState>,
    t: &tasks::Task,
    app: &AppCtx,
    progress: &Progress,
) -> Result<Done, StepError> {
    let mut c = st.db.conn().await?;
    let cur_hash = match app.cur_build {
        Some(b) => builds::content_hash(&mut c, &app.id, b).await?,
        None => None,
    };
    drop(c);
    // The upload may have been ingested as it arrived (preingest): then its result stands.
    let pre = crate::delivery::preingest::take(st, &app.id, &t.group).await;
    let fresh = pre.is_none();
    let (res, archive_bytes) = match pre {
        // Checked again: a kept result may come from an older binary's rules.
        Some((res, n)) => (
            res.and_then(|i| {
                edge_engine::ingest::check_tree(&i.tree)
                    .map(|()| i)
                    .map_err(edge_engine::ingest::IngestError::Rejected)
            }),
            n,
        ),
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
        Err(edge_engine::ingest::IngestError::Io(e)) => {
            return Err(About::new("reading the build", e).into())
        }
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
pub(crate) async fn ingest_archive(
    st: &Arc<AppState>,
    app_id: &AppId,
    group: &str,
    progress: &Progress,
) -> Result<(Result<edge_engine::ingest::Ingested, edge_engine::ingest::IngestError>, u64), StepError>
{
    let tar = st.depot.fetch(&depot::upload_key(group), "the build archive").await?;
    let store =
        ChunkStore::open(&st.depot.local(&depot::chunks_key(app_id))).map_err(StepError::Engine)?;
    let p = params(st);
    let total =
        std::fs::metadata(&tar).map(|m| m.len()).about(|| "the build archive is missing")?;
    let prog = progress.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&tar)?;
        let r = std::io::BufReader::with_capacity(1 << 20, f);
        Ok::<_, std::io::Error>(edge_engine::ingest::ingest(r, &store, &p, &mut |n| {
            prog.set(n as f64 / total.max(1) as f64)
        }))
    })
    .await??;
    Ok((outcome, total))
}
