//! Rollback: making a kept build current again. The publish runs as a `deploy` task of its
//! own group, in the app's line behind what is already queued, so it emits the events a
//! publish emits, survives a crash, and can be retried like any other publish.

use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::ids::{AppId, TaskId};
use crate::perms::{Resource, U, X};
use crate::state::AppState;
use crate::store::tasks::{self, DeployParams};
use crate::store::{apps, builds};
use crate::util::{new_id, now_ms};

/// Queues the publish that makes `org`'s app `app`'s kept build `build_id` current again;
/// returns the task's name. Needs `tasks: Execute` (a trigger) and `apps: Update` (it
/// changes what the app serves). 404: no such app or build; 409 `app-locked`: the app is in
/// error state after a failed publish; 409 `invalid-state`: the build is already current,
/// was rotated away, or was never published.
pub(crate) async fn rollback(
    st: &AppState,
    c: &Caller,
    app: &str,
    build_id: i64,
) -> ApiResult<TaskId> {
    c.require(Resource::Tasks, X)?;
    c.require(Resource::Apps, U)?;
    let mut tx = st.db.tx().await?;
    let (app_id, locked) = apps::lock_state(&mut tx, &c.org_id, app)
        .await?
        .ok_or_else(|| ApiError::not_found("app", app))?;
    let b = builds::state(&mut tx, &app_id, build_id)
        .await?
        .ok_or_else(|| ApiError::not_found("build", &build_id.to_string()))?;
    if locked {
        return Err(ApiError::conflict(
            "app-locked",
            "the app is in error state after a failed publish: fix the deployment and retry that task first",
        ));
    }
    match b.status.as_str() {
        "current" => {
            return Err(ApiError::conflict(
                "invalid-state",
                format!("build {build_id} is already the current build"),
            ))
        }
        "retained" if b.dxf_name.is_some() => {}
        "removed" => {
            return Err(ApiError::conflict(
                "invalid-state",
                format!(
                    "build {build_id} was rotated away (maxBuilds); the kept builds are {}",
                    kept_list(&mut tx, &app_id).await?
                ),
            ))
        }
        _ => {
            return Err(ApiError::conflict(
                "invalid-state",
                format!(
                    "build {build_id} was never published; the kept builds are {}",
                    kept_list(&mut tx, &app_id).await?
                ),
            ))
        }
    }
    let (name, _) = tasks::enqueue(
        &mut tx,
        tasks::NewTask {
            org_id: Some(c.org_id.clone()),
            org_name: Some(c.org_name.clone()),
            group: Some(new_id("g")),
            app_id: Some(app_id),
            app_name: Some(app.to_string()),
            build_name: Some(b.build_name),
            build_id: Some(build_id),
            // In the app's line: imports and re-sequencings queued before it publish first.
            queue_pos: Some(now_ms()),
            ..tasks::NewTask::of(DeployParams { rollback: true })
        },
    )
    .await?;
    tx.commit().await?;
    Ok(name)
}

/// The app's kept build ids, for a refusal's message: `3, 4, 5`.
async fn kept_list(c: &mut crate::store::Conn, app_id: &AppId) -> ApiResult<String> {
    let ids: Vec<String> =
        apps::kept_builds(c, app_id).await?.iter().map(|k| k.build_id.to_string()).collect();
    Ok(ids.join(", "))
}
