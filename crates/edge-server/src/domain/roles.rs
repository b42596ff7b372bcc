//! Roles: the role body shared by the API and configuration bundles.

use serde::Deserialize;
use serde_json::Value;

/// The Create Role body (also a role item of a configuration bundle).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleIn {
    /// Unique in the organization: letters, digits, `_`, `-`, `.`.
    pub name: String,
    /// Free text.
    pub label: Option<String>,
    /// Bits per resource; resources not named get none.
    #[serde(default)]
    #[schema(value_type = Option<crate::perms::PermissionsSchema>)]
    pub permissions: Option<Value>,
}
