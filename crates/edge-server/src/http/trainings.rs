//! Trainings (`/be/v1/trainings`, resource `trainings`): one per app — how many traces it
//! has, how many arrived since the last sequence, when `mkseq` runs by itself, and the
//! preload figures of the current image.

use super::extract::{JsonBody, ListQuery, ListSpec};
use super::reply::{page, projected, FieldsParam, ListParams, Reply, Success};
use crate::caller::Caller;
use crate::domain::trainings::DEFAULT_RELIABLE;
use crate::error::{ApiError, ApiResult};
use crate::perms::{Resource, R};
use crate::state::AppState;
use crate::store::apps;
use crate::store::trainings::{self, TrainingRow};
use crate::util::rfc3339;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/trainings", get(list_trainings).patch(patch_training))
        .route("/be/v1/trainings/{app}", get(get_training))
}

/// An app's training: its traces, when `mkseq` learns a new order from them by itself,
/// and the preload figures of the current image.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainingView {
    /// The app.
    app_name: String,
    /// Play traces kept for the app.
    n_traces: i64,
    /// Traces that arrived since the last sequence was learned.
    n_traces_since_sequence: i64,
    /// How many new traces make `mkseq` run by itself (default 12).
    n_traces_reliable: i64,
    /// The generation of the current sequence (0: none learned yet).
    sequence_generation: i64,
    /// Bytes a player must download before play starts (90th percentile of the traces),
    /// by bandwidth in Mbit/s (`"10"`, `"100"`, `"1000"`); null before the first
    /// sequence learned from traces.
    #[schema(value_type = Option<std::collections::HashMap<String, u64>>)]
    preload: Value,
    /// When the last sequence was learned (RFC 3339); null before the first.
    last_sequence: Option<String>,
    /// How many times sooner play starts at 100 Mbit/s than after a full download; null
    /// without preload figures.
    #[schema(value_type = Option<f64>)]
    acceleration100: Value,
}

impl TrainingView {
    fn of(r: &TrainingRow) -> TrainingView {
        // Stored as JSON text; text that does not parse reads as null, as it always has.
        let parse = |v: &Option<String>| {
            v.as_deref().and_then(|v| serde_json::from_str::<Value>(v).ok()).unwrap_or(Value::Null)
        };
        TrainingView {
            app_name: r.app_name.clone(),
            n_traces: r.n_traces,
            n_traces_since_sequence: r.since_sequence.unwrap_or(0),
            n_traces_reliable: r.n_traces_reliable.unwrap_or(DEFAULT_RELIABLE),
            sequence_generation: r.generation.unwrap_or(0),
            preload: parse(&r.preload),
            last_sequence: r.last_sequence.map(rfc3339),
            acceleration100: parse(&r.acceleration),
        }
    }
}

/// One app's training.
#[derive(Serialize, ToSchema)]
pub struct TrainingReply {
    /// Always `success`.
    status: Success,
    /// The training (projected to `fields[]` when given).
    #[schema(value_type = TrainingView)]
    training: Value,
}

impl TrainingReply {
    fn new(training: Value) -> Reply<TrainingReply> {
        Reply(TrainingReply { status: Success, training })
    }
}

page!(
    /// A page of trainings.
    TrainingPage,
    "trainings",
    TrainingView
);

const LIST: ListSpec = ListSpec {
    filters: &["appName"],
    order_fields: &["appName", "nTraces"],
    default_order: ("appName", false),
    unique: "appName",
};

/// List trainings (one per app)
///
/// Order by `appName` or `nTraces`.
#[utoipa::path(get, path = "/be/v1/trainings", tag = "trainings",
    params(ListParams, ("appName" = Option<String>, Query, description = "Only the apps whose name contains this (any case)")),
    responses((status = 200, description = "A page of trainings", body = TrainingPage)),
    extensions(("x-rockit-auth" = json!("trainings:R"))))]
async fn list_trainings(
    c: Caller,
    State(st): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<TrainingPage>> {
    let q = ListQuery::parse(raw.as_deref(), &LIST)?;
    c.require(Resource::Trainings, R)?;
    let rows = trainings::views(&mut *st.db.conn().await?, &c.org_id).await?;
    let needle = q.filters.get("appName").map(|s| s.to_lowercase());
    let items = rows
        .iter()
        .filter(|r| needle.as_ref().is_none_or(|n| r.app_name.to_lowercase().contains(n)))
        .map(TrainingView::of)
        .collect();
    q.page_of(items)
}

/// One app's training
#[utoipa::path(get, path = "/be/v1/trainings/{app}", tag = "trainings",
    params(("app" = String, Path, description = "The app's name"), FieldsParam),
    responses((status = 200, description = "The training", body = TrainingReply)),
    extensions(("x-rockit-auth" = json!("trainings:R"))))]
async fn get_training(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(app): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<TrainingReply>> {
    c.require(Resource::Trainings, R)?;
    let r = trainings::view_by_name(&mut *st.db.conn().await?, &c.org_id, &app)
        .await?
        .ok_or_else(|| ApiError::not_found("app", &app))?;
    Ok(TrainingReply::new(projected(&TrainingView::of(&r), raw.as_deref())?))
}

/// The Set Reliable body: the app, and its new threshold.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TrainingPatch {
    /// The app whose training changes.
    app_name: String,
    /// How many new traces make `mkseq` run by itself, 1 to 100000.
    #[schema(minimum = 1, maximum = 100_000)]
    n_traces_reliable: i64,
}

/// Set nTracesReliable of an app's training
#[utoipa::path(patch, path = "/be/v1/trainings", tag = "trainings", request_body = TrainingPatch,
    responses((status = 200, description = "The training as changed", body = TrainingReply)),
    extensions(("x-rockit-auth" = json!("trainings:U"))))]
async fn patch_training(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<TrainingPatch>,
) -> ApiResult<Reply<TrainingReply>> {
    crate::domain::trainings::set_reliable(&st, &c, &b.app_name, b.n_traces_reliable).await?;
    let mut conn = st.db.conn().await?;
    let app_id = apps::id_of(&mut conn, &c.org_id, &b.app_name)
        .await?
        .ok_or_else(|| ApiError::not_found("app", &b.app_name))?;
    let r = trainings::view_by_id(&mut conn, &app_id)
        .await?
        .ok_or_else(|| ApiError::internal("app vanished"))?;
    Ok(TrainingReply::new(projected(&TrainingView::of(&r), None)?))
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_trainings, get_training, patch_training))]
pub struct Api;
