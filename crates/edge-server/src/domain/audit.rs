//! The audit log of operator actions.

use crate::error::ApiResult;
use crate::state::AppState;
use crate::util::now_ms;

/// Records an admin action in the audit table.
pub async fn audit(st: &AppState, actor: &str, action: &str, target: &str) -> ApiResult<()> {
    sqlx::query("INSERT INTO audit (id, at, actor, action, target) VALUES ($1, $2, $3, $4, $5)")
        .bind(crate::util::new_id("a"))
        .bind(now_ms())
        .bind(actor)
        .bind(action)
        .bind(target)
        .execute(st.db.pool())
        .await?;
    tracing::info!(admin = actor, action, object = target, "admin action");
    Ok(())
}
