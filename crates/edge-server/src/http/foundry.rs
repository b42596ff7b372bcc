//! The Foundry-compatible organizations API (`/api/v2/admin/...`, foundry.md): Foundry's
//! wire format and error envelope over the Edge's own organizations.

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
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

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

/// A Foundry error: `{"errorCode","errorName","errorInstanceId","parameters"}`.
pub struct FErr {
    status: StatusCode,
    code: &'static str,
    name: &'static str,
    params: Value,
}

type FResult<T> = Result<T, FErr>;

fn ferr(status: StatusCode, name: &'static str, params: Value) -> FErr {
    let code = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHORIZED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "CONFLICT",
        413 => "REQUEST_ENTITY_TOO_LARGE",
        _ => "INTERNAL",
    };
    FErr { status, code, name, params }
}

impl IntoResponse for FErr {
    fn into_response(self) -> Response {
        let body = json!({"errorCode": self.code, "errorName": self.name, "errorInstanceId": new_uuid(), "parameters": self.params});
        (self.status, Json(body)).into_response()
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
    let on = form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()).any(|(k, v)| k == "preview" && v == "true");
    if on {
        Ok(())
    } else {
        Err(ferr(StatusCode::BAD_REQUEST, "ApiFeaturePreviewUsageOnly", json!({})))
    }
}

/// Reads and parses a JSON body under the configured limit. The body is taken as a raw
/// stream (not axum's `Bytes` extractor, whose own 2 MB limit answers in plain text).
async fn body<T: DeserializeOwned>(st: &AppState, b: Body) -> FResult<T> {
    let too_large = || ferr(StatusCode::PAYLOAD_TOO_LARGE, "Conjure:RequestEntityTooLarge", json!({}));
    let b: Bytes = axum::body::to_bytes(b, st.cfg.json_body_limit).await.map_err(|_| too_large())?;
    serde_json::from_slice(&b).map_err(|e| ferr(StatusCode::BAD_REQUEST, "Conjure:InvalidArgument", json!({"message": e.to_string()})))
}

