//! `/srv/v1` and `/adm/v1`: the operator's API (admin.md). Every operation needs the admin
//! token (`x-rockit-admin-token`, or `Authorization: Bearer`), except the changelog.
//!
//! Ping, versions, hello, initialize and changelog answer under both prefixes; the
//! `/adm/v1` ones are the older paths, kept for older tools (same handler, same answer).

use super::auth::Admin;
use super::extract::{JsonBody, OptJsonBody};
use super::reply::{OptionalPostBodies, Reply, Success};
use crate::domain::audit::audit;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::tasks;
use crate::util::{now_ms, rfc3339};
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

// Organizations, tasks and maintenance mode.
#[path = "admin_manage.rs"]
mod manage;
use manage::{
    del_org, get_maintenance, get_org, get_task, list_orgs, list_tasks, post_org, put_maintenance,
};

/// Routes under `/srv/v1` and `/adm/v1`.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/srv/v1/ping", post(ping))
        .route("/adm/v1/ping", post(adm_ping))
        .route("/srv/v1/versions", get(versions))
        .route("/adm/v1/versions", get(adm_versions))
        .route("/srv/v1/hello", post(hello))
        .route("/adm/v1/hello", post(adm_hello))
        .route("/srv/v1/initialize", post(initialize))
        .route("/adm/v1/initialize", post(adm_initialize))
        .route("/srv/v1/changelog", get(changelog))
        .route("/adm/v1/changelog", get(adm_changelog))
        .route("/adm/v1/orgs", get(list_orgs).post(post_org))
        .route("/adm/v1/orgs/{name}", get(get_org).delete(del_org))
        .route("/adm/v1/tasks", get(list_tasks))
        .route("/adm/v1/tasks/{name}", get(get_task))
        .route("/adm/v1/maintenance", get(get_maintenance).put(put_maintenance))
}

/// The Ping body (optional: no body at all is a ping too).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PingIn {
    /// Sent back as `echo`.
    message: Option<String>,
}

/// The answer to a ping.
#[derive(Serialize, ToSchema)]
pub struct Pong {
    /// Always `success`.
    status: Success,
    /// Always `pong`.
    message: String,
    /// The `message` of the body; null without one.
    echo: Option<String>,
    /// The server's clock (RFC 3339).
    time: String,
}

