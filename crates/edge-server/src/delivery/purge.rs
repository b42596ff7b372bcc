//! Purges: a task carrying a sealed snapshot of exactly which objects were published where
//! (and which local directories hold the data), taken when the deletion happened, so a
//! re-created app, deployment or org of the same name is never touched.

use crate::domain::purge::Snapshot;
use crate::state::AppState;
use serde_json::{json, Value};

/// Runs a purge task: deletes every recorded object (a missing one counts as gone), then
/// the local directories. Any failure leaves the task in error, retryable.
pub async fn run(st: &AppState, params: &Value) -> Result<Value, (String, String)> {
    let sealed = params["snapshot"].as_str().ok_or(("snapshot".to_string(), "no snapshot".to_string()))?;
    let bytes = st
        .data_key
        .open(sealed)
        .ok_or(("snapshot".to_string(), "the snapshot cannot be read with this instance's data key".to_string()))?;
    let snap: Snapshot = serde_json::from_slice(&bytes).map_err(|e| ("snapshot".to_string(), e.to_string()))?;
    let mut removed = 0u64;
    for (spec, keys) in &snap.targets {
        let origin = spec.origin(st).map_err(|e| ("origin".to_string(), format!("{}: {e}", spec.name)))?;
        for k in keys {
            origin.delete(k).await.map_err(|e| ("origin".to_string(), format!("{}: {e}", spec.name)))?;
            removed += 1;
        }
    }
    let n_dirs = snap.dirs.len();
    for d in &snap.dirs {
        if std::path::Path::new(d).is_absolute() {
            if let Err(e) = tokio::fs::remove_dir_all(d).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(("local".to_string(), e.to_string()));
                }
            }
        } else {
            st.depot.remove_dir(d).await.map_err(|e| ("depot".to_string(), e))?;
        }
    }
    Ok(json!({"removed": removed, "targets": snap.targets.len(), "localDirs": n_dirs}))
}
