//! Login sessions and their bearer tokens (stored as SHA-256 hashes only).

use super::Conn;
use crate::ids::{OrgId, UserId};
use crate::util::{new_id, now_ms, random_token, sha256_hex};

/// The caller a valid access token stands for.
pub struct AccessGrant {
    pub session_id: String,
    pub org_id: OrgId,
    pub user_id: UserId,
}

/// Starts a session of `user` in `org`, returning its id.
pub async fn create(
    c: &mut Conn,
    org: &OrgId,
    user: &UserId,
    refresh_ttl_s: u64,
) -> Result<String, sqlx::Error> {
    let id = new_id("s");
    let now = now_ms();
    sqlx::query("INSERT INTO sessions (id, org_id, user_id, created, expires, revoked) VALUES ($1, $2, $3, $4, $5, 0)")
        .bind(&id)
        .bind(org)
        .bind(user)
        .bind(now)
        .bind(now + refresh_ttl_s as i64 * 1000)
        .execute(c)
        .await?;
    Ok(id)
}

/// Stores a new token of `kind` and returns its plain text (`<prefix>_<secret>`).
pub async fn issue(
    c: &mut Conn,
    kind: &str,
    user: &UserId,
    session: Option<&str>,
    ttl_s: u64,
) -> Result<String, sqlx::Error> {
    let prefix = match kind {
        "access" => "at",
        "refresh" => "rt",
        _ => "os",
    };
    let token = format!("{prefix}_{}", random_token());
    let now = now_ms();
    sqlx::query("INSERT INTO tokens (hash, kind, user_id, session_id, expires, created) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(sha256_hex(token.as_bytes()))
        .bind(kind)
        .bind(user)
        .bind(session)
        .bind(now + ttl_s as i64 * 1000)
        .bind(now)
        .execute(c)
        .await?;
    Ok(token)
}

/// Resolves a valid access token (not expired, session live).
pub async fn access(c: &mut Conn, token: &str) -> Result<Option<AccessGrant>, sqlx::Error> {
    let r: Option<(String, OrgId, UserId)> = sqlx::query_as(
        "SELECT t.session_id, s.org_id, s.user_id FROM tokens t JOIN sessions s ON s.id = t.session_id \
         WHERE t.hash = $1 AND t.kind = 'access' AND t.expires > $2 AND s.revoked = 0",
    )
    .bind(sha256_hex(token.as_bytes()))
    .bind(now_ms())
    .fetch_optional(c)
    .await?;
    Ok(r.map(|(session_id, org_id, user_id)| AccessGrant { session_id, org_id, user_id }))
}

/// Resolves a valid organization-selection token to its user id.
pub async fn org_selection(c: &mut Conn, token: &str) -> Result<Option<UserId>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT user_id FROM tokens WHERE hash = $1 AND kind = 'orgsel' AND expires > $2",
    )
    .bind(sha256_hex(token.as_bytes()))
    .bind(now_ms())
    .fetch_optional(c)
    .await
}

/// What presenting a refresh token amounts to.
pub enum Refresh {
    /// The token was current: it is now rotated; issue a new pair for this session.
    Rotated(AccessGrant),
    /// Rotated within the grace period (10 s by default: a concurrent refresh): refuse without revoking.
    JustRotated,
    /// An older rotated token came back: the session was revoked.
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

/// A refresh token with its session.
#[derive(sqlx::FromRow)]
struct RefreshRow {
    session_id: String,
    rotated_at: Option<i64>,
    expires: i64,
    org_id: OrgId,
    user_id: UserId,
    revoked: i64,
}

/// Looks up a refresh token; with `rotate`, atomically marks it rotated (compare-and-set).
pub async fn refresh(
    c: &mut Conn,
    token: &str,
    rotate: bool,
    grace_s: u64,
) -> Result<Refresh, sqlx::Error> {
    let hash = sha256_hex(token.as_bytes());
    let now = now_ms();
    let Some(r) = sqlx::query_as::<_, RefreshRow>(
        "SELECT t.session_id, t.rotated_at, t.expires, s.org_id, s.user_id, s.revoked FROM tokens t \
         JOIN sessions s ON s.id = t.session_id WHERE t.hash = $1 AND t.kind = 'refresh'",
    )
    .bind(&hash)
    .fetch_optional(&mut *c)
    .await?
    else {
        return Ok(Refresh::Invalid);
    };
    let session = r.session_id;
    if r.revoked == 1 || r.expires <= now {
        return Ok(Refresh::Invalid);
    }
    if let Some(at) = r.rotated_at {
        if now - at <= grace_s as i64 * 1000 {
            return Ok(Refresh::JustRotated);
        }
        revoke(c, &session).await?;
        return Ok(Refresh::Reused);
    }
    let grant = AccessGrant { session_id: session, org_id: r.org_id, user_id: r.user_id };
    if !rotate {
        return Ok(Refresh::Rotated(grant));
    }
    let done =
        sqlx::query("UPDATE tokens SET rotated_at = $1 WHERE hash = $2 AND rotated_at IS NULL")
            .bind(now)
            .bind(&hash)
            .execute(&mut *c)
            .await?;
    if done.rows_affected() == 1 {
        Ok(Refresh::Rotated(grant))
    } else {
        Ok(Refresh::JustRotated)
    }
}

/// Ends one session at once.
pub async fn revoke(c: &mut Conn, session: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET revoked = 1 WHERE id = $1").bind(session).execute(c).await?;
    Ok(())
}

/// Ends every session of a user (in every org), except `keep`.
pub async fn revoke_user(
    c: &mut Conn,
    user: &UserId,
    keep: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET revoked = 1 WHERE user_id = $1 AND id <> $2")
        .bind(user)
        .bind(keep.unwrap_or(""))
        .execute(c)
        .await?;
    Ok(())
}

/// Removes expired tokens and sessions; returns how many rows went.
pub async fn sweep(c: &mut Conn) -> Result<u64, sqlx::Error> {
    let now = now_ms();
    let a = sqlx::query("DELETE FROM tokens WHERE expires < $1")
        .bind(now)
        .execute(&mut *c)
        .await?
        .rows_affected();
    let b = sqlx::query("DELETE FROM sessions WHERE expires < $1")
        .bind(now)
        .execute(&mut *c)
        .await?
        .rows_affected();
    Ok(a + b)
}
