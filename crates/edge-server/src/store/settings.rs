//! Instance-wide key/value settings (operator org, maintenance, enrollment, worker version).

use crate::db::Db;
use sqlx::Row;

/// Reads one setting.
pub async fn get(db: &Db, key: &str) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(db.pool()).await?;
    Ok(row.map(|r| r.get::<String, _>("value")))
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
