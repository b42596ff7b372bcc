//! The audit log of operator actions.

use crate::error::ApiResult;
use crate::state::AppState;

/// Records an admin action in the audit table.
pub async fn audit(st: &AppState, actor: &str, action: &str, target: &str) -> ApiResult<()> {
    crate::store::audit::insert(&mut *st.db.conn().await?, actor, action, target).await?;
    tracing::info!(admin = actor, action, object = target, "admin action");
    Ok(())
}