fn org_json(o: &orgs::Org) -> Value {
    let mut v = json!({"rid": o.rid, "name": o.label, "markingId": o.marking_id});
    if let Some(h) = &o.host {
        v["host"] = json!(h);
    }
    if let Some(d) = &o.description {
        v["description"] = json!(d);
    }
    v
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
    match users::by_id(c, id).await? {
        Some(u) if !u.is_machine() => Ok(u),
        _ => Err(ferr(StatusCode::NOT_FOUND, "PrincipalNotFound", json!({"principalId": id}))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateIn {
    administrators: Vec<String>,
    enrollment_rid: String,
    name: String,
    host: Option<String>,
    description: Option<String>,
}

async fn create(State(st): State<Arc<AppState>>, h: HeaderMap, RawQuery(raw): RawQuery, b: Body) -> FResult<Json<Value>> {
    let w = who(&h, &st).await?;
    preview(&raw)?;
    let b: CreateIn = body(&st, b).await?;
    if !w.can(C) {
        return Err(ferr(StatusCode::FORBIDDEN, "CreateOrganizationPermissionDenied", json!({})));
    }
    if b.administrators.is_empty() {
        return Err(ferr(StatusCode::BAD_REQUEST, "CreateOrganizationMissingInitialAdminRole", json!({})));
    }
    if b.enrollment_rid != st.enrollment_rid {
        return Err(ferr(StatusCode::NOT_FOUND, "EnrollmentNotFound", json!({"enrollmentRid": b.enrollment_rid})));
    }
    if let Some(host) = &b.host {
        if !valid_host(host) {
            return Err(ferr(StatusCode::BAD_REQUEST, "InvalidHostName", json!({"invalidHostName": host})));
        }
    }
    let label = b.name.trim().to_string();
    if label.is_empty() || label.chars().count() > 200 {
        return Err(ferr(StatusCode::BAD_REQUEST, "Conjure:InvalidArgument", json!({"name": "1..200 characters"})));
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
        return Err(ferr(StatusCode::BAD_REQUEST, "OrganizationNameAlreadyExists", json!({"displayName": label})));
    }
    let name = unique_name(&mut tx, &edge_name(&label), &label).await?;
    let created = orgs::create(
        &mut tx,
        orgs::NewOrg { name: name.clone(), label, operator: false, dxorglnk: None, key: None, host: b.host, description: b.description },
        None,
        None,
    )
    .await
    .map_err(|e| match e {
        orgs::CreateError::Db(e) => FErr::from(e),
        orgs::CreateError::MachineUser => ferr(StatusCode::NOT_FOUND, "PrincipalNotFound", json!({})),
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
    Ok(Json(org_json(&o)))
}

async fn find(c: &mut Conn, rid: &str) -> FResult<orgs::Org> {
    orgs::by_rid(c, rid).await?.ok_or_else(|| ferr(StatusCode::NOT_FOUND, "OrganizationNotFound", json!({"organizationRid": rid})))
}

async fn get_org(State(st): State<Arc<AppState>>, h: HeaderMap, Path(rid): Path<String>) -> FResult<Json<Value>> {
    let w = who(&h, &st).await?;
    if !w.can(R) {
        return Err(ferr(StatusCode::FORBIDDEN, "GetOrganizationPermissionDenied", json!({"organizationRid": rid})));
    }
    let mut c = st.db.conn().await?;
    Ok(Json(org_json(&find(&mut c, &rid).await?)))
}

#[derive(Deserialize)]
struct ReplaceIn {
    name: String,
    host: Option<String>,
    description: Option<String>,
}

async fn replace(State(st): State<Arc<AppState>>, h: HeaderMap, Path(rid): Path<String>, b: Body) -> FResult<Json<Value>> {
    let w = who(&h, &st).await?;
    let b: ReplaceIn = body(&st, b).await?;
    if !w.can(U) {
        return Err(ferr(StatusCode::FORBIDDEN, "ReplaceOrganizationPermissionDenied", json!({"organizationRid": rid})));
    }
    if let Some(host) = &b.host {
        if !valid_host(host) {
            return Err(ferr(StatusCode::BAD_REQUEST, "InvalidHostName", json!({"invalidHostName": host})));
        }
    }
    let label = b.name.trim().to_string();
    if label.is_empty() || label.chars().count() > 200 {
        return Err(ferr(StatusCode::BAD_REQUEST, "Conjure:InvalidArgument", json!({"name": "1..200 characters"})));
    }
    let mut tx = st.db.tx().await?;
    let o = find(&mut tx, &rid).await?;
    orgs::update_display(&mut tx, &o.id, &label, b.host.as_deref(), b.description.as_deref()).await?;
    let o = find(&mut tx, &rid).await?;
    tx.commit().await?;
    Ok(Json(org_json(&o)))
}

fn role_id(r: &roles::Role) -> String {
    if r.builtin {
        "organization:administrator".into()
    } else {
        format!("organization:{}", r.name)
    }
}

async fn list_roles(State(st): State<Arc<AppState>>, h: HeaderMap, Path(rid): Path<String>) -> FResult<Json<Value>> {
    let w = who(&h, &st).await?;
    if !w.can(R) {
        return Err(ferr(StatusCode::FORBIDDEN, "ListAvailableRolesOrganizationPermissionDenied", json!({"organizationRid": rid})));
    }
    let mut c = st.db.conn().await?;
    let o = find(&mut c, &rid).await?;
    let data: Vec<Value> = roles::list(&mut c, &o.id)
        .await?
        .iter()
        .map(|r| {
            let ops: Vec<String> = crate::perms::RESOURCES
                .iter()
                .filter(|(res, _, _)| r.perms.get(*res) > 0)
                .map(|(res, n, _)| format!("{n}:{}", r.perms.get(*res)))
                .collect();
            json!({"id": role_id(r), "roleSetId": "organization", "name": r.name,
                   "description": r.label.clone().unwrap_or_default(), "isDefault": r.builtin, "type": "ORGANIZATION", "operations": ops})
        })
        .collect();
    Ok(Json(json!({"data": data})))
}

async fn list_assignments(State(st): State<Arc<AppState>>, h: HeaderMap, Path(rid): Path<String>) -> FResult<Json<Value>> {
    let w = who(&h, &st).await?;
    if !w.can(R) {
        return Err(ferr(StatusCode::FORBIDDEN, "ListOrganizationRoleAssignmentsPermissionDenied", json!({"organizationRid": rid})));
    }
    let mut c = st.db.conn().await?;
    let o = find(&mut c, &rid).await?;
    let all_roles = roles::list(&mut c, &o.id).await?;
    let mut data = Vec::new();
    for (u, names) in users::members(&mut c, &o.id).await? {
        if u.is_machine() {
            continue;
        }
        for n in names {
            if let Some(r) = all_roles.iter().find(|r| r.name == n) {
                data.push(json!({"principalType": "USER", "principalId": u.id, "roleId": role_id(r)}));
            }
        }
    }
    Ok(Json(json!({"data": data})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Assignment {
    role_id: String,
    principal_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignmentsIn {
    role_assignments: Vec<Assignment>,
}

async fn change_assignments(st: &AppState, h: &HeaderMap, rid: &str, b: Body, add: bool) -> FResult<StatusCode> {
    let w = who(h, st).await?;
    let b: AssignmentsIn = body(st, b).await?;
    let name = if add { "AddOrganizationRoleAssignmentsPermissionDenied" } else { "RemoveOrganizationRoleAssignmentsPermissionDenied" };
    let denied = || ferr(StatusCode::FORBIDDEN, name, json!({"organizationRid": rid}));
    if !w.can(U) {
        return Err(denied());
    }
    if b.role_assignments.len() > 100 {
        return Err(ferr(
            StatusCode::BAD_REQUEST,
            "BatchRequestSizeExceededLimit",
            json!({"maximumBatchSize": 100, "providedBatchSize": b.role_assignments.len()}),
        ));
    }
    let mut tx = st.db.tx().await?;
    let o = find(&mut tx, rid).await?;
    let all_roles = roles::list(&mut tx, &o.id).await?;
    for a in &b.role_assignments {
        let role = all_roles
            .iter()
            .find(|r| role_id(r) == a.role_id)
            .ok_or_else(|| ferr(StatusCode::NOT_FOUND, "RoleNotFound", json!({"roleId": a.role_id})))?;
        let u = principal(&mut tx, &a.principal_id).await?;
        // In the operator organization a member (not the admin token) may neither grant
        // bits it does not hold nor touch a user stronger than itself — otherwise `orgs`
        // Update would be a path to the operator's Administrators role.
        if let (true, Who::Member(mine)) = (o.operator, &w) {
            let theirs = users::effective_perms(&mut tx, &o.id, &u.id).await?;
            if (add && !role.perms.subset_of(mine)) || !theirs.subset_of(mine) {
                return Err(denied());
            }
        }
        let mut ids: Vec<String> = Vec::new();
        for n in users::role_names(&mut tx, &o.id, &u.id).await? {
            if let Some(r) = all_roles.iter().find(|r| r.name == n) {
                ids.push(r.id.clone());
            }
        }
        if add {
            users::add_membership(&mut tx, &o.id, &u.id).await?;
            if !ids.contains(&role.id) {
                ids.push(role.id.clone());
            }
        } else {
            if !users::is_member(&mut tx, &o.id, &u.id).await? {
                return Err(ferr(StatusCode::NOT_FOUND, "PrincipalNotFound", json!({"principalId": a.principal_id})));
            }
            ids.retain(|i| *i != role.id);
        }
        users::set_roles(&mut tx, &o.id, &u.id, &ids).await?;
    }
    if !add && users::admin_count(&mut tx, &o.id).await? == 0 {
        return Err(ferr(
            StatusCode::BAD_REQUEST,
            "RemoveOrganizationRoleAssignmentsLastAdministratorNotAllowed",
            json!({"organizationRid": rid}),
        ));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_assignments(State(st): State<Arc<AppState>>, h: HeaderMap, Path(rid): Path<String>, b: Body) -> FResult<StatusCode> {
    change_assignments(&st, &h, &rid, b, true).await
}

async fn remove_assignments(State(st): State<Arc<AppState>>, h: HeaderMap, Path(rid): Path<String>, b: Body) -> FResult<StatusCode> {
    change_assignments(&st, &h, &rid, b, false).await
}

async fn current_enrollment(State(st): State<Arc<AppState>>, h: HeaderMap, RawQuery(raw): RawQuery) -> FResult<Json<Value>> {
    let w = who(&h, &st).await?;
    preview(&raw)?;
    if !w.can(R) {
        return Err(ferr(StatusCode::FORBIDDEN, "GetCurrentEnrollmentPermissionDenied", json!({})));
    }
    Ok(Json(json!({"rid": st.enrollment_rid, "name": st.cfg.enrollment_name, "createdTime": rfc3339(st.enrollment_created)})))
}
