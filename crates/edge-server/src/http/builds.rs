//! Build import (`POST /be/v1/builds`) and the one-time upload URL
//! (`PUT /be/v1/uploads/{token}`, in [`upload`]), which streams the archive to disk.

use super::extract::JsonBody;
use super::reply::{Reply, Success};
use crate::caller::Caller;
use crate::domain::imports::{self, ImportRequest};
use crate::error::ApiResult;
use crate::state::AppState;
use crate::util::rfc3339;
use axum::extract::State;
use axum::routing::{post, put};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::ToSchema;

#[path = "builds_upload.rs"]
mod upload;
pub use crate::domain::uploads::claim::UPLOAD_IDLE;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/builds", post(post_build))
        .route("/be/v1/uploads/{token}", put(upload::put_upload))
}

/// The Import Build body. With `url`, Edge downloads the archive itself; without it, the
/// answer holds a one-time URL the client uploads the archive to.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BuildIn {
    /// The app the build is for.
    #[schema(pattern = "^[A-Za-z0-9_]{2,50}$")]
    app_name: String,
    /// A name for the build, 1 to 100 characters (default `build-<id>`).
    #[schema(min_length = 1, max_length = 100)]
    build_name: Option<String>,
    /// Where Edge downloads the archive (a tar); absent or null: the client uploads it.
    // JSON here: `domain::imports::url` reads it, with error messages that name the exact
    // field.
    #[schema(value_type = Option<ImportUrlIn>)]
    url: Option<Value>,
    /// The archive's size in bytes, when known: an upload of another size is refused
    /// (400 on `size`); over the server's build size limit is 413.
    size: Option<u64>,
}

/// Where Edge downloads a build archive: an http(s) URL, or one with request headers and
/// a checksum (`GET /be/v1/schemas/import-url` has it as a JSON Schema).
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // describes `BuildIn::url` only
enum ImportUrlIn {
    /// The URL alone.
    Href(ImportHref),
    /// The URL with headers and a checksum.
    Full(ImportUrlObject),
}

/// An http or https URL, at most 8192 characters.
#[derive(Deserialize, ToSchema)]
#[schema(format = "uri")]
#[allow(dead_code)] // describes `BuildIn::url` only
struct ImportHref(String);

/// An import URL with what the download needs.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // describes `BuildIn::url` only
struct ImportUrlObject {
    /// The http or https URL, at most 8192 characters.
    #[schema(format = "uri", pattern = "^https?://", max_length = 8192)]
    href: String,
    /// Request headers for the download (names of letters, digits, `-`, `_`; values
    /// without line breaks, at most 8192 characters). `Host`, `Content-Length`,
    /// `Transfer-Encoding` and `Connection` may not be set. Kept sealed: they often carry
    /// credentials.
    headers: Option<HashMap<String, String>>,
    /// The archive's SHA-256 (64 hex digits): a download with another is refused.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    sha256: Option<String>,
}

/// The tasks an import started, and in upload mode where to send the archive.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildImported {
    /// Always `success`.
    status: Success,
    /// The first task of the pipeline (`dltar`): it downloads the archive, or waits for
    /// the upload.
    task_name: String,
    /// The group of the pipeline's tasks.
    task_group: String,
    /// Upload mode only: the one-time URL to `PUT` the archive to.
    #[serde(skip_serializing_if = "Option::is_none")]
    upload_url: Option<String>,
    /// Upload mode only: when the upload URL expires (RFC 3339); the import then ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    upload_expires: Option<String>,
}

/// Import a build (Edge download or client upload)
///
/// With `url`, the `dltar` task downloads the archive; without it, the answer holds
/// `uploadUrl`, where the archive goes with `PUT` before `uploadExpires`. An app in error
/// after a failed publish is 409 `app-locked` (retry the failed task first); an app with 4
/// uploads waiting is 409 `invalid-state` (use or expire them first).
#[utoipa::path(post, path = "/be/v1/builds", tag = "builds", request_body = BuildIn,
    responses((status = 200, description = "The import has started", body = BuildImported)),
    extensions(("x-rockit-auth" = json!("apps:U"))))]
async fn post_build(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<BuildIn>,
) -> ApiResult<Reply<BuildImported>> {
    let req =
        ImportRequest { app_name: b.app_name, build_name: b.build_name, url: b.url, size: b.size };
    let done = imports::import(&st, &c, req).await?;
    let (upload_url, upload_expires) = match done.upload {
        Some(u) => (Some(u.url), Some(rfc3339(u.expires))),
        None => (None, None),
    };
    Ok(Reply(BuildImported {
        status: Success,
        task_name: done.task_name.into_string(),
        task_group: done.task_group,
        upload_url,
        upload_expires,
    }))
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(post_build, upload::put_upload))]
pub struct Api;
