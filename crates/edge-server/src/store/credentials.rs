//! Resolving a credential to its caller: the identity, membership, org and every role's
//! permissions in one query, so a request pays one round trip to authenticate.

use super::Conn;
use crate::ids::{OrgId, UserId};

/// One row per role the caller holds (one row without a role).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CallerRow {
    /// The session (access token) or the key id (API key).
    pub cred: String,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub username: String,
    pub kind: String,
    pub org_name: String,
    /// 1 in the operator organization.
    pub operator: i64,
    /// The role's permissions (`Perms::from_db`).
    pub perms: Option<String>,
    /// An API key's secret hash.
    pub secret_hash: Option<String>,
    pub expires: Option<i64>,
    /// When an API key was last used.
    pub last_used: Option<i64>,
}

/// The caller of the access token hashing to `hash`, unexpired at `now`, of a live session.
pub async fn by_access_token(
    c: &mut Conn,
    hash: &str,
    now: i64,
) -> Result<Vec<CallerRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.session_id AS cred, s.org_id, s.user_id, u.username, u.kind, o.name AS org_name, o.operator, r.perms, \
         NULL AS secret_hash, t.expires, NULL AS last_used \
         FROM tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id \
         JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id JOIN orgs o ON o.id = s.org_id \
         LEFT JOIN member_roles mr ON mr.org_id = s.org_id AND mr.user_id = s.user_id LEFT JOIN roles r ON r.id = mr.role_id \
         WHERE t.hash = $1 AND t.kind = 'access' AND t.expires > $2 AND s.revoked = 0",
    )
    .bind(hash)
    .bind(now)
    .fetch_all(c)
    .await
}

/// The caller of API key `key_id` (its secret still to be checked against `secret_hash`).
pub async fn by_api_key(c: &mut Conn, key_id: &str) -> Result<Vec<CallerRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT k.key_id AS cred, k.org_id, k.user_id, u.username, u.kind, o.name AS org_name, o.operator, r.perms, \
         k.secret_hash, k.expires, k.last_used \
         FROM apikeys k JOIN users u ON u.id = k.user_id \
         JOIN memberships m ON m.org_id = k.org_id AND m.user_id = k.user_id JOIN orgs o ON o.id = k.org_id \
         LEFT JOIN member_roles mr ON mr.org_id = k.org_id AND mr.user_id = k.user_id LEFT JOIN roles r ON r.id = mr.role_id \
         WHERE k.key_id = $1",
    )
    .bind(key_id)
    .fetch_all(c)
    .await
}
