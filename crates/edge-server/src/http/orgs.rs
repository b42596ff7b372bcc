//! Organizations on the backend (`/be/v1/orgs`, `/be/v1/org`) and the shared Create /
//! Delete Organization logic used by the admin and Foundry routes. The answer types are
//! public: `/adm/v1/orgs` answers the same objects.

use super::extract::{JsonBody, ListQuery, ListSpec};
use super::reply::{page, ListParams, Reply, Success};
use crate::caller::Caller;
use crate::domain::operator::require_operator;
use crate::domain::orgs::{delete_org, OrgIn};
use crate::error::{ApiError, ApiResult};
use crate::perms::{D, R};
use crate::state::AppState;
use crate::store::orgs::{self, Org};
use crate::util::rfc3339;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/orgs", get(list_orgs).post(post_org))
        .route("/be/v1/orgs/{name}", get(get_org).delete(del_org))
        .route("/be/v1/org", get(own_org))
}

/// An organization (never its private key).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgView {
    /// Unique in the instance.
    name: String,
    /// Display name.
    label: String,
    /// Its Foundry resource id (`ri.multipass..organization.<uuid>`).
    rid: String,
    /// True for the operator organization, the one that manages the others (and the only
    /// one whose roles have the `orgs` permission).
    operator: bool,
    /// Its link to its DX tenant; `null` when not set.
    dxorglnk: Option<String>,
    /// Fingerprint of its key (`SHA256:` + unpadded base64); `null` without a key.
    key_fingerprint: Option<String>,
    /// The public half of its key (PEM); `null` without a key.
    public_key_pem: Option<String>,
    /// When it was created (RFC 3339).
    created: String,
    /// When it last changed (RFC 3339).
    updated: String,
    /// How many members it has (persons and machine users).
    users: i64,
    /// How many apps it has.
    apps: i64,
}

impl OrgView {
    /// The wire object of an organization row.
    pub fn of(o: &Org) -> OrgView {
        OrgView {
            name: o.name.clone(),
            label: o.label.clone(),
            rid: o.rid.clone(),
            operator: o.operator,
            dxorglnk: o.dxorglnk.clone(),
            key_fingerprint: o.key_fingerprint.clone(),
            public_key_pem: o.public_key_pem.clone(),
            created: rfc3339(o.created),
            updated: rfc3339(o.updated),
            users: o.users,
            apps: o.apps,
        }
    }
}

/// One organization.
#[derive(Serialize, ToSchema)]
pub struct OrgReply {
    /// Always `success`.
    status: Success,
    /// The organization.
    org: OrgView,
}

impl OrgReply {
    /// The answer showing `o`.
    pub fn new(o: &Org) -> Reply<OrgReply> {
        Reply(OrgReply { status: Success, org: OrgView::of(o) })
    }
}

page!(
    /// A page of organizations.
    OrgPage,
    "orgs",
    OrgView
);

/// The answer of Create Organization.
#[derive(Serialize, ToSchema)]
pub struct OrgCreated {
    /// Always `success`.
    status: Success,
    /// What was done (`organization created`).
    message: String,
    /// The administrator's initial password, shown this once; absent when an existing
    /// person was made administrator (they keep their password).
    #[serde(rename = "adminPW", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    admin_pw: Option<String>,
}

impl OrgCreated {
    /// The answer from the outcome object of `domain::orgs::{create_org, insert_org}`
    /// (`{message, adminPW?}`), which the admin routes and configuration imports read too.
    pub fn of(out: &Value) -> Reply<OrgCreated> {
        Reply(OrgCreated {
            status: Success,
            message: out["message"].as_str().unwrap_or("organization created").to_string(),
            admin_pw: out["adminPW"].as_str().map(String::from),
        })
    }
}

/// The answer of Delete Organization.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgDeleted {
    /// Always `success`.
    status: Success,
    /// What was done (`organization deleted`).
    message: String,
    /// The `purge` task that removes the organization's files: with `prune=true` its
    /// published files, and always the Edge's own copies when the depot is shared (else
    /// those go at once and no task is made).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    task_name: Option<String>,
}

impl OrgDeleted {
    /// The answer from the outcome object of `domain::orgs::delete_org`
    /// (`{message, taskName?}`), which the admin route reads too.
    pub fn of(out: &Value) -> Reply<OrgDeleted> {
        Reply(OrgDeleted {
            status: Success,
            message: out["message"].as_str().unwrap_or("organization deleted").to_string(),
            task_name: out["taskName"].as_str().map(String::from),
        })
    }
}

