//! Subscriptions (`/be/v1/subscriptions`): signed webhooks and Slack messages for task
//! events, with a generated secret shown once; and the public JSON schemas.

use super::auth::Caller;
use super::extract::{project, success, JsonBody, ListQuery, ListSpec};
use crate::db::{i, opt_i, opt_s, s};
use crate::error::{ApiError, ApiResult};
use crate::names::Name;
use crate::perms::{Resource, C, D, R};
use crate::state::AppState;
use crate::store::events::{EVENTS, TYPES};
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
        .route("/be/v1/subscriptions", get(list_subscriptions).post(post_subscription))
        .route("/be/v1/subscriptions/{name}", get(get_subscription).delete(delete_subscription))
        .route("/be/v1/schemas/webhook-request-body", get(webhook_schema))
        .route("/be/v1/schemas/import-url", get(import_url_schema))
}

fn sub_json(r: &AnyRow) -> Value {
    let filter: Value = serde_json::from_str(&s(r, "filter")).unwrap_or(json!({}));
    let mut v = json!({
        "name": s(r, "name"), "type": s(r, "kind"), "filter": filter, "enabled": i(r, "enabled") == 1,
        "created": rfc3339(i(r, "created")), "updated": rfc3339(i(r, "updated")),
        "stats": {"delivered": i(r, "delivered"), "failed": i(r, "failed"), "lastDelivery": opt_i(r, "last_delivery").map(rfc3339),
                  "lastStatus": opt_s(r, "last_status"), "lastError": opt_s(r, "last_error")},
    });
    if let Some(u) = opt_s(r, "url") {
        v["url"] = json!(u);
    }
    if let Some(ch) = opt_s(r, "slack_channel") {
        v["slackChannel"] = json!(ch);
    }
    v
}

/// A subscription's filter.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilterIn {
    #[serde(default)]
    pub types: Vec<String>,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub apps: Vec<String>,
}

/// The Create Subscription body (also a subscription item of a configuration bundle).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SubscriptionIn {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub url: Option<String>,
    pub slack_channel: Option<String>,
    pub slack_token: Option<String>,
    pub filter: Option<FilterIn>,
}

/// A Create Subscription body that passed validation.
pub(crate) struct ValidSub {
    pub name: Name,
    pub kind: String,
    pub url: Option<String>,
    pub channel: Option<String>,
    pub token: Option<String>,
    /// The filter in its stored (and wire) form.
    pub filter: Value,
}

/// Refuses URLs whose host is (or resolves to) a private, loopback or link-local address,
/// unless the instance allows them.
async fn check_target(st: &AppState, url: &str) -> ApiResult<()> {
    edge_origin::net::check_url(url, st.cfg.allow_private_sources).map_err(|e| ApiError::invalid("url", e.to_string()))?;
    if st.cfg.allow_private_sources {
        return Ok(());
    }
    let u = reqwest::Url::parse(url).map_err(|_| ApiError::invalid("url", "not a valid URL"))?;
    let host = u.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_string();
    let port = u.port_or_known_default().unwrap_or(443);
    if host.parse::<std::net::IpAddr>().is_err() {
        // Names are checked again at every connection; this early check gives a clear 400.
        if let Ok(addrs) = tokio::net::lookup_host((host.as_str(), port)).await {
            if addrs.into_iter().any(|a| !edge_origin::net::is_public_ip(a.ip())) {
                return Err(ApiError::invalid("url", "the URL resolves to a private or loopback address"));
            }
        }
    }
    Ok(())
}

/// Checks every field of a Create Subscription body, the target URL included.
pub(crate) async fn validate_subscription(st: &AppState, b: SubscriptionIn) -> ApiResult<ValidSub> {
    let name = Name::parse("name", &b.name)?;
    let f = b.filter.unwrap_or(FilterIn { types: vec![], events: vec![], apps: vec![] });
    if let Some(t) = f.types.iter().find(|t| !TYPES.contains(&t.as_str())) {
        return Err(ApiError::invalid("filter.types", format!("unknown task type '{t}'")));
    }
    if let Some(e) = f.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err(ApiError::invalid("filter.events", format!("unknown event '{e}'")));
    }
    for a in &f.apps {
        Name::parse("filter.apps", a)?;
    }
    let (url, channel, token) = match b.kind.as_str() {
        "webhook" => {
            if b.slack_channel.is_some() || b.slack_token.is_some() {
                return Err(ApiError::invalid("slackChannel", "a webhook takes url, not slackChannel/slackToken"));
            }
            let url = b.url.ok_or_else(|| ApiError::invalid("url", "missing field 'url'"))?;
            if url.len() > 2048 {
                return Err(ApiError::invalid("url", "url is too long"));
            }
            check_target(st, &url).await?;
            (Some(url), None, None)
        }
        "slack" => {
            if b.url.is_some() {
                return Err(ApiError::invalid("url", "a slack subscription takes slackChannel and slackToken, not url"));
            }
            let ch = b
                .slack_channel
                .filter(|c| !c.is_empty() && c.len() <= 200)
                .ok_or_else(|| ApiError::invalid("slackChannel", "missing field 'slackChannel'"))?;
            let tok = b
                .slack_token
                .filter(|t| !t.is_empty() && t.len() <= 500)
                .ok_or_else(|| ApiError::invalid("slackToken", "missing field 'slackToken'"))?;
            (None, Some(ch), Some(tok))
        }
        _ => return Err(ApiError::invalid("type", "type must be webhook or slack")),
    };
    let filter = json!({"types": f.types, "events": f.events, "apps": f.apps});
    Ok(ValidSub { name, kind: b.kind, url, channel, token, filter })
}

