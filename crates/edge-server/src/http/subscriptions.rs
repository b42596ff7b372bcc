//! Subscriptions (`/be/v1/subscriptions`): signed webhooks and Slack messages for task
//! events, with a generated secret shown once; and the public JSON schemas.

use super::extract::{JsonBody, ListQuery, ListSpec};
use super::reply::{page, projected, FieldsParam, ListParams, Message, Reply, Success};
use crate::caller::Caller;
use crate::domain::subscriptions::{
    self as subscriptions_domain, FilterIn, SubscriptionIn, SubscriptionKind,
};
use crate::error::{ApiError, ApiResult};
use crate::perms::{Resource, R};
use crate::state::AppState;
use crate::store::events::{EVENTS, TYPES};
use crate::store::subscriptions::{self, Subscription};
use crate::util::rfc3339;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa::ToSchema;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/subscriptions", get(list_subscriptions).post(post_subscription))
        .route("/be/v1/subscriptions/{name}", get(get_subscription).delete(delete_subscription))
        .route("/be/v1/schemas/webhook-request-body", get(webhook_schema))
        .route("/be/v1/schemas/import-url", get(import_url_schema))
}

/// A subscription: where task events go, which ones, and how delivering them went.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    /// Unique in the organization.
    name: String,
    /// `webhook` (signed HTTP POSTs) or `slack` (messages to a channel).
    #[serde(rename = "type")]
    #[schema(value_type = SubscriptionKind)]
    kind: String,
    /// Which events are delivered (an empty list matches everything).
    #[schema(value_type = FilterIn)]
    filter: Value,
    /// False once its receiver refused deliveries for good: nothing more is delivered.
    enabled: bool,
    /// When it was created (RFC 3339).
    created: String,
    /// When it last changed (RFC 3339).
    updated: String,
    /// How delivering went.
    stats: SubscriptionStats,
    /// Where a webhook posts to (webhooks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    url: Option<String>,
    /// The Slack channel (Slack subscriptions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    slack_channel: Option<String>,
}

/// Delivery counts of a subscription.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionStats {
    /// Deliveries that reached the target.
    delivered: i64,
    /// Deliveries dropped (too old, retries exhausted, queue full or subscription disabled).
    failed: i64,
    /// When the last delivery (or failed attempt) was made (RFC 3339); null before any.
    last_delivery: Option<String>,
    /// `ok` or `failed`: how the last attempt ended; null before any.
    last_status: Option<String>,
    /// Why the last attempt failed; null after a success and before any failure.
    last_error: Option<String>,
}

impl SubscriptionView {
    fn of(r: &Subscription) -> SubscriptionView {
        SubscriptionView {
            name: r.name.clone(),
            kind: r.kind.clone(),
            // Stored as written by validation; an unreadable one shows as `{}`.
            filter: serde_json::from_str(&r.filter).unwrap_or(json!({})),
            enabled: r.enabled == 1,
            created: rfc3339(r.created),
            updated: rfc3339(r.updated),
            stats: SubscriptionStats {
                delivered: r.delivered,
                failed: r.failed,
                last_delivery: r.last_delivery.map(rfc3339),
                last_status: r.last_status.clone(),
                last_error: r.last_error.clone(),
            },
            url: r.url.clone(),
            slack_channel: r.slack_channel.clone(),
        }
    }
}

/// One subscription.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionReply {
    /// Always `success`.
    status: Success,
    /// The subscription (projected to `fields[]` when given).
    #[schema(value_type = SubscriptionView)]
    subscription: Value,
}

/// A new subscription, with its signing secret.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionCreated {
    /// Always `success`.
    status: Success,
    /// The subscription.
    subscription: SubscriptionView,
    /// The secret webhook deliveries are signed with: shown this once, never again.
    secret: String,
}

page!(
    /// A page of subscriptions.
    SubscriptionPage,
    "subscriptions",
    SubscriptionView
);

/// Subscribe a webhook or Slack channel (secret shown once)
///
/// A webhook takes `url` (public addresses only, unless the instance allows private ones);
/// a Slack subscription takes `slackChannel` and `slackToken`. 409 `item-exists`: the name
/// is taken.
#[utoipa::path(post, path = "/be/v1/subscriptions", tag = "events", request_body = SubscriptionIn,
    responses((status = 200, description = "The new subscription and its secret", body = SubscriptionCreated)),
    extensions(("x-rockit-auth" = json!("subscriptions:C"))))]
async fn post_subscription(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<SubscriptionIn>,
) -> ApiResult<Reply<SubscriptionCreated>> {
    let (r, secret) = subscriptions_domain::create(&st, &c, b).await?;
    Ok(Reply(SubscriptionCreated {
        status: Success,
        subscription: SubscriptionView::of(&r),
        secret,
    }))
}

const SUB_LIST: ListSpec = ListSpec {
    filters: &[],
    order_fields: &["name", "created"],
    default_order: ("name", false),
    unique: "name",
};

/// List subscriptions
///
/// Order by `name` (default) or `created`.
#[utoipa::path(get, path = "/be/v1/subscriptions", tag = "events", params(ListParams),
    responses((status = 200, description = "A page of subscriptions", body = SubscriptionPage)),
    extensions(("x-rockit-auth" = json!("subscriptions:R"))))]
