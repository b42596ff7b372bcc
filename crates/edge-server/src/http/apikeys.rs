//! API keys (`/be/v1/apikeys`): created for oneself, or for another member with `beUsers`
//! Update and no escalation; listed; revoked at once.

use super::extract::{success, JsonBody, ListQuery, ListSpec};
use crate::caller::Caller;
use crate::domain::users::{guard_target, TargetChange};
use crate::error::{ApiError, ApiResult};
use crate::names::text;
use crate::perms::{Resource, R, U};
use crate::state::AppState;
use crate::store::{apikeys, users};
use crate::util::now_ms;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/apikeys", get(list_keys).post(post_key).delete(delete_own_key))
        .route("/be/v1/apikeys/{key_id}", delete(delete_key))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KeyIn {
    username: Option<String>,
    label: Option<String>,
    expires_in: Option<u64>,
}

async fn post_key(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<KeyIn>) -> ApiResult<Json<Value>> {
    let label = b.label.as_deref().map(|l| text("label", l, 1, 200)).transpose()?;
    if b.expires_in == Some(0) || b.expires_in.is_some_and(|e| e > 10 * 365 * 86_400) {
        return Err(ApiError::invalid("expiresIn", "expiresIn must be 1..315360000 seconds"));
    }
    let mut tx = st.db.tx().await?;
    let target = match b.username.as_deref() {
        None => c.user_id.clone(),
        Some(u) if u == c.username => c.user_id.clone(),
        Some(u) => {
            c.require(Resource::BeUsers, U)?;
            let t = users::member_by_username(&mut tx, &c.org_id, u).await?.ok_or_else(|| ApiError::not_found("user", u))?;
            guard_target(&mut tx, &c, &t, TargetChange::Credentials).await?;
            t.id
        }
    };
    let expires = b.expires_in.map(|e| now_ms() + e as i64 * 1000);
    let (key_id, key) = apikeys::create(&mut tx, &c.org_id, &target, label.as_deref(), expires).await?;
    let k = apikeys::by_id(&mut tx, &key_id).await?.ok_or_else(|| ApiError::internal("key vanished"))?;
    tx.commit().await?;
    Ok(success(json!({"apiKey": key, "key": k.to_json(&c.org_name)})))
}

const KEY_LIST: ListSpec = ListSpec {
    filters: &["username"],
    order_fields: &["keyId", "created", "username", "label"],
    default_order: ("created", false),
    unique: "keyId",
};

async fn list_keys(c: Caller, State(st): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(raw.as_deref(), &KEY_LIST)?;
    let mut conn = st.db.conn().await?;
    let user = match q.filters.get("username") {
        Some(u) if *u == c.username => Some(c.user_id.clone()),
        Some(u) => {
            c.require(Resource::BeUsers, R)?;
            Some(users::member_by_username(&mut conn, &c.org_id, u).await?.ok_or_else(|| ApiError::not_found("user", u))?.id)
        }
        None if c.perms.has(Resource::BeUsers, R) => None,
        None => Some(c.user_id.clone()),
    };
    let items = apikeys::list(&mut conn, &c.org_id, user.as_deref()).await?.iter().map(|k| k.to_json(&c.org_name)).collect();
    q.page(items, "keys")
}

async fn delete_key(c: Caller, State(st): State<Arc<AppState>>, Path(key_id): Path<String>) -> ApiResult<Json<Value>> {
    let mut tx = st.db.tx().await?;
    let k =
        apikeys::by_id(&mut tx, &key_id).await?.filter(|k| k.org_id == c.org_id).ok_or_else(|| ApiError::not_found("API key", &key_id))?;
    if k.user_id != c.user_id {
        c.require(Resource::BeUsers, U)?;
        let t = users::by_id(&mut tx, &k.user_id).await?.ok_or_else(|| ApiError::not_found("API key", &key_id))?;
        guard_target(&mut tx, &c, &t, TargetChange::Credentials).await?;
    }
    apikeys::delete(&mut tx, &c.org_id, &key_id).await?;
    tx.commit().await?;
    Ok(success(json!({"message": "API key revoked"})))
}

async fn delete_own_key(c: Caller, State(st): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let key_id = c.key_id.clone().ok_or_else(|| ApiError::bad_request("this request was not authenticated with an API key"))?;
    let mut tx = st.db.tx().await?;
    apikeys::delete(&mut tx, &c.org_id, &key_id).await?;
    tx.commit().await?;
    Ok(success(json!({"message": "API key revoked"})))
}
