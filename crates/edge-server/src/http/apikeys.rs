//! API keys (`/be/v1/apikeys`): created for oneself, or for another member with `beUsers`
//! Update and no escalation; listed; revoked at once.

use super::extract::{JsonBody, ListQuery, ListSpec};
use super::reply::{page, ListParams, Message, Reply, Success};
use crate::caller::Caller;
use crate::domain::apikeys as key_rules;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::store::apikeys::ApiKey;
use crate::util::rfc3339;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{delete, get};
use axum::Router;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/apikeys", get(list_keys).post(post_key).delete(delete_own_key))
        .route("/be/v1/apikeys/{key_id}", delete(delete_key))
}

/// An API key, without its secret (shown only when it is created).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    /// Its id: the middle part of `rk_<keyId>_<secret>`, 16 hex digits.
    key_id: String,
    /// The user the key stands for.
    username: String,
    /// The organization the key works in.
    org_name: String,
    /// Free text; `null` when not set.
    label: Option<String>,
    /// When it was created (RFC 3339).
    created: String,
    /// When it stops working (RFC 3339); `null`: never.
    expires: Option<String>,
    /// When it was last used (RFC 3339, to the minute); `null`: never.
    last_used: Option<String>,
}

impl ApiKeyView {
    fn of(k: &ApiKey, org_name: &str) -> ApiKeyView {
        ApiKeyView {
            key_id: k.key_id.clone(),
            username: k.username.clone(),
            org_name: org_name.to_string(),
            label: k.label.clone(),
            created: rfc3339(k.created),
            expires: k.expires.map(rfc3339),
            last_used: k.last_used.map(rfc3339),
        }
    }
}

/// The Create API Key body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KeyIn {
    /// The member the key is for; default the caller. Another member needs `beUsers`
    /// Update and must hold no permission the caller lacks.
    username: Option<String>,
    /// Free text, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    label: Option<String>,
    /// Seconds until the key stops working, 1 to 315360000 (ten years); default never.
    #[schema(minimum = 1, maximum = 315360000)]
    expires_in: Option<u64>,
}

/// A new API key.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyCreated {
    /// Always `success`.
    status: Success,
    /// The key itself, `rk_<keyId>_<secret>`: shown this once, never again. Send it as
    /// `Authorization: Bearer …`.
    api_key: String,
    /// The key's record.
    key: ApiKeyView,
}

/// Create an API key (shown once)
///
/// For the caller, or with `username` for another member of the organization (which needs
/// `beUsers` Update, and the member must hold no permission the caller lacks and, for a
/// person, belong to no other organization: else 403). Unknown member: 404.
#[utoipa::path(post, path = "/be/v1/apikeys", tag = "auth", request_body = KeyIn,
    responses((status = 200, description = "The new key, with its secret", body = ApiKeyCreated)),
    extensions(("x-rockit-auth" = json!("own, or beUsers:U"))))]
async fn post_key(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<KeyIn>,
) -> ApiResult<Reply<ApiKeyCreated>> {
    let (api_key, k) =
        key_rules::create(&st.db, &c, b.username.as_deref(), b.label.as_deref(), b.expires_in)
            .await?;
    Ok(Reply(ApiKeyCreated { status: Success, api_key, key: ApiKeyView::of(&k, &c.org_name) }))
}

const KEY_LIST: ListSpec = ListSpec {
    filters: &["username"],
    order_fields: &["keyId", "created", "username", "label"],
    default_order: ("created", false),
    unique: "keyId",
};

page!(
    /// A page of API keys.
    ApiKeyPage,
    "keys",
    ApiKeyView
);

/// List API keys
///
/// Without `username`: every key of the organization for a caller with `beUsers` Read,
/// else the caller's own. `username` (exact) lists one member's keys: another member's
/// needs `beUsers` Read (403), an unknown one is 404. Order by `keyId`, `created`
/// (default), `username` or `label`.
#[utoipa::path(get, path = "/be/v1/apikeys", tag = "auth",
    params(ListParams, ("username" = Option<String>, Query, description = "Only the keys of this member (exact username)")),
    responses((status = 200, description = "A page of API keys", body = ApiKeyPage)),
    extensions(("x-rockit-auth" = json!("own, or beUsers:R"))))]
async fn list_keys(
    c: Caller,
    State(st): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<ApiKeyPage>> {
    let q = ListQuery::parse(raw.as_deref(), &KEY_LIST)?;
    let username = q.filters.get("username").map(String::as_str);
    let items = key_rules::list(&st.db, &c, username)
        .await?
        .iter()
        .map(|k| ApiKeyView::of(k, &c.org_name))
        .collect();
    q.page_of(items)
}

/// Revoke an API key
///
/// The caller's own key, or another member's with `beUsers` Update (under the same rules
/// as creating one: else 403). A key not of this organization: 404.
#[utoipa::path(delete, path = "/be/v1/apikeys/{key_id}", tag = "auth",
    params(("key_id" = String, Path, description = "The key's `keyId`")),
    responses((status = 200, description = "Revoked", body = Message)),
    extensions(("x-rockit-auth" = json!("own, or beUsers:U"))))]
async fn delete_key(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(key_id): Path<String>,
) -> ApiResult<Reply<Message>> {
    key_rules::revoke(&st.db, &c, &key_id).await?;
    Ok(Message::new("API key revoked"))
}

/// Revoke the key this request used
///
/// For a request authenticated with an API key, which stops working at once; any other
/// credential: 400.
#[utoipa::path(delete, path = "/be/v1/apikeys", tag = "auth",
    responses((status = 200, description = "Revoked", body = Message)),
    extensions(("x-rockit-auth" = json!("API key"))))]
async fn delete_own_key(c: Caller, State(st): State<Arc<AppState>>) -> ApiResult<Reply<Message>> {
    key_rules::revoke_own(&st.db, &c).await?;
    Ok(Message::new("API key revoked"))
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_keys, post_key, delete_own_key, delete_key))]
pub struct Api;
