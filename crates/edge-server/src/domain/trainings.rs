//! Trainings: one per app, created with the app's first trace or sequence.

use crate::ids::{AppId, OrgId};
use crate::store::Conn;

/// `nTracesReliable` of an app that never set it.
pub const DEFAULT_RELIABLE: i64 = 12;

/// The training row of an app, created with defaults when missing.
pub async fn ensure(c: &mut Conn, org_id: &OrgId, app_id: &AppId) -> Result<(), sqlx::Error> {
    crate::store::trainings::ensure(c, org_id, app_id).await
}
