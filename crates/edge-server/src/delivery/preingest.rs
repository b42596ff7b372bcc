//! Ingest while the upload streams: the bytes of an upload PUT go straight into the engine's
//! ingest on a blocking thread, so a build is cut, hashed and stored (durably) as it
//! arrives, and the archive itself is never written to disk — on this disk-bound machine
//! that is 2 GB less to write per 2 GB build. The outcome (the tree where `mkraw` writes it,
//! or the refusal) is kept as `trees/<app>/<group>.ingest.json`, written last, before the
//! upload is acknowledged; `mkraw` then takes it instead of ingesting, with the verdict it
//! would have reached itself (same function, same bytes).
//!
//! When it cannot run (an API-only process, `ingest_during_upload` off, two uploads already
//! ingesting in this process) the upload goes to disk and `mkraw` ingests it as before.

use crate::config::Role;
use crate::delivery::builds::params;
use crate::delivery::StepError;
use crate::depot;
use crate::error::{About, AboutExt};
use crate::ids::AppId;
use crate::state::AppState;
use axum::body::Bytes;
use edge_engine::ingest::{IngestError, Ingested};
use edge_engine::store::ChunkStore;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Uploads ingested at once per process; more are left to `mkraw`.
const MAX_CONCURRENT: usize = 2;
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// What `mkraw` needs besides the tree.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Marker {
    /// The refusal (`fileReadFailed`), when the archive was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rejected: Option<(String, String, String)>,
    new_chunks: usize,
    empty_files: usize,
    bytes_read: u64,
    /// Bytes uploaded (the archive's size, trailing padding included).
    #[serde(default)]
    archive_bytes: u64,
}

/// The key of an import's pre-ingest marker.
fn marker_key(app_id: &AppId, group: &str) -> String {
    format!("trees/{app_id}/{group}.ingest.json")
}

/// An ingest fed from an upload.
pub struct Tee {
    tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    handle: tokio::task::JoinHandle<Result<Ingested, IngestError>>,
}

impl Tee {
    /// Starts one for an upload to `app_id`, when this process runs workers and has room.
    pub fn start(st: &AppState, app_id: &AppId) -> Option<Tee> {
        if st.cfg.role == Role::Api || !st.cfg.ingest_during_upload {
            return None;
        }
        if RUNNING.fetch_add(1, Ordering::SeqCst) >= MAX_CONCURRENT {
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let Ok(store) = ChunkStore::open(&st.depot.local(&depot::chunks_key(app_id))) else {
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            return None;
        };
        let p = params(st);
        // A few MiB in flight: the upload waits for the ingest (TCP pushes back), never
        // the other way round beyond this.
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
        let busy = crate::settle::busy();
        let handle = tokio::task::spawn_blocking(move || {
            let _busy = busy;
            // No BufReader: the pieces are in memory already, a buffer would only copy them.
            let out = edge_engine::ingest::ingest(
                ChanReader { rx, cur: Bytes::new() },
                &store,
                &p,
                &mut |_| {},
            );
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            out
        });
        Some(Tee { tx: Some(tx), handle })
    }

    /// Passes a piece of the body on; once the ingest has stopped reading (it refused the
    /// archive) the rest is not sent.
    pub async fn feed(&mut self, b: Bytes) {
        if let Some(tx) = &self.tx {
            if tx.send(b).await.is_err() {
                self.tx = None;
            }
        }
    }

    /// Ends the body and waits for the ingest's outcome.
    pub async fn finish(mut self) -> Result<Ingested, IngestError> {
        self.tx = None;
        self.handle
            .await
            .unwrap_or_else(|e| Err(IngestError::Io(std::io::Error::other(e.to_string()))))
    }
}

/// Reads the pieces of a channel as one stream (end of stream when the sender is dropped).
struct ChanReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Keeps a completed upload's ingest for `mkraw`: chunks (already synced) and tree into
/// the depot, the marker last. An error of the Edge's own (disk, depot) fails the upload:
/// the client sends it again.
pub async fn save(
    st: &AppState,
    app_id: &AppId,
    group: &str,
    size: u64,
    outcome: Result<Ingested, IngestError>,
) -> Result<(), StepError> {
    let marker = match outcome {
        Ok(ing) => {
            st.depot
                .push_chunks(app_id, &ing.tree.chunks.keys().copied().collect::<Vec<_>>())
                .await?;
            crate::delivery::builds::store_tree(st, app_id, group, &ing.tree).await?;
            Marker {
                rejected: None,
                new_chunks: ing.new_chunks,
                empty_files: ing.empty_files,
                bytes_read: ing.bytes_read,
                archive_bytes: size,
            }
        }
        Err(IngestError::Rejected(r)) => Marker {
            rejected: Some((r.filename, r.type_expected, r.type_detected)),
            new_chunks: 0,
            empty_files: 0,
            bytes_read: 0,
            archive_bytes: size,
        },
        Err(IngestError::Io(e)) => return Err(About::new("ingest", e).into()),
    };
    let key = marker_key(app_id, group);
    let path = st.depot.local(&key);
    let bytes = serde_json::to_vec(&marker)?;
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::create_dir_all(path.parent().unwrap_or(std::path::Path::new(".")))?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, &bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })
    .await?
    .about(|| key.as_str())?;
    Ok(st.depot.push(&key).await?)
}

/// The outcome kept for an import, when there is one (its ingest, or its refusal), and the
/// archive's size.
pub async fn take(
    st: &AppState,
    app_id: &AppId,
    group: &str,
) -> Option<(Result<Ingested, IngestError>, u64)> {
    let key = marker_key(app_id, group);
    let path = st.depot.fetch(&key, "the pre-ingest marker").await.ok()?;
    let m: Marker = serde_json::from_slice(&tokio::fs::read(&path).await.ok()?).ok()?;
    if let Some((filename, type_expected, type_detected)) = m.rejected {
        let r = edge_engine::ingest::Rejected { filename, type_expected, type_detected };
        return Some((Err(IngestError::Rejected(r)), m.archive_bytes));
    }
    let tree =
        crate::delivery::builds::load_tree(st, app_id, &depot::tree_key(app_id, group), false)
            .await
            .ok()?;
    Some((
        Ok(Ingested {
            tree,
            empty_files: m.empty_files,
            new_chunks: m.new_chunks,
            bytes_read: m.bytes_read,
        }),
        m.archive_bytes,
    ))
}

/// Removes an import's marker (with its archive, once `mkraw` is done).
pub async fn forget(st: &AppState, app_id: &AppId, group: &str) {
    let _ = st.depot.remove(&marker_key(app_id, group)).await;
}
