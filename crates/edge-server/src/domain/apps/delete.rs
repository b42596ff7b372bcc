//! Deleting an app: refused while its pipeline runs (unless forced, which cancels it),
//! its files purged by a task queued in the deleting transaction.

use crate::caller::Caller;
use crate::domain::purge;
use crate::error::{ApiError, ApiResult};
use crate::ids::TaskId;
use crate::perms::{Resource, D};
use crate::state::AppState;
use crate::store::apps;

/// Deletes the caller's app `name` (`apps: Delete`) with its tasks, builds and traces, and
/// queues the purge of its files from the depot and the deployments, in one transaction;
/// returns the purge task's name. 404 for an unknown app; 409 `invalid-state` while a
/// pipeline runs for it, unless `force`, which cancels the pipeline.
pub(crate) async fn delete(
    st: &AppState,
    c: &Caller,
    name: &str,
    force: bool,
) -> ApiResult<TaskId> {
    c.require(Resource::Apps, D)?;
    let mut tx = st.db.tx().await?;
    let r = apps::by_name(&mut tx, &c.org_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found("app", name))?;
    if r.active > 0 && !force {
        return Err(ApiError::conflict(
            "invalid-state",
            "a pipeline is running for this app; use force=true to cancel it",
        ));
    }
    apps::cancel_tasks(&mut tx, &r.id).await?;
    let task = purge::enqueue_for_app(st, &mut tx, &c.org_id, &c.org_name, &r.id, name).await?;
    apps::delete(&mut tx, &r.id).await?;
    tx.commit().await?;
    Ok(task)
}
