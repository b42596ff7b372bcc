//! Tasks (`/be/v1/tasks`) and triggers (`/be/v1/trigger`): list, details, acknowledge a
//! warning, expire a waiting upload, retry a failed task, process traces.

use super::extract::{JsonBody, ListQuery, ListSpec};
use super::reply::{page, ListParams, Page, Reply, Success};
use crate::caller::Caller;
use crate::domain::tasks as task_rules;
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, TaskId};
use crate::perms::{Resource, R};
use crate::state::AppState;
use crate::store::tasks::TaskStatus;
use crate::store::{orgs, tasks};
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

// The task object and the shapes of its stored parts: long, and shared with the admin API.
#[path = "tasks_view.rs"]
mod view;
pub use view::{TaskState, TaskType, TaskView};

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/tasks", get(list_tasks).patch(patch_task))
        .route("/be/v1/tasks/{name}", get(get_task))
        .route("/be/v1/trigger", post(trigger))
}

page!(
    /// A page of tasks.
    TaskPage,
    "tasks",
    TaskView
);

/// One task.
#[derive(Serialize, ToSchema)]
pub struct TaskReply {
    /// Always `success`.
    status: Success,
    /// The task.
    task: TaskView,
}

impl TaskReply {
    /// The answer carrying task `t`; `with_org` adds `orgName` (the admin API).
    pub fn new(t: &tasks::Task, with_org: bool) -> Reply<TaskReply> {
        Reply(TaskReply { status: Success, task: TaskView::of(t, with_org) })
    }
}

/// The list query of tasks; `orgName` only in the admin API.
const TASK_LIST: ListSpec = ListSpec {
    filters: &[
        "appName",
        "taskGroup",
        "status",
        "type",
        "createdAfter",
        "createdBefore",
        "orgName",
    ],
    order_fields: &[
        "created", "taskName", "type", "status", "appName", "buildId", "started", "ended",
    ],
    default_order: ("created", true),
    unique: "taskName",
};

/// Task list for an org (`Some`) or the whole instance (`None`, the admin API, whose items
/// carry `orgName` and which takes the `orgName` filter). Filters, order and paging run in
/// SQL; `fields[]` is checked against the first item of the page.
pub async fn task_list(
    st: &AppState,
    org: Option<&OrgId>,
    raw: Option<&str>,
) -> ApiResult<Reply<TaskPage>> {
    let q = ListQuery::parse(raw, &TASK_LIST)?;
    let time = |k: &str| -> ApiResult<Option<i64>> {
        q.filters
            .get(k)
            .map(|v| {
                crate::util::parse_rfc3339(v).ok_or_else(|| {
                    ApiError::invalid(k, format!("{k} must be an RFC 3339 timestamp"))
                })
            })
            .transpose()
    };
    if let Some(s) = q.filters.get("status") {
        if TaskStatus::parse(s).is_none() {
            return Err(ApiError::invalid("status", "unknown status"));
        }
    }
    let mut c = st.db.conn().await?;
    let org_id = match (org, q.filters.get("orgName")) {
        (Some(o), None) => Some(o.clone()),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("orgName", "unknown query parameter 'orgName'"))
        }
        (None, Some(n)) => match orgs::by_name(&mut c, n).await? {
            Some(o) => Some(o.id),
            // No such organization: a filter nothing matches.
            None => Some(OrgId::default()),
        },
        (None, None) => None,
    };
    let f = tasks::TaskFilter {
        org: org_id,
        app_id: None,
        app_name: q.filters.get("appName").cloned(),
        group: q.filters.get("taskGroup").cloned(),
        status: q.filters.get("status").cloned(),
        kind: q.filters.get("type").cloned(),
        created_after: time("createdAfter")?,
        created_before: time("createdBefore")?,
    };
    let (rows, total) = tasks::list(&mut c, &f, &q.order, q.offset, q.limit).await?;
    let items = rows
        .iter()
        .map(|t| super::reply::projected(&TaskView::of(t, org.is_none()), None))
        .collect::<Result<Vec<Value>, ApiError>>()?;
    let items = match &q.fields {
        Some(fs) => {
            if let Some(bad) =
                fs.iter().find(|f| items.first().is_some_and(|i| i.get(f.as_str()).is_none()))
            {
                return Err(ApiError::invalid("fields[]", format!("unknown field '{bad}'")));
            }
            items
                .into_iter()
                .map(|v| {
                    Value::Object(
                        v.as_object()
                            .cloned()
                            .unwrap_or_default()
                            .into_iter()
                            .filter(|(k, _)| fs.contains(k))
                            .collect(),
                    )
                })
                .collect()
        }
        None => items,
    };
    Ok(Reply(TaskPage::new(items, usize::try_from(total).unwrap_or(0), q.offset, q.limit)))
}

