//! API keys: `rk_<keyId>_<secret>`, only the secret's hash stored.

use super::Conn;
use crate::ids::{OrgId, UserId};
use crate::util::{hex, now_ms, random_bytes, sha256_hex};
use sqlx::any::AnyRow;

/// A stored key.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub key_id: String,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub username: String,
    pub secret_hash: String,
    pub label: Option<String>,
    pub created: i64,
    pub expires: Option<i64>,
    pub last_used: Option<i64>,
}

/// Decoded strictly: a missing or mistyped column is an error, not an empty value.
impl<'r> sqlx::FromRow<'r, AnyRow> for ApiKey {
    fn from_row(r: &'r AnyRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(ApiKey {
            key_id: r.try_get::<String, _>("key_id")?,
            org_id: r.try_get::<OrgId, _>("org_id")?,
            user_id: r.try_get::<UserId, _>("user_id")?,
            username: r.try_get::<String, _>("username")?,
            secret_hash: r.try_get::<String, _>("secret_hash")?,
            label: r.try_get::<Option<String>, _>("label")?,
            created: r.try_get::<i64, _>("created")?,
            expires: r.try_get::<Option<i64>, _>("expires")?,
            last_used: r.try_get::<Option<i64>, _>("last_used")?,
        })
    }
}

/// Splits `rk_<keyId>_<secret>`.
pub fn split(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("rk_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && !secret.is_empty()).then_some((id, secret))
}

/// Creates a key and returns `(keyId, full key)`.
pub async fn create(
    c: &mut Conn,
    org: &OrgId,
    user: &UserId,
    label: Option<&str>,
    expires: Option<i64>,
) -> Result<(String, String), sqlx::Error> {
    let key_id = hex(&random_bytes(8));
    let secret = hex(&random_bytes(32));
    sqlx::query("INSERT INTO apikeys (key_id, org_id, user_id, secret_hash, label, created, expires) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(&key_id)
        .bind(org)
        .bind(user)
        .bind(sha256_hex(secret.as_bytes()))
        .bind(label)
        .bind(now_ms())
        .bind(expires)
        .execute(c)
        .await?;
    Ok((key_id.clone(), format!("rk_{key_id}_{secret}")))
}

const SELECT: &str = "SELECT k.key_id, k.org_id, k.user_id, u.username, k.secret_hash, k.label, k.created, k.expires, k.last_used \
    FROM apikeys k JOIN users u ON u.id = k.user_id";

/// Looks a key up by id (any org: the caller checks the secret, then the org).
pub async fn by_id(c: &mut Conn, key_id: &str) -> Result<Option<ApiKey>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE k.key_id = $1")).bind(key_id).fetch_optional(c).await
}

/// Keys of `org`, optionally of one user.
pub async fn list(
    c: &mut Conn,
    org: &OrgId,
    user: Option<&UserId>,
) -> Result<Vec<ApiKey>, sqlx::Error> {
    match user {
        Some(u) => {
            sqlx::query_as(&format!("{SELECT} WHERE k.org_id = $1 AND k.user_id = $2"))
                .bind(org)
                .bind(u)
                .fetch_all(c)
                .await
        }
        None => {
            sqlx::query_as(&format!("{SELECT} WHERE k.org_id = $1")).bind(org).fetch_all(c).await
        }
    }
}

/// Revokes one key of `org`.
pub async fn delete(c: &mut Conn, org: &OrgId, key_id: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM apikeys WHERE org_id = $1 AND key_id = $2")
        .bind(org)
        .bind(key_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Revokes every key of a user in `org`.
pub async fn delete_for_user(c: &mut Conn, org: &OrgId, user: &UserId) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM apikeys WHERE org_id = $1 AND user_id = $2")
        .bind(org)
        .bind(user)
        .execute(c)
        .await?;
    Ok(())
}

/// Records use, at most once a minute per key (no write on every request).
pub async fn touch(c: &mut Conn, key_id: &str) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query("UPDATE apikeys SET last_used = $1 WHERE key_id = $2 AND (last_used IS NULL OR last_used < $3)")
        .bind(now)
        .bind(key_id)
        .bind(now - 60_000)
        .execute(c)
        .await?;
    Ok(())
}