/// Inserts a validated subscription with a fresh signing secret; returns (id, secret).
/// A taken name is 409 `item-exists`.
pub(crate) async fn insert_subscription(
    st: &AppState,
    c: &mut crate::store::Conn,
    org_id: &str,
    v: &ValidSub,
) -> ApiResult<(String, String)> {
    let secret = crate::util::b64url(&crate::util::random_bytes(32));
    let id = crate::util::new_id("sub");
    let taken = sqlx::query("SELECT 1 FROM subscriptions WHERE org_id = $1 AND name = $2")
        .bind(org_id)
        .bind(v.name.as_str())
        .fetch_optional(&mut *c)
        .await?;
    if taken.is_some() {
        return Err(ApiError::conflict("item-exists", format!("subscription '{}' exists", v.name)));
    }
    sqlx::query(
        "INSERT INTO subscriptions (id, org_id, name, kind, url, slack_channel, slack_token_sealed, secret_sealed, filter, enabled, created, updated) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(v.name.as_str())
    .bind(&v.kind)
    .bind(&v.url)
    .bind(&v.channel)
    .bind(v.token.as_ref().map(|t| st.data_key.seal(t.as_bytes())))
    .bind(st.data_key.seal(secret.as_bytes()))
    .bind(v.filter.to_string())
    .bind(now_ms())
    .execute(&mut *c)
    .await?;
    Ok((id, secret))
}

async fn post_subscription(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<SubscriptionIn>) -> ApiResult<Json<Value>> {
    let v = validate_subscription(&st, b).await?;
    c.require(Resource::Subscriptions, C)?;
    let mut tx = st.db.tx().await?;
    let (id, secret) = insert_subscription(&st, &mut tx, &c.org_id, &v).await?;
    let r = sqlx::query("SELECT * FROM subscriptions WHERE id = $1").bind(&id).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(success(json!({"subscription": sub_json(&r), "secret": secret})))
}

const SUB_LIST: ListSpec = ListSpec { filters: &[], order_fields: &["name", "created"], default_order: ("name", false), unique: "name" };

async fn list_subscriptions(c: Caller, State(st): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(raw.as_deref(), &SUB_LIST)?;
    c.require(Resource::Subscriptions, R)?;
    let rows = sqlx::query("SELECT * FROM subscriptions WHERE org_id = $1").bind(&c.org_id).fetch_all(st.db.pool()).await?;
    q.page(rows.iter().map(sub_json).collect(), "subscriptions")
}

async fn get_subscription(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    c.require(Resource::Subscriptions, R)?;
    let r = sqlx::query("SELECT * FROM subscriptions WHERE org_id = $1 AND name = $2")
        .bind(&c.org_id)
        .bind(&name)
        .fetch_optional(st.db.pool())
        .await?
        .ok_or_else(|| ApiError::not_found("subscription", &name))?;
    Ok(success(json!({"subscription": project(sub_json(&r), raw.as_deref())?})))
}

async fn delete_subscription(c: Caller, State(st): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    c.require(Resource::Subscriptions, D)?;
    let mut tx = st.db.tx().await?;
    let r = sqlx::query("SELECT id FROM subscriptions WHERE org_id = $1 AND name = $2")
        .bind(&c.org_id)
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found("subscription", &name))?;
    let id = s(&r, "id");
    // Unsubscribe: queued deliveries go with it.
    sqlx::query("DELETE FROM deliveries WHERE subscription_id = $1").bind(&id).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM subscriptions WHERE id = $1").bind(&id).execute(&mut *tx).await?;
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
