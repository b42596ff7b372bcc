//! Subscriptions (`/be/v1/subscriptions`): signed webhooks and Slack messages for task
//! events, with a generated secret shown once; and the public JSON schemas.

use super::extract::{project, success, JsonBody, ListQuery, ListSpec};
use crate::caller::Caller;
use crate::domain::subscriptions::{insert_subscription, validate_subscription, SubscriptionIn};
use crate::error::{ApiError, ApiResult};
use crate::perms::{Resource, C, D, R};
use crate::state::AppState;
use crate::store::events::{EVENTS, TYPES};
use crate::store::subscriptions::{self, Subscription};
use crate::util::rfc3339;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/subscriptions", get(list_subscriptions).post(post_subscription))
        .route("/be/v1/subscriptions/{name}", get(get_subscription).delete(delete_subscription))
        .route("/be/v1/schemas/webhook-request-body", get(webhook_schema))
        .route("/be/v1/schemas/import-url", get(import_url_schema))
}

fn sub_json(r: &Subscription) -> Value {
    let filter: Value = serde_json::from_str(&r.filter).unwrap_or(json!({}));
    let mut v = json!({
        "name": r.name, "type": r.kind, "filter": filter, "enabled": r.enabled == 1,
        "created": rfc3339(r.created), "updated": rfc3339(r.updated),
        "stats": {"delivered": r.delivered, "failed": r.failed, "lastDelivery": r.last_delivery.map(rfc3339),
                  "lastStatus": r.last_status, "lastError": r.last_error},
    });
    if let Some(u) = &r.url {
        v["url"] = json!(u);
    }
    if let Some(ch) = &r.slack_channel {
        v["slackChannel"] = json!(ch);
    }
    v
}

async fn post_subscription(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<SubscriptionIn>) -> ApiResult<Json<Value>> {
    let v = validate_subscription(&st, b).await?;
    c.require(Resource::Subscriptions, C)?;
    let mut tx = st.db.tx().await?;
    let (id, secret) = insert_subscription(&st, &mut tx, &c.org_id, &v).await?;
    let r = subscriptions::by_id(&mut tx, &id).await?.ok_or_else(|| ApiError::internal("subscription vanished"))?;
    tx.commit().await?;
    Ok(success(json!({"subscription": sub_json(&r), "secret": secret})))
}

const SUB_LIST: ListSpec = ListSpec { filters: &[], order_fields: &["name", "created"], default_order: ("name", false), unique: "name" };

async fn list_subscriptions(c: Caller, State(st): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(raw.as_deref(), &SUB_LIST)?;
    c.require(Resource::Subscriptions, R)?;
    let rows = subscriptions::list(&mut *st.db.conn().await?, &c.org_id).await?;
    q.page(rows.iter().map(sub_json).collect(), "subscriptions")
}

async fn get_subscription(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    c.require(Resource::Subscriptions, R)?;
    let r = subscriptions::by_name(&mut *st.db.conn().await?, &c.org_id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("subscription", &name))?;
    Ok(success(json!({"subscription": project(sub_json(&r), raw.as_deref())?})))
}

async fn delete_subscription(c: Caller, State(st): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    c.require(Resource::Subscriptions, D)?;
    let mut tx = st.db.tx().await?;
    let r = subscriptions::by_name(&mut tx, &c.org_id, &name).await?.ok_or_else(|| ApiError::not_found("subscription", &name))?;
    // Unsubscribe: queued deliveries go with it.
    subscriptions::delete(&mut tx, &r.id).await?;
    tx.commit().await?;
    Ok(success(json!({"message": "unsubscribed"})))
}

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
