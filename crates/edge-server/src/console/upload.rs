//! Uploading a build from the browser: the page asks for an import (the API's Import Build
//! in upload mode) and gets its one-time upload URL back, then its script sends the picked
//! or dropped `.tar` there with a progress bar. The pipeline on the app page shows the rest.

use super::failure::Failure;
use super::form::Checked;
use super::viewer::Viewer;
use crate::domain::imports::{self, ImportRequest};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The import the page asks for.
#[derive(Deserialize)]
pub struct NewImport {
    /// Empty: the server names the build.
    #[serde(default)]
    build_name: String,
    /// The file's size, so an oversized one is refused before it is sent.
    size: Option<u64>,
}

/// `POST /console/apps/{name}/imports`: starts an upload-mode import; answers JSON with the
/// upload URL as a path on this server (so the page's script may send to it under the
/// Content-Security-Policy's `connect-src 'self'`) and the import's task group.
pub async fn start(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(name): Path<String>,
    Checked(f): Checked<NewImport>,
) -> Result<Response, Failure> {
    let req = ImportRequest {
        app_name: name,
        build_name: Some(f.build_name.trim().to_string()).filter(|n| !n.is_empty()),
        url: None,
        size: f.size,
    };
    let done = imports::import(&st, &v.caller, req).await?;
    let upload =
        done.upload.ok_or_else(|| ApiError::internal("an upload import without its URL"))?;
    let path = upload.url.strip_prefix(st.public_url.as_str()).unwrap_or(&upload.url).to_string();
    Ok(Json(json!({"uploadPath": path, "taskGroup": done.task_group})).into_response())
}
