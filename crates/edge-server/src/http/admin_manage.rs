//! What the operator manages through `/adm/v1`: the organizations, the tasks of the whole
//! instance, and maintenance mode.

use super::Admin;
use crate::domain::audit::audit;
use crate::domain::orgs::{create_org, delete_org, OrgIn};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::JsonBody;
use crate::http::orgs::{org_page, OrgCreated, OrgDeleted, OrgPage, OrgReply};
use crate::http::reply::{ListParams, Reply, Success};
use crate::http::tasks::{task_list, TaskPage, TaskReply, TaskState, TaskType};
use crate::ids::TaskId;
use crate::state::AppState;
use crate::store::{orgs, tasks};
use crate::util::rfc3339;
use axum::extract::{Path, RawQuery, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// List organizations
///
/// Every organization of the instance. Order by `name` (default), `created`, `updated` or
/// `label`.
#[utoipa::path(get, path = "/adm/v1/orgs", tag = "admin",
    params(ListParams, ("name" = Option<String>, Query, description = "Only organizations whose name contains this (any case)")),
    responses((status = 200, description = "A page of organizations", body = OrgPage)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
pub(super) async fn list_orgs(
    _a: Admin,
    State(st): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<OrgPage>> {
    org_page(&st, raw.as_deref()).await
}

/// Create an organization with its administrator
///
/// The organization, its `Administrators` role and its administrator in one
/// transaction. A taken organization name, or a username of a machine user: 409
/// `item-exists` (`details.field` names the field). A key that cannot be read or
/// decrypted, or is too weak: 400.
#[utoipa::path(post, path = "/adm/v1/orgs", tag = "admin", request_body = OrgIn,
    responses((status = 200, description = "Created", body = OrgCreated)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
pub(super) async fn post_org(
    a: Admin,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<OrgIn>,
) -> ApiResult<Reply<OrgCreated>> {
    let name = b.name.clone();
    let out = create_org(&st, b).await?;
    audit(&st, &a.username, "org.create", &name).await?;
    Ok(OrgCreated::of(&out))
}

/// One organization
#[utoipa::path(get, path = "/adm/v1/orgs/{name}", tag = "admin",
    params(("name" = String, Path, description = "The organization's name")),
    responses((status = 200, description = "The organization", body = OrgReply)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
pub(super) async fn get_org(
    _a: Admin,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Reply<OrgReply>> {
    let mut c = st.db.conn().await?;
    let o = orgs::by_name(&mut c, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("organization", &name))?;
    Ok(OrgReply::new(&o))
}

/// Delete an organization (prune=true purges its files)
///
/// The operator organization cannot go (409 `item-protected`). Every member, role, app,
/// deployment and task of it goes at once; its published files go too with
/// `prune=true`, through a `purge` task.
#[utoipa::path(delete, path = "/adm/v1/orgs/{name}", tag = "admin",
    params(
        ("name" = String, Path, description = "The organization's name"),
        ("prune" = Option<bool>, Query, description = "Also purge the organization's published files (default false)"),
    ),
    responses((status = 200, description = "Deleted", body = OrgDeleted)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
pub(super) async fn del_org(
    a: Admin,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<OrgDeleted>> {
    let prune = crate::http::extract::flag_query(raw.as_deref(), "prune")?;
    let out = delete_org(&st, &name, prune).await?;
    audit(&st, &a.username, "org.delete", &name).await?;
    Ok(OrgDeleted::of(&out))
}

/// All tasks of the instance
///
/// Like `GET /be/v1/tasks`, over every organization: each task names its `orgName` (null
/// for tasks of the instance, the test task), and `orgName` filters by organization (an
/// unknown one matches nothing). Newest first by default; order by `created`, `taskName`,
/// `type`, `status`, `appName`, `buildId`, `started` or `ended`.
#[utoipa::path(get, path = "/adm/v1/tasks", tag = "admin",
    params(ListParams,
        ("appName" = Option<String>, Query, description = "Only tasks of apps whose name contains this (any case)"),
        ("taskGroup" = Option<String>, Query, description = "Only the tasks of this group"),
        ("status" = Option<TaskState>, Query, description = "Only tasks in this status"),
        ("type" = Option<TaskType>, Query, description = "Only tasks of this type"),
        ("createdAfter" = Option<String>, Query, format = DateTime, description = "Only tasks submitted after this time (RFC 3339)"),
        ("createdBefore" = Option<String>, Query, format = DateTime, description = "Only tasks submitted before this time (RFC 3339)"),
        ("orgName" = Option<String>, Query, description = "Only the tasks of this organization (exact name)")),
    responses((status = 200, description = "A page of tasks", body = TaskPage)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
pub(super) async fn list_tasks(
    _a: Admin,
    State(st): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<TaskPage>> {
    task_list(&st, None, raw.as_deref()).await
}

/// One task of the instance
///
/// Of any organization; it names its `orgName`.
#[utoipa::path(get, path = "/adm/v1/tasks/{name}", tag = "admin",
    params(("name" = String, Path, description = "The task's name")),
    responses((status = 200, description = "The task", body = TaskReply)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
pub(super) async fn get_task(
    _a: Admin,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Reply<TaskReply>> {
    let mut c = st.db.conn().await?;
    let t = tasks::get(&mut c, None, &TaskId::new(name.as_str()))
        .await?
        .ok_or_else(|| ApiError::not_found("task", &name))?;
    Ok(TaskReply::new(&t, true))
}

/// Maintenance mode as it is.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceState {
    /// On: `/be/v1` (schemas excepted) and `/client/v1` answer 503 `maintenance`.
    enabled: bool,
    /// The `Retry-After` those 503s carry, in seconds.
    retry_after: u64,
    /// When it was switched on (RFC 3339); null when it is off.
    since: Option<String>,
}

impl MaintenanceState {
    fn of(m: &crate::state::Maintenance) -> MaintenanceState {
        MaintenanceState {
            enabled: m.enabled,
            retry_after: m.retry_after,
            since: (m.since > 0).then(|| rfc3339(m.since)),
        }
    }
}

/// The Maintenance answer.
#[derive(Serialize, ToSchema)]
pub struct MaintenanceReply {
    /// Always `success`.
    status: Success,
    /// The mode.
    maintenance: MaintenanceState,
}

impl MaintenanceReply {
    fn new(m: &crate::state::Maintenance) -> Reply<MaintenanceReply> {
        Reply(MaintenanceReply { status: Success, maintenance: MaintenanceState::of(m) })
    }
}

/// Maintenance mode
#[utoipa::path(get, path = "/adm/v1/maintenance", tag = "admin",
    responses((status = 200, description = "The mode", body = MaintenanceReply)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
pub(super) async fn get_maintenance(
    _a: Admin,
    State(st): State<Arc<AppState>>,
) -> Reply<MaintenanceReply> {
    MaintenanceReply::new(&st.maintenance().await)
}

/// The Switch Maintenance body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct MaintenanceIn {
    /// On or off.
    enabled: bool,
    /// The `Retry-After` of the 503s, 1 to 604800 seconds; default: the configured
    /// `maintenance_retry_after`.
    #[schema(minimum = 1, maximum = 604800)]
    retry_after: Option<u64>,
}

/// Switch maintenance mode
///
/// Takes effect on every instance sharing the database within a second. Admin routes,
/// health checks and `/be/v1/schemas` keep working; the workers keep running.
#[utoipa::path(put, path = "/adm/v1/maintenance", tag = "admin", request_body = MaintenanceIn,
    responses((status = 200, description = "The mode as switched", body = MaintenanceReply)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
pub(super) async fn put_maintenance(
    a: Admin,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<MaintenanceIn>,
) -> ApiResult<Reply<MaintenanceReply>> {
    let m = crate::domain::operator::set_maintenance(&st, &a.username, b.enabled, b.retry_after)
        .await?;
    Ok(MaintenanceReply::new(&m))
}
