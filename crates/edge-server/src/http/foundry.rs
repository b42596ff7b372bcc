//! The Foundry-compatible organizations API (`/api/v2/admin/...`, foundry.md): Foundry's
//! wire format and error envelope over the Edge's own organizations.
//!
//! Every operation takes the admin token or an access token of the operator organization
//! as `Authorization: Bearer`; members need the `orgs` bits each operation names. Every
//! failure is a [`FoundryError`] (never our `{"status":"failed"}` envelope).

use super::auth::{admin_from_headers, bearer, resolve_caller};
use crate::perms::{Perms, Resource, C, R, U};
use crate::state::AppState;
use crate::store::{orgs, roles, users, Conn};
use crate::util::{new_uuid, rfc3339};
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::Arc;

#[path = "foundry_wire.rs"]
mod wire;
pub use wire::*;

#[path = "foundry_roles.rs"]
mod roles_api;
use roles_api::{add_assignments, list_assignments, list_roles, remove_assignments};

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v2/admin/organizations", post(create))
        .route("/api/v2/admin/organizations/{rid}", get(get_org).put(replace))
        .route("/api/v2/admin/organizations/{rid}/listAvailableRoles", get(list_roles))
        .route("/api/v2/admin/organizations/{rid}/roleAssignments", get(list_assignments))
        .route("/api/v2/admin/organizations/{rid}/roleAssignments/add", post(add_assignments))
        .route("/api/v2/admin/organizations/{rid}/roleAssignments/remove", post(remove_assignments))
        .route("/api/v2/admin/enrollments/getCurrent", get(current_enrollment))
}

/// A Foundry error, answered as a [`FoundryError`].
pub struct FErr {
    status: StatusCode,
    code: FoundryErrorCode,
    name: &'static str,
    params: Value,
}

type FResult<T> = Result<T, FErr>;

fn ferr(status: StatusCode, name: &'static str, params: Value) -> FErr {
    let code = match status.as_u16() {
        400 => FoundryErrorCode::InvalidArgument,
        401 => FoundryErrorCode::Unauthorized,
        403 => FoundryErrorCode::PermissionDenied,
        404 => FoundryErrorCode::NotFound,
        409 => FoundryErrorCode::Conflict,
        413 => FoundryErrorCode::RequestEntityTooLarge,
        _ => FoundryErrorCode::Internal,
    };
    FErr { status, code, name, params }
}

impl IntoResponse for FErr {
    fn into_response(self) -> Response {
        let body = FoundryError {
            error_code: self.code,
            error_name: self.name,
            error_instance_id: new_uuid(),
            parameters: self.params,
        };
        // Through `Value`, whose map sorts keys: the bytes of earlier releases.
        (self.status, Json(serde_json::to_value(body).unwrap_or(Value::Null))).into_response()
    }
}

/// A Foundry answer (status 200): the typed body, written through `Value` like [`super::reply::Reply`].
pub struct FReply<T>(T);

impl<T: serde::Serialize> IntoResponse for FReply<T> {
    fn into_response(self) -> Response {
        match serde_json::to_value(&self.0) {
            Ok(v) => Json(v).into_response(),
            Err(_) => ferr(StatusCode::INTERNAL_SERVER_ERROR, "Default:Internal", json!({}))
                .into_response(),
        }
    }
}

impl From<sqlx::Error> for FErr {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "foundry api database error");
        ferr(StatusCode::INTERNAL_SERVER_ERROR, "Default:Internal", json!({}))
    }
}

/// The caller: the operator (admin token) or a member of the operator org.
enum Who {
    Admin,
    Member(Perms),
}

impl Who {
    fn can(&self, bits: u8) -> bool {
        match self {
            Who::Admin => true,
            Who::Member(p) => p.has(Resource::Orgs, bits),
        }
    }
}

async fn who(h: &HeaderMap, st: &AppState) -> FResult<Who> {
    let unauthorized = || ferr(StatusCode::UNAUTHORIZED, "Default:Unauthorized", json!({}));
    if bearer(h).is_none() {
        return Err(unauthorized());
    }
    if admin_from_headers(h, st).is_some() {
        return Ok(Who::Admin);
    }
    match resolve_caller(h, st).await {
        Ok(c) if c.operator => Ok(Who::Member(c.perms)),
        Ok(_) => Ok(Who::Member(Perms::default())),
        Err(_) => Err(unauthorized()),
    }
}

