//! Login, refresh, logout and the older session/auth-token exchange (identity.md).
//!
//! A login has one or two steps: username and password alone answer the organizations to
//! choose from and an organization-selection token ([`OrgChoice`]); that token with an
//! `orgName` (or the password with an `orgName` at once) opens a session and answers its
//! token pair ([`TokenPair`]).

use super::auth::{bearer, header};
use super::extract::{JsonBody, OptJsonBody};
use super::reply::{Message, Reply, Success};
use crate::domain::login::{self as login_rules, LoginInput, LoginOutcome};
use crate::domain::sessions::{self as session_rules, SessionTokens};
use crate::error::{ApiError, ApiResult};
use crate::perms::PermissionsSchema;
use crate::ratelimit;
use crate::state::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use utoipa::ToSchema;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/login", post(login))
        .route("/be/v1/refresh", post(refresh))
        .route("/be/v1/logout", post(logout))
        .route("/be/v1/auth", post(auth))
}

/// The Login body as the handler reads it: every field optional, the steps told apart by
/// which are present (so that a missing field is named in the 400 of its step).
/// `/openapi.json` describes it as [`LoginRequest`].
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

/// A login with a person's password: without `orgName` it answers the organizations to
/// choose from (`OrgChoice`); with `orgName` it opens a session there (`TokenPair`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // describes the body `LoginIn` reads
struct PasswordLogin {
    /// The person's username (machine users log in with API keys, never here).
    username: String,
    /// The person's password.
    password: String,
    /// The organization to open a session in; without it the answer is the choice of
    /// organizations.
    org_name: Option<String>,
    /// Lifetime of the access token in seconds; capped at the server's maximum, which is
    /// also the default. Used only when a session is opened.
    #[serde(rename = "accessTTL")]
    #[schema(minimum = 1)]
    access_ttl: Option<u64>,
    /// Lifetime of the refresh token (and the session) in seconds; capped at the server's
    /// maximum, which is also the default. Used only when a session is opened.
    #[serde(rename = "refreshTTL")]
    #[schema(minimum = 1)]
    refresh_ttl: Option<u64>,
}

/// The second step of a login: the token of the first step and the organization chosen.
/// It answers a session's `TokenPair`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // describes the body `LoginIn` reads
struct OrgSelectionLogin {
    /// The `orgSelectionToken` of the first step (reusable until it expires).
    org_selection_token: String,
    /// The organization to open a session in, one of the first step's `orgs`.
    org_name: String,
    /// Lifetime of the access token in seconds; capped at the server's maximum, which is
    /// also the default.
    #[serde(rename = "accessTTL")]
    #[schema(minimum = 1)]
    access_ttl: Option<u64>,
    /// Lifetime of the refresh token (and the session) in seconds; capped at the server's
    /// maximum, which is also the default.
    #[serde(rename = "refreshTTL")]
    #[schema(minimum = 1)]
    refresh_ttl: Option<u64>,
}

/// The Login body: a password login (step 1, or both steps with `orgName`), or the
/// organization selection of step 2. `username`/`password` and `orgSelectionToken` never
/// go together.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // describes the body `LoginIn` reads
enum LoginRequest {
    /// Username and password, optionally with the organization.
    Password(PasswordLogin),
    /// The organization-selection token with the organization.
    OrgSelection(OrgSelectionLogin),
}

/// A session's tokens: the answer of a login that names an organization, and of a refresh.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    /// Always `success`.
    status: Success,
    /// The bearer token of every other request (`Authorization: Bearer …`).
    access_token: String,
    /// The token of `/be/v1/refresh`; each refresh replaces it, and presenting a replaced
    /// one again ends the session.
    refresh_token: String,
    /// Seconds the access token is valid.
    access_expires_in: u64,
    /// Seconds the refresh token is valid.
    refresh_expires_in: u64,
    /// The organization of the session.
    org_name: String,
    /// The user logged in.
    username: String,
    /// The user's effective permissions in that organization (the union of its roles).
    #[schema(value_type = PermissionsSchema)]
    permissions: Value,
}

