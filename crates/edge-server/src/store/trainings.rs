//! Trainings (one per app) and the counters of traces learned from.

use super::Conn;
use crate::db::Db;
use crate::ids::{AppId, OrgId};

// What learning (`delivery::seq`) reads and changes of a training. The row exists once
// `domain::trainings::ensure` ran; updates of a missing row change nothing.

/// The app's sequence generation (`None` without a training row).
pub async fn generation(db: &Db, app_id: &AppId) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT generation FROM trainings WHERE app_id = $1")
        .bind(app_id)
        .fetch_optional(db.pool())
        .await
}

/// Counts one more trace since the last sequence.
pub async fn count_trace(c: &mut Conn, app_id: &AppId) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE trainings SET since_sequence = since_sequence + 1 WHERE app_id = $1")
        .bind(app_id)
        .execute(c)
        .await?;
    Ok(())
}

/// Traces since the last sequence and how many make a new one worth learning:
/// (`since_sequence`, `n_traces_reliable`). An error without a training row.
pub async fn counts(c: &mut Conn, app_id: &AppId) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as("SELECT since_sequence, n_traces_reliable FROM trainings WHERE app_id = $1")
        .bind(app_id)
        .fetch_one(c)
        .await
}

/// Restarts the count at `now` after a `mkseq` that found no gain (the generation stays).
pub async fn restart_count(c: &mut Conn, app_id: &AppId, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE trainings SET since_sequence = 0, last_sequence = $1 WHERE app_id = $2")
        .bind(now)
        .bind(app_id)
        .execute(c)
        .await?;
    Ok(())
}

/// The published image's figures (JSON texts of its preload and acceleration).
pub async fn set_figures(
    c: &mut Conn,
    app_id: &AppId,
    preload: &str,
    acceleration: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE trainings SET preload = $1, acceleration = $2 WHERE app_id = $3")
        .bind(preload)
        .bind(acceleration)
        .bind(app_id)
        .execute(c)
        .await?;
    Ok(())
}

/// Records a published sequence of `generation` at `now`, restarting the count.
pub async fn record_sequence(
    c: &mut Conn,
    app_id: &AppId,
    now: i64,
    generation: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE trainings SET since_sequence = 0, last_sequence = $1, generation = $2 WHERE app_id = $3")
        .bind(now)
        .bind(generation)
        .bind(app_id)
        .execute(c)
        .await?;
    Ok(())
}

/// Creates an app's training row with defaults when missing.
pub async fn ensure(c: &mut Conn, org_id: &OrgId, app_id: &AppId) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO trainings (app_id, org_id) VALUES ($1, $2) ON CONFLICT (app_id) DO NOTHING",
    )
    .bind(app_id)
    .bind(org_id)
    .execute(c)
    .await?;
    Ok(())
}

/// Sets how many new traces make `mkseq` run by itself.
pub async fn set_reliable(c: &mut Conn, app_id: &AppId, n: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE trainings SET n_traces_reliable = $1 WHERE app_id = $2")
        .bind(n)
        .bind(app_id)
        .execute(c)
        .await?;
    Ok(())
}

/// An app's training as the API shows it (the training columns are null before the app's
/// first trace or sequence).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TrainingRow {
    pub app_name: String,
    pub n_traces_reliable: Option<i64>,
    pub since_sequence: Option<i64>,
    pub generation: Option<i64>,
    /// JSON text.
    pub preload: Option<String>,
    /// JSON text.
    pub acceleration: Option<String>,
    pub last_sequence: Option<i64>,
    pub n_traces: i64,
}

const VIEW: &str = "SELECT a.name AS app_name, t.n_traces_reliable, t.since_sequence, t.generation, t.preload, t.acceleration, \
    t.last_sequence, (SELECT COUNT(*) FROM traces x WHERE x.app_id = a.id) AS n_traces \
    FROM apps a LEFT JOIN trainings t ON t.app_id = a.id";

/// The trainings of every app of `org`.
pub async fn views(c: &mut Conn, org: &OrgId) -> Result<Vec<TrainingRow>, sqlx::Error> {
    sqlx::query_as(&format!("{VIEW} WHERE a.org_id = $1")).bind(org).fetch_all(c).await
}

/// The training of `org`'s app `app`.
pub async fn view_by_name(
    c: &mut Conn,
    org: &OrgId,
    app: &str,
) -> Result<Option<TrainingRow>, sqlx::Error> {
    sqlx::query_as(&format!("{VIEW} WHERE a.org_id = $1 AND a.name = $2"))
        .bind(org)
        .bind(app)
        .fetch_optional(c)
        .await
}

/// The training of app `app_id`.
pub async fn view_by_id(c: &mut Conn, app_id: &AppId) -> Result<Option<TrainingRow>, sqlx::Error> {
    sqlx::query_as(&format!("{VIEW} WHERE a.id = $1")).bind(app_id).fetch_optional(c).await
}
