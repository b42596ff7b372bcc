//! Login brute-force limits: failures per (username, client address) and per address,
//! counted in the database so every process agrees, pruned as they age out.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::login_attempts;
use crate::util::now_ms;
use axum::http::HeaderMap;
use std::net::{IpAddr, SocketAddr};

/// The client address a limit counts against: the TCP peer, or the last
/// `X-Forwarded-For` entry when the peer is a trusted proxy; IPv6 per /64.
pub fn client_key(st: &AppState, peer: SocketAddr, h: &HeaderMap) -> String {
    let mut ip = peer.ip();
    if st.cfg.trusted_proxies.iter().any(|p| p.parse::<IpAddr>().ok() == Some(ip)) {
        let entries: Vec<IpAddr> = h
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .collect();
        if let Some(&last) = entries.last() {
            ip = last;
        }
    }
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// A login attempt counted before its password is checked, so that however many requests
/// arrive at once, no more than the limit get a check. It is *pending* while the check
/// runs; [`Attempt::failed`] makes it a failure, [`Attempt::release`] (right password, or
/// not checked) removes it. A pending attempt older than [`PENDING_MS`] (its process died)
/// counts as a failure.
#[must_use = "a reserved attempt stays pending until resolved"]
pub struct Attempt {
    id: String,
}

/// How long an attempt may stay pending before it counts as a failure.
const PENDING_MS: i64 = 30_000;
/// How long a login waits for other attempts of its key to be resolved.
const WAIT_MS: u64 = 10_000;

/// Reserves an attempt for `username` from `client`. With failures at either limit (per
/// user and address, per address) the answer is 429 with `Retry-After` — even for the
/// right password, which then is not checked. When failures and pending attempts together
/// reach a limit, it waits for the pending ones to be resolved: if they fail, this one is
/// refused; if they pass, it goes on.
pub async fn reserve(st: &AppState, username: &str, client: &str) -> ApiResult<Attempt> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(WAIT_MS);
    loop {
        if let Some(a) = try_reserve(st, username, client).await? {
            return Ok(a);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "too many logins at once; try again",
            )
            .retry_after(1));
        }
        // Woken when an attempt of this process is resolved; attempts of other processes
        // are seen at the next look, at most 200 ms later.
        let _ =
            tokio::time::timeout(std::time::Duration::from_millis(200), RESOLVED.notified()).await;
    }
}

/// Wakes the logins waiting for pending attempts to be resolved.
static RESOLVED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// One try: `Ok(None)` when pending attempts fill the limit.
async fn try_reserve(st: &AppState, username: &str, client: &str) -> ApiResult<Option<Attempt>> {
    let window = st.cfg.login_window as i64 * 1000;
    let now = now_ms();
    let keys = [
        (format!("u:{username}|{client}"), st.cfg.login_max_failures_user),
        (format!("a:{client}"), st.cfg.login_max_failures_addr),
    ];
    let mut tx = st.db.tx().await?;
    // Every attempt from one address takes this lock (both keys hold the address), so
    // count-then-insert is one step; SQLite's BEGIN IMMEDIATE already serializes writers.
    login_attempts::lock_address(&mut tx, st.db.backend, lock_id(client)).await?;
    let mut full = false;
    for (key, max) in &keys {
        let w = login_attempts::window(&mut tx, key, now - window, now - PENDING_MS).await?;
        let (n, first) = (w.n, w.first.unwrap_or(0));
        let failures = n - w.inflight.unwrap_or(0);
        if failures >= i64::from(*max) {
            let retry = ((first + window - now) / 1000).max(1) as u64;
            return Err(ApiError::too_many(retry));
        }
        full |= n >= i64::from(*max);
    }
    if full {
        return Ok(None);
    }
    let id = crate::util::new_id("la");
    for (key, _) in &keys {
        login_attempts::add_pending(&mut tx, key, now, &id, now - window).await?;
    }
    tx.commit().await?;
    Ok(Some(Attempt { id }))
}

impl Attempt {
    /// The password was right (or was not checked): the attempt no longer counts.
    pub async fn release(self, st: &AppState) -> ApiResult<()> {
        let mut tx = st.db.tx().await?;
        login_attempts::remove(&mut tx, &self.id).await?;
        tx.commit().await?;
        RESOLVED.notify_waiters();
        Ok(())
    }

    /// The password was wrong: the attempt counts as a failure for the whole window.
    pub async fn failed(self, st: &AppState) -> ApiResult<()> {
        let mut tx = st.db.tx().await?;
        login_attempts::fail(&mut tx, &self.id).await?;
        tx.commit().await?;
        RESOLVED.notify_waiters();
        Ok(())
    }
}

/// The advisory lock of one client address (a stable 64-bit number from its hash).
fn lock_id(client: &str) -> i64 {
    let h = crate::util::sha256_hex(format!("login-limit:{client}").as_bytes());
    i64::from_str_radix(&h[..15], 16).unwrap_or(0)
}
