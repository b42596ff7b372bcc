//! `/srv/v1` and `/adm/v1`: the operator's API (admin.md).

use super::auth::Admin;
use super::extract::{success, JsonBody, ListQuery, ListSpec, OptJsonBody};
use crate::domain::audit::audit;
use crate::domain::orgs::{create_org, delete_org, OrgIn};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{orgs, tasks};
use crate::util::{now_ms, rfc3339};
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Routes under `/srv/v1` and `/adm/v1`.
pub fn router() -> Router<Arc<AppState>> {
    let mut r = Router::new();
    for base in ["/srv/v1", "/adm/v1"] {
        r = r
            .route(&format!("{base}/ping"), post(ping))
            .route(&format!("{base}/versions"), get(versions))
            .route(&format!("{base}/hello"), post(hello))
            .route(&format!("{base}/initialize"), post(initialize))
            .route(&format!("{base}/changelog"), get(changelog));
    }
    r.route("/adm/v1/orgs", get(list_orgs).post(post_org))
        .route("/adm/v1/orgs/{name}", get(get_org).delete(del_org))
        .route("/adm/v1/tasks", get(list_tasks))
        .route("/adm/v1/tasks/{name}", get(get_task))
        .route("/adm/v1/maintenance", get(get_maintenance).put(put_maintenance))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PingIn {
    message: Option<String>,
}

async fn ping(_a: Admin, OptJsonBody(body): OptJsonBody<PingIn>) -> Json<Value> {
    let echo = body.and_then(|b| b.message);
    success(json!({"message": "pong", "echo": echo, "time": rfc3339(now_ms())}))
}

async fn versions(_a: Admin, State(st): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let worker = crate::store::settings::get(&st.db, "worker_version").await?;
    Ok(success(json!({"versions": {
        "edge": crate::version::EDGE_VERSION, "engine": crate::version::ENGINE_VERSION, "api": "v1",
        "build": option_env!("EDGE_GIT_HASH").unwrap_or("unknown"), "worker": worker,
    }})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HelloIn {
    message: String,
    maintenance: bool,
}

async fn hello(a: Admin, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<HelloIn>) -> ApiResult<Json<Value>> {
    let (name, _) = tasks::enqueue(
        &mut *st.db.conn().await?,
        tasks::NewTask::of(tasks::HelloParams { admin: a.username.clone(), maintenance: b.maintenance, message: b.message }),
    )
    .await?;
    audit(&st, &a.username, "hello", &name).await?;
    Ok(success(json!({"taskName": name})))
}

async fn initialize(a: Admin, State(st): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let v = crate::domain::instance::initialize(&st.db, &st.cfg).await.map_err(ApiError::internal)?;
    audit(&st, &a.username, "initialize", "").await?;
    Ok(success(json!({"message": "initialized", "schemaVersion": v})))
}

/// The changelog served from the project's `CHANGELOG.md`.
async fn changelog() -> Json<Value> {
    success(json!({"changelog": crate::changelog::parse(include_str!("../../../../CHANGELOG.md"))}))
}

const ORG_LIST: ListSpec =
    ListSpec { filters: &["name"], order_fields: &["name", "created", "updated", "label"], default_order: ("name", false), unique: "name" };

/// Lists organizations with the `name` partial filter (shared with `/be/v1/orgs`).
pub async fn org_list(st: &AppState, raw: Option<&str>) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(raw, &ORG_LIST)?;
    let mut c = st.db.conn().await?;
    let needle = q.filters.get("name").map(|s| s.to_lowercase());
    let items = orgs::list(&mut c)
        .await?
        .into_iter()
        .filter(|o| needle.as_ref().is_none_or(|n| o.name.to_lowercase().contains(n)))
        .map(|o| o.to_json())
        .collect();
    q.page(items, "orgs")
}

async fn list_orgs(_a: Admin, State(st): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    org_list(&st, raw.as_deref()).await
}

async fn post_org(a: Admin, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<OrgIn>) -> ApiResult<Json<Value>> {
    let name = b.name.clone();
    let out = create_org(&st, b).await?;
    audit(&st, &a.username, "org.create", &name).await?;
    Ok(success(out))
}

async fn get_org(_a: Admin, State(st): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let mut c = st.db.conn().await?;
    let o = orgs::by_name(&mut c, &name).await?.ok_or_else(|| ApiError::not_found("organization", &name))?;
    Ok(success(json!({"org": o.to_json()})))
}

async fn del_org(a: Admin, State(st): State<Arc<AppState>>, Path(name): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let prune = super::extract::flag_query(raw.as_deref(), "prune")?;
    let out = delete_org(&st, &name, prune).await?;
    audit(&st, &a.username, "org.delete", &name).await?;
    Ok(success(out))
}

const TASK_LIST: ListSpec = ListSpec {
    filters: &["appName", "taskGroup", "status", "type", "createdAfter", "createdBefore", "orgName"],
    order_fields: &["created", "taskName", "type", "status", "appName", "buildId", "started", "ended"],
    default_order: ("created", true),
    unique: "taskName",
};

/// Task list for an org (`Some`) or the whole instance (`None`), shared with `/be/v1/tasks`.
pub async fn task_list(st: &AppState, org: Option<&str>, raw: Option<&str>) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(raw, &TASK_LIST)?;
    let time = |k: &str| -> ApiResult<Option<i64>> {
        q.filters
            .get(k)
            .map(|v| crate::util::parse_rfc3339(v).ok_or_else(|| ApiError::invalid(k, format!("{k} must be an RFC 3339 timestamp"))))
            .transpose()
    };
    if let Some(s) = q.filters.get("status") {
        if !["submitted", "running", "done", "error", "expired", "canceled"].contains(&s.as_str()) {
            return Err(ApiError::invalid("status", "unknown status"));
        }
    }
    let mut c = st.db.conn().await?;
    let org_id = match (org, q.filters.get("orgName")) {
        (Some(o), None) => Some(o.to_string()),
        (Some(_), Some(_)) => return Err(ApiError::invalid("orgName", "unknown query parameter 'orgName'")),
        (None, Some(n)) => match orgs::by_name(&mut c, n).await? {
            Some(o) => Some(o.id),
            None => Some(String::new()),
        },
        (None, None) => None,
    };
    let f = tasks::TaskFilter {
        org: org_id,
        app_name: q.filters.get("appName").cloned(),
        group: q.filters.get("taskGroup").cloned(),
        status: q.filters.get("status").cloned(),
        kind: q.filters.get("type").cloned(),
        created_after: time("createdAfter")?,
        created_before: time("createdBefore")?,
    };
    let (rows, total) = tasks::list(&mut c, &f, &q.order, q.offset, q.limit).await?;
    let items: Vec<Value> = rows.iter().map(|t| t.to_json(org.is_none())).collect();
    let items = match &q.fields {
        Some(fs) => {
            if let Some(bad) = fs.iter().find(|f| items.first().is_some_and(|i| i.get(f.as_str()).is_none())) {
                return Err(ApiError::invalid("fields[]", format!("unknown field '{bad}'")));
            }
            items
                .into_iter()
                .map(|v| Value::Object(v.as_object().cloned().unwrap_or_default().into_iter().filter(|(k, _)| fs.contains(k)).collect()))
                .collect()
        }
        None => items,
    };
    Ok(success(json!({"tasks": items, "total": total, "offset": q.offset, "limit": q.limit})))
}

async fn list_tasks(_a: Admin, State(st): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    task_list(&st, None, raw.as_deref()).await
}

async fn get_task(_a: Admin, State(st): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let mut c = st.db.conn().await?;
    let t = tasks::get(&mut c, None, &name).await?.ok_or_else(|| ApiError::not_found("task", &name))?;
    Ok(success(json!({"task": t.to_json(true)})))
}

fn maintenance_json(m: &crate::state::Maintenance) -> Value {
    json!({"enabled": m.enabled, "retryAfter": m.retry_after, "since": if m.since > 0 { Some(rfc3339(m.since)) } else { None }})
}

async fn get_maintenance(_a: Admin, State(st): State<Arc<AppState>>) -> Json<Value> {
    let m = st.maintenance().await;
    success(json!({"maintenance": maintenance_json(&m)}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MaintenanceIn {
    enabled: bool,
    retry_after: Option<u64>,
}

async fn put_maintenance(a: Admin, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<MaintenanceIn>) -> ApiResult<Json<Value>> {
    let ra = b.retry_after.unwrap_or(st.cfg.maintenance_retry_after);
    if ra == 0 || ra > 7 * 86_400 {
        return Err(ApiError::invalid("retryAfter", "retryAfter must be 1..604800 seconds"));
    }
    let m = st.set_maintenance(b.enabled, ra).await?;
    audit(&st, &a.username, if b.enabled { "maintenance.on" } else { "maintenance.off" }, "").await?;
    Ok(success(json!({"maintenance": maintenance_json(&m)})))
}
