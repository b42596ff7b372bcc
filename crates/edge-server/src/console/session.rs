//! Signing in and out of the console, and who is signed in.
//!
//! The sign-in is the API's two-step login. The organization-selection token of the first
//! step and the session's access and refresh tokens are kept in `HttpOnly`,
//! `SameSite=Strict` cookies (`Secure` when the console is reached over https), so page
//! scripts never see them. The access token is renewed from the refresh token without
//! rotating it (as the API's session-token exchange does), so two pages loading at once
//! cannot trip the refresh-token reuse detection; the session ends when its refresh token
//! expires or at sign-out, which ends it like `/be/v1/logout`.

use super::failure::Failure;
use super::form::Form;
use super::page::render;
use super::viewer::Viewer;
use crate::domain::login::{self, LoginInput, LoginOutcome};
use crate::domain::sessions::{self, SessionTokens};
use crate::error::ApiError;
use crate::state::AppState;
use askama::Template;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::Arc;

const ACCESS: &str = "rk_console";
const REFRESH: &str = "rk_console_refresh";
const ORG_SELECTION: &str = "rk_console_orgsel";

/// The CSRF token of session `session`: a MAC of its id under the server's secret, so it
/// needs no storage, differs per session and dies with it.
fn csrf_of(st: &AppState, session: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(st.admin_key.expose())
        .expect("HMAC takes keys of any length");
    mac.update(b"rockit-edge console csrf\n");
    mac.update(session.as_bytes());
    crate::util::hex(&mac.finalize().into_bytes())
}

/// The cookies of a request, by name.
fn cookie(h: &HeaderMap, name: &str) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// True when the console was reached over https (directly or through a proxy that says so).
fn https(st: &AppState, h: &HeaderMap) -> bool {
    st.public_url.starts_with("https://")
        || h.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) == Some("https")
}

/// A `Set-Cookie` value for the console's path; `max_age` 0 removes the cookie.
fn set_cookie(secure: bool, name: &str, value: &str, max_age: u64) -> HeaderValue {
    let s = format!(
        "{name}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A credential header map as the API's callers send it.
fn bearer_headers(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        h.insert(header::AUTHORIZATION, v);
    }
    h
}

/// The sign-in page, for a request that is not signed in (or whose session ended).
fn to_sign_in(secure: bool) -> Response {
    let mut r = Redirect::to("/console/sign-in").into_response();
    for name in [ACCESS, REFRESH] {
        r.headers_mut().append(header::SET_COOKIE, set_cookie(secure, name, "", 0));
    }
    r
}

/// Resolves the viewer of a console request from its cookies (renewing the access token
/// when it expired) or sends the browser to the sign-in page.
pub async fn require(State(st): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let secure = https(&st, req.headers());
    let Some(access) = cookie(req.headers(), ACCESS) else { return to_sign_in(secure) };
    let mut renewed = None;
    let caller = match crate::http::auth::resolve_caller(&bearer_headers(&access), &st).await {
        Ok(c) => c,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            let Some(refresh) = cookie(req.headers(), REFRESH) else { return to_sign_in(secure) };
            let Ok((token, _)) = sessions::access_for_session_token(&st, &refresh).await else {
                return to_sign_in(secure);
            };
            match crate::http::auth::resolve_caller(&bearer_headers(&token), &st).await {
                Ok(c) => {
                    renewed = Some(token);
                    c
                }
                Err(_) => return to_sign_in(secure),
            }
        }
        Err(e) => return Failure(e).into_response(),
    };
    let Some(session) = caller.session_id.clone() else { return to_sign_in(secure) };
    let csrf = csrf_of(&st, &session);
    req.extensions_mut().insert(Viewer { caller, csrf });
    let mut resp = next.run(req).await;
    if let Some(t) = renewed {
        resp.headers_mut()
            .append(header::SET_COOKIE, set_cookie(secure, ACCESS, &t, st.cfg.refresh_ttl));
    }
    resp
}

/// The sign-in page (both steps).
#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignIn {
    /// Organizations to choose from (the second step); empty in the first.
    orgs: Vec<(String, String)>,
    /// Why the last attempt failed.
    error: Option<String>,
    /// The username of the last attempt.
    username: String,
}

/// `GET /console/sign-in`.
pub async fn sign_in_form() -> Response {
    render(StatusCode::OK, &SignIn { orgs: vec![], error: None, username: String::new() })
}

/// The first step's form.
#[derive(Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

