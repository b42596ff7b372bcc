//! Who calls the backend API: the identity, organization and effective permissions that
//! every rule of the domain layer is checked against, however the caller authenticated.

use crate::error::{ApiError, ApiResult};
use crate::perms::{Perms, Resource};

/// An authenticated backend caller with its organization and effective permissions.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: crate::ids::UserId,
    pub username: String,
    /// `user` or `machine`.
    pub kind: String,
    pub org_id: crate::ids::OrgId,
    pub org_name: String,
    /// True in the operator organization.
    pub operator: bool,
    pub perms: Perms,
    /// The login session, when the credential was an access token.
    pub session_id: Option<String>,
    /// The API key, when the credential was one.
    pub key_id: Option<String>,
}

impl Caller {
    /// 403 unless every bit of `bits` is held on `r`.
    pub fn require(&self, r: Resource, bits: u8) -> ApiResult<()> {
        if self.perms.has(r, bits) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "permission {}: {} required",
                r.name(),
                crate::perms::bit_names(bits)
            )))
        }
    }
}
