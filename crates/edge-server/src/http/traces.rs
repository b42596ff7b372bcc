//! `POST /client/v1/traces`: a launcher's play trace (`rockit-trace` v1, optionally zstd-
//! or gzip-encoded), one per session, checked whole before anything is stored (read,
//! decoded and parsed in [`body`], then kept by `domain::traces`). Enough new traces queue
//! `mkseq` (client.md).
//!
//! Memory is bounded per request and as a whole: the body as sent stays in memory only up
//! to [`MAX_IN_MEMORY`] (else a spool file), it is parsed while it is decoded (the decoded
//! document is never held; the engine bounds the parsed trace), and at most
//! `trace_intake_concurrency` traces are decoded, parsed and written at once.

use super::client::session_from;
use super::reply::{Reply, Success};
use crate::domain::traces;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

// What the body and its header are, for `/openapi.json` only.
#[path = "traces_doc.rs"]
mod doc;
use doc::{RockitTrace, TraceBytes, TraceEncoding};

// Reading the body (to memory or a spool file), decoding and parsing it.
#[path = "traces_body.rs"]
mod body;
use body::{decode_and_parse, read_body, Encoding};

/// Largest trace as sent.
pub const MAX_SENT: usize = 16 << 20;
/// Largest trace decoded (decoding stops here).
pub const MAX_DECODED: u64 = 256 << 20;
/// A body up to this size is kept in memory; a larger one goes to a spool file.
pub const MAX_IN_MEMORY: usize = 1 << 20;
/// How long a trace waits for an intake permit before it is answered 503.
pub const INTAKE_WAIT: Duration = Duration::from_secs(30);
/// `Retry-After` of that 503, seconds.
pub const INTAKE_RETRY_AFTER: u64 = 30;
/// Largest zstd window a trace may need, log2: 8 MiB, the limit RFC 9659 sets for the
/// `zstd` content coding (libzstd alone would allow 128 MiB per decoder).
pub const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/client/v1/traces", post(post_trace))
}

/// A trace intake permit, waiting at most [`INTAKE_WAIT`] (then 503 with `Retry-After`).
async fn intake_permit(st: &AppState) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(p) = st.trace_intake.clone().try_acquire_owned() {
        return Ok(p);
    }
    /// Counted as waiting while it waits, also when the launcher hangs up meanwhile.
    struct Waiting<'a>(&'a crate::metrics::Metrics);
    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            self.0.trace_intake_waiting(-1);
        }
    }
    st.metrics.trace_intake_waiting(1);
    let waiting = Waiting(&st.metrics);
    let got = tokio::time::timeout(INTAKE_WAIT, st.trace_intake.clone().acquire_owned()).await;
    drop(waiting);
    match got {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(ApiError::internal(e)),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "too many traces are being received, send it again later",
        )
        .retry_after(INTAKE_RETRY_AFTER)
        .extra("retryAfter", INTAKE_RETRY_AFTER.to_string())),
    }
}

/// A trace, stored.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TraceStored {
    /// Always `success`.
    status: Success,
    /// The trace (`tr…`).
    trace_id: String,
    /// The session it came with.
    session_id: String,
}

/// Upload the session's play trace (rockit-trace; zstd or gzip)
///
/// The body is the `rockit-trace` JSON document, compressed as `Content-Encoding` says
/// (`zstd`, `gzip`, or none); the `Content-Type` is not read. At most 16 MiB as sent and
/// 256 MiB decoded (413 beyond). One trace per session: 409 `item-exists` for a second.
/// 400: not valid zstd/gzip, not a valid trace, or a trace of another app or build than
/// the session's; 415: another encoding. 503 with `Retry-After` when too many traces are
/// being received at once. Enough new traces queue a `mkseq` of the app.
#[utoipa::path(post, path = "/client/v1/traces", tag = "client",
    params(("Content-Encoding" = Option<TraceEncoding>, Header, nullable = false,
        description = "How the body is compressed (none: plain JSON)")),
    request_body(description = "The trace document, compressed as `Content-Encoding` says",
        content((RockitTrace = "application/json"), (TraceBytes = "application/octet-stream"))),
    responses((status = 200, description = "The trace, stored", body = TraceStored)),
    extensions(("x-rockit-auth" = json!("x-rockit-session-token"))))]
async fn post_trace(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Reply<TraceStored>> {
    let res = receive(&st, &headers, body).await;
    if let Err(e) = &res {
        st.metrics.trace_refused(e.status.as_u16());
    }
    res
}

/// Resolves the session (401 before anything is read), reads the body, decodes and parses
/// it under an intake permit, and keeps the trace.
async fn receive(
    st: &Arc<AppState>,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Reply<TraceStored>> {
    let sess = session_from(st, headers, None).await?;
    let sent = read_body(st, body).await?;
    let encoding = Encoding::of(headers)?;
    // Decoding and parsing run only under a permit, and the parsed trace keeps it until it
    // is written: at most `trace_intake_concurrency` traces are in memory at once. The
    // permit moves into the blocking work, so a launcher that hangs up frees nothing early.
    let permit = intake_permit(st).await?;
    let (trace, permit) =
        tokio::task::spawn_blocking(move || decode_and_parse(encoding, sent).map(|t| (t, permit)))
            .await
            .map_err(ApiError::internal)??;
    let id = traces::keep(st, &sess, trace, permit).await?;
    Ok(Reply(TraceStored { status: Success, trace_id: id, session_id: sess.id }))
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(post_trace), components(schemas(TraceEncoding)))]
pub struct Api;