/// Ping (echoes an optional message)
///
/// Checks the admin token and the server's clock; the body is optional.
#[utoipa::path(post, path = "/srv/v1/ping", tag = "admin", request_body = PingIn,
    responses((status = 200, description = "pong", body = Pong)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
async fn ping(_a: Admin, OptJsonBody(body): OptJsonBody<PingIn>) -> Reply<Pong> {
    let echo = body.and_then(|b| b.message);
    Reply(Pong { status: Success, message: "pong".into(), echo, time: rfc3339(now_ms()) })
}

/// Ping (older path)
///
/// The same as `POST /srv/v1/ping`.
#[utoipa::path(post, path = "/adm/v1/ping", tag = "admin", request_body = PingIn,
    responses((status = 200, description = "pong", body = Pong)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
async fn adm_ping(a: Admin, body: OptJsonBody<PingIn>) -> Reply<Pong> {
    ping(a, body).await
}

/// The versions of the parts of the instance.
#[derive(Serialize, ToSchema)]
pub struct Versions {
    /// This server's version.
    edge: &'static str,
    /// The delivery engine's version.
    engine: &'static str,
    /// Always `v1`.
    api: &'static str,
    /// The commit the server was built from; `unknown` when the build did not say.
    build: &'static str,
    /// The version of the worker that last ran the test task (`hello`); null before one did.
    worker: Option<String>,
}

/// The Versions answer.
#[derive(Serialize, ToSchema)]
pub struct VersionsReply {
    /// Always `success`.
    status: Success,
    /// The versions.
    versions: Versions,
}

/// Versions of edge, engine, api, build and worker
#[utoipa::path(get, path = "/srv/v1/versions", tag = "admin",
    responses((status = 200, description = "The versions", body = VersionsReply)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
async fn versions(_a: Admin, State(st): State<Arc<AppState>>) -> ApiResult<Reply<VersionsReply>> {
    let worker = crate::store::settings::get(&st.db, "worker_version").await?;
    let versions = Versions {
        edge: crate::version::EDGE_VERSION,
        engine: crate::version::ENGINE_VERSION,
        api: "v1",
        build: option_env!("EDGE_GIT_HASH").unwrap_or("unknown"),
        worker,
    };
    Ok(Reply(VersionsReply { status: Success, versions }))
}

/// Versions (older path)
///
/// The same as `GET /srv/v1/versions`.
#[utoipa::path(get, path = "/adm/v1/versions", tag = "admin",
    responses((status = 200, description = "The versions", body = VersionsReply)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
async fn adm_versions(a: Admin, st: State<Arc<AppState>>) -> ApiResult<Reply<VersionsReply>> {
    versions(a, st).await
}

/// The Hello body: what the test task says, and whether it also sweeps.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct HelloIn {
    /// Written back in the task's `result.message`.
    message: String,
    /// `true`: the task also runs a maintenance sweep (expired sessions, staged imports, …)
    /// and reports its counts in `result.sweep`.
    maintenance: bool,
}

/// The test task submitted.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelloReply {
    /// Always `success`.
    status: Success,
    /// The `hello` task; follow it at `GET /adm/v1/tasks/{name}`.
    task_name: String,
}

/// Submit the test task (optionally with a maintenance sweep)
///
/// A worker runs the `hello` task; once done, `GET /srv/v1/versions` names the worker's
/// version. It also runs during maintenance mode.
#[utoipa::path(post, path = "/srv/v1/hello", tag = "admin", request_body = HelloIn,
    responses((status = 200, description = "The task submitted", body = HelloReply)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
async fn hello(
    a: Admin,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<HelloIn>,
) -> ApiResult<Reply<HelloReply>> {
    let (name, _) = tasks::enqueue(
        &mut *st.db.conn().await?,
        tasks::NewTask::of(tasks::HelloParams {
            admin: a.username.clone(),
            maintenance: b.maintenance,
            message: b.message,
        }),
    )
    .await?;
    audit(&st, &a.username, "hello", name.as_str()).await?;
    Ok(Reply(HelloReply { status: Success, task_name: name.into_string() }))
}

/// Submit the test task (older path)
///
/// The same as `POST /srv/v1/hello`.
#[utoipa::path(post, path = "/adm/v1/hello", tag = "admin", request_body = HelloIn,
    responses((status = 200, description = "The task submitted", body = HelloReply)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
async fn adm_hello(
    a: Admin,
    st: State<Arc<AppState>>,
    b: JsonBody<HelloIn>,
) -> ApiResult<Reply<HelloReply>> {
    hello(a, st, b).await
}

/// The Initialize answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Initialized {
    /// Always `success`.
    status: Success,
    /// Always `initialized`.
    message: String,
    /// The database schema's version after the migrations.
    schema_version: i64,
}

/// Apply migrations and ensure the operator organization (idempotent)
///
/// Safe to call again and concurrently. 500 when the configured operator organization's
/// name differs from the one the database was initialized with.
#[utoipa::path(post, path = "/srv/v1/initialize", tag = "admin",
    responses((status = 200, description = "Initialized", body = Initialized)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
async fn initialize(a: Admin, State(st): State<Arc<AppState>>) -> ApiResult<Reply<Initialized>> {
    let v =
        crate::domain::instance::initialize(&st.db, &st.cfg).await.map_err(ApiError::internal)?;
    audit(&st, &a.username, "initialize", "").await?;
    Ok(Reply(Initialized { status: Success, message: "initialized".into(), schema_version: v }))
}

/// Initialize (older path)
///
/// The same as `POST /srv/v1/initialize`.
#[utoipa::path(post, path = "/adm/v1/initialize", tag = "admin",
    responses((status = 200, description = "Initialized", body = Initialized)),
    extensions(("x-rockit-auth" = json!("admin token"))))]
async fn adm_initialize(a: Admin, st: State<Arc<AppState>>) -> ApiResult<Reply<Initialized>> {
    initialize(a, st).await
}

/// One release of the changelog.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // `changelog::parse` builds these as JSON; this describes them
pub struct ChangelogEntry {
    /// The version (`unreleased` for changes not yet released).
    version: String,
    /// The release date (`YYYY-MM-DD`); null for `unreleased`.
    date: Option<String>,
    /// One line per change, as written in the changelog.
    changes: Vec<String>,
}

/// The Changelog answer.
#[derive(Serialize, ToSchema)]
pub struct ChangelogReply {
    /// Always `success`.
    status: Success,
    /// Every release, newest first.
    #[schema(value_type = Vec<ChangelogEntry>)]
    changelog: Vec<Value>,
}

/// The changelog, newest first
///
/// Read from the project's `CHANGELOG.md`; needs no token.
#[utoipa::path(get, path = "/srv/v1/changelog", tag = "admin",
    responses((status = 200, description = "The changelog", body = ChangelogReply)),
    extensions(("x-rockit-auth" = json!("none"))))]
async fn changelog() -> Reply<ChangelogReply> {
    Reply(ChangelogReply {
        status: Success,
        changelog: crate::changelog::parse(include_str!("../../../../CHANGELOG.md")),
    })
}

/// The changelog (older path)
///
/// The same as `GET /srv/v1/changelog`.
#[utoipa::path(get, path = "/adm/v1/changelog", tag = "admin",
    responses((status = 200, description = "The changelog", body = ChangelogReply)),
    extensions(("x-rockit-auth" = json!("none"))))]
async fn adm_changelog() -> Reply<ChangelogReply> {
    changelog().await
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    ping,
    adm_ping,
    versions,
    adm_versions,
    hello,
    adm_hello,
    initialize,
    adm_initialize,
    changelog,
    adm_changelog,
    manage::list_orgs,
    manage::post_org,
    manage::get_org,
    manage::del_org,
    manage::list_tasks,
    manage::get_task,
    manage::get_maintenance,
    manage::put_maintenance
), modifiers(&OPTIONAL_BODIES))]
pub struct Api;

/// The ping body may be left out.
const OPTIONAL_BODIES: OptionalPostBodies = OptionalPostBodies(&["/srv/v1/ping", "/adm/v1/ping"]);
