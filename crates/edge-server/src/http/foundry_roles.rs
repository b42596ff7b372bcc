//! The roles of an organization through the Foundry API: the roles it has, who holds
//! them, and adding and removing role assignments.

use super::{body, ferr, find, principal, who, FReply, FResult, Who};
use super::{
    FoundryAssignmentsIn, FoundryError, FoundryPrincipalType, FoundryRole, FoundryRoleAssignment,
    FoundryRoleAssignments, FoundryRoleType, FoundryRoles,
};
use crate::perms::{R, U};
use crate::state::AppState;
use crate::store::{roles, users};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;
use std::sync::Arc;

fn role_id(r: &roles::Role) -> String {
    if r.builtin {
        "organization:administrator".into()
    } else {
        format!("organization:{}", r.name)
    }
}

/// Foundry: list available roles
#[utoipa::path(get, path = "/api/v2/admin/organizations/{rid}/listAvailableRoles", tag = "foundry",
    params(("rid" = String, Path, description = "The organization's resource id")),
    responses(
        (status = 200, description = "The organization's roles", body = FoundryRoles),
        (status = 401, description = "`Default:Unauthorized`: no valid bearer token", body = FoundryError),
        (status = 403, description = "`ListAvailableRolesOrganizationPermissionDenied`", body = FoundryError),
        (status = 404, description = "`OrganizationNotFound` (`parameters.organizationRid`)", body = FoundryError),
        (status = "default", description = "Any other failure (`Default:Internal`)", body = FoundryError),
    ),
    extensions(("x-rockit-auth" = json!("orgs:R"))))]
pub(super) async fn list_roles(
    State(st): State<Arc<AppState>>,
    h: HeaderMap,
    Path(rid): Path<String>,
) -> FResult<FReply<FoundryRoles>> {
    let w = who(&h, &st).await?;
    if !w.can(R) {
        return Err(ferr(
            StatusCode::FORBIDDEN,
            "ListAvailableRolesOrganizationPermissionDenied",
            json!({"organizationRid": rid}),
        ));
    }
    let mut c = st.db.conn().await?;
    let o = find(&mut c, &rid).await?;
    let data = roles::list(&mut c, &o.id)
        .await?
        .iter()
        .map(|r| {
            let operations: Vec<String> = crate::perms::RESOURCES
                .iter()
                .filter(|(res, _, _)| r.perms.get(*res) > 0)
                .map(|(res, n, _)| format!("{n}:{}", r.perms.get(*res)))
                .collect();
            FoundryRole {
                id: role_id(r),
                role_set_id: "organization",
                name: r.name.clone(),
                description: r.label.clone().unwrap_or_default(),
                is_default: r.builtin,
                kind: FoundryRoleType::Organization,
                operations,
            }
        })
        .collect();
    Ok(FReply(FoundryRoles { data }))
}

/// Foundry: list role assignments
#[utoipa::path(get, path = "/api/v2/admin/organizations/{rid}/roleAssignments", tag = "foundry",
    params(("rid" = String, Path, description = "The organization's resource id")),
    responses(
        (status = 200, description = "Who holds which role", body = FoundryRoleAssignments),
        (status = 401, description = "`Default:Unauthorized`: no valid bearer token", body = FoundryError),
        (status = 403, description = "`ListOrganizationRoleAssignmentsPermissionDenied`", body = FoundryError),
        (status = 404, description = "`OrganizationNotFound` (`parameters.organizationRid`)", body = FoundryError),
        (status = "default", description = "Any other failure (`Default:Internal`)", body = FoundryError),
    ),
    extensions(("x-rockit-auth" = json!("orgs:R"))))]
pub(super) async fn list_assignments(
    State(st): State<Arc<AppState>>,
    h: HeaderMap,
    Path(rid): Path<String>,
) -> FResult<FReply<FoundryRoleAssignments>> {
    let w = who(&h, &st).await?;
    if !w.can(R) {
        return Err(ferr(
            StatusCode::FORBIDDEN,
            "ListOrganizationRoleAssignmentsPermissionDenied",
            json!({"organizationRid": rid}),
        ));
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
                data.push(FoundryRoleAssignment {
                    principal_type: FoundryPrincipalType::User,
                    principal_id: u.id.to_string(),
                    role_id: role_id(r),
                });
            }
        }
    }
    Ok(FReply(FoundryRoleAssignments { data }))
}

