//! Deleting a deployment: refused while apps name it, what was published to it purged. A
//! module of its own because the purge resolves targets through [`super::target_of`]: the
//! rules of deployments must not call it back.

use super::target_of;
use crate::caller::Caller;
use crate::domain::purge;
use crate::error::{ApiError, ApiResult};
use crate::ids::TaskId;
use crate::perms::{Resource, D};
use crate::state::AppState;
use crate::store::deployments as store;

/// Deletes the caller's deployment `name` (`deployments: Delete`) and queues the purge of
/// what was published to it, in the same transaction; returns the purge task's name. 409
/// `item-in-use` while apps name it in their `deployments`.
pub(crate) async fn delete(st: &AppState, c: &Caller, name: &str) -> ApiResult<TaskId> {
    c.require(Resource::Deployments, D)?;
    let mut tx = st.db.tx().await?;
    let d = store::get(&mut tx, &c.org_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found("deployment", name))?;
    let apps = store::apps_using(&mut tx, &c.org_id, name).await?;
    if !apps.is_empty() {
        return Err(ApiError::conflict(
            "item-in-use",
            format!("deployment '{name}' is used by app(s) {}", apps.join(", ")),
        ));
    }
    // One whose target no longer resolves (an `fs` path gone bad) is deleted all the same;
    // its files are then left where they are.
    let target = target_of(st, &d).ok();
    let task =
        purge::enqueue_for_deployment(st, &mut tx, &c.org_id, &c.org_name, &d, target).await?;
    store::delete(&mut tx, &c.org_id, &d.id).await?;
    tx.commit().await?;
    Ok(task)
}
