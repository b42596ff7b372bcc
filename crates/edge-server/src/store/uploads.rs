//! One-time upload URLs (`uploads` rows): `waiting` for the archive, `receiving` it under a
//! claim, then `done` or `expired`.
//!
//! A claim names its receiver (`<instance>/<random>`, the instance being the process's data
//! directory) and holds a lease that the receiving request renews while it reads. So a
//! claim never outlives its process: a process that starts again resets the claims of its
//! instance at once, and a claim whose lease ran out (its process is gone for good) can be
//! taken by the next attempt and is reset by the workers' upload check. Expiring an upload
//! works whatever its state short of `done`; a receiver that lost its claim stops.

use super::Conn;
use crate::util::now_ms;

/// The row of a token, as the upload handler checks it.
pub struct Upload {
    pub task_name: String,
    pub app_id: String,
    pub expires: i64,
    pub size_expected: Option<i64>,
    pub state: String,
    pub task_group: String,
}

/// The upload of `token_hash`, with its task's group.
pub async fn by_token(c: &mut Conn, token_hash: &str) -> Result<Option<Upload>, sqlx::Error> {
    let row = sqlx::query("SELECT u.task_name, u.app_id, u.expires, u.size_expected, u.state, t.task_group FROM uploads u JOIN tasks t ON t.name = u.task_name WHERE u.token_hash = $1")
        .bind(token_hash)
        .fetch_optional(c)
        .await?;
    Ok(row.map(|r| Upload {
        task_name: crate::db::s(&r, "task_name"),
        app_id: crate::db::s(&r, "app_id"),
        expires: crate::db::i(&r, "expires"),
        size_expected: crate::db::opt_i(&r, "size_expected"),
        state: crate::db::s(&r, "state"),
        task_group: crate::db::s(&r, "task_group"),
    }))
}

/// Claims a waiting upload (or one whose claim's lease ran out) for `receiver`.
/// `lease_ms`: how long the claim lasts without renewal (`upload_lease_seconds`).
pub async fn claim(c: &mut Conn, token_hash: &str, receiver: &str, lease_ms: i64) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let r = sqlx::query(
        "UPDATE uploads SET state = 'receiving', receiver = $1, lease_until = $2, bytes = 0 \
         WHERE token_hash = $3 AND (state = 'waiting' OR (state = 'receiving' AND (lease_until IS NULL OR lease_until < $4)))",
    )
    .bind(receiver)
    .bind(now + lease_ms)
    .bind(token_hash)
    .bind(now)
    .execute(c)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Renews the claim; false when it is no longer `receiver`'s (expired, or taken over).
pub async fn renew(c: &mut Conn, token_hash: &str, receiver: &str, bytes: u64, lease_ms: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE uploads SET lease_until = $1, bytes = $2 WHERE token_hash = $3 AND receiver = $4 AND state = 'receiving'")
        .bind(now_ms() + lease_ms)
        .bind(bytes as i64)
        .bind(token_hash)
        .bind(receiver)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Marks the upload done, if `receiver` still holds it.
pub async fn complete(c: &mut Conn, token_hash: &str, receiver: &str, bytes: u64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE uploads SET state = 'done', bytes = $1, receiver = NULL, lease_until = NULL WHERE token_hash = $2 AND receiver = $3 AND state = 'receiving'",
    )
    .bind(bytes as i64)
    .bind(token_hash)
    .bind(receiver)
    .execute(c)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Gives a claim back (the attempt failed): the URL takes the next attempt.
pub async fn release(c: &mut Conn, token_hash: &str, receiver: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE uploads SET state = 'waiting', bytes = 0, receiver = NULL, lease_until = NULL WHERE token_hash = $1 AND receiver = $2 AND state = 'receiving'",
    )
    .bind(token_hash)
    .bind(receiver)
    .execute(c)
    .await?;
    Ok(())
}

/// Resets the claims of a process instance (at its start: they died with its predecessor)
/// and every claim whose lease ran out. Returns how many.
pub async fn reset_dead_claims(c: &mut Conn, instance: &str) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE uploads SET state = 'waiting', bytes = 0, receiver = NULL, lease_until = NULL \
         WHERE state = 'receiving' AND (substr(receiver, 1, CAST($1 AS INTEGER)) = $2 OR lease_until IS NULL OR lease_until < $3)",
    )
    // `<instance>/…` (a prefix test without LIKE's wildcards).
    .bind(instance.len() as i64 + 1)
    .bind(format!("{instance}/"))
    .bind(now_ms())
    .execute(c)
    .await?;
    Ok(r.rows_affected())
}

/// Resets the claims whose lease ran out (their process died and has not come back).
pub async fn reset_expired_claims(c: &mut Conn) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE uploads SET state = 'waiting', bytes = 0, receiver = NULL, lease_until = NULL \
         WHERE state = 'receiving' AND (lease_until IS NULL OR lease_until < $1)",
    )
    .bind(now_ms())
    .execute(c)
    .await?;
    Ok(r.rows_affected())
}

/// The token of the upload of `task` that has not completed or expired.
pub async fn pending_of_task(c: &mut Conn, task: &str) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT token_hash FROM uploads WHERE task_name = $1 AND state IN ('waiting', 'receiving')")
        .bind(task)
        .fetch_optional(c)
        .await?;
    Ok(row.map(|r| crate::db::s(&r, "token_hash")))
}

/// Expires an upload that has not completed (`before`: only if its expiry is still
/// earlier, and then not while a live claim receives it). True when it moved.
pub async fn expire(c: &mut Conn, token_hash: &str, before: Option<i64>) -> Result<bool, sqlx::Error> {
    let r = match before {
        None => sqlx::query(
            "UPDATE uploads SET state = 'expired', receiver = NULL, lease_until = NULL WHERE token_hash = $1 AND state IN ('waiting', 'receiving')",
        )
        .bind(token_hash)
        .execute(c)
        .await?,
        Some(t) => sqlx::query(
            "UPDATE uploads SET state = 'expired', receiver = NULL, lease_until = NULL WHERE token_hash = $1 AND expires < $2 \
             AND (state = 'waiting' OR (state = 'receiving' AND (lease_until IS NULL OR lease_until < $3)))",
        )
        .bind(token_hash)
        .bind(t)
        .bind(now_ms())
        .execute(c)
        .await?,
    };
    Ok(r.rows_affected() == 1)
}
