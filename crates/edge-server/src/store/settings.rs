//! Instance-wide key/value settings (operator org, maintenance, enrollment, worker version,
//! the maintenance sweep's lease).

use super::Conn;
use crate::db::Db;

/// Reads one setting.
pub async fn get(db: &Db, key: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(key)
        .fetch_optional(db.pool())
        .await
}

/// Writes one setting (insert or replace).
pub async fn put(db: &Db, key: &str, value: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
        .bind(key)
        .bind(value)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Writes a setting only when it is absent, then returns the stored value (so concurrent
/// first starts agree on one value).
pub async fn get_or_init(db: &Db, key: &str, value: &str) -> Result<String, sqlx::Error> {
    sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .bind(key)
        .bind(value)
        .execute(db.pool())
        .await?;
    Ok(get(db, key).await?.unwrap_or_else(|| value.to_string()))
}

/// Replaces a setting's value with `new` only while it is still `old` (compare-and-set of
/// the whole text: how the sweep lease moves without a lock). True when it was replaced.
pub async fn compare_and_set(
    db: &Db,
    key: &str,
    old: &str,
    new: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE settings SET value = $1 WHERE key = $2 AND value = $3")
        .bind(new)
        .bind(key)
        .bind(old)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Reads one setting in the caller's transaction.
pub async fn get_in(c: &mut Conn, key: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(key)
        .fetch_optional(c)
        .await
}

/// [`compare_and_set`] in the caller's transaction.
pub async fn compare_and_set_in(
    c: &mut Conn,
    key: &str,
    old: &str,
    new: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE settings SET value = $1 WHERE key = $2 AND value = $3")
        .bind(new)
        .bind(key)
        .bind(old)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Writes a setting that is absent, in the caller's transaction; false when it exists.
pub async fn insert_if_absent_in(
    c: &mut Conn,
    key: &str,
    value: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(value)
    .execute(c)
    .await?;
    Ok(r.rows_affected() == 1)
}
