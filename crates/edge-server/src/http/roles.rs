//! Roles (`/be/v1/roles`): permission bitmasks per resource, the protected
//! `Administrators` role, forced deletion, and no escalation.

use super::extract::{JsonBody, ListQuery, ListSpec};
use super::reply::{page, projected, FieldsParam, ListParams, Message, Reply, Success};
use crate::caller::Caller;
use crate::domain::roles::{self as roles_domain, RoleIn};
use crate::error::{ApiError, ApiResult};
use crate::perms::{PermissionsSchema, Resource, R};
use crate::state::AppState;
use crate::store::roles::{self, Role};
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
        .route("/be/v1/roles", get(list_roles).post(post_role).patch(patch_role))
        .route("/be/v1/roles/{name}", get(get_role).delete(delete_role))
}

/// A role: a named set of permission bits that users hold.
#[derive(Serialize, ToSchema)]
pub struct RoleView {
    /// Unique in the organization.
    name: String,
    /// Free text, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    /// What holders may do.
    #[schema(value_type = PermissionsSchema)]
    permissions: Value,
    /// True for `Administrators`, which cannot change or be deleted.
    builtin: bool,
    /// How many users hold it.
    users: i64,
    /// When it was created (RFC 3339).
    created: String,
    /// When it last changed (RFC 3339).
    updated: String,
}

impl RoleView {
    fn of(r: &Role, operator: bool) -> RoleView {
        RoleView {
            name: r.name.clone(),
            label: r.label.clone(),
            permissions: r.perms.to_json(operator),
            builtin: r.builtin,
            users: r.users,
            created: rfc3339(r.created),
            updated: rfc3339(r.updated),
        }
    }
}

/// One role.
#[derive(Serialize, ToSchema)]
pub struct RoleReply {
    /// Always `success`.
    status: Success,
    /// The role (projected to `fields[]` when given).
    #[schema(value_type = RoleView)]
    role: Value,
}

impl RoleReply {
    fn new(role: Value) -> Reply<RoleReply> {
        Reply(RoleReply { status: Success, role })
    }
}

page!(
    /// A page of roles.
    RolePage,
    "roles",
    RoleView
);

/// Create a role
///
/// A role may grant only bits the caller holds itself.
#[utoipa::path(post, path = "/be/v1/roles", tag = "roles", request_body = RoleIn,
    responses((status = 200, description = "The new role", body = RoleReply)),
    extensions(("x-rockit-auth" = json!("roles:C"))))]
async fn post_role(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<RoleIn>,
) -> ApiResult<Reply<RoleReply>> {
    let r = roles_domain::create(&st.db, &c, &b).await?;
    Ok(RoleReply::new(projected(&RoleView::of(&r, c.operator), None)?))
}

const ROLE_LIST: ListSpec = ListSpec {
    filters: &["name"],
    order_fields: &["name", "created", "updated", "users"],
    default_order: ("name", false),
    unique: "name",
};

/// List roles
///
/// Order by `name`, `created`, `updated` or `users`; `name` filters by a part of the name.
#[utoipa::path(get, path = "/be/v1/roles", tag = "roles",
    params(ListParams, ("name" = Option<String>, Query, description = "Only roles whose name contains this (any case)")),
    responses((status = 200, description = "A page of roles", body = RolePage)),
    extensions(("x-rockit-auth" = json!("roles:R"))))]
async fn list_roles(
    c: Caller,
    State(st): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<RolePage>> {
    let q = ListQuery::parse(raw.as_deref(), &ROLE_LIST)?;
    c.require(Resource::Roles, R)?;
    let mut conn = st.db.conn().await?;
    let needle = q.filters.get("name").map(|s| s.to_lowercase());
    let items = roles::list(&mut conn, &c.org_id)
        .await?
        .iter()
        .filter(|r| needle.as_ref().is_none_or(|n| r.name.to_lowercase().contains(n)))
        .map(|r| RoleView::of(r, c.operator))
        .collect();
    q.page_of(items)
}

/// One role
#[utoipa::path(get, path = "/be/v1/roles/{name}", tag = "roles", params(FieldsParam),
    responses((status = 200, description = "The role", body = RoleReply)),
    extensions(("x-rockit-auth" = json!("roles:R"))))]
async fn get_role(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<RoleReply>> {
    c.require(Resource::Roles, R)?;
    let mut conn = st.db.conn().await?;
    let r = roles::get(&mut conn, &c.org_id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("role", &name))?;
    Ok(RoleReply::new(projected(&RoleView::of(&r, c.operator), raw.as_deref())?))
}

/// The Change Role body: the role by name, and what changes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RolePatch {
    /// The role to change.
    name: String,
    /// The new label; `null` removes it.
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<String>, required = false)]
    label: Option<Option<String>>,
    /// Bits to set, per resource; resources not named keep theirs.
    #[schema(value_type = Option<PermissionsSchema>)]
    permissions: Option<Value>,
}

/// Change a role
///
/// Only bits the change adds count as a grant, and the caller must hold them.
#[utoipa::path(patch, path = "/be/v1/roles", tag = "roles", request_body = RolePatch,
    responses((status = 200, description = "The role as changed", body = RoleReply)),
    extensions(("x-rockit-auth" = json!("roles:U"))))]
async fn patch_role(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<RolePatch>,
) -> ApiResult<Reply<RoleReply>> {
    let r =
        roles_domain::update(&st.db, &c, &b.name, b.label.clone(), b.permissions.as_ref()).await?;
    Ok(RoleReply::new(projected(&RoleView::of(&r, c.operator), None)?))
}

/// Delete a role
///
/// A role that users hold is deleted only with `force=true`, which takes it from them.
#[utoipa::path(delete, path = "/be/v1/roles/{name}", tag = "roles",
    params(("force" = Option<bool>, Query, description = "Delete even when users hold it")),
    responses((status = 200, description = "Deleted", body = Message)),
    extensions(("x-rockit-auth" = json!("roles:D"))))]
async fn delete_role(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<Message>> {
    let force = super::extract::flag_query(raw.as_deref(), "force")?;
    roles_domain::delete(&st.db, &c, &name, force).await?;
    Ok(Message::new("role deleted"))
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_roles, post_role, get_role, patch_role, delete_role))]
pub struct Api;
