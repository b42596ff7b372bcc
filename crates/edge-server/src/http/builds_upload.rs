//! The one-time upload URL of an import (`PUT /be/v1/uploads/{token}`): claims the upload,
//! streams the archive to the ingest or to disk, and completes the `dltar` task.

use crate::depot;
use crate::error::{ApiError, ApiResult};
use crate::http::reply::{Reply, Success};
use crate::ids::AppId;
use crate::state::AppState;
use crate::store::{tasks, uploads};
use crate::util::{now_ms, sha256_hex};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

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
        Err(e) => {
            tracing::warn!(error = %e, "an upload claim could not be given back (its lease will expire)")
        }
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
        let (st, hash, receiver, part) =
            (self.st.clone(), self.hash.clone(), self.receiver.clone(), self.part.clone());
        tokio::spawn(crate::db::scope(async move { release(&st, &hash, &receiver, &part).await }));
    }
}

/// The body of an upload: the archive's bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // describes the body of `put_upload`, read as a stream
struct ArchiveBytes(Vec<u8>);

/// The answer to a complete upload.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadDone {
    /// Always `success`.
    status: Success,
    /// The bytes received.
    size_bytes: u64,
}

/// Upload the build archive (raw bytes)
///
/// The body is the archive (a tar) as is, whatever its `Content-Type`. The URL works once:
/// a completed, expired or unknown upload is 404 `not-found`. While another request is
/// sending to the same URL the answer is 409 `invalid-state` with `Retry-After`. A body of
/// another size than the import's `size` is 400 (on `size`); over the build size limit,
/// 413. A broken, stalled (60 s without data) or refused upload may be sent again.
#[utoipa::path(put, path = "/be/v1/uploads/{token}", tag = "builds",
    params(("token" = String, Path, description = "The token of the `uploadUrl` the import answered")),
    request_body(content = inline(ArchiveBytes), content_type = "application/octet-stream", description = "The archive (a tar), as is"),
    responses((status = 200, description = "Received; the pipeline goes on", body = UploadDone)),
    extensions(("x-rockit-auth" = json!("upload token"))))]
pub(super) async fn put_upload(
    State(st): State<Arc<AppState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Reply<UploadDone>> {
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
    let claim = Claim {
        st: st.clone(),
        hash: checked.hash.clone(),
        receiver: checked.receiver.clone(),
        part,
        armed: true,
    };
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
    app_id: AppId,
    expected: Option<u64>,
}

fn gone() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not-found",
        "no such upload (completed, expired or unknown)",
    )
}

/// The checks before any byte is read; claims the upload (`receiving`).
async fn check_upload(st: &AppState, token: &str, headers: &HeaderMap) -> ApiResult<Checked> {
    let hash = sha256_hex(token.as_bytes());
    let u = uploads::by_token(&mut *st.db.conn().await?, &hash).await?.ok_or_else(gone)?;
    if u.state == "done" || u.state == "expired" || u.expires < now_ms() {
        return Err(gone());
    }
    let expected = u.size_expected.map(|s| s as u64);
    let declared: Option<u64> =
        headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > st.cfg.upload_max_bytes) {
        return Err(ApiError::too_large("the build is over the size limit"));
    }
    if let (Some(d), Some(e)) = (declared, expected) {
        if d != e {
            return Err(ApiError::invalid(
                "size",
                format!("the upload has {d} bytes, the import said {e}"),
            ));
        }
    }
    let receiver = format!("{}/{}", st.instance, crate::util::new_id("r"));
    if !uploads::claim(
        &mut *st.db.conn().await?,
        &hash,
        &receiver,
        st.cfg.upload_lease_seconds as i64 * 1000,
    )
    .await?
    {
        return Err(ApiError::conflict(
            "invalid-state",
            "another upload to this URL is in progress",
        )
        .retry_after(st.cfg.upload_lease_seconds));
    }
    Ok(Checked {
        hash,
        receiver,
        task: u.task_name,
        group: u.task_group,
        app_id: u.app_id,
        expected,
    })
}

/// A client that sends nothing for this long loses the upload attempt (it may send again).
pub const UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Streams the body into an ingest when this process can run one (`delivery::preingest`:
/// what `mkraw` needs is kept, the archive itself never touches the disk), else to disk
/// for `mkraw`; then completes the upload.
async fn receive(st: &AppState, up: &Checked, body: Body) -> ApiResult<Reply<UploadDone>> {
    let (group, app_id, expected) = (up.group.as_str(), &up.app_id, up.expected);
    let unavailable = || {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the upload could not be stored; send it again",
        )
    };
    let key = depot::upload_key(group);
    let dest = st.depot.local(&key);
    let part = dest.with_extension("part");
    // An earlier attempt's ingest (its completion failed after it was kept) is not this one's.
    crate::delivery::preingest::forget(st, app_id, group).await;
    let mut tee = crate::delivery::preingest::Tee::start(st, app_id);
    let mut w = match tee {
        Some(_) => None,
        None => {
            tokio::fs::create_dir_all(dest.parent().expect("uploads dir"))
                .await
                .map_err(ApiError::internal)?;
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
            if !uploads::renew(&mut *st.db.conn().await?, &up.hash, &up.receiver, n, lease_ms)
                .await?
            {
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
        let chunk = chunk
            .map_err(|_| ApiError::bad_request("the upload was interrupted; send it again"))?;
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
            return Err(ApiError::invalid(
                "size",
                format!("the upload has {n} bytes, the import said {e}"),
            ));
        }
    }
    match tee {
        Some(t) => {
            if let Err(e) =
                crate::delivery::preingest::save(st, app_id, group, n, t.finish().await).await
            {
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
    if !tasks::end_unleased(&mut tx, &up.task, "done", Some(&json!({"sizeBytes": n})), None).await?
    {
        return Err(gone());
    }
    tasks::enter_line(&mut tx, group).await?;
    tx.commit().await?;
    Ok(Reply(UploadDone { status: Success, size_bytes: n }))
}
