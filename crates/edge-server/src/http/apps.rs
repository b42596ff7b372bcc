//! Apps (`/be/v1/apps`, resource `apps`): registration and settings. The build pipeline
//! fields (`builds`, `patches`, `processing`, …) are filled by the delivery pipeline.

use super::auth::Caller;
use super::extract::{project, success, JsonBody, ListQuery, ListSpec};
use crate::db::{i, opt_i, opt_s, s};
use crate::error::{ApiError, ApiResult};
use crate::names::{text, Name};
use crate::perms::{Resource, C, D, R, U};
use crate::state::AppState;
use crate::store::tasks;
use crate::util::{new_id, now_ms, rfc3339};
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use std::sync::Arc;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/apps", get(list_apps).post(post_app).patch(patch_app))
        .route("/be/v1/apps/{name}", get(get_app).delete(delete_app))
}

const SELECT: &str = "SELECT a.id, a.name, a.label, a.max_builds, a.deployments, a.client_key_sealed, a.i_cur_build, a.dxf_name, \
    a.build_name, a.error, a.error_task, a.created, a.updated, \
    (SELECT COUNT(*) FROM tasks t WHERE t.app_id = a.id AND t.status IN ('submitted', 'running') AND t.type <> 'purge') AS active \
    FROM apps a";