/// `POST /console/sign-in`: username and password. One organization: signed in at once;
/// several: the second step asks which.
pub async fn sign_in(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<Credentials>,
) -> Response {
    if !same_origin(&headers) {
        return Failure(ApiError::forbidden("the sign-in form did not come from this console"))
            .into_response();
    }
    let client = crate::ratelimit::client_key(&st, peer, &headers);
    let input = LoginInput {
        username: Some(f.username.clone()),
        password: Some(f.password),
        org_selection_token: None,
        org_name: None,
        access_ttl: None,
        refresh_ttl: None,
    };
    let secure = https(&st, &headers);
    match login::login(&st, &client, input).await {
        Ok(LoginOutcome::Choice { token, orgs, .. }) if orgs.len() == 1 => {
            select(&st, secure, &token, &orgs[0].0).await
        }
        Ok(LoginOutcome::Choice { token, expires_in, orgs }) => {
            let mut r = render(StatusCode::OK, &SignIn { orgs, error: None, username: f.username });
            r.headers_mut()
                .append(header::SET_COOKIE, set_cookie(secure, ORG_SELECTION, &token, expires_in));
            r
        }
        Ok(LoginOutcome::Session(t)) => signed_in(secure, t),
        Err(e) => {
            render(e.status, &SignIn { orgs: vec![], error: Some(e.message), username: f.username })
        }
    }
}

/// The second step's form.
#[derive(Deserialize)]
pub struct OrgChoice {
    org: String,
}

/// `POST /console/sign-in/org`: the organization chosen, with the first step's cookie.
pub async fn choose_org(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(f): Form<OrgChoice>,
) -> Response {
    if !same_origin(&headers) {
        return Failure(ApiError::forbidden("the sign-in form did not come from this console"))
            .into_response();
    }
    let secure = https(&st, &headers);
    match cookie(&headers, ORG_SELECTION) {
        Some(token) => select(&st, secure, &token, &f.org).await,
        None => render(
            StatusCode::UNAUTHORIZED,
            &SignIn {
                orgs: vec![],
                error: Some("the sign-in took too long; start again".into()),
                username: String::new(),
            },
        ),
    }
}

/// Opens the session in `org` with the organization-selection token.
async fn select(st: &AppState, secure: bool, token: &str, org: &str) -> Response {
    let input = LoginInput {
        username: None,
        password: None,
        org_selection_token: Some(token.to_string()),
        org_name: Some(org.to_string()),
        access_ttl: None,
        refresh_ttl: None,
    };
    match login::login(st, "console", input).await {
        Ok(LoginOutcome::Session(t)) => signed_in(secure, t),
        Ok(LoginOutcome::Choice { .. }) => {
            Failure(ApiError::internal("no session")).into_response()
        }
        Err(e) => render(
            e.status,
            &SignIn { orgs: vec![], error: Some(e.message), username: String::new() },
        ),
    }
}

/// The overview, with the session's cookies set.
fn signed_in(secure: bool, t: SessionTokens) -> Response {
    let mut r = Redirect::to("/console/").into_response();
    let h = r.headers_mut();
    h.append(header::SET_COOKIE, set_cookie(secure, ACCESS, &t.access_token, t.refresh_expires_in));
    h.append(
        header::SET_COOKIE,
        set_cookie(secure, REFRESH, &t.refresh_token, t.refresh_expires_in),
    );
    h.append(header::SET_COOKIE, set_cookie(secure, ORG_SELECTION, "", 0));
    r
}

/// False when the browser says the form came from another site. Browsers send `Origin` on
/// every form post; its absence (a non-browser client) is let through: such a client has
/// no cookies of a victim to ride on.
fn same_origin(h: &HeaderMap) -> bool {
    let site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(site, Some("cross-site") | Some("same-site")) {
        return false;
    }
    let (Some(origin), Some(host)) = (
        h.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        h.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) else {
        return true;
    };
    origin == "null"
        || origin.split_once("://").is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
}

/// `POST /console/sign-out`: ends the session like `/be/v1/logout` and forgets its cookies.
pub async fn sign_out(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    _v: Viewer,
    _f: super::form::Checked<super::form::NoFields>,
) -> Response {
    if let Some(access) = cookie(&headers, ACCESS) {
        // An access token that expired meanwhile: the refresh token names the session.
        if sessions::logout(&st, &access, false).await.is_err() {
            if let Some(refresh) = cookie(&headers, REFRESH) {
                let _ = sessions::logout(&st, &refresh, false).await;
            }
        }
    }
    to_sign_in(https(&st, &headers))
}
