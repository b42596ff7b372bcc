//! Trainings (`/be/v1/trainings`, resource `trainings`): one per app — how many traces it
//! has, how many arrived since the last sequence, when `mkseq` runs by itself, and the
//! preload figures of the current image.

use super::extract::{project, success, JsonBody, ListQuery, ListSpec};
use crate::caller::Caller;
use crate::db::{i, opt_i, opt_s, s};
use crate::domain::trainings::{ensure, DEFAULT_RELIABLE};
use crate::error::{ApiError, ApiResult};
use crate::perms::{Resource, R, U};
use crate::state::AppState;
use crate::util::rfc3339;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/be/v1/trainings", get(list_trainings).patch(patch_training)).route("/be/v1/trainings/{app}", get(get_training))
}

const SELECT: &str = "SELECT a.name AS app_name, t.n_traces_reliable, t.since_sequence, t.generation, t.preload, t.acceleration, \
    t.last_sequence, (SELECT COUNT(*) FROM traces x WHERE x.app_id = a.id) AS n_traces \
    FROM apps a LEFT JOIN trainings t ON t.app_id = a.id";

fn training_json(r: &sqlx::any::AnyRow) -> Value {
    let parse = |c: &str| opt_s(r, c).and_then(|v| serde_json::from_str::<Value>(&v).ok()).unwrap_or(Value::Null);
    json!({
        "appName": s(r, "app_name"), "nTraces": i(r, "n_traces"),
        "nTracesSinceSequence": opt_i(r, "since_sequence").unwrap_or(0),
        "nTracesReliable": opt_i(r, "n_traces_reliable").unwrap_or(DEFAULT_RELIABLE),
        "sequenceGeneration": opt_i(r, "generation").unwrap_or(0),
        "preload": parse("preload"), "lastSequence": opt_i(r, "last_sequence").map(rfc3339),
        "acceleration100": parse("acceleration"),
    })
}

const LIST: ListSpec =
    ListSpec { filters: &["appName"], order_fields: &["appName", "nTraces"], default_order: ("appName", false), unique: "appName" };

async fn list_trainings(c: Caller, State(st): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(raw.as_deref(), &LIST)?;
    c.require(Resource::Trainings, R)?;
    let rows = sqlx::query(&format!("{SELECT} WHERE a.org_id = $1")).bind(&c.org_id).fetch_all(st.db.pool()).await?;
    let needle = q.filters.get("appName").map(|s| s.to_lowercase());
    let items = rows
        .iter()
        .map(training_json)
        .filter(|v| needle.as_ref().is_none_or(|n| v["appName"].as_str().unwrap_or("").to_lowercase().contains(n)))
        .collect();
    q.page(items, "trainings")
}

async fn get_training(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(app): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    c.require(Resource::Trainings, R)?;
    let r = sqlx::query(&format!("{SELECT} WHERE a.org_id = $1 AND a.name = $2"))
        .bind(&c.org_id)
        .bind(&app)
        .fetch_optional(st.db.pool())
        .await?
        .ok_or_else(|| ApiError::not_found("app", &app))?;
    Ok(success(json!({"training": project(training_json(&r), raw.as_deref())?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TrainingPatch {
    app_name: String,
    n_traces_reliable: i64,
}

async fn patch_training(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<TrainingPatch>) -> ApiResult<Json<Value>> {
    if !(1..=100_000).contains(&b.n_traces_reliable) {
        return Err(ApiError::invalid("nTracesReliable", "nTracesReliable must be 1..100000"));
    }
    c.require(Resource::Trainings, U)?;
    let mut tx = st.db.tx().await?;
    let app = sqlx::query("SELECT id FROM apps WHERE org_id = $1 AND name = $2")
        .bind(&c.org_id)
        .bind(&b.app_name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found("app", &b.app_name))?;
    let app_id = s(&app, "id");
    ensure(&mut tx, &c.org_id, &app_id).await?;
    sqlx::query("UPDATE trainings SET n_traces_reliable = $1 WHERE app_id = $2")
        .bind(b.n_traces_reliable)
        .bind(&app_id)
        .execute(&mut *tx)
        .await?;
    let r = sqlx::query(&format!("{SELECT} WHERE a.id = $1")).bind(&app_id).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(success(json!({"training": training_json(&r)})))
}
