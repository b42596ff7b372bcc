//! `POST /client/v1/traces`: a launcher's play trace (`rockit-trace` v1, optionally zstd-
//! or gzip-encoded), one per session, checked whole before anything is stored. Enough new
//! traces queue `mkseq` (client.md).
//!
//! Memory is bounded per request and as a whole: the body as sent stays in memory only up
//! to [`MAX_IN_MEMORY`] (else a spool file), it is parsed while it is decoded (the decoded
//! document is never held; the engine bounds the parsed trace), and at most
//! `trace_intake_concurrency` traces are decoded, parsed and written at once.

use super::client::session_from;
use super::reply::{Reply, Success};
use crate::delivery::seq;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{launcher, traces};
use crate::util::{new_seq_id, now_ms};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use futures_util::StreamExt;
use serde::Serialize;
use std::io::{Read, Seek};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

// What the body and its header are, for `/openapi.json` only.
#[path = "traces_doc.rs"]
mod doc;
use doc::{RockitTrace, TraceBytes, TraceEncoding};

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

/// A trace body as sent.
///
/// Why a spool file and not the body streamed straight into the decoder: decoding holds
/// one of the few intake permits (`trace_intake_concurrency`), and a body read from the
/// socket would hold it for as long as its sender cares to take, so two slow launchers
/// could stop every trace intake. Reading first (without a permit) costs at most
/// [`MAX_IN_MEMORY`] of memory per request; larger bodies (up to [`MAX_SENT`]) wait on disk.
enum Sent {
    Memory(Vec<u8>),
    File(std::fs::File, Spool),
}

impl Sent {
    /// The bytes as sent, from their start.
    fn into_reader(self) -> std::io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Sent::Memory(v) => Box::new(std::io::Cursor::new(v)),
            Sent::File(mut file, spool) => {
                file.rewind()?;
                Box::new(SpoolReader { file, _spool: spool })
            }
        })
    }
}

/// A spool file's name while it still has one: removed when dropped. On Unix the file is
/// unlinked as soon as it is created (the open handle is all that is left of it, so not
/// even a crash leaves it behind) and this holds nothing.
struct Spool(Option<PathBuf>);

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The spool file read back (the decoders and the JSON reader buffer their reads); its
/// name, if it still has one, goes with it.
struct SpoolReader {
    file: std::fs::File,
    _spool: Spool,
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf)
    }
}

/// A new spool file under `<data>/tmp/`.
async fn spool_file(st: &AppState) -> std::io::Result<(tokio::fs::File, Spool)> {
    let dir = st.cfg.data_dir.join("tmp");
    tokio::fs::create_dir_all(&dir).await?;
    let path = dir.join(format!("trace-{}.sent", crate::util::hex(&crate::util::random_bytes(12))));
    let f =
        tokio::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).await?;
    let spool = match tokio::fs::remove_file(&path).await {
        Ok(()) => Spool(None),
        Err(_) => Spool(Some(path)),
    };
    Ok((f, spool))
}

/// The body, at most [`MAX_SENT`] bytes (413 beyond): in memory up to [`MAX_IN_MEMORY`],
/// else in a spool file.
async fn read_body(st: &AppState, body: Body) -> ApiResult<Sent> {
    let mut mem = Vec::new();
    let mut file: Option<(tokio::fs::File, Spool)> = None;
    let mut total = 0usize;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad_request("the request body was cut off"))?;
        if total + chunk.len() > MAX_SENT {
            // Read on (up to 64 MiB or 2 s) so a client still sending gets the answer
            // rather than a reset connection.
            drop((mem, file));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            let mut seen = total + chunk.len();
            while seen < 64 << 20 {
                match tokio::time::timeout_at(deadline, stream.next()).await {
                    Ok(Some(Ok(c))) => seen += c.len(),
                    _ => break,
                }
            }
            return Err(ApiError::too_large("a trace may be at most 16 MiB as sent"));
        }
        total += chunk.len();
        match &mut file {
            Some((f, _)) => f.write_all(&chunk).await.map_err(ApiError::internal)?,
            None if total <= MAX_IN_MEMORY => mem.extend_from_slice(&chunk),
            None => {
                let (mut f, spool) = spool_file(st).await.map_err(ApiError::internal)?;
                f.write_all(&mem).await.map_err(ApiError::internal)?;
                f.write_all(&chunk).await.map_err(ApiError::internal)?;
                mem = Vec::new();
                file = Some((f, spool));
            }
        }
    }
    match file {
        None => Ok(Sent::Memory(mem)),
        Some((mut f, spool)) => {
            f.flush().await.map_err(ApiError::internal)?;
            Ok(Sent::File(f.into_std().await, spool))
        }
    }
}

