//! Play traces (the rows; the documents are in the depot): stored at intake, kept up to
//! `max_traces` per app, read by learning.

use super::Conn;
use crate::db::Db;
use crate::ids::{AppId, BuildId, OrgId};

/// Ids of the app's newest `limit` traces, newest first.
pub async fn newest(db: &Db, app_id: &AppId, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM traces WHERE app_id = $1 ORDER BY created DESC, id DESC LIMIT $2",
    )
    .bind(app_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// A stored trace.
pub struct NewTrace<'a> {
    pub id: &'a str,
    pub org_id: &'a OrgId,
    pub app_id: &'a AppId,
    pub build_id: BuildId,
    pub session_id: &'a str,
    pub events: i64,
    pub bytes: i64,
    pub created: i64,
}

/// Records a stored trace.
pub async fn insert_trace(c: &mut Conn, t: NewTrace<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO traces (id, org_id, app_id, build_id, session_id, events, bytes, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(t.id)
    .bind(t.org_id)
    .bind(t.app_id)
    .bind(t.build_id)
    .bind(t.session_id)
    .bind(t.events)
    .bind(t.bytes)
    .bind(t.created)
    .execute(c)
    .await?;
    Ok(())
}

/// The app's traces beyond the newest `keep`, newest first.
pub async fn traces_beyond(
    c: &mut Conn,
    app_id: &AppId,
    keep: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM traces WHERE app_id = $1 ORDER BY created DESC, id DESC LIMIT 1000000 OFFSET $2")
        .bind(app_id)
        .bind(keep)
        .fetch_all(c)
        .await
}

/// Forgets a trace.
pub async fn delete_trace(c: &mut Conn, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM traces WHERE id = $1").bind(id).execute(c).await?;
    Ok(())
}