fn preview(raw: &Option<String>) -> FResult<()> {
    let on = form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .any(|(k, v)| k == "preview" && v == "true");
    if on {
        Ok(())
    } else {
        Err(ferr(StatusCode::BAD_REQUEST, "ApiFeaturePreviewUsageOnly", json!({})))
    }
}

/// Reads and parses a JSON body under the configured limit. The body is taken as a raw
/// stream (not axum's `Bytes` extractor, whose own 2 MB limit answers in plain text).
async fn body<T: DeserializeOwned>(st: &AppState, b: Body) -> FResult<T> {
    let too_large =
        || ferr(StatusCode::PAYLOAD_TOO_LARGE, "Conjure:RequestEntityTooLarge", json!({}));
    let b: Bytes =
        axum::body::to_bytes(b, st.cfg.json_body_limit).await.map_err(|_| too_large())?;
    serde_json::from_slice(&b).map_err(|e| {
        ferr(StatusCode::BAD_REQUEST, "Conjure:InvalidArgument", json!({"message": e.to_string()}))
    })
}

fn org_of(o: &orgs::Org) -> FReply<FoundryOrganization> {
    FReply(FoundryOrganization {
        rid: o.rid.clone(),
        name: o.label.clone(),
        marking_id: o.marking_id.clone(),
        host: o.host.clone(),
        description: o.description.clone(),
    })
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The Edge name for a Foundry display name (foundry.md, "Rules").
fn edge_name(display: &str) -> String {
    let mut out = String::new();
    let mut in_run = false;
    for ch in display.chars() {
        if ch.is_ascii_alphanumeric() || ch == '_' {
            out.push(ch);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    let mut out: String = out.trim_matches('_').chars().take(50).collect();
    out = out.trim_end_matches('_').to_string();
    if out.len() < 2 {
        out = format!("org_{}", &crate::util::hex(&crate::util::random_bytes(4)));
    }
    out
}

async fn unique_name(c: &mut Conn, base: &str, label: &str) -> FResult<String> {
    let mut name = base.to_string();
    let mut n = 2;
    while let Some(o) = orgs::by_name(c, &name).await? {
        if o.label == label {
            break;
        }
        let suffix = format!("_{n}");
        let keep = 50usize.saturating_sub(suffix.len()).min(base.len());
        name = format!("{}{}", &base[..keep], suffix);
        n += 1;
    }
    Ok(name)
}

async fn principal(c: &mut Conn, id: &str) -> FResult<users::User> {
    match users::by_id(c, &crate::ids::UserId::new(id)).await? {
        Some(u) if !u.is_machine() => Ok(u),
        _ => Err(ferr(StatusCode::NOT_FOUND, "PrincipalNotFound", json!({"principalId": id}))),
    }
}

/// Foundry: create organization (preview)
///
/// A new Edge organization whose label is `name`, with `administrators` holding its
/// `Administrators` role. The caller's token is checked first (401), then
/// `preview=true` (400 `ApiFeaturePreviewUsageOnly`), then the body, then the permission.
#[utoipa::path(post, path = "/api/v2/admin/organizations", tag = "foundry",
    params(("preview" = bool, Query, description = "Must be `true`: the operation is a preview")),
    request_body = FoundryCreateOrganization,
    responses(
        (status = 200, description = "The organization created", body = FoundryOrganization),
        (status = 400, description = "`ApiFeaturePreviewUsageOnly`, `Conjure:InvalidArgument` (a malformed body, or `name` empty or over 200 characters), `CreateOrganizationMissingInitialAdminRole` (no administrators), `InvalidHostName`, `OrganizationNameAlreadyExists`", body = FoundryError),
        (status = 401, description = "`Default:Unauthorized`: no valid bearer token", body = FoundryError),
        (status = 403, description = "`CreateOrganizationPermissionDenied`", body = FoundryError),
        (status = 404, description = "`EnrollmentNotFound` (`parameters.enrollmentRid`), `PrincipalNotFound` (`parameters.principalId`: no such person)", body = FoundryError),
        (status = 413, description = "`Conjure:RequestEntityTooLarge`", body = FoundryError),
        (status = "default", description = "Any other failure (`Default:Internal`)", body = FoundryError),
    ),
    extensions(("x-rockit-auth" = json!("orgs:C"))))]
async fn create(
    State(st): State<Arc<AppState>>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
    b: Body,
) -> FResult<FReply<FoundryOrganization>> {
    let w = who(&h, &st).await?;
    preview(&raw)?;
    let b: FoundryCreateOrganization = body(&st, b).await?;
    if !w.can(C) {
        return Err(ferr(StatusCode::FORBIDDEN, "CreateOrganizationPermissionDenied", json!({})));
    }
    if b.administrators.is_empty() {
        return Err(ferr(
            StatusCode::BAD_REQUEST,
            "CreateOrganizationMissingInitialAdminRole",
            json!({}),
        ));
    }
    if b.enrollment_rid != st.enrollment_rid {
        return Err(ferr(
            StatusCode::NOT_FOUND,
            "EnrollmentNotFound",
            json!({"enrollmentRid": b.enrollment_rid}),
        ));
    }
    if let Some(host) = &b.host {
        if !valid_host(host) {
            return Err(ferr(
                StatusCode::BAD_REQUEST,
                "InvalidHostName",
                json!({"invalidHostName": host}),
            ));
        }
    }
    let label = b.name.trim().to_string();
    if label.is_empty() || label.chars().count() > 200 {
        return Err(ferr(
            StatusCode::BAD_REQUEST,
            "Conjure:InvalidArgument",
            json!({"name": "1..200 characters"}),
        ));
    }
    let mut tx = st.db.tx().await?;
    // Two creates of the same display name would both pass the label check (labels are
    // not unique in the schema) and collide on the derived name (500).
    orgs::lock_creation(&mut tx, st.db.backend).await?;
    let mut admins = Vec::new();
    for p in &b.administrators {
        admins.push(principal(&mut tx, p).await?);
    }
    if orgs::list(&mut tx).await?.iter().any(|o| o.label == label) {
        return Err(ferr(
            StatusCode::BAD_REQUEST,
            "OrganizationNameAlreadyExists",
            json!({"displayName": label}),
        ));
    }
    let name = unique_name(&mut tx, &edge_name(&label), &label).await?;
    let created = orgs::create(
        &mut tx,
        orgs::NewOrg {
            name: name.clone(),
            label,
            operator: false,
            dxorglnk: None,
            key: None,
            host: b.host,
            description: b.description,
        },
        None,
        None,
    )
    .await
    .map_err(|e| match e {
        orgs::CreateError::Db(e) => FErr::from(e),
        orgs::CreateError::MachineUser => {
            ferr(StatusCode::NOT_FOUND, "PrincipalNotFound", json!({}))
        }
    })?;
    let role = roles::get(&mut tx, &created.org_id, roles::ADMINISTRATORS)
        .await?
        .ok_or_else(|| ferr(StatusCode::INTERNAL_SERVER_ERROR, "Default:Internal", json!({})))?;
    for u in &admins {
        users::add_membership(&mut tx, &created.org_id, &u.id).await?;
        users::set_roles(&mut tx, &created.org_id, &u.id, std::slice::from_ref(&role.id)).await?;
    }
    let o = orgs::by_id(&mut tx, &created.org_id)
        .await?
        .ok_or_else(|| ferr(StatusCode::INTERNAL_SERVER_ERROR, "Default:Internal", json!({})))?;
    tx.commit().await?;
    Ok(org_of(&o))
}

async fn find(c: &mut Conn, rid: &str) -> FResult<orgs::Org> {
    orgs::by_rid(c, rid).await?.ok_or_else(|| {
        ferr(StatusCode::NOT_FOUND, "OrganizationNotFound", json!({"organizationRid": rid}))
    })
}

/// Foundry: get organization
#[utoipa::path(get, path = "/api/v2/admin/organizations/{rid}", tag = "foundry",
    params(("rid" = String, Path, description = "The organization's resource id")),
    responses(
        (status = 200, description = "The organization", body = FoundryOrganization),
        (status = 401, description = "`Default:Unauthorized`: no valid bearer token", body = FoundryError),
        (status = 403, description = "`GetOrganizationPermissionDenied`", body = FoundryError),
        (status = 404, description = "`OrganizationNotFound` (`parameters.organizationRid`)", body = FoundryError),
        (status = "default", description = "Any other failure (`Default:Internal`)", body = FoundryError),
    ),
    extensions(("x-rockit-auth" = json!("orgs:R"))))]
