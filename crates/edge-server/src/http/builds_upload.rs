//! The one-time upload URL of an import (`PUT /be/v1/uploads/{token}`): claims the upload
//! (`domain::uploads::claim`, which holds its rules), streams the archive to the ingest or
//! to disk, and completes it.

use crate::domain::uploads::claim::{self, Claim, UPLOAD_IDLE};
use crate::error::{ApiError, ApiResult};
use crate::http::reply::{Reply, Success};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use futures_util::StreamExt;
use serde::Serialize;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

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
    let declared: Option<u64> =
        headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let claim = match claim::claim(&st, &token, declared).await {
        Ok(c) => c,
        Err(e) => {
            // Bounded in bytes and in time: a client waiting for an answer before sending
            // (or sending slowly) gets it within half a second.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(500), drain(body)).await;
            return Err(e);
        }
    };
    match receive(&st, &claim, body).await {
        Ok(n) => {
            claim.disarm();
            Ok(Reply(UploadDone { status: Success, size_bytes: n }))
        }
        Err(e) => {
            claim.release_now().await;
            Err(e)
        }
    }
}

/// Streams the body into an ingest when this process can run one (`delivery::preingest`:
/// what `mkraw` needs is kept, the archive itself never touches the disk), else to disk
/// for `mkraw`; then completes the upload. Answers the bytes received.
async fn receive(st: &AppState, up: &Claim, body: Body) -> ApiResult<u64> {
    let (group, app_id) = (up.group(), up.app_id());
    let key = crate::depot::upload_key(group);
    let dest = st.depot.local(&key);
    let part = up.part();
    // An earlier attempt's ingest (its completion failed after it was kept) is not this one's.
    crate::delivery::preingest::forget(st, app_id, group).await;
    let mut tee = crate::delivery::preingest::Tee::start(st, app_id);
    let mut w = match tee {
        Some(_) => None,
        None => {
            tokio::fs::create_dir_all(dest.parent().expect("uploads dir"))
                .await
                .map_err(ApiError::internal)?;
            let file = tokio::fs::File::create(part).await.map_err(ApiError::internal)?;
            Some(tokio::io::BufWriter::with_capacity(1 << 20, file))
        }
    };
    let mut n: u64 = 0;
    let mut stream = body.into_data_stream();
    let (mut renewed, mut idle) = (std::time::Instant::now(), std::time::Duration::ZERO);
    let renew_every = up.renew_every();
    loop {
        let next = tokio::time::timeout(renew_every, stream.next()).await;
        if renewed.elapsed() >= renew_every || next.is_err() {
            up.renew(n).await?;
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
        up.check_received(n)?;
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
    up.check_complete(n)?;
    match tee {
        Some(t) => {
            if let Err(e) =
                crate::delivery::preingest::save(st, app_id, group, n, t.finish().await).await
            {
                tracing::error!(error = %e, "an upload's ingest could not be kept");
                return Err(claim::unavailable());
            }
        }
        None => {
            tokio::fs::rename(part, &dest).await.map_err(ApiError::internal)?;
            // The worker that ingests it may be another process: the tar goes to the depot first.
            if let Err(e) = st.depot.push(&key).await {
                tracing::error!(error = %e, "an upload could not be stored in the depot");
                return Err(claim::unavailable());
            }
        }
    }
    up.complete(n).await?;
    Ok(n)
}
