//! The Edge's local data layout. Per-app data is keyed by the app's id (never its name), so
//! a re-created app of the same name starts clean.

use crate::state::AppState;
use std::path::PathBuf;

/// The uploaded or downloaded tar of an import (one per task group).
pub fn upload_path(st: &AppState, group: &str) -> PathBuf {
    st.cfg.data_dir.join("uploads").join(format!("{group}.tar"))
}

/// The chunk store of an app.
pub fn chunks_dir(st: &AppState, app_id: &str) -> PathBuf {
    st.cfg.data_dir.join("chunks").join(app_id)
}

/// The build trees (JSON) of an app.
pub fn trees_dir(st: &AppState, app_id: &str) -> PathBuf {
    st.cfg.data_dir.join("trees").join(app_id)
}

/// Where an import's image and patches are written before publishing.
pub fn staging_dir(st: &AppState, app_id: &str, group: &str) -> PathBuf {
    st.cfg.data_dir.join("staging").join(app_id).join(group)
}

/// The play traces of an app (one zstd-compressed `rockit-trace` file each).
pub fn traces_dir(st: &AppState, app_id: &str) -> PathBuf {
    st.cfg.data_dir.join("traces").join(app_id)
}

/// Every local directory of an app (removed when the app goes).
pub fn app_dirs(st: &AppState, app_id: &str) -> Vec<PathBuf> {
    vec![chunks_dir(st, app_id), trees_dir(st, app_id), st.cfg.data_dir.join("staging").join(app_id), traces_dir(st, app_id)]
}