async fn get_org(
    State(st): State<Arc<AppState>>,
    h: HeaderMap,
    Path(rid): Path<String>,
) -> FResult<FReply<FoundryOrganization>> {
    let w = who(&h, &st).await?;
    if !w.can(R) {
        return Err(ferr(
            StatusCode::FORBIDDEN,
            "GetOrganizationPermissionDenied",
            json!({"organizationRid": rid}),
        ));
    }
    let mut c = st.db.conn().await?;
    Ok(org_of(&find(&mut c, &rid).await?))
}

/// Foundry: replace organization
///
/// Replaces the display fields: `name` (the Edge label), `host` and `description` (absent
/// ones are removed). The Edge name does not change.
#[utoipa::path(put, path = "/api/v2/admin/organizations/{rid}", tag = "foundry",
    params(("rid" = String, Path, description = "The organization's resource id")),
    request_body = FoundryReplaceOrganization,
    responses(
        (status = 200, description = "The organization as replaced", body = FoundryOrganization),
        (status = 400, description = "`Conjure:InvalidArgument` (a malformed body, or `name` empty or over 200 characters), `InvalidHostName`", body = FoundryError),
        (status = 401, description = "`Default:Unauthorized`: no valid bearer token", body = FoundryError),
        (status = 403, description = "`ReplaceOrganizationPermissionDenied`", body = FoundryError),
        (status = 404, description = "`OrganizationNotFound` (`parameters.organizationRid`)", body = FoundryError),
        (status = 413, description = "`Conjure:RequestEntityTooLarge`", body = FoundryError),
        (status = "default", description = "Any other failure (`Default:Internal`)", body = FoundryError),
    ),
    extensions(("x-rockit-auth" = json!("orgs:U"))))]
