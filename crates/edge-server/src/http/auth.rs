//! Who is calling: the admin token (operator), and the backend caller resolved once per
//! request from exactly one credential (conventions.md, "Authentication").

use crate::crypto::jwt_verify;
use crate::error::{ApiError, ApiResult};
use crate::perms::{Perms, Resource};
use crate::state::AppState;
use crate::store::{apikeys, orgs, sessions, users};
use crate::util::{ct_eq, now_ms, sha256_hex};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use std::sync::Arc;

/// The operator, authenticated by the admin token.
pub struct Admin {
    /// The token's `username` claim (recorded in the audit log).
    pub username: String,
}

/// The admin token from `x-rockit-admin-token` or `Authorization: Bearer`.
pub fn admin_from_headers(h: &HeaderMap, st: &AppState) -> Option<Admin> {
    let tok = header(h, "x-rockit-admin-token").or_else(|| bearer(h))?;
    let claims = jwt_verify(&tok, &st.admin_key.0, now_ms() / 1000)?;
    let username = claims.get("username")?.as_str()?.to_string();
    Some(Admin { username })
}

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, ApiError> {
        admin_from_headers(&parts.headers, st).ok_or_else(|| ApiError::unauthorized("a valid admin token is required"))
    }
}

/// An authenticated backend caller with its organization and effective permissions.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub username: String,
    /// `user` or `machine`.
    pub kind: String,
    pub org_id: String,
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
            Err(ApiError::forbidden(format!("permission {}:{} required", r.name(), bits)))
        }
    }
}

/// A header's value as text (`None` when absent or not visible ASCII).
pub fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer(h: &HeaderMap) -> Option<String> {
    let v = header(h, "authorization")?;
    let (scheme, tok) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| tok.trim().to_string()).filter(|t| !t.is_empty())
}

enum Credential {
    Token(String),
    Triple { org: String, user: String, key: String },
}

fn credential(h: &HeaderMap) -> ApiResult<Credential> {
    let b = bearer(h);
    let old = header(h, "x-rockit-beauth-token");
    let triple = [header(h, "x-rockit-orgname"), header(h, "x-rockit-username"), header(h, "x-rockit-api-key")];
    let n_triple = triple.iter().filter(|x| x.is_some()).count();
    if n_triple > 0 && n_triple < 3 {
        return Err(ApiError::unauthorized("x-rockit-orgname, x-rockit-username and x-rockit-api-key go together"));
    }
    let mut tokens: Vec<String> = [b, old].into_iter().flatten().collect();
    tokens.dedup();
    if n_triple == 3 {
        let [Some(org), Some(user), Some(key)] = triple else { unreachable!() };
        if tokens.iter().any(|t| *t != key) {
            return Err(ApiError::bad_request("more than one credential in one request"));
        }
        return Ok(Credential::Triple { org, user, key });
    }
    match tokens.len() {
        0 => Err(ApiError::unauthorized("credentials required")),
        1 => Ok(Credential::Token(tokens.remove(0))),
        _ => Err(ApiError::bad_request("more than one credential in one request")),
    }
}

/// Resolves the caller from headers (used by the extractor and the Foundry API).
pub async fn resolve_caller(h: &HeaderMap, st: &AppState) -> ApiResult<Caller> {
    let cred = credential(h)?;
    let unauthorized = || ApiError::unauthorized("invalid or expired credentials");
    let mut c = st.db.pool.acquire().await?;
    let (org_id, user_id, session_id, key_id) = match cred {
        Credential::Token(t) if t.starts_with("rk_") => {
            let k = check_key(&mut c, &t).await?.ok_or_else(unauthorized)?;
            (k.org_id, k.user_id, None, Some(k.key_id))
        }
        Credential::Token(t) => {
            let g = sessions::access(&mut c, &t).await?.ok_or_else(unauthorized)?;
            (g.org_id, g.user_id, Some(g.session_id), None)
        }
        Credential::Triple { org, user, key } => {
            let k = check_key(&mut c, &key).await?.ok_or_else(unauthorized)?;
            if k.username != user {
                return Err(unauthorized());
            }
            let o = orgs::by_name(&mut c, &org).await?.ok_or_else(unauthorized)?;
            if o.id != k.org_id {
                return Err(unauthorized());
            }
            (k.org_id, k.user_id, None, Some(k.key_id))
        }
    };
    // The membership must still exist: keys and sessions die with it.
    let u = users::by_id(&mut c, &user_id).await?.ok_or_else(unauthorized)?;
    if !users::is_member(&mut c, &org_id, &user_id).await? {
        return Err(unauthorized());
    }
    let o = orgs::brief(&mut c, &org_id).await?.ok_or_else(unauthorized)?;
    let perms = users::effective_perms(&mut c, &org_id, &user_id).await?;
    if let Some(k) = &key_id {
        apikeys::touch(&mut c, k).await?;
    }
    Ok(Caller { user_id, username: u.username, kind: u.kind, org_id, org_name: o.0, operator: o.1, perms, session_id, key_id })
}

async fn check_key(c: &mut crate::store::Conn, key: &str) -> ApiResult<Option<apikeys::ApiKey>> {
    let Some((id, secret)) = apikeys::split(key) else {
        return Ok(None);
    };
    let Some(k) = apikeys::by_id(c, id).await? else {
        return Ok(None);
    };
    if !ct_eq(sha256_hex(secret.as_bytes()).as_bytes(), k.secret_hash.as_bytes()) {
        return Ok(None);
    }
    if k.expires.is_some_and(|e| e <= now_ms()) {
        return Ok(None);
    }
    Ok(Some(k))
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, ApiError> {
        resolve_caller(&parts.headers, st).await
    }
}