/// List tasks
///
/// Newest first by default; order by `created`, `taskName`, `type`, `status`, `appName`,
/// `buildId`, `started` or `ended`. `fields[]` naming a field the first task of the page
/// lacks (`waitingForUpload` of a task other than `dltar`) is 400.
#[utoipa::path(get, path = "/be/v1/tasks", tag = "tasks",
    params(ListParams,
        ("appName" = Option<String>, Query, description = "Only tasks of apps whose name contains this (any case)"),
        ("taskGroup" = Option<String>, Query, description = "Only the tasks of this group"),
        ("status" = Option<TaskState>, Query, description = "Only tasks in this status"),
        ("type" = Option<TaskType>, Query, description = "Only tasks of this type"),
        ("createdAfter" = Option<String>, Query, format = DateTime, description = "Only tasks submitted after this time (RFC 3339)"),
        ("createdBefore" = Option<String>, Query, format = DateTime, description = "Only tasks submitted before this time (RFC 3339)")),
    responses((status = 200, description = "A page of tasks", body = TaskPage)),
    extensions(("x-rockit-auth" = json!("tasks:R"))))]
async fn list_tasks(
    c: Caller,
    State(st): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<TaskPage>> {
    c.require(Resource::Tasks, R)?;
    task_list(&st, Some(&c.org_id), raw.as_deref()).await
}

/// One task
#[utoipa::path(get, path = "/be/v1/tasks/{name}", tag = "tasks",
    params(("name" = String, Path, description = "The task's name")),
    responses((status = 200, description = "The task", body = TaskReply)),
    extensions(("x-rockit-auth" = json!("tasks:R"))))]
async fn get_task(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Reply<TaskReply>> {
    c.require(Resource::Tasks, R)?;
    let mut conn = st.db.conn().await?;
    let t = tasks::get(&mut conn, Some(&c.org_id), &TaskId::new(name.as_str()))
        .await?
        .ok_or_else(|| ApiError::not_found("task", &name))?;
    Ok(TaskReply::new(&t, false))
}

/// The Change Task body: the task by name and exactly one of the two actions.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TaskPatch {
    /// The task to act on.
    task_name: String,
    /// `true`: mark the task's warning as seen.
    acknowledge: Option<bool>,
    /// `true`: give up an upload-mode import that waits for its archive (the task ends
    /// `expired`, the rest of its group is canceled).
    expire: Option<bool>,
}

/// Acknowledge a warning or expire a waiting upload
///
/// Exactly one of `acknowledge: true` and `expire: true` (else 400). 409 `invalid-state`:
/// the task has no warning to acknowledge, or is not a `dltar` waiting for (or receiving)
/// its upload.
#[utoipa::path(patch, path = "/be/v1/tasks", tag = "tasks", request_body = TaskPatch,
    responses((status = 200, description = "The task as it is now", body = TaskReply)),
    extensions(("x-rockit-auth" = json!("tasks:U"))))]
async fn patch_task(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<TaskPatch>,
) -> ApiResult<Reply<TaskReply>> {
    let (ack, exp) = (b.acknowledge == Some(true), b.expire == Some(true));
    if ack == exp {
        return Err(ApiError::bad_request("give exactly one of acknowledge: true or expire: true"));
    }
    let name = TaskId::new(b.task_name);
    if ack {
        task_rules::acknowledge(&st, &c, &name).await?;
    } else {
        task_rules::expire(&st, &c, &name).await?;
    }
    let t = tasks::get(&mut *st.db.conn().await?, Some(&c.org_id), &name)
        .await?
        .ok_or_else(|| ApiError::not_found("task", name.as_str()))?;
    Ok(TaskReply::new(&t, false))
}

