//! Login brute-force limits: failures per (username, client address) and per address,
//! counted in the database so every process agrees, pruned as they age out.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
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

async fn window_count(st: &AppState, key: &str, since: i64) -> ApiResult<(i64, i64)> {
    let r = sqlx::query("SELECT COUNT(*) AS n, MIN(at) AS first FROM login_failures WHERE key = $1 AND at > $2")
        .bind(key)
        .bind(since)
        .fetch_one(&st.db.pool)
        .await?;
    Ok((crate::db::i(&r, "n"), crate::db::i(&r, "first")))
}

/// 429 with `Retry-After` when either limit is reached (even for the right password).
pub async fn check(st: &AppState, username: &str, client: &str) -> ApiResult<()> {
    let window = st.cfg.login_window as i64 * 1000;
    let now = now_ms();
    for (key, max) in
        [(format!("u:{username}|{client}"), st.cfg.login_max_failures_user), (format!("a:{client}"), st.cfg.login_max_failures_addr)]
    {
        let (n, first) = window_count(st, &key, now - window).await?;
        if n >= i64::from(max) {
            let retry = ((first + window - now) / 1000).max(1) as u64;
            return Err(ApiError::too_many(retry));
        }
    }
    Ok(())
}

/// Counts one failed login, and prunes entries older than the window.
pub async fn record_failure(st: &AppState, username: &str, client: &str) -> ApiResult<()> {
    let now = now_ms();
    let mut tx = st.db.tx().await?;
    for key in [format!("u:{username}|{client}"), format!("a:{client}")] {
        sqlx::query("INSERT INTO login_failures (key, at) VALUES ($1, $2)").bind(key).bind(now).execute(&mut *tx).await?;
    }
    sqlx::query("DELETE FROM login_failures WHERE at < $1").bind(now - st.cfg.login_window as i64 * 1000).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}