/// A `Content-Encoding` this endpoint takes.
#[derive(Clone, Copy)]
enum Encoding {
    Identity,
    Zstd,
    Gzip,
}

impl Encoding {
    /// The request's encoding (415 for others).
    fn of(headers: &HeaderMap) -> ApiResult<Encoding> {
        let v = headers
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
            .map(|e| e.trim().to_ascii_lowercase());
        match v.as_deref() {
            None | Some("identity") | Some("") => Ok(Encoding::Identity),
            Some("zstd") => Ok(Encoding::Zstd),
            Some("gzip") => Ok(Encoding::Gzip),
            Some(other) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                format!("Content-Encoding {other} is not accepted (zstd, gzip)"),
            )),
        }
    }

    /// The answer to a decoder failing with `cause`.
    fn invalid(self, cause: &str) -> ApiError {
        let what = match self {
            Encoding::Identity => {
                return ApiError::internal(format!("reading a spooled trace failed: {cause}"))
            }
            Encoding::Zstd if cause.contains("too much memory") => return ApiError::bad_request(
                "the body is not valid zstd: it needs a window over 8 MiB (RFC 9659 allows 8 MiB)",
            ),
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        };
        ApiError::bad_request(format!("the body is not valid {what}"))
    }
}

/// The decoded bytes, counted: [`MAX_DECODED`] pass, the next one ends the read (`over`);
/// a failing decoder ends it too (`broken`, with its message).
struct Decoded<R> {
    inner: R,
    n: u64,
    over: bool,
    broken: Option<String>,
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.over || self.broken.is_some() {
            return Err(std::io::Error::other("the trace was cut off"));
        }
        let room = (MAX_DECODED + 1 - self.n).min(buf.len() as u64) as usize;
        match self.inner.read(&mut buf[..room]) {
            Ok(k) => {
                self.n += k as u64;
                if self.n > MAX_DECODED {
                    self.over = true;
                    return Err(std::io::Error::other("the trace is over 256 MiB decoded"));
                }
                Ok(k)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.broken = Some(e.to_string());
                Err(e)
            }
        }
    }
}

