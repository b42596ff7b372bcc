//! Apps (`/be/v1/apps`, resource `apps`): registration and settings. The build pipeline
//! fields (`builds`, `patches`, `processing`, …) are filled by the delivery pipeline.

use super::extract::{project, success, JsonBody, ListQuery, ListSpec};
use crate::caller::Caller;
use crate::db::{i, opt_i, opt_s, s};
use crate::domain::apps::{check_deployments, check_max_builds, insert_app, known_deployments, update_app, AppIn};
use crate::error::{ApiError, ApiResult};
use crate::names::{text, Name};
use crate::perms::{Resource, C, D, R, U};
use crate::state::AppState;
use crate::util::{now_ms, rfc3339};
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
        .route("/be/v1/apps/{name}/client-key", axum::routing::post(rotate_client_key))
}

const SELECT: &str = "SELECT a.id, a.name, a.label, a.max_builds, a.deployments, a.client_key_sealed, a.i_cur_build, a.dxf_name, \
    a.build_name, a.error, a.error_task, a.created, a.updated, \
    (SELECT COUNT(*) FROM tasks t WHERE t.app_id = a.id AND t.status IN ('submitted', 'running') AND t.type <> 'purge' \
     AND (t.queue_pos IS NOT NULL OR (t.step = 1 AND t.run_after < 9000000000000000000))) AS active, \
    (SELECT COUNT(*) FROM tasks t WHERE t.app_id = a.id AND t.status = 'running' AND t.type = 'deploy') AS exporting \
    FROM apps a";

/// The app object with its builds and patches.
async fn app_full(st: &AppState, c: &mut crate::store::Conn, r: &AnyRow, show_key: bool) -> ApiResult<Value> {
    let id = s(r, "id");
    let mut v = app_json(st, r, show_key);
    let builds = sqlx::query("SELECT build_id, build_name, dxf_name, image_bytes, created FROM builds WHERE app_id = $1 AND status IN ('current', 'retained') ORDER BY build_id")
        .bind(&id)
        .fetch_all(&mut *c)
        .await?;
    let patches = sqlx::query("SELECT from_build, to_build, size_bytes FROM patches WHERE app_id = $1 ORDER BY from_build")
        .bind(&id)
        .fetch_all(&mut *c)
        .await?;
    let size: i64 = builds.iter().map(|b| i(b, "image_bytes")).sum::<i64>() + patches.iter().map(|p| i(p, "size_bytes")).sum::<i64>();
    v["builds"] = Value::Array(
        builds
            .iter()
            .map(|b| json!({"buildId": i(b, "build_id"), "buildName": s(b, "build_name"), "dxfName": opt_s(b, "dxf_name"), "sizeBytes": i(b, "image_bytes"), "created": rfc3339(i(b, "created"))}))
            .collect(),
    );
    v["patches"] = Value::Array(
        patches
            .iter()
            .map(|p| json!({"fromBuildId": i(p, "from_build"), "toBuildId": i(p, "to_build"), "sizeBytes": i(p, "size_bytes")}))
            .collect(),
    );
    v["sizeBytes"] = json!(size);
    Ok(v)
}

fn app_json(st: &AppState, r: &AnyRow, show_key: bool) -> Value {
    let deployments: Value = serde_json::from_str(&s(r, "deployments")).unwrap_or(json!([]));
    let mut v = json!({
        "name": s(r, "name"), "label": s(r, "label"), "maxBuilds": i(r, "max_builds"), "deployments": deployments,
        "iCurBuild": opt_i(r, "i_cur_build"), "dxfName": opt_s(r, "dxf_name"), "buildName": opt_s(r, "build_name"),
        "builds": [], "patches": [], "processing": i(r, "active") > 0, "exporting": i(r, "exporting") > 0,
        "error": i(r, "error") == 1, "errorTask": opt_s(r, "error_task"), "sizeBytes": 0,
        "created": rfc3339(i(r, "created")), "updated": rfc3339(i(r, "updated")),
    });
    if show_key {
        let key = opt_s(r, "client_key_sealed").and_then(|k| st.data_key.open(&k)).and_then(|b| String::from_utf8(b).ok());
        v["clientKey"] = json!(key);
    }
    v
}

