//! Session openings per client address: a token bucket of `session_rate_per_minute`
//! tokens refilled at that rate, per process. A launcher opens one per play; a flood from
//! one address is refused before it reaches the database.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::util::now_ms;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// One address's bucket.
struct Bucket {
    tokens: f64,
    at: i64,
}

static OPENINGS: LazyLock<Mutex<HashMap<String, Bucket>>> = LazyLock::new(Default::default);

/// Takes one opening of `client`'s bucket; 429 with `Retry-After` (the seconds until one
/// is back) when it is empty. A limit of 0 turns the check off.
pub(crate) fn take(st: &AppState, client: &str) -> ApiResult<()> {
    let limit = f64::from(st.cfg.session_rate_per_minute);
    if limit == 0.0 {
        return Ok(());
    }
    let now = now_ms();
    let per_ms = limit / 60_000.0;
    let mut m = OPENINGS.lock().unwrap_or_else(|e| e.into_inner());
    if m.len() > 100_000 {
        // Full buckets carry no information.
        m.retain(|_, b| b.tokens + (now - b.at) as f64 * per_ms < limit);
    }
    // Keyed by server too: several servers may share a process (tests, embedding).
    let b =
        m.entry(format!("{} {client}", st.public_url)).or_insert(Bucket { tokens: limit, at: now });
    b.tokens = (b.tokens + (now - b.at) as f64 * per_ms).min(limit);
    b.at = now;
    if b.tokens < 1.0 {
        let wait_s = ((1.0 - b.tokens) / per_ms / 1000.0).ceil() as u64;
        return Err(ApiError::too_many(wait_s));
    }
    b.tokens -= 1.0;
    Ok(())
}
