//! Roles: the role body shared by the API and configuration bundles.

use serde::Deserialize;
use serde_json::Value;

/// The Create Role body (also a role item of a configuration bundle).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleIn {
    pub name: String,
    pub label: Option<String>,
    #[serde(default)]
    pub permissions: Option<Value>,
}
