//! Build import (`POST /be/v1/builds`) and the one-time upload URL
//! (`PUT /be/v1/uploads/{token}`), which streams the archive to disk.

use super::extract::{success, JsonBody};
use crate::caller::Caller;
use crate::depot;
use crate::error::{ApiError, ApiResult};
use crate::names::{text, Name};
use crate::perms::{Resource, U};
use crate::state::AppState;
use crate::store::{tasks, uploads};
use crate::util::{now_ms, random_token, rfc3339, sha256_hex};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{post, put};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/be/v1/builds", post(post_build)).route("/be/v1/uploads/{token}", put(put_upload))
}

/// The pipeline steps after `dltar`, in order.
const STEPS: [tasks::Payload; 4] = [tasks::Payload::Mkraw, tasks::Payload::Mkdxf, tasks::Payload::Mkpat, tasks::Payload::Deploy];

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BuildIn {
    app_name: String,
    build_name: Option<String>,
    url: Option<Value>,
    size: Option<u64>,
}

/// A validated import URL: href, headers, sha256.
struct ImportUrl {
    href: String,
    headers: Map<String, Value>,
    sha256: Option<String>,
}

fn parse_href(field: &str, v: &Value) -> ApiResult<String> {
    let s = v.as_str().ok_or_else(|| ApiError::invalid(field, format!("{field} must be a string")))?;
    let ok = reqwest::Url::parse(s).map(|u| (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some()).unwrap_or(false);
    if !ok || s.len() > 8192 {
        return Err(ApiError::invalid(field, format!("{field} must be an http or https URL")));
    }
    Ok(s.to_string())
}

fn parse_url(v: &Value) -> ApiResult<ImportUrl> {
    match v {
        Value::String(_) => Ok(ImportUrl { href: parse_href("url", v)?, headers: Map::new(), sha256: None }),
        Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| !["href", "headers", "sha256"].contains(&k.as_str())) {
                return Err(ApiError::invalid(&format!("url.{k}"), format!("unknown field 'url.{k}'")));
            }
            let href = parse_href("url.href", o.get("href").unwrap_or(&Value::Null))?;
            let mut headers = Map::new();
            match o.get("headers") {
                None | Some(Value::Null) => {}
                Some(Value::Object(h)) => {
                    for (k, v) in h {
                        let lk = k.to_ascii_lowercase();
                        if ["host", "content-length", "transfer-encoding", "connection"].contains(&lk.as_str()) {
                            return Err(ApiError::invalid("url.headers", format!("header '{k}' may not be set")));
                        }
                        let valid_name = !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                        let val = v.as_str().filter(|s| s.len() <= 8192 && !s.contains(['\r', '\n']));
                        match (valid_name, val) {
                            (true, Some(val)) => {
                                headers.insert(k.clone(), json!(val));
                            }
                            _ => {
                                return Err(ApiError::invalid(
                                    "url.headers",
                                    format!("header '{k}' must be a valid name with a string value"),
                                ))
                            }
                        }
                    }
                }
                Some(_) => return Err(ApiError::invalid("url.headers", "url.headers must be an object")),
            }
            let sha256 = match o.get("sha256") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => Some(s.to_lowercase()),
                Some(_) => return Err(ApiError::invalid("url.sha256", "url.sha256 must be 64 hex digits")),
            };
            Ok(ImportUrl { href, headers, sha256 })
        }
        _ => Err(ApiError::invalid("url", "url must be a string or an import URL object")),
    }
}

