//! Trainings: one per app, created with the app's first trace or sequence.

use crate::store::Conn;

/// `nTracesReliable` of an app that never set it.
pub const DEFAULT_RELIABLE: i64 = 12;

/// The training row of an app, created with defaults when missing.
pub async fn ensure(c: &mut Conn, org_id: &str, app_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO trainings (app_id, org_id) VALUES ($1, $2) ON CONFLICT (app_id) DO NOTHING")
        .bind(app_id)
        .bind(org_id)
        .execute(&mut *c)
        .await?;
    Ok(())
}
