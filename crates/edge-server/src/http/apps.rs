//! Apps (`/be/v1/apps`, resource `apps`): registration and settings. The build pipeline
//! fields (`builds`, `patches`, `processing`, …) are filled by the delivery pipeline.

use super::extract::{project, success, JsonBody, ListQuery, ListSpec};
use crate::caller::Caller;
use crate::domain::apps::{check_deployments, check_max_builds, insert_app, known_deployments, update_app, AppIn};
use crate::error::{ApiError, ApiResult};
use crate::names::{text, Name};
use crate::perms::{Resource, C, D, R, U};
use crate::state::AppState;
use crate::store::apps::{self, AppRow};
use crate::util::rfc3339;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/apps", get(list_apps).post(post_app).patch(patch_app))
        .route("/be/v1/apps/{name}", get(get_app).delete(delete_app))
        .route("/be/v1/apps/{name}/client-key", axum::routing::post(rotate_client_key))
}

/// The app object with its builds and patches.
async fn app_full(st: &AppState, c: &mut crate::store::Conn, r: &AppRow, show_key: bool) -> ApiResult<Value> {
    let mut v = app_json(st, r, show_key);
    let builds = apps::kept_builds(&mut *c, &r.id).await?;
    let patches = apps::kept_patches(&mut *c, &r.id).await?;
    let size: i64 = builds.iter().map(|b| b.image_bytes).sum::<i64>() + patches.iter().map(|p| p.size_bytes).sum::<i64>();
    v["builds"] = Value::Array(
        builds
            .iter()
            .map(|b| json!({"buildId": b.build_id, "buildName": b.build_name, "dxfName": b.dxf_name, "sizeBytes": b.image_bytes, "created": rfc3339(b.created)}))
            .collect(),
    );
    v["patches"] = Value::Array(
        patches.iter().map(|p| json!({"fromBuildId": p.from_build, "toBuildId": p.to_build, "sizeBytes": p.size_bytes})).collect(),
    );
    v["sizeBytes"] = json!(size);
    Ok(v)
}

fn app_json(st: &AppState, r: &AppRow, show_key: bool) -> Value {
    let deployments: Value = serde_json::from_str(&r.deployments).unwrap_or(json!([]));
    let mut v = json!({
        "name": r.name, "label": r.label, "maxBuilds": r.max_builds, "deployments": deployments,
        "iCurBuild": r.i_cur_build, "dxfName": r.dxf_name, "buildName": r.build_name,
        "builds": [], "patches": [], "processing": r.active > 0, "exporting": r.exporting > 0,
        "error": r.error == 1, "errorTask": r.error_task, "sizeBytes": 0,
        "created": rfc3339(r.created), "updated": rfc3339(r.updated),
    });
    if show_key {
        let key = r.client_key_sealed.as_deref().and_then(|k| st.data_key.open(k)).and_then(|b| String::from_utf8(b).ok());
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
    let r = apps::by_id(&mut tx, &id).await?.ok_or_else(|| ApiError::internal("app vanished"))?;
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
            let rows = apps::list(&mut conn, &c.org_id).await?;
            let mut all = Vec::new();
            for r in &rows {
                let mut v = app_full(&st, &mut conn, r, show_key).await?;
                v["_error"] = json!(r.error == 1);
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
    let r = apps::by_name(&mut conn, &c.org_id, &name).await?.ok_or_else(|| ApiError::not_found("app", &name))?;
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
    let r = apps::by_name(&mut tx, &c.org_id, &b.name).await?.ok_or_else(|| ApiError::not_found("app", &b.name))?;
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
    let r = apps::by_name(&mut tx, &c.org_id, &name).await?.ok_or_else(|| ApiError::not_found("app", &name))?;
    if r.active > 0 && !force {
        return Err(ApiError::conflict("invalid-state", "a pipeline is running for this app; use force=true to cancel it"));
    }
    apps::cancel_tasks(&mut tx, &r.id).await?;
    let task = crate::domain::purge::enqueue_for_app(&st, &mut tx, &c.org_id, &c.org_name, &r.id, &name).await?;
    apps::delete(&mut tx, &r.id).await?;
    tx.commit().await?;
    Ok(success(json!({"message": "app deleted", "taskName": task})))
}

/// A new client key for the app; the old one stops working at once (sessions it opened
/// keep their own tokens until they expire).
async fn rotate_client_key(c: Caller, State(st): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    c.require(Resource::Keys, U)?;
    let key = format!("ck_{}", crate::util::random_token());
    let mut tx = st.db.tx().await?;
    if !apps::set_client_key(&mut tx, &c.org_id, &name, &st.data_key.seal(key.as_bytes())).await? {
        return Err(ApiError::not_found("app", &name));
    }
    tx.commit().await?;
    tracing::info!(org = %c.org_name, app = %name, "client key rotated");
    Ok(success(json!({"clientKey": key})))
}