impl TokenPair {
    fn of(t: SessionTokens) -> TokenPair {
        TokenPair {
            status: Success,
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            access_expires_in: t.access_expires_in,
            refresh_expires_in: t.refresh_expires_in,
            org_name: t.org_name,
            username: t.username,
            permissions: t.perms.to_json(t.operator),
        }
    }
}

/// The answer of a password login without `orgName`: the organizations to choose from.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgChoice {
    /// Always `success`.
    status: Success,
    /// Send it with `orgName` to `/be/v1/login` to open a session; it may be used more than
    /// once while valid (sessions in several organizations).
    org_selection_token: String,
    /// Seconds the `orgSelectionToken` is valid.
    expires_in: u64,
    /// The organizations the user belongs to, by name (possibly none).
    orgs: Vec<OrgOption>,
}

/// An organization a user may open a session in.
#[derive(Serialize, ToSchema)]
pub struct OrgOption {
    /// Its name, the `orgName` of step 2.
    name: String,
    /// Its display name.
    label: String,
}

/// The answer of `/be/v1/login`: a session's tokens when an organization was named (or
/// chosen with an `orgSelectionToken`), else the choice of organizations.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginReply {
    /// A session was opened.
    Tokens(TokenPair),
    /// Username and password were right; an organization is to be chosen.
    Choice(OrgChoice),
}

/// Log in: user+pw, org selection, or user+pw+org
///
/// Three shapes: `username`+`password` answers an `orgSelectionToken` with the user's
/// organizations; `orgSelectionToken`+`orgName` opens a session in the chosen one;
/// `username`+`password`+`orgName` does both at once. A session answers its tokens.
/// Wrong username or password (or a machine user), an invalid or expired
/// `orgSelectionToken`: 401. An organization the user is not a member of (or that does
/// not exist): 403. Too many failed attempts for the username or address: 429 with
/// `Retry-After`. Credentials in headers (`Authorization`, `x-rockit-api-key`): 400.
#[utoipa::path(post, path = "/be/v1/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "The session's tokens, or the organizations to choose from", body = LoginReply)),
    extensions(("x-rockit-auth" = json!("none"))))]
async fn login(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(b): JsonBody<LoginIn>,
) -> ApiResult<Reply<LoginReply>> {
    if bearer(&headers).is_some() || header(&headers, "x-rockit-api-key").is_some() {
        return Err(ApiError::bad_request("login takes no credentials in headers"));
    }
    let client = ratelimit::client_key(&st, peer, &headers);
    let input = LoginInput {
        username: b.username,
        password: b.password,
        org_selection_token: b.org_selection_token,
        org_name: b.org_name,
        access_ttl: b.access_ttl,
        refresh_ttl: b.refresh_ttl,
    };
    Ok(Reply(match login_rules::login(&st, &client, input).await? {
        LoginOutcome::Session(t) => LoginReply::Tokens(TokenPair::of(t)),
        LoginOutcome::Choice { token, expires_in, orgs } => LoginReply::Choice(OrgChoice {
            status: Success,
            org_selection_token: token,
            expires_in,
            orgs: orgs.into_iter().map(|(name, label)| OrgOption { name, label }).collect(),
        }),
    }))
}

/// The Refresh body (optional: the token may come as `Authorization: Bearer` instead).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RefreshIn {
    /// The session's current refresh token; when the `Authorization` header carries one
    /// too, both must be the same.
    refresh_token: Option<String>,
}

/// Rotate the refresh token, get a new access token
///
/// The refresh token comes as `Authorization: Bearer …` or as `refreshToken` in the body
/// (two different ones: 400). The answer carries a new pair at the server's full
/// lifetimes; the token presented is used up. Presenting a used-up token again ends the
/// session (401), except within a few seconds of its use (a concurrent refresh: 401, the
/// session lives on). Unknown, expired or revoked token, or a membership that ended: 401.
#[utoipa::path(post, path = "/be/v1/refresh", tag = "auth",
    request_body(content = RefreshIn, description = "Optional: may be left out when the token comes as `Authorization`"),
    responses((status = 200, description = "A new token pair for the session", body = TokenPair)),
    extensions(("x-rockit-auth" = json!("refresh token"))))]