async fn post_app(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<AppIn>) -> ApiResult<Json<Value>> {
    let name = Name::parse("name", &b.name)?;
    let label = text("label", &b.label, 1, 200)?;
    check_max_builds(b.max_builds)?;
    check_deployments(&b.deployments)?;
    c.require(Resource::Apps, C)?;
    let mut tx = st.db.tx().await?;
    known_deployments(&mut tx, &c.org_id, &b.deployments).await?;
    let id =
        insert_app(&st, &mut tx, &c.org_id, name.as_str(), &label, b.max_builds.unwrap_or(5), &b.deployments.unwrap_or_default()).await?;
    let r = sqlx::query(&format!("{SELECT} WHERE a.id = $1")).bind(&id).fetch_one(&mut *tx).await?;
    let v = app_full(&st, &mut tx, &r, c.perms.has(Resource::Keys, R)).await?;
    tx.commit().await?;
    Ok(success(json!({"app": v})))
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
    let show_key = c.perms.has(Resource::Keys, R);
    // Launchers and CI poll this list; between writes it is served from memory.
    let epoch = crate::db::WRITE_EPOCH.load(std::sync::atomic::Ordering::SeqCst);
    let cache_key = format!("apps:{}:{show_key}", c.org_id);
    let all: Vec<Value> = match st.read_cache_get(&cache_key, epoch) {
        Some(Value::Array(v)) => v,
        _ => {
            let mut conn = st.db.conn().await?;
            let rows = sqlx::query(&format!("{SELECT} WHERE a.org_id = $1")).bind(&c.org_id).fetch_all(&mut *conn).await?;
            let mut all = Vec::new();
            for r in &rows {
                let mut v = app_full(&st, &mut conn, r, show_key).await?;
                v["_error"] = json!(i(r, "error") == 1);
                all.push(v);
            }
            st.read_cache_put(cache_key, &Value::Array(all.clone()), epoch);
            all
        }
    };
    let needle = q.filters.get("name").map(|s| s.to_lowercase());
    let items: Vec<Value> = all
        .into_iter()
        .filter(|v| needle.as_ref().is_none_or(|n| v["name"].as_str().unwrap_or("").to_lowercase().contains(n)))
        .filter(|v| error.is_none_or(|e| v["_error"] == e))
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("_error");
            }
            v
        })
        .collect();
    q.page(items, "apps")
}

async fn get_app(c: Caller, State(st): State<Arc<AppState>>, Path(name): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    c.require(Resource::Apps, R)?;
    let mut conn = st.db.conn().await?;
    let r = sqlx::query(&format!("{SELECT} WHERE a.org_id = $1 AND a.name = $2"))
        .bind(&c.org_id)
        .bind(&name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| ApiError::not_found("app", &name))?;
    let v = app_full(&st, &mut conn, &r, c.perms.has(Resource::Keys, R)).await?;
    Ok(success(json!({"app": project(v, raw.as_deref())?})))
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
    known_deployments(&mut tx, &c.org_id, &b.deployments).await?;
    if !update_app(&mut tx, &c.org_id, &b.name, label.as_deref(), b.max_builds, b.deployments.as_deref()).await? {
        return Err(ApiError::not_found("app", &b.name));
    }
    let r = sqlx::query(&format!("{SELECT} WHERE a.org_id = $1 AND a.name = $2")).bind(&c.org_id).bind(&b.name).fetch_one(&mut *tx).await?;
    let v = app_full(&st, &mut tx, &r, c.perms.has(Resource::Keys, R)).await?;
    tx.commit().await?;
    Ok(success(json!({"app": v})))
}

async fn delete_app(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let force = super::extract::flag_query(raw.as_deref(), "force")?;
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
    let task = crate::domain::purge::enqueue_for_app(&st, &mut tx, &c.org_id, &c.org_name, &app_id, &name).await?;
    sqlx::query("DELETE FROM tasks WHERE app_id = $1").bind(&app_id).execute(&mut *tx).await?;
    for table in ["builds", "patches", "uploads", "rte_sessions", "traces", "trainings"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE app_id = $1")).bind(&app_id).execute(&mut *tx).await?;
    }
    sqlx::query("DELETE FROM apps WHERE id = $1").bind(&app_id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(success(json!({"message": "app deleted", "taskName": task})))
}

/// A new client key for the app; the old one stops working at once (sessions it opened
/// keep their own tokens until they expire).
async fn rotate_client_key(c: Caller, State(st): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    c.require(Resource::Keys, U)?;
    let key = format!("ck_{}", crate::util::random_token());
    let mut tx = st.db.tx().await?;
    let done = sqlx::query("UPDATE apps SET client_key_sealed = $1, updated = $2 WHERE org_id = $3 AND name = $4")
        .bind(st.data_key.seal(key.as_bytes()))
        .bind(now_ms())
        .bind(&c.org_id)
        .bind(&name)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("app", &name));
    }
    tx.commit().await?;
    tracing::info!(org = %c.org_name, app = %name, "client key rotated");
    Ok(success(json!({"clientKey": key})))
}