async fn post_build(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<BuildIn>) -> ApiResult<Json<Value>> {
    Name::parse("appName", &b.app_name)?;
    let build_name = b.build_name.as_deref().map(|n| text("buildName", n, 1, 100)).transpose()?;
    let url = b.url.as_ref().filter(|v| !v.is_null()).map(parse_url).transpose()?;
    if b.size.is_some_and(|s| s > st.cfg.upload_max_bytes) {
        return Err(ApiError::too_large("size is over the build size limit"));
    }
    c.require(Resource::Apps, U)?;
    let mut tx = st.db.tx().await?;
    let (app_id, locked) =
        crate::store::apps::lock_state(&mut tx, &c.org_id, &b.app_name).await?.ok_or_else(|| ApiError::not_found("app", &b.app_name))?;
    if locked {
        return Err(ApiError::conflict("app-locked", "the app is in error state after a failed publish; fix it and retry the task first"));
    }
    if url.is_none() && uploads::waiting_count(&mut tx, &app_id).await? >= 4 {
        return Err(ApiError::conflict("invalid-state", "this app already has 4 uploads waiting; use or expire them first"));
    }
    let group = crate::util::new_id("g");
    let mut params = tasks::DltarParams::upload(b.size);
    if let Some(u) = &url {
        params.mode = tasks::ImportMode::Url;
        params.url = Some(u.href.clone());
        params.sha256 = u.sha256.clone();
        if !u.headers.is_empty() {
            // Import headers often carry credentials: sealed at rest like every secret.
            params.headers_sealed = Some(st.data_key.seal(Value::Object(u.headers.clone()).to_string().as_bytes()));
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
    let (dl, _) =
        tasks::enqueue(&mut tx, tasks::NewTask { step: 1, run_after: if url.is_some() { 0 } else { i64::MAX }, ..base.clone() }).await?;
    for (k, step) in STEPS.iter().enumerate() {
        tasks::enqueue(&mut tx, tasks::NewTask { payload: step.clone(), step: k as i64 + 2, ..base.clone() }).await?;
    }
    let mut out = json!({"taskName": dl, "taskGroup": group});
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
        out["uploadUrl"] = json!(format!("{}/be/v1/uploads/{token}", st.public_url));
        out["uploadExpires"] = json!(rfc3339(expires));
    }
    tx.commit().await?;
    Ok(success(out))
}

/// This request's claim on an upload while it receives it. Unless disarmed (the upload
/// completed), the claim is given back and the partial file removed: a broken or refused
/// upload may be sent again. A claim also dies with its process (`store::uploads`).
struct Claim {
    st: Arc<AppState>,
    hash: String,
    receiver: String,
    part: std::path::PathBuf,
    armed: bool,
}

impl Claim {
    /// Gives the claim back at once (before an error answer goes out), so the URL can
    /// take the next try.
    async fn release_now(mut self) {
        self.armed = false;
        release(&self.st, &self.hash, &self.receiver, &self.part).await;
    }
}

async fn release(st: &AppState, hash: &str, receiver: &str, part: &std::path::Path) {
    let _ = tokio::fs::remove_file(part).await;
    match st.db.conn().await {
        Ok(mut c) => {
            if let Err(e) = uploads::release(&mut c, hash, receiver).await {
                tracing::warn!(error = %e, "an upload claim could not be given back (its lease will expire)");
            }
        }
        Err(e) => tracing::warn!(error = %e, "an upload claim could not be given back (its lease will expire)"),
    }
}

/// Reads and discards up to 1 MiB of a body we refuse, so the client (still sending)
/// reads our answer instead of a connection reset.
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let mut n = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        n += chunk.len();
        if n > 1 << 20 {
            break;
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (st, hash, receiver, part) = (self.st.clone(), self.hash.clone(), self.receiver.clone(), self.part.clone());
        tokio::spawn(crate::db::scope(async move { release(&st, &hash, &receiver, &part).await }));
    }
}

async fn put_upload(State(st): State<Arc<AppState>>, Path(token): Path<String>, headers: HeaderMap, body: Body) -> ApiResult<Json<Value>> {
    let (checked, body) = match check_upload(&st, &token, &headers).await {
        Ok(c) => (c, body),
        Err(e) => {
            // Bounded in bytes and in time: a client waiting for an answer before sending
            // (or sending slowly) gets it within half a second.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(500), drain(body)).await;
            return Err(e);
        }
    };
    let part = st.depot.local(&depot::upload_key(&checked.group)).with_extension("part");
    let claim = Claim { st: st.clone(), hash: checked.hash.clone(), receiver: checked.receiver.clone(), part, armed: true };
    match receive(&st, &checked, body).await {
        Ok(v) => {
            let mut claim = claim;
            claim.armed = false;
            Ok(v)
        }
        Err(e) => {
            claim.release_now().await;
            Err(e)
        }
    }
}

/// An upload this request has claimed.
struct Checked {
    hash: String,
    receiver: String,
    task: String,
    group: String,
    app_id: String,
    expected: Option<u64>,
}

fn gone() -> ApiError {
    ApiError::new(axum::http::StatusCode::NOT_FOUND, "not-found", "no such upload (completed, expired or unknown)")
}

/// The checks before any byte is read; claims the upload (`receiving`).
async fn check_upload(st: &AppState, token: &str, headers: &HeaderMap) -> ApiResult<Checked> {
    let hash = sha256_hex(token.as_bytes());
    let u = uploads::by_token(&mut *st.db.conn().await?, &hash).await?.ok_or_else(gone)?;
    if u.state == "done" || u.state == "expired" || u.expires < now_ms() {
        return Err(gone());
    }
    let expected = u.size_expected.map(|s| s as u64);
    let declared: Option<u64> = headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > st.cfg.upload_max_bytes) {
        return Err(ApiError::too_large("the build is over the size limit"));
    }
    if let (Some(d), Some(e)) = (declared, expected) {
        if d != e {
            return Err(ApiError::invalid("size", format!("the upload has {d} bytes, the import said {e}")));
        }
    }
    let receiver = format!("{}/{}", st.instance, crate::util::new_id("r"));
    if !uploads::claim(&mut *st.db.conn().await?, &hash, &receiver, st.cfg.upload_lease_seconds as i64 * 1000).await? {
        return Err(
            ApiError::conflict("invalid-state", "another upload to this URL is in progress").retry_after(st.cfg.upload_lease_seconds)
        );
    }
    Ok(Checked { hash, receiver, task: u.task_name, group: u.task_group, app_id: u.app_id, expected })
}