async fn replace(
    State(st): State<Arc<AppState>>,
    h: HeaderMap,
    Path(rid): Path<String>,
    b: Body,
) -> FResult<FReply<FoundryOrganization>> {
    let w = who(&h, &st).await?;
    let b: FoundryReplaceOrganization = body(&st, b).await?;
    if !w.can(U) {
        return Err(ferr(
            StatusCode::FORBIDDEN,
            "ReplaceOrganizationPermissionDenied",
            json!({"organizationRid": rid}),
        ));
    }
    if let Some(host) = &b.host {
        if !valid_host(host) {
            return Err(ferr(
                StatusCode::BAD_REQUEST,
                "InvalidHostName",
                json!({"invalidHostName": host}),
            ));
        }
    }
    let label = b.name.trim().to_string();
    if label.is_empty() || label.chars().count() > 200 {
        return Err(ferr(
            StatusCode::BAD_REQUEST,
            "Conjure:InvalidArgument",
            json!({"name": "1..200 characters"}),
        ));
    }
    let mut tx = st.db.tx().await?;
    let o = find(&mut tx, &rid).await?;
    orgs::update_display(&mut tx, &o.id, &label, b.host.as_deref(), b.description.as_deref())
        .await?;
    let o = find(&mut tx, &rid).await?;
    tx.commit().await?;
    Ok(org_of(&o))
}

/// Foundry: current enrollment (preview)
///
/// The instance's one enrollment, whose `rid` Create Organization takes.
#[utoipa::path(get, path = "/api/v2/admin/enrollments/getCurrent", tag = "foundry",
    params(("preview" = bool, Query, description = "Must be `true`: the operation is a preview")),
    responses(
        (status = 200, description = "The enrollment", body = FoundryEnrollment),
        (status = 400, description = "`ApiFeaturePreviewUsageOnly`", body = FoundryError),
        (status = 401, description = "`Default:Unauthorized`: no valid bearer token", body = FoundryError),
        (status = 403, description = "`GetCurrentEnrollmentPermissionDenied`", body = FoundryError),
        (status = "default", description = "Any other failure (`Default:Internal`)", body = FoundryError),
    ),
    extensions(("x-rockit-auth" = json!("orgs:R"))))]
async fn current_enrollment(
    State(st): State<Arc<AppState>>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
) -> FResult<FReply<FoundryEnrollment>> {
    let w = who(&h, &st).await?;
    preview(&raw)?;
    if !w.can(R) {
        return Err(ferr(StatusCode::FORBIDDEN, "GetCurrentEnrollmentPermissionDenied", json!({})));
    }
    Ok(FReply(FoundryEnrollment {
        rid: st.enrollment_rid.clone(),
        name: st.cfg.enrollment_name.clone(),
        created_time: rfc3339(st.enrollment_created),
    }))
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create,
    get_org,
    replace,
    roles_api::list_roles,
    roles_api::list_assignments,
    roles_api::add_assignments,
    roles_api::remove_assignments,
    current_enrollment
))]
pub struct Api;
