//! Roles: the role body shared by the API and configuration bundles, and the rules of
//! creating, changing and deleting a role (the no-escalation rule, the protected
//! `Administrators`), which the API and the console both call.

use crate::caller::Caller;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::names::{text, Name};
use crate::perms::{Perms, Resource, C, D, U};
use crate::store::roles::{self, Role};
use serde::Deserialize;
use serde_json::{json, Value};

/// The Create Role body (also a role item of a configuration bundle).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleIn {
    /// Unique in the organization: 2 to 50 letters, digits or `_`.
    pub name: String,
    /// Free text.
    pub label: Option<String>,
    /// Bits per resource; resources not named get none.
    #[serde(default)]
    #[schema(value_type = Option<crate::perms::PermissionsSchema>)]
    pub permissions: Option<Value>,
}

/// Creates a role. Checks in the API's order: the body (400), `roles: Create` (403), no
/// grant of a bit the caller lacks (403), a free name (409).
pub(crate) async fn create(db: &Db, c: &Caller, b: &RoleIn) -> ApiResult<Role> {
    let name = Name::parse("name", &b.name)?;
    let label = b.label.as_deref().map(|l| text("label", l, 1, 200)).transpose()?;
    let perms = match &b.permissions {
        Some(p) => Perms::parse_onto(Perms::default(), p, c.operator, "permissions")?,
        None => Perms::default(),
    };
    c.require(Resource::Roles, C)?;
    if !perms.subset_of(&c.perms) {
        return Err(ApiError::forbidden(NO_ESCALATION));
    }
    let mut tx = db.tx().await?;
    if roles::get(&mut tx, &c.org_id, name.as_str()).await?.is_some() {
        return Err(ApiError::conflict("item-exists", format!("role '{name}' exists")));
    }
    roles::insert(&mut tx, &c.org_id, name.as_str(), label.as_deref(), &perms, false).await?;
    let r = roles::get(&mut tx, &c.org_id, name.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("role vanished"))?;
    tx.commit().await?;
    Ok(r)
}

/// Changes a role's label (`Some(None)` removes it) and permission bits (resources not
/// named keep theirs). Only the bits the change adds count as a grant: keeping what a role
/// already had is not an escalation, but adding a bit the caller lacks is. The built-in
/// `Administrators` never changes (409).
pub(crate) async fn update(
    db: &Db,
    c: &Caller,
    name: &str,
    label: Option<Option<String>>,
    permissions: Option<&Value>,
) -> ApiResult<Role> {
    let label = match label {
        Some(Some(l)) => Some(Some(text("label", &l, 1, 200)?)),
        Some(None) => Some(None),
        None => None,
    };
    if let Some(p) = permissions {
        Perms::parse_onto(Perms::default(), p, c.operator, "permissions")?;
    }
    c.require(Resource::Roles, U)?;
    let mut tx = db.tx().await?;
    let r = roles::get(&mut tx, &c.org_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found("role", name))?;
    let perms = match permissions {
        Some(p) => Perms::parse_onto(r.perms, p, c.operator, "permissions")?,
        None => r.perms,
    };
    let mut added = Perms::default();
    for (res, _, _) in crate::perms::RESOURCES.iter() {
        let new_bits = perms.get(*res) & !r.perms.get(*res);
        if new_bits != 0 {
            let bits = json!({res.name(): new_bits});
            added = added.union(&Perms::parse_onto(Perms::default(), &bits, true, "permissions")?);
        }
    }
    if !added.subset_of(&c.perms) {
        return Err(ApiError::forbidden(NO_ESCALATION));
    }
    if r.builtin {
        return Err(ApiError::conflict("item-protected", "the Administrators role cannot change"));
    }
    let new_label = label.unwrap_or_else(|| r.label.clone());
    roles::update(&mut tx, &c.org_id, &r.id, new_label.as_deref(), &perms).await?;
    let r = roles::get(&mut tx, &c.org_id, name)
        .await?
        .ok_or_else(|| ApiError::internal("role vanished"))?;
    tx.commit().await?;
    Ok(r)
}

/// Deletes a role: never `Administrators` (409); one that users hold only with `force`,
/// which takes it from them (409 otherwise).
pub(crate) async fn delete(db: &Db, c: &Caller, name: &str, force: bool) -> ApiResult<()> {
    c.require(Resource::Roles, D)?;
    let mut tx = db.tx().await?;
    let r = roles::get(&mut tx, &c.org_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found("role", name))?;
    if r.builtin {
        return Err(ApiError::conflict(
            "item-protected",
            "the Administrators role cannot be deleted",
        ));
    }
    if r.users > 0 && !force {
        return Err(ApiError::conflict(
            "item-in-use",
            format!("role '{name}' is held by {} user(s); use force=true", r.users),
        ));
    }
    roles::delete(&mut tx, &c.org_id, &r.id).await?;
    tx.commit().await?;
    Ok(())
}

/// The refusal of a grant beyond the caller's own bits.
const NO_ESCALATION: &str = "a role may grant only bits you hold yourself";
