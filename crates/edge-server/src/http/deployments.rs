//! Deployments (`/be/v1/deployments`): CDN origins with write-only secrets, probed on
//! create, deleted with a purge of what was published to them.

use super::extract::{project, success, JsonBody, ListQuery, ListSpec};
use crate::caller::Caller;
use crate::domain::deployments::{
    check_fs_apart, parse_download_auth, parse_origin, parse_prefix, parse_public_url, probe, row_from, target_of, DeploymentIn,
};
use crate::domain::purge;
use crate::error::{ApiError, ApiResult};
use crate::names::text;
use crate::perms::{Resource, C, D, R, U};
use crate::state::AppState;
use crate::store::deployments::{self as store};
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/deployments", get(list_deployments).post(post_deployment).patch(patch_deployment))
        .route("/be/v1/deployments/{name}", get(get_deployment).delete(delete_deployment))
}

async fn post_deployment(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<DeploymentIn>) -> ApiResult<Json<Value>> {
    let d = row_from(&st, &c.org_id, &b, None)?;
    c.require(Resource::Deployments, C)?;
    {
        let mut conn = st.db.conn().await?;
        if store::get(&mut conn, &c.org_id, &d.name).await?.is_some() {
            return Err(ApiError::conflict("item-exists", format!("deployment '{}' exists", d.name)));
        }
        check_fs_apart(&st, &mut conn, &d).await?;
    }
    // The probe reaches out over the network: no connection is held meanwhile.
    if b.probe.unwrap_or(true) {
        probe(&st, &d).await?;
    }
    let mut tx = st.db.tx().await?;
    if store::get(&mut tx, &c.org_id, &d.name).await?.is_some() {
        return Err(ApiError::conflict("item-exists", format!("deployment '{}' exists", d.name)));
    }
    check_fs_apart(&st, &mut tx, &d).await?;
    store::save(&mut tx, &d).await?;
    tx.commit().await?;
    Ok(success(json!({"deployment": d.to_json(&[])})))
}

const DEP_LIST: ListSpec =
    ListSpec { filters: &["name", "error"], order_fields: &["name", "created", "updated"], default_order: ("name", false), unique: "name" };

async fn list_deployments(c: Caller, State(st): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(raw.as_deref(), &DEP_LIST)?;
    let error = q.bool_filter("error")?;
    c.require(Resource::Deployments, R)?;
    let mut conn = st.db.conn().await?;
    let needle = q.filters.get("name").map(|s| s.to_lowercase());
    let mut items = Vec::new();
    for d in store::list(&mut conn, &c.org_id).await? {
        if needle.as_ref().is_some_and(|n| !d.name.to_lowercase().contains(n)) || error.is_some_and(|e| e != (d.status == "error")) {
            continue;
        }
        let apps = store::apps_using(&mut conn, &c.org_id, &d.name).await?;
        items.push(d.to_json(&apps));
    }
    q.page(items, "deployments")
}

