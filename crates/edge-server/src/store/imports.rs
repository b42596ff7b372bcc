//! Configuration imports staged for a commit (`POST /be/v1/import`), kept an hour.

use super::Conn;
use crate::ids::{OrgId, UserId};

/// A staged import.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Staged {
    pub user_id: UserId,
    /// The bundle, JSON text.
    pub bundle: String,
    /// The org configuration's fingerprint when the plan was made.
    pub base: String,
    pub expires: i64,
}

/// A new staged import.
pub struct NewImport<'a> {
    pub id: &'a str,
    pub org: &'a OrgId,
    pub user: &'a UserId,
    pub bundle: String,
    pub base: &'a str,
    pub created: i64,
    pub expires: i64,
}

/// Stages an import.
pub async fn insert(c: &mut Conn, i: NewImport<'_>) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO imports (id, org_id, user_id, bundle, base, created, expires) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(i.id)
        .bind(i.org)
        .bind(i.user)
        .bind(i.bundle)
        .bind(i.base)
        .bind(i.created)
        .bind(i.expires)
        .execute(c)
        .await?;
    Ok(())
}

/// The bundle `user` staged as import `id` in `org`, while unexpired at `now`.
pub async fn bundle_of(
    c: &mut Conn,
    org: &OrgId,
    user: &UserId,
    id: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT bundle FROM imports WHERE id = $1 AND org_id = $2 AND user_id = $3 AND expires > $4")
        .bind(id)
        .bind(org)
        .bind(user)
        .bind(now)
        .fetch_optional(c)
        .await
}

/// Import `id` of `org`, whoever staged it.
pub async fn get(c: &mut Conn, org: &OrgId, id: &str) -> Result<Option<Staged>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, bundle, base, expires FROM imports WHERE id = $1 AND org_id = $2",
    )
    .bind(id)
    .bind(org)
    .fetch_optional(c)
    .await
}

/// Removes a committed import.
pub async fn delete(c: &mut Conn, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM imports WHERE id = $1").bind(id).execute(c).await?;
    Ok(())
}

/// The maintenance sweep: deletes imports no one committed before they expired at `now`;
/// returns how many.
pub async fn expire(c: &mut Conn, now: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM imports WHERE expires < $1")
        .bind(now)
        .execute(c)
        .await?
        .rows_affected())
}
