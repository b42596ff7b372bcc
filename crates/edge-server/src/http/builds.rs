//! Build import (`POST /be/v1/builds`) and the one-time upload URL
//! (`PUT /be/v1/uploads/{token}`, in [`upload`]), which streams the archive to disk.

use super::extract::JsonBody;
use super::reply::{Reply, Success};
use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::names::{text, Name};
use crate::perms::{Resource, U};
use crate::state::AppState;
use crate::store::{tasks, uploads};
use crate::util::{now_ms, random_token, rfc3339, sha256_hex};
use axum::extract::State;
use axum::routing::{post, put};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::ToSchema;

#[path = "builds_upload.rs"]
mod upload;
pub use upload::UPLOAD_IDLE;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/builds", post(post_build))
        .route("/be/v1/uploads/{token}", put(upload::put_upload))
}

/// The pipeline steps after `dltar`, in order.
const STEPS: [tasks::Payload; 4] = [
    tasks::Payload::Mkraw,
    tasks::Payload::Mkdxf,
    tasks::Payload::Mkpat,
    tasks::DeployParams::PUBLISH,
];

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
    // JSON here: `parse_url` reads it, with error messages that name the exact field.
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

/// A validated import URL: href, headers, sha256.
struct ImportUrl {
    href: String,
    headers: Map<String, Value>,
    sha256: Option<String>,
}

fn parse_href(field: &str, v: &Value) -> ApiResult<String> {
    let s =
        v.as_str().ok_or_else(|| ApiError::invalid(field, format!("{field} must be a string")))?;
    let ok = reqwest::Url::parse(s)
        .map(|u| (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some())
        .unwrap_or(false);
    if !ok || s.len() > 8192 {
        return Err(ApiError::invalid(field, format!("{field} must be an http or https URL")));
    }
    Ok(s.to_string())
}

fn parse_url(v: &Value) -> ApiResult<ImportUrl> {
    match v {
        Value::String(_) => {
            Ok(ImportUrl { href: parse_href("url", v)?, headers: Map::new(), sha256: None })
        }
        Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| !["href", "headers", "sha256"].contains(&k.as_str()))
            {
                return Err(ApiError::invalid(
                    &format!("url.{k}"),
                    format!("unknown field 'url.{k}'"),
                ));
            }
            let href = parse_href("url.href", o.get("href").unwrap_or(&Value::Null))?;
            let mut headers = Map::new();
            match o.get("headers") {
                None | Some(Value::Null) => {}
                Some(Value::Object(h)) => {
                    for (k, v) in h {
                        let lk = k.to_ascii_lowercase();
                        if ["host", "content-length", "transfer-encoding", "connection"]
                            .contains(&lk.as_str())
                        {
                            return Err(ApiError::invalid(
                                "url.headers",
                                format!("header '{k}' may not be set"),
                            ));
                        }
                        let valid_name = !k.is_empty()
                            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                        let val =
                            v.as_str().filter(|s| s.len() <= 8192 && !s.contains(['\r', '\n']));
                        match (valid_name, val) {
                            (true, Some(val)) => {
                                headers.insert(k.clone(), json!(val));
                            }
                            _ => {
                                return Err(ApiError::invalid(
                                    "url.headers",
                                    format!(
                                        "header '{k}' must be a valid name with a string value"
                                    ),
                                ))
                            }
                        }
                    }
                }
                Some(_) => {
                    return Err(ApiError::invalid("url.headers", "url.headers must be an object"))
                }
            }
            let sha256 = match o.get("sha256") {
                None | Some(Value::Null) => None,
                Some(Value::String(s))
                    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    Some(s.to_lowercase())
                }
                Some(_) => {
                    return Err(ApiError::invalid("url.sha256", "url.sha256 must be 64 hex digits"))
                }
            };
            Ok(ImportUrl { href, headers, sha256 })
        }
        _ => Err(ApiError::invalid("url", "url must be a string or an import URL object")),
    }
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
    Name::parse("appName", &b.app_name)?;
    let build_name = b.build_name.as_deref().map(|n| text("buildName", n, 1, 100)).transpose()?;
    let url = b.url.as_ref().filter(|v| !v.is_null()).map(parse_url).transpose()?;
    if b.size.is_some_and(|s| s > st.cfg.upload_max_bytes) {
        return Err(ApiError::too_large("size is over the build size limit"));
    }
    c.require(Resource::Apps, U)?;
    let mut tx = st.db.tx().await?;
    let (app_id, locked) = crate::store::apps::lock_state(&mut tx, &c.org_id, &b.app_name)
        .await?
        .ok_or_else(|| ApiError::not_found("app", &b.app_name))?;
    if locked {
        return Err(ApiError::conflict(
            "app-locked",
            "the app is in error state after a failed publish; fix it and retry the task first",
        ));
    }
    if url.is_none() && uploads::waiting_count(&mut tx, &app_id).await? >= 4 {
        return Err(ApiError::conflict(
            "invalid-state",
            "this app already has 4 uploads waiting; use or expire them first",
        ));
    }
    let group = crate::util::new_id("g");
    let mut params = tasks::DltarParams::upload(b.size);
    if let Some(u) = &url {
        params.mode = tasks::ImportMode::Url;
        params.url = Some(u.href.clone());
        params.sha256 = u.sha256.clone();
        if !u.headers.is_empty() {
            // Import headers often carry credentials: sealed at rest like every secret.
            params.headers_sealed =
                Some(st.data_key.seal(Value::Object(u.headers.clone()).to_string().as_bytes()));
        }
    }
    let base = tasks::NewTask {
        org_id: Some(c.org_id.clone()),
        org_name: Some(c.org_name.clone()),
        group: Some(group.clone()),
        app_id: Some(app_id.clone()),
        app_name: Some(b.app_name.clone()),
        build_name: build_name.clone(),
        ..tasks::NewTask::of(params)
    };
    let (dl, _) = tasks::enqueue(
        &mut tx,
        tasks::NewTask {
            step: 1,
            run_after: if url.is_some() { 0 } else { i64::MAX },
            ..base.clone()
        },
    )
    .await?;
    for (k, step) in STEPS.iter().enumerate() {
        tasks::enqueue(
            &mut tx,
            tasks::NewTask { payload: step.clone(), step: k as i64 + 2, ..base.clone() },
        )
        .await?;
    }
    let mut out = BuildImported {
        status: Success,
        task_name: dl.clone(),
        task_group: group,
        upload_url: None,
        upload_expires: None,
    };
    if url.is_none() {
        let token = random_token();
        let expires = now_ms() + st.cfg.upload_ttl as i64 * 1000;
        let upload = uploads::NewUpload {
            token_hash: sha256_hex(token.as_bytes()),
            task: &dl,
            org_id: &c.org_id,
            app_id: &app_id,
            expires,
            size_expected: b.size.map(|s| s as i64),
        };
        uploads::insert(&mut tx, upload).await?;
        out.upload_url = Some(format!("{}/be/v1/uploads/{token}", st.public_url));
        out.upload_expires = Some(rfc3339(expires));
    }
    tx.commit().await?;
    Ok(Reply(out))
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(post_build, upload::put_upload))]
pub struct Api;
