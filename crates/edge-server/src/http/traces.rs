//! `POST /client/v1/traces`: a launcher's play trace (`rockit-trace` v1, optionally zstd-
//! or gzip-encoded), one per session, checked whole before anything is stored. Enough new
//! traces queue `mkseq` (client.md).

use super::client::session_from;
use super::extract::success;
use crate::delivery::seq;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::util::{new_seq_id, now_ms};
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::Arc;

/// Largest trace as sent.
pub const MAX_SENT: usize = 16 << 20;
/// Largest trace decoded (decoding stops here).
pub const MAX_DECODED: u64 = 256 << 20;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/client/v1/traces", post(post_trace))
}

/// The body, at most [`MAX_SENT`] bytes (413 beyond).
async fn read_body(body: Body) -> ApiResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad_request("the request body was cut off"))?;
        if out.len() + chunk.len() > MAX_SENT {
            // Read on (up to 64 MiB or 2 s) so a client still sending gets the answer
            // rather than a reset connection.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
            let mut seen = out.len() + chunk.len();
            while seen < 64 << 20 {
                match tokio::time::timeout_at(deadline, stream.next()).await {
                    Ok(Some(Ok(c))) => seen += c.len(),
                    _ => break,
                }
            }
            return Err(ApiError::too_large("a trace may be at most 16 MiB as sent"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Decodes per `Content-Encoding`, stopping at [`MAX_DECODED`].
fn decode(encoding: Option<&str>, sent: Vec<u8>) -> ApiResult<Vec<u8>> {
    let bad = |what: &str| ApiError::bad_request(format!("the body is not valid {what}"));
    let mut out = Vec::new();
    match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("identity") | Some("") => return Ok(sent),
        Some("zstd") => zstd::stream::read::Decoder::new(&sent[..])
            .map_err(|_| bad("zstd"))?
            .take(MAX_DECODED + 1)
            .read_to_end(&mut out)
            .map_err(|_| bad("zstd"))?,
        Some("gzip") => flate2::read::GzDecoder::new(&sent[..]).take(MAX_DECODED + 1).read_to_end(&mut out).map_err(|_| bad("gzip"))?,
        Some(other) => {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                format!("Content-Encoding {other} is not accepted (zstd, gzip)"),
            ))
        }
    };
    if out.len() as u64 > MAX_DECODED {
        return Err(ApiError::too_large("a trace may be at most 256 MiB decoded"));
    }
    Ok(out)
}

async fn post_trace(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> ApiResult<Json<Value>> {
    let sess = session_from(&st, &headers, None).await?;
    let sent = read_body(body).await?;
    let encoding = headers.get("content-encoding").and_then(|v| v.to_str().ok()).map(String::from);
    let trace = tokio::task::spawn_blocking(move || -> ApiResult<edge_engine::seq::Trace> {
        let decoded = decode(encoding.as_deref(), sent)?;
        edge_engine::seq::parse_trace(&decoded).map_err(|e| ApiError::bad_request(format!("not a valid rockit-trace: {e}")))
    })
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
    // The normalized document, compressed, written before the row that points at it.
    let id = new_seq_id("tr");
    let path = seq::trace_file(&st, &sess.app_id, &id);
    let events = trace.events.len() as i64;
    let doc = trace.to_json();
    let p2 = path.clone();
    let stored = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        std::fs::create_dir_all(p2.parent().unwrap_or(std::path::Path::new(".")))?;
        let tmp = p2.with_extension("tmp");
        let mut enc = zstd::stream::write::Encoder::new(std::fs::File::create(&tmp)?, 3)?;
        enc.write_all(&doc)?;
        enc.finish()?.sync_all()?;
        std::fs::rename(&tmp, &p2)?;
        Ok(std::fs::metadata(&p2)?.len())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    // The learning step may run in another process: the trace goes to the depot first.
    if let Err(e) = st.depot.push(&crate::delivery::depot::trace_key(&sess.app_id, &id)).await {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(ApiError::internal(e));
    }
    let res = store(&st, &sess, &id, events, stored).await;
    if res.is_err() {
        let _ = st.depot.remove(&crate::delivery::depot::trace_key(&sess.app_id, &id)).await;
    }
    let task = res?;
    let mut out = json!({"traceId": id});
    if let Some(t) = task {
        tracing::info!(app = %sess.app_name, task = %t, "enough new traces: mkseq queued");
    }
    out["sessionId"] = json!(sess.id);
    Ok(success(out))
}

/// Records the trace (one per session, checked again under the write), drops the oldest
/// beyond `max_traces`, and counts it for the training.
async fn store(st: &AppState, sess: &super::client::Session, id: &str, events: i64, bytes: u64) -> ApiResult<Option<String>> {
    let mut tx = st.db.tx().await?;
    let claimed = sqlx::query("UPDATE rte_sessions SET trace_id = $1 WHERE id = $2 AND trace_id IS NULL")
        .bind(id)
        .bind(&sess.id)
        .execute(&mut *tx)
        .await?;
    if claimed.rows_affected() == 0 {
        return Err(ApiError::conflict("item-exists", "this session has sent its trace already"));
    }
    sqlx::query(
        "INSERT INTO traces (id, org_id, app_id, build_id, session_id, events, bytes, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(&sess.org_id)
    .bind(&sess.app_id)
    .bind(sess.build_id)
    .bind(&sess.id)
    .bind(events)
    .bind(bytes as i64)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    let old = sqlx::query("SELECT id FROM traces WHERE app_id = $1 ORDER BY created DESC, id DESC LIMIT 1000000 OFFSET $2")
        .bind(&sess.app_id)
        .bind(st.cfg.max_traces as i64)
        .fetch_all(&mut *tx)
        .await?;
    let dropped: Vec<String> = old.iter().map(|r| crate::db::s(r, "id")).collect();
    for d in &dropped {
        sqlx::query("DELETE FROM traces WHERE id = $1").bind(d).execute(&mut *tx).await?;
    }
    let task = seq::on_trace(&mut tx, &sess.org_id, &sess.org_name, &sess.app_id, &sess.app_name).await?;
    tx.commit().await?;
    for d in dropped {
        let _ = st.depot.remove(&crate::delivery::depot::trace_key(&sess.app_id, &d)).await;
    }
    Ok(task)
}
