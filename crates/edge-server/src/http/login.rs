//! Login, refresh, logout and the older session/auth-token exchange (identity.md).

use super::auth::{bearer, header};
use super::extract::{success, JsonBody, OptJsonBody};
use crate::error::{ApiError, ApiResult};
use crate::ratelimit;
use crate::state::AppState;
use crate::store::{orgs, sessions, users, Conn};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/login", post(login))
        .route("/be/v1/refresh", post(refresh))
        .route("/be/v1/logout", post(logout))
        .route("/be/v1/auth", post(auth))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LoginIn {
    username: Option<String>,
    password: Option<String>,
    org_selection_token: Option<String>,
    org_name: Option<String>,
    #[serde(rename = "accessTTL")]
    access_ttl: Option<u64>,
    #[serde(rename = "refreshTTL")]
    refresh_ttl: Option<u64>,
}

fn generic_401() -> ApiError {
    ApiError::unauthorized("wrong username or password")
}

async fn login(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(b): JsonBody<LoginIn>,
) -> ApiResult<Json<Value>> {
    if bearer(&headers).is_some() || header(&headers, "x-rockit-api-key").is_some() {
        return Err(ApiError::bad_request("login takes no credentials in headers"));
    }
    for (f, v) in [("accessTTL", b.access_ttl), ("refreshTTL", b.refresh_ttl)] {
        if v == Some(0) {
            return Err(ApiError::invalid(f, format!("{f} must be a positive number of seconds")));
        }
    }
    let ttls = (
        b.access_ttl.unwrap_or(st.cfg.access_ttl).min(st.cfg.access_ttl),
        b.refresh_ttl.unwrap_or(st.cfg.refresh_ttl).min(st.cfg.refresh_ttl),
    );
    if let Some(tok) = b.org_selection_token {
        if b.username.is_some() || b.password.is_some() {
            return Err(ApiError::bad_request("orgSelectionToken goes without username and password"));
        }
        let org = b.org_name.ok_or_else(|| ApiError::invalid("orgName", "missing field 'orgName'"))?;
        let mut tx = st.db.tx().await?;
        let user =
            sessions::org_selection(&mut tx, &tok).await?.ok_or_else(|| ApiError::unauthorized("invalid or expired orgSelectionToken"))?;
        let out = open_session(&mut tx, &user, &org, ttls).await?;
        tx.commit().await?;
        return Ok(out);
    }
    let username = b.username.ok_or_else(|| ApiError::invalid("username", "missing field 'username'"))?;
    let password = b.password.ok_or_else(|| ApiError::invalid("password", "missing field 'password'"))?;
    let client = ratelimit::client_key(&st, peer, &headers);
    // Counted before the check, so parallel guesses cannot pass the limit together.
    let attempt = ratelimit::reserve(&st, &username, &client).await?;
    let user = users::by_username(&mut *st.db.conn().await?, &username).await?;
    // Check a hash either way so an unknown username takes as long as a wrong password.
    // No connection is held meanwhile (`db::held`).
    let hash = user.as_ref().and_then(|u| u.pw_hash.clone()).unwrap_or_else(|| st.dummy_hash.clone());
    let ok = match st.passwords.verify(password, hash).await {
        Ok(ok) => ok,
        Err(e) => {
            // Not checked (too busy): the attempt does not count.
            attempt.release(&st).await?;
            return Err(e);
        }
    };
    let user = match user {
        Some(u) if ok && !u.is_machine() && u.pw_hash.is_some() => u,
        _ => {
            attempt.failed(&st).await?;
            return Err(generic_401());
        }
    };
    attempt.release(&st).await?;
    let mut tx = st.db.tx().await?;
    let out = match b.org_name {
        Some(org) => open_session(&mut tx, &user.id, &org, ttls).await?,
        None => {
            let orgs: Vec<Value> =
                users::orgs_of(&mut tx, &user.id).await?.into_iter().map(|(_, n, l)| json!({"name": n, "label": l})).collect();
            let tok = sessions::issue(&mut tx, "orgsel", &user.id, None, st.cfg.orgsel_ttl).await?;
            success(json!({"orgSelectionToken": tok, "expiresIn": st.cfg.orgsel_ttl, "orgs": orgs}))
        }
    };
    tx.commit().await?;
    Ok(out)
}

/// Opens a session of `user` in org `org_name` and answers with the token pair, in the
/// caller's transaction.
async fn open_session(tx: &mut Conn, user: &str, org_name: &str, ttls: (u64, u64)) -> ApiResult<Json<Value>> {
    let forbidden = || ApiError::forbidden("not a member of that organization");
    let org = orgs::by_name(tx, org_name).await?.ok_or_else(forbidden)?;
    if !users::is_member(tx, &org.id, user).await? {
        return Err(forbidden());
    }
    let session = sessions::create(tx, &org.id, user, ttls.1).await?;
    users::touch_login(tx, user).await?;
    token_pair(tx, &session, &org.id, user, ttls).await
}

