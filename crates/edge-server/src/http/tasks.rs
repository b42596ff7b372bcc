//! Tasks (`/be/v1/tasks`) and triggers (`/be/v1/trigger`): list, details, acknowledge a
//! warning, expire a waiting upload, retry a failed task, process traces.

use super::extract::{success, JsonBody};
use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::perms::{Resource, R, U, X};
use crate::state::AppState;
use crate::store::tasks::{TaskKind, TaskStatus};
use crate::store::{apps, tasks, uploads};
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/tasks", get(list_tasks).patch(patch_task))
        .route("/be/v1/tasks/{name}", get(get_task))
        .route("/be/v1/trigger", post(trigger))
}

async fn list_tasks(c: Caller, State(st): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    c.require(Resource::Tasks, R)?;
    super::admin::task_list(&st, Some(&c.org_id), raw.as_deref()).await
}

async fn get_task(c: Caller, State(st): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    c.require(Resource::Tasks, R)?;
    let mut conn = st.db.conn().await?;
    let t = tasks::get(&mut conn, Some(&c.org_id), &name).await?.ok_or_else(|| ApiError::not_found("task", &name))?;
    Ok(success(json!({"task": t.to_json(false)})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TaskPatch {
    task_name: String,
    acknowledge: Option<bool>,
    expire: Option<bool>,
}

async fn patch_task(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<TaskPatch>) -> ApiResult<Json<Value>> {
    let (ack, exp) = (b.acknowledge == Some(true), b.expire == Some(true));
    if ack == exp {
        return Err(ApiError::bad_request("give exactly one of acknowledge: true or expire: true"));
    }
    c.require(Resource::Tasks, U)?;
    let t = tasks::get(&mut *st.db.conn().await?, Some(&c.org_id), &b.task_name)
        .await?
        .ok_or_else(|| ApiError::not_found("task", &b.task_name))?;
    if ack {
        let Some(mut w) = t.warning.as_deref().and_then(|w| serde_json::from_str::<Value>(w).ok()).filter(|w| w.is_object()) else {
            return Err(ApiError::conflict("invalid-state", "the task has no warning"));
        };
        w["acknowledged"] = json!(true);
        tasks::set_warning(&mut *st.db.conn().await?, &t.name, Some(&w)).await?;
    } else {
        let waiting = t.waits_for_upload();
        // Waiting, or being received (an upload cut off by a crash included): both expire.
        let upload = uploads::pending_of_task(&mut *st.db.conn().await?, &t.name).await?;
        match (waiting, upload) {
            (true, Some(hash)) => {
                if !crate::domain::uploads::expire_upload_task(&st, &hash, &t.name).await? {
                    return Err(ApiError::conflict("invalid-state", "the upload is no longer waiting"));
                }
            }
            _ => return Err(ApiError::conflict("invalid-state", "only a dltar task waiting for its upload can be expired")),
        }
    }
    let t = tasks::get(&mut *st.db.conn().await?, Some(&c.org_id), &b.task_name)
        .await?
        .ok_or_else(|| ApiError::not_found("task", &b.task_name))?;
    Ok(success(json!({"task": t.to_json(false)})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TriggerIn {
    #[serde(rename = "type")]
    kind: String,
    task_name: Option<String>,
    app_name: Option<String>,
    force: Option<bool>,
}

async fn trigger(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<TriggerIn>) -> ApiResult<Json<Value>> {
    match b.kind.as_str() {
        "retry" => {
            let name = b.task_name.clone().ok_or_else(|| ApiError::invalid("taskName", "missing field 'taskName'"))?;
            if b.app_name.is_some() || b.force.is_some() {
                return Err(ApiError::bad_request("retry takes only taskName"));
            }
            c.require(Resource::Tasks, X)?;
            let mut tx = st.db.tx().await?;
            let t = tasks::get(&mut tx, Some(&c.org_id), &name).await?.ok_or_else(|| ApiError::not_found("task", &name))?;
            if t.status != TaskStatus::Error {
                return Err(ApiError::conflict("invalid-state", format!("only a failed task can be retried; this one is {}", t.status)));
            }
            if let (Some(app), Some(build)) = (&t.app_id, t.build_id) {
                let cur = apps::current_build_if_any(&mut tx, app).await?;
                if cur.is_some_and(|c| build < c) {
                    return Err(ApiError::conflict("invalid-state", "a build older than the current one cannot become current again"));
                }
            }
            tasks::retry(&mut tx, &t).await?;
            if t.kind == TaskKind::Dltar {
                // A retried upload import gets its upload URL back for the rest of its life.
                uploads::reopen_for_task(&mut tx, &t.name).await?;
            }
            tx.commit().await?;
            Ok(success(json!({"taskName": name})))
        }
        "traces" => {
            let app = b.app_name.clone().ok_or_else(|| ApiError::invalid("appName", "missing field 'appName'"))?;
            c.require(Resource::Tasks, X)?;
            let mut conn = st.db.conn().await?;
            let (app_id, locked) = apps::lock_state(&mut conn, &c.org_id, &app).await?.ok_or_else(|| ApiError::not_found("app", &app))?;
            if locked {
                return Err(ApiError::conflict("app-locked", "the app is in error state after a failed publish"));
            }
            if apps::trace_count(&mut conn, &app_id).await? == 0 {
                return Err(ApiError::conflict("invalid-state", "the app has no traces to process"));
            }
            if apps::current_build(&mut conn, &app_id).await?.is_none() {
                return Err(ApiError::conflict("invalid-state", "the app has no published build to re-sequence"));
            }
            drop(conn);
            let mut tx = st.db.tx().await?;
            let queued = crate::delivery::seq::enqueue(&mut tx, &c.org_id, &c.org_name, &app_id, &app).await?;
            tx.commit().await?;
            match queued {
                Some(name) => Ok(success(json!({"taskName": name}))),
                None => Err(ApiError::conflict("invalid-state", "a mkseq task is already queued or running for this app")),
            }
        }
        _ => Err(ApiError::invalid("type", "type must be retry or traces")),
    }
}