/// Decodes and parses at once (blocking; run under an intake permit): the decoded document
/// is never held whole, only the parsed trace (bounded by the engine). The answers are
/// those of decoding everything first: over [`MAX_DECODED`] decoded is 413 even when the
/// JSON went wrong earlier, so after a parse error the rest is decoded (and dropped) to
/// find out.
fn decode_and_parse(encoding: Encoding, sent: Sent) -> ApiResult<edge_engine::seq::Trace> {
    let src = sent.into_reader().map_err(ApiError::internal)?;
    let inner: Box<dyn Read> = match encoding {
        Encoding::Identity => src,
        Encoding::Zstd => {
            let mut d = zstd::stream::read::Decoder::new(src)
                .map_err(|e| encoding.invalid(&e.to_string()))?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(ApiError::internal)?;
            Box::new(d)
        }
        Encoding::Gzip => Box::new(flate2::read::GzDecoder::new(src)),
    };
    let mut decoded = Decoded { inner, n: 0, over: false, broken: None };
    let parsed = edge_engine::seq::read_trace(&mut decoded);
    if parsed.is_err() && !decoded.over && decoded.broken.is_none() {
        let mut scratch = vec![0u8; 256 << 10];
        while matches!(decoded.read(&mut scratch), Ok(n) if n > 0) {}
    }
    if decoded.over {
        return Err(ApiError::too_large("a trace may be at most 256 MiB decoded"));
    }
    if let Some(cause) = &decoded.broken {
        return Err(encoding.invalid(cause));
    }
    parsed.map_err(|e| ApiError::bad_request(format!("not a valid rockit-trace: {e}")))
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
    if trace.app_name != sess.app_name || trace.build_id != sess.build_id as u64 {
        return Err(ApiError::bad_request(format!(
            "the trace is for {} build {}, the session for {} build {}",
            trace.app_name, trace.build_id, sess.app_name, sess.build_id
        )));
    }
    if sess.trace_id.is_some() {
        return Err(ApiError::conflict("item-exists", "this session has sent its trace already"));
    }
    // The normalized document, compressed as it is written, before the row that points at it.
    let id = new_seq_id("tr");
    let path = seq::trace_file(st, &sess.app_id, &id);
    let events = trace.events.len() as i64;
    let p2 = path.clone();
    let stored = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let _permit = permit;
        std::fs::create_dir_all(p2.parent().unwrap_or(std::path::Path::new(".")))?;
        let tmp = p2.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let enc = zstd::stream::write::Encoder::new(std::fs::File::create(&tmp)?, 3)?;
            let mut w = std::io::BufWriter::with_capacity(64 << 10, enc);
            serde_json::to_writer(&mut w, &trace)?;
            w.into_inner().map_err(|e| e.into_error())?.finish()?.sync_all()
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &p2)?;
        Ok(std::fs::metadata(&p2)?.len())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    // The learning step may run in another process: the trace goes to the depot first.
    if let Err(e) = st.depot.push(&crate::depot::trace_key(&sess.app_id, &id)).await {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(ApiError::internal(e));
    }
    let res = store(st, &sess, &id, events, stored).await;
    if res.is_err() {
        let _ = st.depot.remove(&crate::depot::trace_key(&sess.app_id, &id)).await;
    }
    if let Some(t) = res? {
        tracing::info!(app = %sess.app_name, task = %t, "enough new traces: mkseq queued");
    }
    Ok(Reply(TraceStored { status: Success, trace_id: id, session_id: sess.id }))
}

/// Records the trace (one per session, checked again under the write), drops the oldest
/// beyond `max_traces`, and counts it for the training.
async fn store(
    st: &AppState,
    sess: &super::client::Session,
    id: &str,
    events: i64,
    bytes: u64,
) -> ApiResult<Option<String>> {
    let mut tx = st.db.tx().await?;
    if !launcher::claim_trace(&mut tx, &sess.id, id).await? {
        return Err(ApiError::conflict("item-exists", "this session has sent its trace already"));
    }
    let trace = traces::NewTrace {
        id,
        org_id: &sess.org_id,
        app_id: &sess.app_id,
        build_id: sess.build_id,
        session_id: &sess.id,
        events,
        bytes: bytes as i64,
        created: now_ms(),
    };
    traces::insert_trace(&mut tx, trace).await?;
    let dropped = traces::traces_beyond(&mut tx, &sess.app_id, st.cfg.max_traces as i64).await?;
    for d in &dropped {
        traces::delete_trace(&mut tx, d).await?;
    }
    let task =
        seq::on_trace(&mut tx, &sess.org_id, &sess.org_name, &sess.app_id, &sess.app_name).await?;
    tx.commit().await?;
    for d in dropped {
        let _ = st.depot.remove(&crate::depot::trace_key(&sess.app_id, &d)).await;
    }
    Ok(task)
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(post_trace), components(schemas(TraceEncoding)))]
pub struct Api;