/// The Trigger body: an action and its subject.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TriggerIn {
    /// `retry` (Retry Task: takes `taskName`), `traces` (Process Traces: takes `appName`) or
    /// `rollback` (Roll Back: takes `appName` and `buildId`).
    #[serde(rename = "type")]
    #[schema(value_type = TriggerType)]
    kind: String,
    /// `retry`: the failed task to run again. Refused with `rollback`.
    task_name: Option<String>,
    /// `traces`: the app whose traces to learn from; `rollback`: the app to roll back.
    /// Refused with `retry`.
    app_name: Option<String>,
    /// `rollback`: the kept build to make current again. Refused with the others.
    #[schema(minimum = 1)]
    build_id: Option<i64>,
    /// Accepted (and ignored) with `traces`; refused with `retry` and `rollback`.
    force: Option<bool>,
}

/// The actions of `POST /be/v1/trigger`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // `TriggerIn.type` is read as text (its error message names both); this only describes it
enum TriggerType {
    /// Retry Task.
    Retry,
    /// Process Traces.
    Traces,
    /// Roll Back.
    Rollback,
}

/// The task a trigger submitted.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerReply {
    /// Always `success`.
    status: Success,
    /// `retry`: the task put back in line; `traces`: the `mkseq` task queued; `rollback`:
    /// the `deploy` task queued.
    task_name: String,
}

impl TriggerReply {
    fn new(task: TaskId) -> Reply<TriggerReply> {
        Reply(TriggerReply { status: Success, task_name: task.into_string() })
    }
}

/// Retry Task / Process Traces / Roll Back
///
/// `retry` puts a failed task back in line, with the tasks of its group that were
/// canceled after it; it goes to the back of its app's line (a retried upload import gets
/// its upload URL back). 409 `invalid-state`: the task is not `error`, or its build is
/// older than the app's current one.
///
/// `traces` queues a `mkseq` of the app now, without waiting for enough new traces.
/// 409 `app-locked`: the app is in error state after a failed publish; 409
/// `invalid-state`: it has no traces, no published build, or a `mkseq` is already queued
/// or running.
///
/// `rollback` makes a kept build current again: a `deploy` task publishes its image (as
/// the depot holds it) to every target of the app, sending only what a target lacks, then
/// makes it current; it waits in the app's line behind what is queued. Needs `apps: Update`
/// as well. 404: no such app or build; 409 `app-locked`: the app is in error state; 409
/// `invalid-state`: the build is current already, was rotated away or never published.
#[utoipa::path(post, path = "/be/v1/trigger", tag = "tasks", request_body = TriggerIn,
    responses((status = 200, description = "The task submitted", body = TriggerReply)),
    extensions(("x-rockit-auth" = json!("tasks:X"))))]
async fn trigger(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<TriggerIn>,
) -> ApiResult<Reply<TriggerReply>> {
    match b.kind.as_str() {
        "retry" => {
            let name = b
                .task_name
                .clone()
                .map(TaskId::new)
                .ok_or_else(|| ApiError::invalid("taskName", "missing field 'taskName'"))?;
            if b.app_name.is_some() || b.force.is_some() || b.build_id.is_some() {
                return Err(ApiError::bad_request("retry takes only taskName"));
            }
            task_rules::retry(&st, &c, &name).await?;
            Ok(TriggerReply::new(name))
        }
        "rollback" => {
            let app = b
                .app_name
                .clone()
                .ok_or_else(|| ApiError::invalid("appName", "missing field 'appName'"))?;
            let build = b
                .build_id
                .ok_or_else(|| ApiError::invalid("buildId", "missing field 'buildId'"))?;
            if b.task_name.is_some() || b.force.is_some() {
                return Err(ApiError::bad_request("rollback takes only appName and buildId"));
            }
            if build < 1 {
                return Err(ApiError::invalid("buildId", "buildId must be 1 or more"));
            }
            Ok(TriggerReply::new(crate::domain::rollback::rollback(&st, &c, &app, build).await?))
        }
        "traces" => {
            if b.build_id.is_some() {
                return Err(ApiError::bad_request("traces takes only appName (and force)"));
            }
            let app = b
                .app_name
                .clone()
                .ok_or_else(|| ApiError::invalid("appName", "missing field 'appName'"))?;
            Ok(TriggerReply::new(crate::domain::trainings::process_traces(&st, &c, &app).await?))
        }
        _ => Err(ApiError::invalid("type", "type must be retry, traces or rollback")),
    }
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_tasks, get_task, patch_task, trigger),
    components(schemas(TaskState, TaskType))
)]
pub struct Api;