async fn refresh(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    OptJsonBody(b): OptJsonBody<RefreshIn>,
) -> ApiResult<Reply<TokenPair>> {
    let from_body = b.and_then(|b| b.refresh_token);
    let tok = match (bearer(&headers), from_body) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::bad_request("two different refresh tokens"))
        }
        (Some(a), _) => a,
        (None, Some(b)) => b,
        (None, None) => return Err(ApiError::unauthorized("refresh token required")),
    };
    Ok(Reply(TokenPair::of(session_rules::refresh(&st, &tok).await?)))
}

/// The Logout body (optional).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LogoutIn {
    /// Also end every other session of the user, in every organization (default false).
    all: Option<bool>,
}

/// End the session (or all sessions)
///
/// The session is named by one of its tokens, access or refresh, as
/// `Authorization: Bearer …` or in the older `x-rockit-beauth-token` header (both, and
/// different: 400). No valid token: 401.
#[utoipa::path(post, path = "/be/v1/logout", tag = "auth",
    request_body(content = LogoutIn, description = "Optional: without it only this session ends"),
    params(("x-rockit-beauth-token" = Option<String>, Header, nullable = false, description = "Older clients: the session's access token, instead of `Authorization`")),
    responses((status = 200, description = "Logged out", body = Message)),
    extensions(("x-rockit-auth" = json!("access or refresh token"))))]
async fn logout(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    OptJsonBody(b): OptJsonBody<LogoutIn>,
) -> ApiResult<Reply<Message>> {
    let tok = match (bearer(&headers), header(&headers, "x-rockit-beauth-token")) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::bad_request("more than one credential in one request"))
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => {
            return Err(ApiError::unauthorized("the session's access or refresh token is required"))
        }
    };
    let all = b.and_then(|b| b.all).unwrap_or(false);
    session_rules::logout(&st, &tok, all).await?;
    Ok(Message::new("logged out"))
}

/// The answer of `/be/v1/auth`: an access token of the session.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthToken {
    /// Always `success`.
    status: Success,
    /// An access token of the session, for `Authorization: Bearer …` or the older
    /// `x-rockit-beauth-token` header.
    auth_token: String,
    /// Seconds the token is valid.
    expires_in: u64,
}

/// Older clients: access token from the session token
///
/// The session token is the session's current refresh token, sent in the
/// `x-rockit-besession-token` header; unlike `/be/v1/refresh` it is not used up. Missing,
/// invalid or expired token, one already replaced by a refresh (which ends the session
/// unless the refresh was seconds ago), or a membership that ended: 401.
#[utoipa::path(post, path = "/be/v1/auth", tag = "auth",
    params(("x-rockit-besession-token" = String, Header, description = "The session's current refresh token")),
    responses((status = 200, description = "An access token of the session", body = AuthToken)),
    extensions(("x-rockit-auth" = json!("x-rockit-besession-token"))))]
async fn auth(State(st): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Reply<AuthToken>> {
    let tok = header(&headers, "x-rockit-besession-token")
        .ok_or_else(|| ApiError::unauthorized("x-rockit-besession-token required"))?;
    let (auth_token, expires_in) = session_rules::access_for_session_token(&st, &tok).await?;
    Ok(Reply(AuthToken { status: Success, auth_token, expires_in }))
}

/// Marks the bodies of refresh and logout as optional. They may be left out entirely
/// (`OptJsonBody`), but when sent they are an object: `request_body = Option<T>` would
/// also admit a JSON `null`, which is refused.
struct OptionalBodies;

impl utoipa::Modify for OptionalBodies {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for path in ["/be/v1/refresh", "/be/v1/logout"] {
            let op = api.paths.paths.get_mut(path).and_then(|p| p.post.as_mut());
            if let Some(body) = op.and_then(|op| op.request_body.as_mut()) {
                body.required = Some(utoipa::openapi::Required::False);
            }
        }
    }
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(login, refresh, logout, auth), modifiers(&OptionalBodies))]
pub struct Api;