/// Issues an access and a refresh token of `session`, in the caller's transaction.
async fn token_pair(tx: &mut Conn, session: &str, org_id: &str, user: &str, ttls: (u64, u64)) -> ApiResult<Json<Value>> {
    let u = users::by_id(tx, user).await?.ok_or_else(|| ApiError::unauthorized("user no longer exists"))?;
    let (org_name, operator) = orgs::brief(tx, org_id).await?.ok_or_else(|| ApiError::unauthorized("organization no longer exists"))?;
    let perms = users::effective_perms(tx, org_id, user).await?;
    let access = sessions::issue(tx, "access", user, Some(session), ttls.0).await?;
    let refresh = sessions::issue(tx, "refresh", user, Some(session), ttls.1).await?;
    Ok(success(json!({
        "accessToken": access, "refreshToken": refresh, "accessExpiresIn": ttls.0, "refreshExpiresIn": ttls.1,
        "orgName": org_name, "username": u.username, "permissions": perms.to_json(operator),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RefreshIn {
    refresh_token: Option<String>,
}

async fn refresh(State(st): State<Arc<AppState>>, headers: HeaderMap, OptJsonBody(b): OptJsonBody<RefreshIn>) -> ApiResult<Json<Value>> {
    let from_body = b.and_then(|b| b.refresh_token);
    let tok = match (bearer(&headers), from_body) {
        (Some(a), Some(b)) if a != b => return Err(ApiError::bad_request("two different refresh tokens")),
        (Some(a), _) => a,
        (None, Some(b)) => b,
        (None, None) => return Err(ApiError::unauthorized("refresh token required")),
    };
    let mut tx = st.db.tx().await?;
    let outcome = sessions::refresh(&mut tx, &tok, true, st.cfg.refresh_grace_seconds).await?;
    let grant = match outcome {
        sessions::Refresh::Rotated(g) => g,
        other => {
            // A reuse ends the session: that must stick although the answer is an error.
            tx.commit().await?;
            if matches!(other, sessions::Refresh::Reused) {
                tracing::warn!("refresh token reuse: session revoked");
                return Err(ApiError::unauthorized("refresh token already used; the session has been ended"));
            }
            return Err(ApiError::unauthorized("invalid or expired refresh token"));
        }
    };
    if !users::is_member(&mut tx, &grant.org_id, &grant.user_id).await? {
        // The old token stays used up, as before the membership was looked at.
        tx.commit().await?;
        return Err(ApiError::unauthorized("membership ended"));
    }
    let out = token_pair(&mut tx, &grant.session_id, &grant.org_id, &grant.user_id, (st.cfg.access_ttl, st.cfg.refresh_ttl)).await?;
    tx.commit().await?;
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogoutIn {
    all: Option<bool>,
}

async fn logout(State(st): State<Arc<AppState>>, headers: HeaderMap, OptJsonBody(b): OptJsonBody<LogoutIn>) -> ApiResult<Json<Value>> {
    let tok = match (bearer(&headers), header(&headers, "x-rockit-beauth-token")) {
        (Some(a), Some(b)) if a != b => return Err(ApiError::bad_request("more than one credential in one request")),
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => return Err(ApiError::unauthorized("the session's access or refresh token is required")),
    };
    let all = b.and_then(|b| b.all).unwrap_or(false);
    let mut tx = st.db.tx().await?;
    let (session, user) = if let Some(g) = sessions::access(&mut tx, &tok).await? {
        (g.session_id, g.user_id)
    } else if let sessions::Refresh::Rotated(g) = sessions::refresh(&mut tx, &tok, false, st.cfg.refresh_grace_seconds).await? {
        (g.session_id, g.user_id)
    } else {
        return Err(ApiError::unauthorized("invalid or expired token"));
    };
    sessions::revoke(&mut tx, &session).await?;
    if all {
        sessions::revoke_user(&mut tx, &user, None).await?;
    }
    tx.commit().await?;
    Ok(success(json!({"message": "logged out"})))
}

async fn auth(State(st): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let tok = header(&headers, "x-rockit-besession-token").ok_or_else(|| ApiError::unauthorized("x-rockit-besession-token required"))?;
    let mut tx = st.db.tx().await?;
    let outcome = sessions::refresh(&mut tx, &tok, false, st.cfg.refresh_grace_seconds).await?;
    let grant = match outcome {
        sessions::Refresh::Rotated(g) => g,
        _ => {
            tx.commit().await?;
            return Err(ApiError::unauthorized("invalid, expired or rotated session token"));
        }
    };
    if !users::is_member(&mut tx, &grant.org_id, &grant.user_id).await? {
        return Err(ApiError::unauthorized("membership ended"));
    }
    let access = sessions::issue(&mut tx, "access", &grant.user_id, Some(&grant.session_id), st.cfg.access_ttl).await?;
    tx.commit().await?;
    Ok(success(json!({"authToken": access, "expiresIn": st.cfg.access_ttl})))
}
