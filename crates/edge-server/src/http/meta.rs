//! The instance's own routes: health checks for load balancers and orchestrators, the
//! Prometheus scrape (the API description, `/openapi.json` and `/docs`, is `openapi.rs`'s).

use super::auth::Admin;
use super::reply::{Message, Reply, Success};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// Load-balancer health check
///
/// Always answers while the process serves HTTP; it reads nothing.
#[utoipa::path(get, path = "/", tag = "health",
    responses((status = 200, description = "The service name (`rockit-edge`)", body = Message)),
    extensions(("x-rockit-auth" = json!("none"))))]
pub async fn root() -> Reply<Message> {
    Message::new("rockit-edge")
}

/// `GET /` of a worker-only process (not part of the API document: a worker serves no API).
pub async fn worker_root() -> Reply<Message> {
    Message::new("rockit-edge worker")
}

/// Liveness
///
/// Always answers `alive` while the process serves HTTP; it reads nothing.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "`alive`", body = Message)),
    extensions(("x-rockit-auth" = json!("none"))))]
pub async fn healthz() -> Reply<Message> {
    Message::new("alive")
}

/// The answer of a ready instance.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// Always `success`.
    status: Success,
    /// Always `ready`.
    message: String,
    /// Always `ok`: the database answers.
    database: String,
    /// Always `ok`: the depot answers.
    depot: String,
}

/// Readiness: database and depot reachable
///
/// 503 `unavailable` when either does not answer; its `details` say which (`database` and
/// `depot`, each `ok` or `unreachable`). Take the instance out of rotation until it is 200.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Database and depot answer", body = Ready),
        (status = 503, description = "Not ready: `details.database` and `details.depot` are `ok` or `unreachable`", body = super::reply::Failure),
    ),
    extensions(("x-rockit-auth" = json!("none"))))]
pub async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    let db = st.db.ping().await;
    let depot = match st.depot.ready().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the depot does not answer");
            false
        }
    };
    if db && depot {
        let ok = || "ok".to_string();
        Reply(Ready { status: Success, message: "ready".into(), database: ok(), depot: ok() })
            .into_response()
    } else {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "not ready");
        e = e
            .detail("database", if db { "ok" } else { "unreachable" })
            .detail("depot", if depot { "ok" } else { "unreachable" });
        e.into_response()
    }
}

/// Prometheus metrics (also open on metrics_listen when configured)
///
/// The Prometheus text exposition format (0.0.4): request counts and durations per route,
/// queue depth per task type, password checks. When `metrics_listen` is configured, the
/// same text is served there without authentication.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
pub async fn metrics_admin(_a: Admin, State(st): State<Arc<AppState>>) -> Response {
    super::metrics::scrape(&st).await
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(root, healthz, readyz, metrics_admin))]
pub struct Api;