async fn list_subscriptions(
    c: Caller,
    State(st): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<SubscriptionPage>> {
    let q = ListQuery::parse(raw.as_deref(), &SUB_LIST)?;
    c.require(Resource::Subscriptions, R)?;
    let rows = subscriptions::list(&mut *st.db.conn().await?, &c.org_id).await?;
    q.page_of(rows.iter().map(SubscriptionView::of).collect())
}

/// One subscription with delivery stats
#[utoipa::path(get, path = "/be/v1/subscriptions/{name}", tag = "events",
    params(("name" = String, Path, description = "The subscription's name"), FieldsParam),
    responses((status = 200, description = "The subscription", body = SubscriptionReply)),
    extensions(("x-rockit-auth" = json!("subscriptions:R"))))]
async fn get_subscription(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<SubscriptionReply>> {
    c.require(Resource::Subscriptions, R)?;
    let r = subscriptions::by_name(&mut *st.db.conn().await?, &c.org_id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("subscription", &name))?;
    Ok(Reply(SubscriptionReply {
        status: Success,
        subscription: projected(&SubscriptionView::of(&r), raw.as_deref())?,
    }))
}

/// Unsubscribe (queued deliveries dropped)
///
/// Deliveries not yet made are dropped with it.
#[utoipa::path(delete, path = "/be/v1/subscriptions/{name}", tag = "events",
    params(("name" = String, Path, description = "The subscription's name")),
    responses((status = 200, description = "Unsubscribed", body = Message)),
    extensions(("x-rockit-auth" = json!("subscriptions:D"))))]
async fn delete_subscription(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Reply<Message>> {
    subscriptions_domain::delete(&st, &c, &name).await?;
    Ok(Message::new("unsubscribed"))
}

/// A JSON Schema (draft 2020-12) document, as `/be/v1/schemas/*` serve them.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // the answers are written as JSON; this only describes them
pub struct JsonSchemaDocument {
    /// The JSON Schema dialect: `https://json-schema.org/draft/2020-12/schema`.
    #[serde(rename = "$schema")]
    schema: String,
    /// The schema's identifier.
    #[serde(rename = "$id")]
    id: String,
    /// Its name.
    title: String,
    /// The JSON type described (`object` for the webhook body).
    #[serde(rename = "type")]
    #[schema(required = false)]
    kind: String,
    /// Members every instance has.
    #[schema(required = false)]
    required: Vec<String>,
    /// False: no members beyond `properties`.
    #[serde(rename = "additionalProperties")]
    #[schema(required = false)]
    additional_properties: bool,
    /// The schema of each member, by name.
    #[schema(required = false, value_type = Object)]
    properties: Value,
    /// The alternatives an instance matches one of (the import URL: a string or an object).
    #[serde(rename = "oneOf")]
    #[schema(required = false, value_type = Vec<Object>)]
    one_of: Vec<Value>,
}

/// JSON Schema of the webhook body
///
/// What a webhook subscription receives: one task event per POST, signed with the
/// subscription's secret.
#[utoipa::path(get, path = "/be/v1/schemas/webhook-request-body", tag = "events",
    responses((status = 200, description = "The JSON Schema of a webhook request body", body = JsonSchemaDocument)),
    extensions(("x-rockit-auth" = json!("none"))))]
async fn webhook_schema() -> Json<Value> {
    let nullable_str = json!({"type": ["string", "null"]});
    Json(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://rockit-edge/schemas/webhook-request-body",
        "title": "Webhook Request Body",
        "type": "object",
        "required": ["type", "event", "orgName", "appName", "buildName", "buildId", "dxfName", "taskName", "taskGroup", "deliveryId", "timestamp", "exception", "deployment"],
        "additionalProperties": false,
        "properties": {
            "type": {"enum": TYPES}, "event": {"enum": EVENTS}, "orgName": {"type": "string"},
            "appName": nullable_str, "buildName": nullable_str, "buildId": {"type": ["integer", "null"]}, "dxfName": nullable_str,
            "taskName": {"type": "string"}, "taskGroup": {"type": "string"}, "deliveryId": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time"},
            "exception": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
                "httpDownloadFailed": {"type": "object", "properties": {"httpStatus": {"type": ["integer", "null"]}, "exitCode": {"type": "integer", "minimum": 1, "maximum": 9}, "url": nullable_str}},
                "sizeMismatch": {"type": "object", "properties": {"sizeBytesActual": {"type": "integer"}, "sizeBytesExpected": {"type": "integer"}}},
                "fileReadFailed": {"type": "object", "properties": {"filename": {"type": "string"}, "typeExpected": {"type": "string"}, "typeDetected": {"type": "string"}}},
                "error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
                "deployment": {"type": "object", "properties": {"name": {"type": "string"}}}}}]},
            "deployment": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}]},
        },
    }))
}

/// JSON Schema of the import URL
///
/// The `url` of a build import (`POST /be/v1/builds`): a plain `http(s)` URL, or an object
/// with the URL, headers to send and the archive's SHA-256.
#[utoipa::path(get, path = "/be/v1/schemas/import-url", tag = "builds",
    responses((status = 200, description = "The JSON Schema of an import URL", body = JsonSchemaDocument)),
    extensions(("x-rockit-auth" = json!("none"))))]
async fn import_url_schema() -> Json<Value> {
    Json(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://rockit-edge/schemas/import-url",
        "title": "Import UrlSchema",
        "oneOf": [
            {"type": "string", "format": "uri", "pattern": "^https?://"},
            {"type": "object", "required": ["href"], "additionalProperties": false, "properties": {
                "href": {"type": "string", "format": "uri", "pattern": "^https?://"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"},
                            "propertyNames": {"not": {"enum": ["Host", "Content-Length", "Transfer-Encoding", "Connection", "host", "content-length", "transfer-encoding", "connection"]}}},
                "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}}},
        ],
    }))
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_subscriptions,
    post_subscription,
    get_subscription,
    delete_subscription,
    webhook_schema,
    import_url_schema
))]
pub struct Api;
