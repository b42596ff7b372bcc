//! Roles (`/be/v1/roles`): permission bitmasks per resource, the protected
//! `Administrators` role, forced deletion, and no escalation.

use super::extract::{project, success, JsonBody, ListQuery, ListSpec};
use crate::caller::Caller;
use crate::domain::roles::RoleIn;
use crate::error::{ApiError, ApiResult};
use crate::names::{text, Name};
use crate::perms::{Perms, Resource, C, D, R, U};
use crate::state::AppState;
use crate::store::roles;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/roles", get(list_roles).post(post_role).patch(patch_role))
        .route("/be/v1/roles/{name}", get(get_role).delete(delete_role))
}

async fn post_role(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<RoleIn>) -> ApiResult<Json<Value>> {
    let name = Name::parse("name", &b.name)?;
    let label = b.label.as_deref().map(|l| text("label", l, 1, 200)).transpose()?;
    let perms = match &b.permissions {
        Some(p) => Perms::parse_onto(Perms::default(), p, c.operator, "permissions")?,
        None => Perms::default(),
    };
    c.require(Resource::Roles, C)?;
    if !perms.subset_of(&c.perms) {
        return Err(ApiError::forbidden("a role may grant only bits you hold yourself"));
    }
    let mut tx = st.db.tx().await?;
    if roles::get(&mut tx, &c.org_id, name.as_str()).await?.is_some() {
        return Err(ApiError::conflict("item-exists", format!("role '{name}' exists")));
    }
    roles::insert(&mut tx, &c.org_id, name.as_str(), label.as_deref(), &perms, false).await?;
    let r = roles::get(&mut tx, &c.org_id, name.as_str()).await?.ok_or_else(|| ApiError::internal("role vanished"))?;
    tx.commit().await?;
    Ok(success(json!({"role": r.to_json(c.operator)})))
}

const ROLE_LIST: ListSpec =
    ListSpec { filters: &["name"], order_fields: &["name", "created", "updated", "users"], default_order: ("name", false), unique: "name" };

async fn list_roles(c: Caller, State(st): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(raw.as_deref(), &ROLE_LIST)?;
    c.require(Resource::Roles, R)?;
    let mut conn = st.db.conn().await?;
    let needle = q.filters.get("name").map(|s| s.to_lowercase());
    let items = roles::list(&mut conn, &c.org_id)
        .await?
        .iter()
        .filter(|r| needle.as_ref().is_none_or(|n| r.name.to_lowercase().contains(n)))
        .map(|r| r.to_json(c.operator))
        .collect();
    q.page(items, "roles")
}

async fn get_role(c: Caller, State(st): State<Arc<AppState>>, Path(name): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    c.require(Resource::Roles, R)?;
    let mut conn = st.db.conn().await?;
    let r = roles::get(&mut conn, &c.org_id, &name).await?.ok_or_else(|| ApiError::not_found("role", &name))?;
    Ok(success(json!({"role": project(r.to_json(c.operator), raw.as_deref())?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolePatch {
    name: String,
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    label: Option<Option<String>>,
    permissions: Option<Value>,
}

async fn patch_role(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<RolePatch>) -> ApiResult<Json<Value>> {
    let label = match &b.label {
        Some(Some(l)) => Some(Some(text("label", l, 1, 200)?)),
        Some(None) => Some(None),
        None => None,
    };
    if let Some(p) = &b.permissions {
        Perms::parse_onto(Perms::default(), p, c.operator, "permissions")?;
    }
    c.require(Resource::Roles, U)?;
    let mut tx = st.db.tx().await?;
    let r = roles::get(&mut tx, &c.org_id, &b.name).await?.ok_or_else(|| ApiError::not_found("role", &b.name))?;
    let perms = match &b.permissions {
        Some(p) => Perms::parse_onto(r.perms, p, c.operator, "permissions")?,
        None => r.perms,
    };
    // Only the bits the patch adds count as a grant: keeping what a role already had is not
    // an escalation, but adding a bit the caller lacks is.
    let mut added = Perms::default();
    for (res, _, _) in crate::perms::RESOURCES.iter() {
        let new_bits = perms.get(*res) & !r.perms.get(*res);
        if new_bits != 0 {
            added = added.union(&Perms::parse_onto(Perms::default(), &json!({res.name(): new_bits}), true, "permissions")?);
        }
    }
    if !added.subset_of(&c.perms) {
        return Err(ApiError::forbidden("a role may grant only bits you hold yourself"));
    }
    if r.builtin {
        return Err(ApiError::conflict("item-protected", "the Administrators role cannot change"));
    }
    let new_label = match label {
        Some(l) => l,
        None => r.label.clone(),
    };
    roles::update(&mut tx, &c.org_id, &r.id, new_label.as_deref(), &perms).await?;
    let r = roles::get(&mut tx, &c.org_id, &b.name).await?.ok_or_else(|| ApiError::internal("role vanished"))?;
    tx.commit().await?;
    Ok(success(json!({"role": r.to_json(c.operator)})))
}

async fn delete_role(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let force = super::extract::flag_query(raw.as_deref(), "force")?;
    c.require(Resource::Roles, D)?;
    let mut tx = st.db.tx().await?;
    let r = roles::get(&mut tx, &c.org_id, &name).await?.ok_or_else(|| ApiError::not_found("role", &name))?;
    if r.builtin {
        return Err(ApiError::conflict("item-protected", "the Administrators role cannot be deleted"));
    }
    if r.users > 0 && !force {
        return Err(ApiError::conflict("item-in-use", format!("role '{name}' is held by {} user(s); use force=true", r.users)));
    }
    roles::delete(&mut tx, &c.org_id, &r.id).await?;
    tx.commit().await?;
    Ok(success(json!({"message": "role deleted"})))
}