async fn get_deployment(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    c.require(Resource::Deployments, R)?;
    let mut conn = st.db.conn().await?;
    let d = store::get(&mut conn, &c.org_id, &name).await?.ok_or_else(|| ApiError::not_found("deployment", &name))?;
    let apps = store::apps_using(&mut conn, &c.org_id, &name).await?;
    Ok(success(json!({"deployment": project(d.to_json(&apps), raw.as_deref())?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DeploymentPatch {
    name: String,
    #[serde(default, deserialize_with = "super::extract::double_option")]
    label: Option<Option<String>>,
    origin_prefix: Option<String>,
    origin: Option<Value>,
    #[serde(default, deserialize_with = "super::extract::double_option")]
    download_auth: Option<Option<Value>>,
    #[serde(default, deserialize_with = "super::extract::double_option")]
    public_url: Option<Option<String>>,
    probe: Option<bool>,
}

async fn patch_deployment(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<DeploymentPatch>) -> ApiResult<Json<Value>> {
    let label = match &b.label {
        Some(Some(l)) => Some(Some(text("label", l, 1, 200)?)),
        Some(None) => Some(None),
        None => None,
    };
    let prefix = b.origin_prefix.as_deref().map(|p| parse_prefix(Some(p))).transpose()?;
    let public_url = match &b.public_url {
        Some(u) => Some(parse_public_url(u.as_deref())?),
        None => None,
    };
    c.require(Resource::Deployments, U)?;
    let mut d =
        store::get(&mut *st.db.conn().await?, &c.org_id, &b.name).await?.ok_or_else(|| ApiError::not_found("deployment", &b.name))?;
    let loaded_at = d.updated;
    let open = |s: &Option<String>| s.as_ref().and_then(|s| st.data_key.open(s)).and_then(|b| String::from_utf8(b).ok());
    let mut reach_changed = false;
    if let Some(o) = &b.origin {
        let (kind, origin, secret) = parse_origin(o, Some((&d.kind, open(&d.secret_sealed))))?;
        d.kind = kind;
        d.origin = origin;
        d.secret_sealed = secret.map(|s| st.data_key.seal(s.as_bytes()));
        reach_changed = true;
    }
    match &b.download_auth {
        Some(None) => {
            d.download_auth = Value::Null;
            d.download_secret_sealed = None;
        }
        Some(Some(v)) => {
            let keep_kind = d.download_auth["type"].as_str().unwrap_or("").to_string();
            let (v, s) = parse_download_auth(v, Some((&keep_kind, open(&d.download_secret_sealed))))?;
            d.download_auth = v;
            d.download_secret_sealed = Some(st.data_key.seal(s.as_bytes()));
        }
        None => {}
    }
    if let Some(l) = label {
        d.label = l;
    }
    if let Some(p) = prefix {
        reach_changed |= p != d.prefix;
        d.prefix = p;
    }
    if let Some(u) = public_url {
        d.public_url = u;
    }
    if d.kind == "fs" {
        target_of(&st, &d)?;
    }
    if reach_changed {
        check_fs_apart(&st, &mut *st.db.conn().await?, &d).await?;
    }
    if reach_changed && b.probe.unwrap_or(true) {
        probe(&st, &d).await?;
    }
    d.updated = crate::util::now_ms();
    let mut tx = st.db.tx().await?;
    // Read, probed and written without a lock held through the probe: a change that
    // landed meanwhile is not silently overwritten.
    let current = store::get(&mut tx, &c.org_id, &b.name).await?.ok_or_else(|| ApiError::not_found("deployment", &b.name))?;
    if current.updated != loaded_at {
        return Err(ApiError::conflict("invalid-state", "the deployment changed meanwhile; send the change again"));
    }
    check_fs_apart(&st, &mut tx, &d).await?;
    store::save(&mut tx, &d).await?;
    let apps = store::apps_using(&mut tx, &c.org_id, &d.name).await?;
    tx.commit().await?;
    Ok(success(json!({"deployment": d.to_json(&apps)})))
}

async fn delete_deployment(c: Caller, State(st): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    c.require(Resource::Deployments, D)?;
    let mut tx = st.db.tx().await?;
    let d = store::get(&mut tx, &c.org_id, &name).await?.ok_or_else(|| ApiError::not_found("deployment", &name))?;
    let apps = store::apps_using(&mut tx, &c.org_id, &name).await?;
    if !apps.is_empty() {
        return Err(ApiError::conflict("item-in-use", format!("deployment '{name}' is used by app(s) {}", apps.join(", "))));
    }
    let target = target_of(&st, &d).ok();
    let task = purge::enqueue_for_deployment(&st, &mut tx, &c.org_id, &c.org_name, &d, target).await?;
    store::delete(&mut tx, &c.org_id, &d.id).await?;
    tx.commit().await?;
    Ok(success(json!({"message": "deployment deleted", "taskName": task})))
}