/// A client that sends nothing for this long loses the upload attempt (it may send again).
pub const UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Streams the body into an ingest when this process can run one (`delivery::preingest`:
/// what `mkraw` needs is kept, the archive itself never touches the disk), else to disk
/// for `mkraw`; then completes the upload.
async fn receive(st: &AppState, up: &Checked, body: Body) -> ApiResult<Json<Value>> {
    let (group, app_id, expected) = (up.group.as_str(), up.app_id.as_str(), up.expected);
    let unavailable =
        || ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the upload could not be stored; send it again");
    let key = depot::upload_key(group);
    let dest = st.depot.local(&key);
    let part = dest.with_extension("part");
    // An earlier attempt's ingest (its completion failed after it was kept) is not this one's.
    crate::delivery::preingest::forget(st, app_id, group).await;
    let mut tee = crate::delivery::preingest::Tee::start(st, app_id);
    let mut w = match tee {
        Some(_) => None,
        None => {
            tokio::fs::create_dir_all(dest.parent().expect("uploads dir")).await.map_err(ApiError::internal)?;
            let file = tokio::fs::File::create(&part).await.map_err(ApiError::internal)?;
            Some(tokio::io::BufWriter::with_capacity(1 << 20, file))
        }
    };
    let mut n: u64 = 0;
    let mut stream = body.into_data_stream();
    let (mut renewed, mut idle) = (std::time::Instant::now(), std::time::Duration::ZERO);
    // The claim is renewed at a third of its lease as the body comes in, and while it does not.
    let lease_ms = st.cfg.upload_lease_seconds as i64 * 1000;
    let renew_every = std::time::Duration::from_millis(lease_ms as u64 / 3);
    loop {
        let next = tokio::time::timeout(renew_every, stream.next()).await;
        if renewed.elapsed() >= renew_every || next.is_err() {
            if !uploads::renew(&mut *st.db.conn().await?, &up.hash, &up.receiver, n, lease_ms).await? {
                // Expired by the publisher (or by time) while it was coming in.
                return Err(gone());
            }
            renewed = std::time::Instant::now();
        }
        let chunk = match next {
            Ok(Some(chunk)) => {
                idle = std::time::Duration::ZERO;
                chunk
            }
            Ok(None) => break,
            Err(_) => {
                idle += renew_every;
                if idle >= UPLOAD_IDLE {
                    return Err(ApiError::bad_request(format!(
                        "the upload stalled (no data for {} s); send it again",
                        UPLOAD_IDLE.as_secs()
                    )));
                }
                continue;
            }
        };
        let chunk = chunk.map_err(|_| ApiError::bad_request("the upload was interrupted; send it again"))?;
        n += chunk.len() as u64;
        if n > st.cfg.upload_max_bytes {
            return Err(ApiError::too_large("the build is over the size limit"));
        }
        if let Some(w) = w.as_mut() {
            w.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        if let Some(t) = tee.as_mut() {
            t.feed(chunk).await;
        }
    }
    if let Some(mut w) = w {
        w.flush().await.map_err(ApiError::internal)?;
        w.into_inner().sync_all().await.map_err(ApiError::internal)?;
    }
    if let Some(e) = expected {
        if n != e {
            return Err(ApiError::invalid("size", format!("the upload has {n} bytes, the import said {e}")));
        }
    }
    match tee {
        Some(t) => {
            if let Err(e) = crate::delivery::preingest::save(st, app_id, group, n, t.finish().await).await {
                tracing::error!(error = %e, "an upload's ingest could not be kept");
                return Err(unavailable());
            }
        }
        None => {
            tokio::fs::rename(&part, &dest).await.map_err(ApiError::internal)?;
            // The worker that ingests it may be another process: the tar goes to the depot first.
            if let Err(e) = st.depot.push(&key).await {
                tracing::error!(error = %e, "an upload could not be stored in the depot");
                return Err(unavailable());
            }
        }
    }
    let mut tx = st.db.tx().await?;
    if !uploads::complete(&mut tx, &up.hash, &up.receiver, n).await? {
        // Expired while the last bytes came in.
        return Err(gone());
    }
    if !tasks::end_unleased(&mut tx, &up.task, "done", Some(&json!({"sizeBytes": n})), None).await? {
        return Err(gone());
    }
    tasks::enter_line(&mut tx, group).await?;
    tx.commit().await?;
    Ok(success(json!({"sizeBytes": n})))
}