fn app_json(st: &AppState, r: &AnyRow, show_key: bool) -> Value {
    let deployments: Value = serde_json::from_str(&s(r, "deployments")).unwrap_or(json!([]));
    let mut v = json!({
        "name": s(r, "name"), "label": s(r, "label"), "maxBuilds": i(r, "max_builds"), "deployments": deployments,
        "iCurBuild": opt_i(r, "i_cur_build"), "dxfName": opt_s(r, "dxf_name"), "buildName": opt_s(r, "build_name"),
        "builds": [], "patches": [], "processing": i(r, "active") > 0, "exporting": false,
        "error": i(r, "error") == 1, "errorTask": opt_s(r, "error_task"), "sizeBytes": 0,
        "created": rfc3339(i(r, "created")), "updated": rfc3339(i(r, "updated")),
    });
    if show_key {
        let key = opt_s(r, "client_key_sealed").and_then(|k| st.data_key.open(&k)).and_then(|b| String::from_utf8(b).ok());
        v["clientKey"] = json!(key);
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AppIn {
    name: String,
    label: String,
    max_builds: Option<i64>,
    deployments: Option<Vec<String>>,
}

fn check_max_builds(m: Option<i64>) -> ApiResult<()> {
    if m.is_some_and(|m| !(1..=100).contains(&m)) {
        return Err(ApiError::invalid("maxBuilds", "maxBuilds must be 1..100"));
    }
    Ok(())
}

fn check_deployments(d: &Option<Vec<String>>) -> ApiResult<()> {
    if let Some(list) = d {
        // No deployment is registered in this version, so any name is unknown.
        if let Some(first) = list.first() {
            Name::parse("deployments", first)?;
            return Err(ApiError::invalid("deployments", format!("unknown deployment '{first}'")));
        }
    }
    Ok(())
}

async fn post_app(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<AppIn>) -> ApiResult<Json<Value>> {
    let name = Name::parse("name", &b.name)?;
    let label = text("label", &b.label, 1, 200)?;
    check_max_builds(b.max_builds)?;
    check_deployments(&b.deployments)?;
    c.require(Resource::Apps, C)?;
    let mut tx = st.db.tx().await?;
    let now = now_ms();
    let key = format!("ck_{}", crate::util::random_token());
    let id = new_id("app");
    sqlx::query(
        "INSERT INTO apps (id, org_id, name, label, max_builds, deployments, client_key_sealed, created, updated) VALUES ($1, $2, $3, $4, $5, '[]', $6, $7, $7)",
    )
    .bind(&id)
    .bind(&c.org_id)
    .bind(name.as_str())
    .bind(&label)
    .bind(b.max_builds.unwrap_or(5))
    .bind(st.data_key.seal(key.as_bytes()))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let r = sqlx::query(&format!("{SELECT} WHERE a.id = $1")).bind(&id).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(success(json!({"app": app_json(&st, &r, c.perms.has(Resource::Keys, R))})))
}

const APP_LIST: ListSpec = ListSpec {
    filters: &["name", "error"],
    order_fields: &["name", "created", "updated", "label"],
    default_order: ("name", false),
    unique: "name",
};

async fn list_apps(c: Caller, State(st): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(raw.as_deref(), &APP_LIST)?;
    let error = q.bool_filter("error")?;
    c.require(Resource::Apps, R)?;
    let rows = sqlx::query(&format!("{SELECT} WHERE a.org_id = $1")).bind(&c.org_id).fetch_all(&st.db.pool).await?;
    let needle = q.filters.get("name").map(|s| s.to_lowercase());
    let show_key = c.perms.has(Resource::Keys, R);
    let items = rows
        .iter()
        .filter(|r| needle.as_ref().is_none_or(|n| s(r, "name").to_lowercase().contains(n)))
        .filter(|r| error.is_none_or(|e| (i(r, "error") == 1) == e))
        .map(|r| app_json(&st, r, show_key))
        .collect();
    q.page(items, "apps")
}

async fn get_app(c: Caller, State(st): State<Arc<AppState>>, Path(name): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    c.require(Resource::Apps, R)?;
    let r = sqlx::query(&format!("{SELECT} WHERE a.org_id = $1 AND a.name = $2"))
        .bind(&c.org_id)
        .bind(&name)
        .fetch_optional(&st.db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("app", &name))?;
    Ok(success(json!({"app": project(app_json(&st, &r, c.perms.has(Resource::Keys, R)), raw.as_deref())?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AppPatch {
    name: String,
    label: Option<String>,
    max_builds: Option<i64>,
    deployments: Option<Vec<String>>,
}

async fn patch_app(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<AppPatch>) -> ApiResult<Json<Value>> {
    let label = b.label.as_deref().map(|l| text("label", l, 1, 200)).transpose()?;
    check_max_builds(b.max_builds)?;
    check_deployments(&b.deployments)?;
    c.require(Resource::Apps, U)?;
    let mut tx = st.db.tx().await?;
    let done = sqlx::query(
        "UPDATE apps SET label = COALESCE($1, label), max_builds = COALESCE($2, max_builds), updated = $3 WHERE org_id = $4 AND name = $5",
    )
    .bind(label)
    .bind(b.max_builds)
    .bind(now_ms())
    .bind(&c.org_id)
    .bind(&b.name)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("app", &b.name));
    }
    let r = sqlx::query(&format!("{SELECT} WHERE a.org_id = $1 AND a.name = $2")).bind(&c.org_id).bind(&b.name).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(success(json!({"app": app_json(&st, &r, c.perms.has(Resource::Keys, R))})))
}

async fn delete_app(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let mut force = false;
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match (k.as_ref(), v.as_ref()) {
            ("force", "true") => force = true,
            ("force", "false") => force = false,
            ("force", _) => return Err(ApiError::invalid("force", "force must be true or false")),
            (other, _) => return Err(ApiError::invalid(other, format!("unknown query parameter '{other}'"))),
        }
    }
    c.require(Resource::Apps, D)?;
    let mut tx = st.db.tx().await?;
    let r = sqlx::query(&format!("{SELECT} WHERE a.org_id = $1 AND a.name = $2"))
        .bind(&c.org_id)
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found("app", &name))?;
    let app_id = s(&r, "id");
    if i(&r, "active") > 0 && !force {
        return Err(ApiError::conflict("invalid-state", "a pipeline is running for this app; use force=true to cancel it"));
    }
    sqlx::query(
        "UPDATE tasks SET status = 'canceled', ended = $1 WHERE app_id = $2 AND status IN ('submitted', 'running') AND type <> 'purge'",
    )
    .bind(now_ms())
    .bind(&app_id)
    .execute(&mut *tx)
    .await?;
    let snapshot = st.data_key.seal(json!({"orgName": c.org_name, "appName": name, "objects": []}).to_string().as_bytes());
    let (task, _) = tasks::enqueue(
        &mut tx,
        tasks::NewTask {
            org_id: Some(c.org_id.clone()),
            org_name: Some(c.org_name.clone()),
            kind: "purge".into(),
            app_name: Some(name.clone()),
            params: json!({"snapshot": snapshot, "reason": "app-deleted"}),
            ..Default::default()
        },
    )
    .await?;
    sqlx::query("DELETE FROM tasks WHERE app_id = $1").bind(&app_id).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM apps WHERE id = $1").bind(&app_id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(success(json!({"message": "app deleted", "taskName": task})))
}
