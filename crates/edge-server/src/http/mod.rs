//! The HTTP edge: one router per resource, merged here with the cross-cutting layers
//! (request id, access log and request metrics, maintenance mode, JSON 404/405).

pub mod admin;
pub mod apikeys;
pub mod apps;
pub mod auth;
pub mod builds;
pub mod client;
pub mod deployments;
pub mod depot;
pub mod extract;
pub mod foundry;
pub mod login;
pub mod meta;
mod metrics;
pub mod openapi;
pub mod orgconf;
pub mod orgs;
pub mod reference;
pub mod reply;
pub mod roles;
pub mod subscriptions;
pub mod tasks;
pub mod traces;
pub mod trainings;
pub mod users;

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use std::time::Instant;

/// The request id of the current request (also in the `x-request-id` response header).
#[derive(Clone)]
pub struct RequestId(pub String);

/// The caller's organization, filled in by the `Caller` extractor once it is known, for
/// the access log line.
#[derive(Clone, Default)]
pub struct LogOrg(pub Arc<std::sync::OnceLock<String>>);

/// Builds the complete application router.
pub fn router(st: Arc<AppState>) -> Router {
    router_with(st, Router::new())
}

/// The application router with `extra` routes (the web console) under the same layers.
pub fn router_with(st: Arc<AppState>, extra: Router<Arc<AppState>>) -> Router {
    Router::new()
        .route("/", get(meta::root))
        .route("/healthz", get(meta::healthz))
        .route("/readyz", get(meta::readyz))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/docs", get(openapi::docs))
        .route("/metrics", get(meta::metrics_admin))
        .merge(admin::router())
        .merge(orgs::router())
        .merge(login::router())
        .merge(apikeys::router())
        .merge(users::router())
        .merge(roles::router())
        .merge(apps::router())
        .merge(deployments::router())
        .merge(builds::router())
        .merge(tasks::router())
        .merge(subscriptions::router())
        .merge(foundry::router())
        .merge(orgconf::router())
        .merge(client::router())
        .merge(depot::router())
        .merge(trainings::router())
        .merge(traces::router())
        .merge(extra)
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint")
        })
        .layer(middleware::from_fn_with_state(st.clone(), maintenance_gate))
        .layer(middleware::from_fn_with_state(st.clone(), request_id))
        .with_state(st)
}

/// The router of a worker-only process: health checks and metrics only.
pub fn health_router(st: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(meta::worker_root))
        .route("/healthz", get(meta::healthz))
        .route("/readyz", get(meta::readyz))
        .route("/metrics", get(meta::metrics_admin))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint")
        })
        .layer(middleware::from_fn_with_state(st.clone(), request_id))
        .with_state(st)
}

/// The router of the separate metrics listener (`metrics_listen`): `GET /metrics` without
/// authentication — the address is the operator's to keep private.
pub fn metrics_router(st: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(st): State<Arc<AppState>>| async move { metrics::scrape(&st).await }),
        )
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint")
        })
        .with_state(st)
}

fn valid_request_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// Assigns the request id, logs and counts the request once it is answered, and turns
/// axum's bare 405 into the JSON envelope.
async fn request_id(State(st): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| valid_request_id(s))
        .map(String::from)
        .unwrap_or_else(|| crate::util::new_id("req"));
    req.extensions_mut().insert(RequestId(id.clone()));
    let org = LogOrg::default();
    req.extensions_mut().insert(org.clone());
    let method = req.method().clone();
    let route =
        req.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_string());
    let path = req.uri().path().to_string();
    let start = Instant::now();
    // Connection accounting (`db::held`): a handler never holds two at once.
    let mut resp = crate::db::scope(next.run(req)).await;
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && resp.headers().get("content-type").is_none()
    {
        let allow = resp.headers().get("allow").cloned();
        resp = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "method not allowed on this path",
        )
        .into_response();
        if let Some(a) = allow {
            resp.headers_mut().insert("allow", a);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    let secs = start.elapsed().as_secs_f64();
    let ms = secs * 1000.0;
    st.metrics.http_request(route.as_deref().unwrap_or("unmatched"), method.as_str(), status, secs);
    let route = route.unwrap_or(path);
    let org = org.0.get().map(String::as_str).unwrap_or("");
    if status >= 500 {
        tracing::warn!(request_id = %id, %method, route = %route, status, ms, org, "request failed");
    } else {
        tracing::info!(request_id = %id, %method, route = %route, status, ms, org, "request");
    }
    resp
}

/// Maintenance mode answers 503 on `/be/v1` (schemas excepted) and `/client/v1` before
/// anything else runs.
async fn maintenance_gate(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let p = req.uri().path();
    let gated = (p.starts_with("/be/v1/") && !p.starts_with("/be/v1/schemas/"))
        || p.starts_with("/client/v1/");
    if gated {
        let m = st.maintenance().await;
        if m.enabled {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "maintenance",
                "the service is in maintenance, try again later",
            )
            .retry_after(m.retry_after)
            .extra("retryAfter", m.retry_after.to_string())
            .into_response();
        }
    }
    next.run(req).await
}
