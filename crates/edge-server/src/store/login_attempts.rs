//! Login attempts per limiter key (`u:<user>|<address>`, `a:<address>`): pending while a
//! password check runs, failures once it failed, pruned as they leave the window.

use super::Conn;
use crate::db::Backend;

/// What a key has in the window.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct Window {
    /// Attempts in the window.
    pub n: i64,
    /// Of them, pending ones not older than the pending limit (null: none).
    pub inflight: Option<i64>,
    /// The oldest failure (or stale pending attempt) in the window.
    pub first: Option<i64>,
}

/// Serializes the attempts of one address for the rest of the transaction (PostgreSQL; on
/// SQLite the write transaction already does).
pub async fn lock_address(c: &mut Conn, backend: Backend, lock_id: i64) -> Result<(), sqlx::Error> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock_id).execute(c).await?;
    }
    Ok(())
}

/// The window of `key` since `since`; attempts pending since before `stale` count as
/// failures.
pub async fn window(
    c: &mut Conn,
    key: &str,
    since: i64,
    stale: i64,
) -> Result<Window, sqlx::Error> {
    sqlx::query_as(
        "SELECT COUNT(*) AS n, SUM(CASE WHEN pending = 1 AND at > $1 THEN 1 ELSE 0 END) AS inflight, \
         MIN(CASE WHEN pending = 0 OR at <= $1 THEN at END) AS first FROM login_failures WHERE key = $2 AND at > $3",
    )
    .bind(stale)
    .bind(key)
    .bind(since)
    .fetch_one(c)
    .await
}

/// Records a pending attempt `attempt` for `key` and prunes the key's entries that left the
/// window (the index is on (key, at)).
pub async fn add_pending(
    c: &mut Conn,
    key: &str,
    at: i64,
    attempt: &str,
    since: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO login_failures (key, at, attempt, pending) VALUES ($1, $2, $3, 1)")
        .bind(key)
        .bind(at)
        .bind(attempt)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM login_failures WHERE key = $1 AND at <= $2")
        .bind(key)
        .bind(since)
        .execute(c)
        .await?;
    Ok(())
}

/// Removes an attempt (the password was right, or was not checked).
pub async fn remove(c: &mut Conn, attempt: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_failures WHERE attempt = $1").bind(attempt).execute(c).await?;
    Ok(())
}

/// Makes an attempt a failure.
pub async fn fail(c: &mut Conn, attempt: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE login_failures SET pending = 0 WHERE attempt = $1")
        .bind(attempt)
        .execute(c)
        .await?;
    Ok(())
}

/// Deletes entries older than `before` (the sweep); returns how many.
pub async fn prune(c: &mut Conn, before: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM login_failures WHERE at < $1")
        .bind(before)
        .execute(c)
        .await?
        .rows_affected())
}
