//! Tasks: what a publisher may do to one — acknowledge its warning, expire an import that
//! waits for its upload, retry a failed one — with the checks the API and the console share.

use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::ids::TaskId;
use crate::perms::{Resource, U, X};
use crate::state::AppState;
use crate::store::tasks::{self, TaskKind, TaskStatus};
use crate::store::{apps, uploads};
use serde_json::{json, Value};

/// Marks the warning of `org`'s task `name` as seen (409 when it has none). Needs
/// `tasks: Update`.
pub(crate) async fn acknowledge(st: &AppState, c: &Caller, name: &TaskId) -> ApiResult<()> {
    c.require(Resource::Tasks, U)?;
    let t = tasks::get(&mut *st.db.conn().await?, Some(&c.org_id), name)
        .await?
        .ok_or_else(|| ApiError::not_found("task", name.as_str()))?;
    let Some(mut w) = t
        .warning
        .as_deref()
        .and_then(|w| serde_json::from_str::<Value>(w).ok())
        .filter(|w| w.is_object())
    else {
        return Err(ApiError::conflict("invalid-state", "the task has no warning"));
    };
    w["acknowledged"] = json!(true);
    tasks::set_warning(&mut *st.db.conn().await?, &t.name, Some(&w)).await?;
    Ok(())
}

/// Gives up the upload-mode import whose `dltar` is `name`, waiting for its archive or
/// receiving it (an upload cut off by a crash included): the task ends `expired`, the rest
/// of its group is canceled. 409 for any other task. Needs `tasks: Update`.
pub(crate) async fn expire(st: &AppState, c: &Caller, name: &TaskId) -> ApiResult<()> {
    c.require(Resource::Tasks, U)?;
    let t = tasks::get(&mut *st.db.conn().await?, Some(&c.org_id), name)
        .await?
        .ok_or_else(|| ApiError::not_found("task", name.as_str()))?;
    let waiting = t.waits_for_upload();
    let upload = uploads::pending_of_task(&mut *st.db.conn().await?, &t.name).await?;
    match (waiting, upload) {
        (true, Some(hash)) => {
            if !super::uploads::expire_upload_task(st, &hash, &t.name).await? {
                return Err(ApiError::conflict("invalid-state", "the upload is no longer waiting"));
            }
            Ok(())
        }
        _ => Err(ApiError::conflict(
            "invalid-state",
            "only a dltar task waiting for its upload can be expired",
        )),
    }
}

/// Puts `org`'s failed task `name` back in line with the tasks of its group canceled after
/// it (a retried upload import gets its upload URL back). 409 when it is not `error`, or
/// when its build is older than the app's current one (unless it is a rollback's publish).
/// Needs `tasks: Execute`.
pub(crate) async fn retry(st: &AppState, c: &Caller, name: &TaskId) -> ApiResult<()> {
    c.require(Resource::Tasks, X)?;
    let mut tx = st.db.tx().await?;
    let t = tasks::get(&mut tx, Some(&c.org_id), name)
        .await?
        .ok_or_else(|| ApiError::not_found("task", name.as_str()))?;
    if t.status != TaskStatus::Error {
        return Err(ApiError::conflict(
            "invalid-state",
            format!("only a failed task can be retried; this one is {}", t.status),
        ));
    }
    // A rollback's publish brings an older build back by design.
    let rollback = t.payload::<tasks::DeployParams>().is_ok_and(|p| p.rollback);
    if let (Some(app), Some(build), false) = (&t.app_id, t.build_id, rollback) {
        let cur = apps::current_build_if_any(&mut tx, app).await?;
        if cur.is_some_and(|c| build < c) {
            return Err(ApiError::conflict(
                "invalid-state",
                "a build older than the current one cannot become current again",
            ));
        }
    }
    tasks::retry(&mut tx, &t).await?;
    if t.kind == TaskKind::Dltar {
        // A retried upload import gets its upload URL back for the rest of its life.
        uploads::reopen_for_task(&mut tx, &t.name).await?;
    }
    tx.commit().await?;
    Ok(())
}
