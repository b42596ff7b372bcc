//! Trainings (`/be/v1/trainings`, resource `trainings`): one per app — how many traces it
//! has, how many arrived since the last sequence, when `mkseq` runs by itself, and the
//! preload figures of the current image.

use super::extract::{project, success, JsonBody, ListQuery, ListSpec};
use crate::caller::Caller;
use crate::domain::trainings::{ensure, DEFAULT_RELIABLE};
use crate::error::{ApiError, ApiResult};
use crate::perms::{Resource, R, U};
use crate::state::AppState;
use crate::store::apps;
use crate::store::trainings::{self, TrainingView};
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

fn training_json(r: &TrainingView) -> Value {
    let parse = |v: &Option<String>| v.as_deref().and_then(|v| serde_json::from_str::<Value>(v).ok()).unwrap_or(Value::Null);
    json!({
        "appName": r.app_name, "nTraces": r.n_traces,
        "nTracesSinceSequence": r.since_sequence.unwrap_or(0),
        "nTracesReliable": r.n_traces_reliable.unwrap_or(DEFAULT_RELIABLE),
        "sequenceGeneration": r.generation.unwrap_or(0),
        "preload": parse(&r.preload), "lastSequence": r.last_sequence.map(rfc3339),
        "acceleration100": parse(&r.acceleration),
    })
}

const LIST: ListSpec =
    ListSpec { filters: &["appName"], order_fields: &["appName", "nTraces"], default_order: ("appName", false), unique: "appName" };

async fn list_trainings(c: Caller, State(st): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(raw.as_deref(), &LIST)?;
    c.require(Resource::Trainings, R)?;
    let rows = trainings::views(&mut *st.db.conn().await?, &c.org_id).await?;
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
    let r = trainings::view_by_name(&mut *st.db.conn().await?, &c.org_id, &app).await?.ok_or_else(|| ApiError::not_found("app", &app))?;
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
    let app_id = apps::id_of(&mut tx, &c.org_id, &b.app_name).await?.ok_or_else(|| ApiError::not_found("app", &b.app_name))?;
    ensure(&mut tx, &c.org_id, &app_id).await?;
    trainings::set_reliable(&mut tx, &app_id, b.n_traces_reliable).await?;
    let r = trainings::view_by_id(&mut tx, &app_id).await?.ok_or_else(|| ApiError::internal("app vanished"))?;
    tx.commit().await?;
    Ok(success(json!({"training": training_json(&r)})))
}