async fn change_assignments(
    st: &AppState,
    h: &HeaderMap,
    rid: &str,
    b: Body,
    add: bool,
) -> FResult<StatusCode> {
    let w = who(h, st).await?;
    let b: FoundryAssignmentsIn = body(st, b).await?;
    let name = if add {
        "AddOrganizationRoleAssignmentsPermissionDenied"
    } else {
        "RemoveOrganizationRoleAssignmentsPermissionDenied"
    };
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
        let role = all_roles.iter().find(|r| role_id(r) == a.role_id).ok_or_else(|| {
            ferr(StatusCode::NOT_FOUND, "RoleNotFound", json!({"roleId": a.role_id}))
        })?;
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
                return Err(ferr(
                    StatusCode::NOT_FOUND,
                    "PrincipalNotFound",
                    json!({"principalId": a.principal_id}),
                ));
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

/// Foundry: add role assignments
///
/// Each user becomes a member (when not one yet) and gets the role; all or nothing. In
/// the operator organization a member (not the admin token) may only give roles whose
/// bits it holds, and only to users no stronger than itself (403 otherwise).
#[utoipa::path(post, path = "/api/v2/admin/organizations/{rid}/roleAssignments/add", tag = "foundry",
    params(("rid" = String, Path, description = "The organization's resource id")),
    request_body = FoundryAssignmentsIn,
    responses(
        (status = 204, description = "Added"),
        (status = 400, description = "`Conjure:InvalidArgument` (a malformed body), `BatchRequestSizeExceededLimit` (over 100)", body = FoundryError),
        (status = 401, description = "`Default:Unauthorized`: no valid bearer token", body = FoundryError),
        (status = 403, description = "`AddOrganizationRoleAssignmentsPermissionDenied`", body = FoundryError),
        (status = 404, description = "`OrganizationNotFound`, `RoleNotFound` (`parameters.roleId`), `PrincipalNotFound` (`parameters.principalId`: no such person)", body = FoundryError),
        (status = 413, description = "`Conjure:RequestEntityTooLarge`", body = FoundryError),
        (status = "default", description = "Any other failure (`Default:Internal`)", body = FoundryError),
    ),
    extensions(("x-rockit-auth" = json!("orgs:U"))))]
pub(super) async fn add_assignments(
    State(st): State<Arc<AppState>>,
    h: HeaderMap,
    Path(rid): Path<String>,
    b: Body,
) -> FResult<StatusCode> {
    change_assignments(&st, &h, &rid, b, true).await
}

/// Foundry: remove role assignments
///
/// Takes each role from each user (who stays a member); all or nothing. The organization
/// keeps at least one administrator. In the operator organization a member (not the
/// admin token) may only change users no stronger than itself (403 otherwise).
#[utoipa::path(post, path = "/api/v2/admin/organizations/{rid}/roleAssignments/remove", tag = "foundry",
    params(("rid" = String, Path, description = "The organization's resource id")),
    request_body = FoundryAssignmentsIn,
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "`Conjure:InvalidArgument` (a malformed body), `BatchRequestSizeExceededLimit` (over 100), `RemoveOrganizationRoleAssignmentsLastAdministratorNotAllowed`", body = FoundryError),
        (status = 401, description = "`Default:Unauthorized`: no valid bearer token", body = FoundryError),
        (status = 403, description = "`RemoveOrganizationRoleAssignmentsPermissionDenied`", body = FoundryError),
        (status = 404, description = "`OrganizationNotFound`, `RoleNotFound` (`parameters.roleId`), `PrincipalNotFound` (`parameters.principalId`: no such person, or not a member)", body = FoundryError),
        (status = 413, description = "`Conjure:RequestEntityTooLarge`", body = FoundryError),
        (status = "default", description = "Any other failure (`Default:Internal`)", body = FoundryError),
    ),
    extensions(("x-rockit-auth" = json!("orgs:U"))))]
pub(super) async fn remove_assignments(
    State(st): State<Arc<AppState>>,
    h: HeaderMap,
    Path(rid): Path<String>,
    b: Body,
) -> FResult<StatusCode> {
    change_assignments(&st, &h, &rid, b, false).await
}
