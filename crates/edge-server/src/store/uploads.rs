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
use crate::ids::{AppId, OrgId, TaskId};
use crate::util::now_ms;

/// The row of a token, as the upload handler checks it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Upload {
    pub task_name: TaskId,
    pub app_id: AppId,
    pub expires: i64,
    pub size_expected: Option<i64>,
    pub state: String,
    pub task_group: String,
}

/// The upload of `token_hash`, with its task's group.
pub async fn by_token(c: &mut Conn, token_hash: &str) -> Result<Option<Upload>, sqlx::Error> {
    sqlx::query_as("SELECT u.task_name, u.app_id, u.expires, u.size_expected, u.state, t.task_group FROM uploads u JOIN tasks t ON t.name = u.task_name WHERE u.token_hash = $1")
        .bind(token_hash)
        .fetch_optional(c)
        .await
}

/// Claims a waiting upload (or one whose claim's lease ran out) for `receiver`.
/// `lease_ms`: how long the claim lasts without renewal (`upload_lease_seconds`).
pub async fn claim(
    c: &mut Conn,
    token_hash: &str,
    receiver: &str,
    lease_ms: i64,
) -> Result<bool, sqlx::Error> {
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
pub async fn renew(
    c: &mut Conn,
    token_hash: &str,
    receiver: &str,
    bytes: u64,
    lease_ms: i64,
) -> Result<bool, sqlx::Error> {
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
pub async fn complete(
    c: &mut Conn,
    token_hash: &str,
    receiver: &str,
    bytes: u64,
) -> Result<bool, sqlx::Error> {
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
pub async fn pending_of_task(c: &mut Conn, task: &TaskId) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT token_hash FROM uploads WHERE task_name = $1 AND state IN ('waiting', 'receiving')",
    )
    .bind(task)
    .fetch_optional(c)
    .await
}

/// Expires an upload that has not completed (`before`: only if its expiry is still
/// earlier, and then not while a live claim receives it). True when it moved.
pub async fn expire(
    c: &mut Conn,
    token_hash: &str,
    before: Option<i64>,
) -> Result<bool, sqlx::Error> {
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

/// Gives the upload of a retried task its URL back (a claim cut off stays no more).
pub async fn reopen_for_task(c: &mut Conn, task: &TaskId) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE uploads SET state = 'waiting', bytes = 0, receiver = NULL, lease_until = NULL WHERE task_name = $1 AND state = 'receiving'",
    )
    .bind(task)
    .execute(c)
    .await?;
    Ok(())
}

/// Moves the expiry of every upload not yet done by `by_ms` (the length of a maintenance
/// that just ended); returns how many.
pub async fn extend_pending(c: &mut Conn, by_ms: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE uploads SET expires = expires + $1 WHERE state IN ('waiting', 'receiving')",
    )
    .bind(by_ms)
    .execute(c)
    .await?
    .rows_affected())
}

/// Upload-mode imports of the app still waiting for (or receiving) their archive.
pub async fn waiting_count(c: &mut Conn, app_id: &AppId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) AS n FROM uploads u JOIN tasks t ON t.name = u.task_name WHERE u.app_id = $1 AND u.state IN ('waiting', 'receiving') AND t.status = 'submitted'",
    )
    .bind(app_id)
    .fetch_one(c)
    .await
}

/// A new upload URL, waiting.
pub struct NewUpload<'a> {
    pub token_hash: String,
    pub task: &'a TaskId,
    pub org_id: &'a OrgId,
    pub app_id: &'a AppId,
    pub expires: i64,
    pub size_expected: Option<i64>,
}

/// Records a new upload URL.
pub async fn insert(c: &mut Conn, u: NewUpload<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO uploads (token_hash, task_name, org_id, app_id, expires, size_expected, state, created) VALUES ($1, $2, $3, $4, $5, $6, 'waiting', $7)",
    )
    .bind(u.token_hash)
    .bind(u.task)
    .bind(u.org_id)
    .bind(u.app_id)
    .bind(u.expires)
    .bind(u.size_expected)
    .bind(now_ms())
    .execute(c)
    .await?;
    Ok(())
}

/// Waiting uploads whose expiry passed before `cutoff`: (token hash, task).
pub async fn expired_waiting(
    c: &mut Conn,
    cutoff: i64,
) -> Result<Vec<(String, TaskId)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT token_hash, task_name FROM uploads WHERE state = 'waiting' AND expires < $1",
    )
    .bind(cutoff)
    .fetch_all(c)
    .await
}
