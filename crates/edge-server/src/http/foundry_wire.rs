//! The bodies, answers and error of the Foundry-compatible API, in Foundry's own shapes:
//! no `status` envelope, camelCase fields, and Foundry's error object instead of ours.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Foundry's class of an error; it follows the HTTP status.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FoundryErrorCode {
    /// 400.
    InvalidArgument,
    /// 401.
    Unauthorized,
    /// 403.
    PermissionDenied,
    /// 404.
    NotFound,
    /// 409.
    Conflict,
    /// 413.
    RequestEntityTooLarge,
    /// 500.
    Internal,
}

/// A failure of the Foundry API (any status ≥ 400), in Foundry's shape.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FoundryError {
    /// The class of the error, following the HTTP status.
    pub error_code: FoundryErrorCode,
    /// The error itself (`OrganizationNotFound`, `Default:Unauthorized`, …), named in
    /// each operation's responses.
    pub error_name: &'static str,
    /// A fresh UUID naming this occurrence (for the server's log).
    pub error_instance_id: String,
    /// What the error is about; the keys depend on `errorName` (`organizationRid`,
    /// `principalId`, `roleId`, …), often none.
    #[schema(value_type = Object)]
    pub parameters: Value,
}

/// A Foundry organization (an Edge organization seen through Foundry).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FoundryOrganization {
    /// Its resource id (`ri.multipass..organization.…`).
    pub rid: String,
    /// Its display name (the Edge organization's label).
    pub name: String,
    /// The id of the marking that guards it.
    pub marking_id: String,
    /// Its host name, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub host: Option<String>,
    /// Its description, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub description: Option<String>,
}

/// The Create Organization body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FoundryCreateOrganization {
    /// Ids of the users (persons, not machine users) who get the `Administrators` role; at
    /// least one.
    pub administrators: Vec<String>,
    /// The instance's enrollment (`GET /api/v2/admin/enrollments/getCurrent`).
    pub enrollment_rid: String,
    /// The display name, 1 to 200 characters (trimmed), unique on the instance. The Edge
    /// name is derived from it (letters, digits and `_`, at most 50).
    pub name: String,
    /// A host name (labels of letters, digits and `-`, at most 253 characters).
    pub host: Option<String>,
    /// Free text.
    pub description: Option<String>,
}

/// The Replace Organization body: the display fields, all replaced.
#[derive(Deserialize, ToSchema)]
pub struct FoundryReplaceOrganization {
    /// The display name, 1 to 200 characters (trimmed).
    pub name: String,
    /// A host name; absent or null removes it.
    pub host: Option<String>,
    /// Free text; absent or null removes it.
    pub description: Option<String>,
}

/// What a Foundry role is.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FoundryRoleType {
    /// A role of an organization (the only kind here).
    Organization,
}

/// A role of the organization, in Foundry's shape.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FoundryRole {
    /// `organization:administrator` for the built-in `Administrators`, else
    /// `organization:<role name>`.
    pub id: String,
    /// Always `organization`.
    pub role_set_id: &'static str,
    /// The Edge role's name.
    pub name: String,
    /// The Edge role's label; empty when it has none.
    pub description: String,
    /// True for the built-in `Administrators`.
    pub is_default: bool,
    /// Always `ORGANIZATION`.
    #[serde(rename = "type")]
    pub kind: FoundryRoleType,
    /// The role's permissions, one `<resource>:<bits>` per resource it grants anything on
    /// (bits: 1 Create, 2 Read, 4 Update, 8 Delete, 16 Execute).
    pub operations: Vec<String>,
}

/// The roles of an organization.
#[derive(Serialize, ToSchema)]
pub struct FoundryRoles {
    /// Every role of the organization.
    pub data: Vec<FoundryRole>,
}

/// Who holds a role.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FoundryPrincipalType {
    /// A person (machine users are not shown).
    User,
}

/// One role held by one user.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FoundryRoleAssignment {
    /// Always `USER`.
    pub principal_type: FoundryPrincipalType,
    /// The user's id.
    pub principal_id: String,
    /// The role (`FoundryRole.id`).
    pub role_id: String,
}

/// The role assignments of an organization.
#[derive(Serialize, ToSchema)]
pub struct FoundryRoleAssignments {
    /// One entry per role per person (machine users are left out).
    pub data: Vec<FoundryRoleAssignment>,
}

/// One assignment to add or remove.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FoundryAssignmentIn {
    /// The role (`FoundryRole.id`).
    pub role_id: String,
    /// The user's id (a person).
    pub principal_id: String,
}

/// The Add / Remove Role Assignments body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FoundryAssignmentsIn {
    /// At most 100 assignments, applied in order, all or nothing.
    pub role_assignments: Vec<FoundryAssignmentIn>,
}

/// The instance's enrollment.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FoundryEnrollment {
    /// Its resource id (the `enrollmentRid` of Create Organization).
    pub rid: String,
    /// Its name (the configured `enrollment_name`).
    pub name: String,
    /// When it was made (RFC 3339).
    pub created_time: String,
}
