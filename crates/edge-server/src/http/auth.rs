//! Who is calling: the admin token (operator), and the backend caller resolved once per
//! request from exactly one credential (conventions.md, "Authentication").

pub use crate::caller::Caller;
use crate::crypto::jwt_verify;
use crate::error::{ApiError, ApiResult};
use crate::perms::Perms;
use crate::state::AppState;
use crate::store::{apikeys, credentials};
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
        admin_from_headers(&parts.headers, st)
            .ok_or_else(|| ApiError::unauthorized("a valid admin token is required"))
    }
}

/// A header's value as text (`None` when absent or not visible ASCII).
pub fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
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
    let triple = [
        header(h, "x-rockit-orgname"),
        header(h, "x-rockit-username"),
        header(h, "x-rockit-api-key"),
    ];
    let n_triple = triple.iter().filter(|x| x.is_some()).count();
    if n_triple > 0 && n_triple < 3 {
        return Err(ApiError::unauthorized(
            "x-rockit-orgname, x-rockit-username and x-rockit-api-key go together",
        ));
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

/// Resolves the caller from headers (used by the extractor and the Foundry API), through
/// the authentication cache when it is on.
pub async fn resolve_caller(h: &HeaderMap, st: &AppState) -> ApiResult<Caller> {
    let cred = credential(h)?;
    let key = match &cred {
        Credential::Token(t) => sha256_hex(t.as_bytes()),
        Credential::Triple { org, user, key } => {
            sha256_hex(format!("{org}\n{user}\n{key}").as_bytes())
        }
    };
    let epoch = crate::db::WRITE_EPOCH.load(std::sync::atomic::Ordering::SeqCst);
    if let Some(c) = st.auth_cache_get(&key, epoch) {
        return Ok(c);
    }
    let (caller, valid_until) = resolve_uncached(cred, st).await?;
    st.auth_cache_put(key, &caller, epoch, valid_until);
    Ok(caller)
}

/// Resolves the caller from the database; returns it with the time its credential expires.
async fn resolve_uncached(cred: Credential, st: &AppState) -> ApiResult<(Caller, i64)> {
    let unauthorized = || ApiError::unauthorized("invalid or expired credentials");
    let now = now_ms();
    let (key_id, secret, want) = match &cred {
        Credential::Token(t) if t.starts_with("rk_") => {
            let (id, secret) = apikeys::split(t).ok_or_else(unauthorized)?;
            (Some(id.to_string()), Some(secret.to_string()), None)
        }
        Credential::Token(_) => (None, None, None),
        Credential::Triple { org, user, key } => {
            let (id, secret) = apikeys::split(key).ok_or_else(unauthorized)?;
            (Some(id.to_string()), Some(secret.to_string()), Some((org.clone(), user.clone())))
        }
    };
    let mut c = st.db.conn().await?;
    let rows = match (&key_id, &cred) {
        (Some(id), _) => credentials::by_api_key(&mut c, id).await?,
        (None, Credential::Token(t)) => {
            credentials::by_access_token(&mut c, &sha256_hex(t.as_bytes()), now).await?
        }
        (None, Credential::Triple { .. }) => return Err(unauthorized()),
    };
    drop(c);
    let first = rows.first().ok_or_else(unauthorized)?;
    let is_key = secret.is_some();
    if let Some(secret) = &secret {
        if !ct_eq(
            sha256_hex(secret.as_bytes()).as_bytes(),
            first.secret_hash.as_deref().unwrap_or("").as_bytes(),
        ) || first.expires.is_some_and(|e| e <= now)
        {
            return Err(unauthorized());
        }
    }
    let (org_name, username) = (first.org_name.clone(), first.username.clone());
    if let Some((org, user)) = want {
        // In the machine triple, org and username must be the key's.
        if org != org_name || user != username {
            return Err(unauthorized());
        }
    }
    let perms = rows
        .iter()
        .filter_map(|r| r.perms.as_deref())
        .fold(Perms::default(), |acc, p| acc.union(&Perms::from_db(p)));
    let cred_id = first.cred.clone();
    if is_key && first.last_used.is_none_or(|t| t < now - 60_000) {
        let mut c = st.db.conn().await?;
        apikeys::touch(&mut c, &cred_id).await?;
    }
    let valid_until = first.expires.unwrap_or(i64::MAX);
    Ok((
        Caller {
            user_id: first.user_id.clone(),
            username,
            kind: first.kind.clone(),
            org_id: first.org_id.clone(),
            org_name,
            operator: first.operator == 1,
            perms,
            session_id: (!is_key).then(|| cred_id.clone()),
            key_id: is_key.then_some(cred_id),
        },
        valid_until,
    ))
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, ApiError> {
        let c = resolve_caller(&parts.headers, st).await?;
        if let Some(slot) = parts.extensions.get::<super::LogOrg>() {
            let _ = slot.0.set(c.org_name.clone());
        }
        Ok(c)
    }
}
