//! The web console at `/console/`: server-rendered pages for publishers and operators.
//!
//! It stands on the same layers as the API: reads check the caller's permission bits and
//! are scoped to its organization, writes call the domain operations the API calls, so a
//! rule exists once. Sign-in is the API's two-step login; the session's tokens live in
//! `HttpOnly`, `SameSite=Strict` cookies that page scripts cannot read, every form carries a
//! CSRF token bound to the session, and every answer has a strict Content-Security-Policy.
//! docs/CONSOLE.md describes the pages.

mod access;
mod app_settings;
mod apps;
mod assets;
mod deployment_edit;
mod deployments;
mod failure;
mod form;
mod operator;
mod org;
mod overview;
mod page;
mod people;
mod session;
mod tasks_view;
mod training;
mod upload;
mod viewer;
mod webhooks;

use crate::state::AppState;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The console's routes, for [`crate::http::router_with`].
pub fn router(st: Arc<AppState>) -> Router<Arc<AppState>> {
    let signed_in = Router::new()
        .route("/console/", get(overview::page))
        .route("/console/apps", post(apps::create))
        .route("/console/apps/{name}", get(apps::page))
        .route("/console/apps/{name}/pipeline", get(apps::pipeline))
        .route("/console/apps/{name}/imports", post(upload::start))
        .route("/console/apps/{name}/settings", post(app_settings::save))
        .route("/console/apps/{name}/client-key", post(app_settings::rotate_key))
        .route("/console/apps/{name}/training", get(training::page))
        .route("/console/apps/{name}/training/process", post(training::process))
        .route("/console/apps/{name}/training/reliable", post(training::set_reliable))
        .route("/console/tasks/{name}/acknowledge", post(apps::acknowledge))
        .route("/console/tasks/{name}/retry", post(apps::retry))
        .route("/console/deployments", get(deployments::page).post(deployments::create))
        .route(
            "/console/deployments/{name}",
            get(deployment_edit::page).post(deployment_edit::update),
        )
        .route("/console/deployments/{name}/probe", post(deployment_edit::probe))
        .route("/console/deployments/{name}/delete", post(deployments::delete))
        .route("/console/people", get(people::page).post(people::create))
        .route("/console/people/roles", post(access::create_role))
        .route("/console/people/keys", post(access::create_key))
        .route("/console/people/keys/{id}/revoke", post(access::revoke_key))
        .route("/console/people/{username}/reset", post(access::reset))
        .route("/console/webhooks", get(webhooks::page).post(webhooks::create))
        .route("/console/webhooks/{name}/delete", post(webhooks::delete))
        .route("/console/org", get(org::page))
        .route("/console/org/export", post(org::export))
        .route("/console/org/import", post(org::import))
        .route("/console/org/commit", post(org::commit))
        .route("/console/operator", get(operator::page))
        .route("/console/operator/orgs", post(operator::create))
        .route("/console/operator/maintenance", post(operator::maintenance))
        .route("/console/operator/hello", post(operator::hello))
        .route("/console/sign-out", post(session::sign_out))
        .layer(middleware::from_fn_with_state(st, session::require));
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/sign-in", get(session::sign_in_form).post(session::sign_in))
        .route("/console/sign-in/org", post(session::choose_org))
        .route("/console/assets/{file}", get(assets::serve))
        // Anything else under /console is the console's own "not found" page.
        .route(
            "/console/{*rest}",
            get(|| async {
                failure::Failure(crate::error::ApiError::new(
                    axum::http::StatusCode::NOT_FOUND,
                    "not-found",
                    "no such page",
                ))
            }),
        )
        .merge(signed_in)
        .layer(middleware::from_fn(guard_headers))
}

/// The Content-Security-Policy of every console answer: scripts, styles and requests only
/// from this server, no inline script or style, no framing, forms only to this server.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every console answer; pages are never cached (they show
/// one user's view), the versioned assets are.
async fn guard_headers(req: Request, next: Next) -> Response {
    let asset = req.uri().path().starts_with("/console/assets/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
