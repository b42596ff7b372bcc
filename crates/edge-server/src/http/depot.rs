//! `GET /client/v1/depot/<org>/<app>/<NNNN>/<dxfName>/<file>`: the Edge's own copy of
//! published images, for launchers of apps without a CDN deployment. A session token of
//! that app is required (header, or `?token=` for tools that only take a URL); single
//! byte ranges are served as 206.

use super::client::session_from;
use super::reply::Failure;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/client/v1/depot/{org}/{app}/{build}/{dxf}/{file}", get(get_file))
}

fn safe(seg: &str) -> bool {
    !seg.is_empty()
        && seg.len() <= 200
        && !seg.starts_with('.')
        && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against `len`: the inclusive range, `Err` when
/// it cannot be satisfied, `None` when there is no (usable) header.
fn range(h: &HeaderMap, len: u64) -> Option<Result<(u64, u64), ()>> {
    let v = h.get(header::RANGE)?.to_str().ok()?.strip_prefix("bytes=")?;
    if v.contains(',') {
        return None; // several ranges: answer the whole file, as RFC 9110 allows
    }
    let (a, b) = v.split_once('-')?;
    let r = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (len.saturating_sub(n), len.checked_sub(1)?)
        }
        (a, "") => (a.parse().ok()?, len.checked_sub(1)?),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(len.saturating_sub(1))),
    };
    Some(if r.0 <= r.1 && r.0 < len { Ok(r) } else { Err(()) })
}

/// A file of a published image (a pack, a patch, …), as stored.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // the file is streamed as stored; this only names it
struct ImageFileBytes(Vec<u8>);

/// A JSON file of a published image (`manifest.json`, …), served as stored.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // the file is streamed as stored; this only names it
struct ImageJsonFile {}

/// A file of a published image, from the Edge's depot (ranges)
///
/// For launchers of apps no CDN deployment serves: the `manifestUrl` of a session points
/// here. The session token (header, or `token` in the query) must be of this app (403
/// otherwise). A single byte range (`Range: bytes=a-b`, `a-`, `-n`) is answered 206 with
/// `Content-Range`; several ranges get the whole file; a range outside the file is 416
/// with `Content-Range: bytes */<size>`. Files ending in `.json` are `application/json`.
#[utoipa::path(get, path = "/client/v1/depot/{org}/{app}/{build}/{dxf}/{file}", tag = "client",
    params(
        ("org" = String, Path, description = "The organization"),
        ("app" = String, Path, description = "The app"),
        ("build" = String, Path, description = "The build's directory (`NNNN`)"),
        ("dxf" = String, Path, description = "The image"),
        ("file" = String, Path, description = "The file (`manifest.json`, a pack, …)"),
        ("token" = Option<String>, Query, description = "The session token, for tools that cannot send `x-rockit-session-token`"),
        ("Range" = Option<String>, Header, nullable = false, description = "One byte range: `bytes=a-b`, `bytes=a-` or `bytes=-n`")),
    responses(
        (status = 200, description = "The whole file", headers(("Accept-Ranges" = String, description = "`bytes`")),
            content((ImageFileBytes = "application/octet-stream"), (ImageJsonFile = "application/json"))),
        (status = 206, description = "The range asked for",
            headers(("Content-Range" = String, description = "`bytes a-b/size`"), ("Accept-Ranges" = String, description = "`bytes`")),
            content((ImageFileBytes = "application/octet-stream"), (ImageJsonFile = "application/json"))),
        (status = 416, description = "The range lies outside the file (`range-not-satisfiable`)", body = Failure,
            headers(("Content-Range" = String, description = "`bytes */size`")))),
    extensions(("x-rockit-auth" = json!("x-rockit-session-token"))))]
async fn get_file(
    State(st): State<Arc<AppState>>,
    Path((org, app, build, dxf, file)): Path<(String, String, String, String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = raw.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    let sess = session_from(&st, &headers, token.as_deref()).await?;
    if sess.org_name != org || sess.app_name != app {
        return Err(ApiError::forbidden("the session belongs to another app"));
    }
    if ![&build, &dxf, &file].iter().all(|s| safe(s)) {
        return Err(ApiError::not_found("file", &file));
    }
    let key = format!("dxf/{org}/{app}/{build}/{dxf}/{file}");
    let len = st
        .depot
        .published_size(&key)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("file", &file))?;
    let (status, start, end) = match range(&headers, len) {
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
        Some(Ok((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
        Some(Err(())) => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
                "the range lies outside the file",
            )
            .into_response();
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}")).map_err(ApiError::internal)?,
            );
            return Ok(r);
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    let range = (count > 0).then_some((start, end));
    let dl = st
        .depot
        .open_published(&key, range)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("file", &file))?;
    // Streamed piece by piece: a pack is never held in memory whole.
    let stream = futures_util::stream::unfold(Some(dl), |dl| async move {
        let mut dl = dl?;
        match dl.chunk().await {
            Ok(None) => None,
            Ok(Some(b)) => Some((Ok::<_, std::io::Error>(b), Some(dl))),
            // The error ends the body (the client sees a short read); nothing more is read.
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let ctype =
        if file.ends_with(".json") { "application/json" } else { "application/octet-stream" };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
                .map_err(ApiError::internal)?,
        );
    }
    Ok(resp)
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_file))]
pub struct Api;
