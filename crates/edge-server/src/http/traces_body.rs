//! The body of `POST /client/v1/traces`: read (in memory up to [`MAX_IN_MEMORY`], else a
//! spool file), then decoded as its `Content-Encoding` says and parsed at once, within the
//! limits of the endpoint.

use super::{MAX_DECODED, MAX_IN_MEMORY, MAX_SENT, ZSTD_WINDOW_LOG_MAX};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt;
use std::io::{Read, Seek};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// A trace body as sent.
///
/// Why a spool file and not the body streamed straight into the decoder: decoding holds
/// one of the few intake permits (`trace_intake_concurrency`), and a body read from the
/// socket would hold it for as long as its sender cares to take, so two slow launchers
/// could stop every trace intake. Reading first (without a permit) costs at most
/// [`MAX_IN_MEMORY`] of memory per request; larger bodies (up to [`MAX_SENT`]) wait on disk.
pub(super) enum Sent {
    /// A body of at most [`MAX_IN_MEMORY`] bytes.
    Memory(Vec<u8>),
    /// A larger one, in its spool file.
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
pub(super) struct Spool(Option<PathBuf>);

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
pub(super) async fn read_body(st: &AppState, body: Body) -> ApiResult<Sent> {
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
pub(super) enum Encoding {
    /// None (`identity`, or no header).
    Identity,
    /// `zstd`.
    Zstd,
    /// `gzip`.
    Gzip,
}

impl Encoding {
    /// The request's encoding (415 for others).
    pub(super) fn of(headers: &HeaderMap) -> ApiResult<Encoding> {
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
pub(super) fn decode_and_parse(
    encoding: Encoding,
    sent: Sent,
) -> ApiResult<edge_engine::seq::Trace> {
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
