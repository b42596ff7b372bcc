//! Purges: a task carrying a sealed snapshot of exactly which objects were published where
//! (and which local directories hold the data), taken when the deletion happened, so a
//! re-created app, deployment or org of the same name is never touched.

use crate::delivery::StepError;
use crate::domain::purge::Snapshot;
use crate::error::AboutExt;
use crate::state::AppState;
use crate::store::tasks::{PurgeParams, Task};
use serde_json::{json, Value};

/// Runs a purge task: deletes every recorded object (a missing one counts as gone), then
/// the local directories. Any failure leaves the task in error, retryable; its code names
/// the part that failed (`snapshot`, `origin`, `local`, `depot`).
pub async fn run(st: &AppState, t: &Task) -> Result<Value, StepError> {
    // Parameters that do not decode have no snapshot to read.
    let params: PurgeParams =
        t.payload().map_err(|_| StepError::coded("snapshot", "no snapshot"))?;
    let bytes = st.data_key.open(&params.snapshot).ok_or_else(|| {
        StepError::coded("snapshot", "the snapshot cannot be read with this instance's data key")
    })?;
    let snap: Snapshot =
        serde_json::from_slice(&bytes).map_err(|e| StepError::coded("snapshot", e.to_string()))?;
    let mut removed = 0u64;
    for (spec, keys) in &snap.targets {
        let origin = spec.origin(st).about(|| spec.name.as_str())?;
        for k in keys {
            origin.delete(k).await.about(|| spec.name.as_str())?;
            removed += 1;
        }
    }
    let n_dirs = snap.dirs.len();
    for d in &snap.dirs {
        if std::path::Path::new(d).is_absolute() {
            if let Err(e) = tokio::fs::remove_dir_all(d).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(e.into());
                }
            }
        } else {
            st.depot.remove_dir(d).await?;
        }
    }
    Ok(json!({"removed": removed, "targets": snap.targets.len(), "localDirs": n_dirs}))
}