/// Create Organization
///
/// Only callers of the operator organization (else 403). Creates the organization, its
/// `Administrators` role and its administrator in one transaction. A taken organization
/// name, or a username of a machine user: 409 `item-exists` (`details.field` names the
/// field). A key that cannot be read or decrypted, or is too weak: 400.
#[utoipa::path(post, path = "/be/v1/orgs", tag = "orgs", request_body = OrgIn,
    responses((status = 200, description = "Created", body = OrgCreated)),
    extensions(("x-rockit-auth" = json!("orgs:C"))))]
async fn post_org(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<OrgIn>,
) -> ApiResult<Reply<OrgCreated>> {
    Ok(OrgCreated::of(&crate::domain::orgs::create_by(&st, &c, b).await?))
}

const ORG_LIST: ListSpec = ListSpec {
    filters: &["name"],
    order_fields: &["name", "created", "updated", "label"],
    default_order: ("name", false),
    unique: "name",
};

/// A page of every organization of the instance, with the `name` partial filter (the
/// list of `/be/v1/orgs` and `/adm/v1/orgs`).
pub async fn org_page(st: &AppState, raw: Option<&str>) -> ApiResult<Reply<OrgPage>> {
    let q = ListQuery::parse(raw, &ORG_LIST)?;
    let mut c = st.db.conn().await?;
    let needle = q.filters.get("name").map(|s| s.to_lowercase());
    let items = orgs::list(&mut c)
        .await?
        .iter()
        .filter(|o| needle.as_ref().is_none_or(|n| o.name.to_lowercase().contains(n)))
        .map(OrgView::of)
        .collect();
    q.page_of(items)
}

/// List organizations (operator org)
///
/// Every organization of the instance; only callers of the operator organization (else
/// 403). Order by `name` (default), `created`, `updated` or `label`.
#[utoipa::path(get, path = "/be/v1/orgs", tag = "orgs",
    params(ListParams, ("name" = Option<String>, Query, description = "Only organizations whose name contains this (any case)")),
    responses((status = 200, description = "A page of organizations", body = OrgPage)),
    extensions(("x-rockit-auth" = json!("orgs:R"))))]
async fn list_orgs(
    c: Caller,
    State(st): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<OrgPage>> {
    require_operator(&c, R)?;
    org_page(&st, raw.as_deref()).await
}

/// One organization (operator org)
///
/// Only callers of the operator organization (else 403).
#[utoipa::path(get, path = "/be/v1/orgs/{name}", tag = "orgs",
    responses((status = 200, description = "The organization", body = OrgReply)),
    extensions(("x-rockit-auth" = json!("orgs:R"))))]
async fn get_org(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Reply<OrgReply>> {
    require_operator(&c, R)?;
    let mut conn = st.db.conn().await?;
    let o = orgs::by_name(&mut conn, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("organization", &name))?;
    Ok(OrgReply::new(&o))
}

/// Delete an organization
///
/// Only callers of the operator organization (else 403); the operator organization itself
/// cannot go (409 `item-protected`). Every member, role, app, deployment and task of it
/// goes at once; its published files go too with `prune=true`, through a `purge` task
/// (without it they stay, and only the Edge's own copies go).
#[utoipa::path(delete, path = "/be/v1/orgs/{name}", tag = "orgs",
    params(("prune" = Option<bool>, Query, description = "Also purge the organization's published files (default false)")),
    responses((status = 200, description = "Deleted", body = OrgDeleted)),
    extensions(("x-rockit-auth" = json!("orgs:D"))))]
async fn del_org(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<OrgDeleted>> {
    require_operator(&c, D)?;
    let prune = super::extract::flag_query(raw.as_deref(), "prune")?;
    Ok(OrgDeleted::of(&delete_org(&st, &name, prune).await?))
}

/// The caller's own organization
///
/// Any member may read it.
#[utoipa::path(get, path = "/be/v1/org", tag = "orgs",
    responses((status = 200, description = "The caller's organization", body = OrgReply)),
    extensions(("x-rockit-auth" = json!("member"))))]
async fn own_org(c: Caller, State(st): State<Arc<AppState>>) -> ApiResult<Reply<OrgReply>> {
    let mut conn = st.db.conn().await?;
    let o = orgs::by_id(&mut conn, &c.org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization", &c.org_name))?;
    Ok(OrgReply::new(&o))
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_orgs, post_org, get_org, del_org, own_org))]
pub struct Api;
