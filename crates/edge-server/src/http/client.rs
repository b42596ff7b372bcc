//! The launcher side (`/client/v1`, client.md): play sessions opened with the app's client
//! key, each telling the launcher where the image is (`manifestUrl`, signed with the
//! deployment's download authentication when it has one).

use super::extract::JsonBody;
use super::reply::{Reply, Success};
use crate::domain::launcher::{self, OpenRequest, Session, SessionEnd};
use crate::error::ApiResult;
use crate::ids::BuildId;
use crate::state::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use utoipa::ToSchema;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/client/v1/rte-sessions", post(open_session).patch(close_session))
}

/// The session token of a request: `x-rockit-session-token`, else `token` (for URLs a
/// launcher cannot add headers to).
fn session_token(h: &HeaderMap, token: Option<&str>) -> Option<String> {
    super::auth::header(h, "x-rockit-session-token").or_else(|| token.map(String::from))
}

/// The session whose token is in `x-rockit-session-token` (or `token`, for URLs a
/// launcher cannot add headers to); 401 for anything else.
pub async fn session_from(st: &AppState, h: &HeaderMap, token: Option<&str>) -> ApiResult<Session> {
    launcher::session(st, session_token(h, token).as_deref()).await
}

/// The Open Session body: which app the launcher plays.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OpenIn {
    /// The app's organization.
    org_name: String,
    /// The app.
    app_name: String,
    /// A build the app keeps (current or retained); absent: the current build.
    build_id: Option<i64>,
}

/// A play session, opened.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SessionOpened {
    /// Always `success`.
    status: Success,
    /// The session (`rs…`).
    session_id: String,
    /// Its token, for `x-rockit-session-token`: shown this once.
    session_token: String,
    /// Seconds the token works.
    expires_in: i64,
    /// The image to play.
    build: SessionBuild,
    /// The organization's public key (PEM) the image's manifest is signed with; null when
    /// the organization has none.
    public_key_pem: Option<String>,
    /// The query to add to every URL of the image (a CDN download token); only when the
    /// deployment serving it has download authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    download_query: Option<String>,
}

/// The image a session plays, and where it is.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SessionBuild {
    /// The build.
    build_id: i64,
    /// Its image.
    dxf_name: String,
    /// The image's manifest: on the first of the app's deployments that holds it, else on
    /// this server's depot (`/client/v1/depot/…`).
    manifest_url: String,
}

/// The state of a session a launcher ends.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum SessionState {
    /// Played and over.
    Ended,
}

/// Open a play session with the app's client key
///
/// The client key (`x-rockit-client-key`) must be the app's; an unknown organization or
/// app answers as a wrong key does (401). 409 `invalid-state`: the app has no published
/// build yet; 404: the build asked for is not kept or has no image. Openings are limited
/// per client address (429 with `Retry-After`).
#[utoipa::path(post, path = "/client/v1/rte-sessions", tag = "client", request_body = OpenIn,
    responses((status = 200, description = "The session, its token and where its image is", body = SessionOpened)),
    extensions(("x-rockit-auth" = json!("x-rockit-client-key"))))]
async fn open_session(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(b): JsonBody<OpenIn>,
) -> ApiResult<Reply<SessionOpened>> {
    let client = crate::ratelimit::client_key(&st, peer, &headers);
    let key = super::auth::header(&headers, "x-rockit-client-key");
    let req = OpenRequest {
        org_name: b.org_name,
        app_name: b.app_name,
        build_id: b.build_id.map(BuildId::new),
    };
    let o = launcher::open(&st, &client, key.as_deref(), req).await?;
    Ok(Reply(SessionOpened {
        status: Success,
        session_id: o.session_id,
        session_token: o.session_token,
        expires_in: o.expires_in,
        build: SessionBuild {
            build_id: o.build_id.get(),
            dxf_name: o.dxf_name,
            manifest_url: o.location.manifest_url,
        },
        public_key_pem: o.public_key_pem,
        download_query: o.location.download_query,
    }))
}

/// The End Session body: the session, and how the play went.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CloseIn {
    /// The session the token belongs to.
    session_id: String,
    /// Always `ended`.
    #[schema(value_type = SessionState)]
    state: String,
    /// Seconds played.
    play_seconds: Option<u64>,
    /// How many times play stalled waiting for data.
    stalls: Option<u64>,
    /// Seconds spent stalled.
    stall_seconds: Option<u64>,
}

/// A play session, ended.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SessionEnded {
    /// Always `success`.
    status: Success,
    /// The session.
    session_id: String,
    /// Always `ended`.
    state: SessionState,
}

/// End a play session
///
/// 403: the token belongs to another session; 409 `invalid-state`: the session has ended
/// already.
#[utoipa::path(patch, path = "/client/v1/rte-sessions", tag = "client", request_body = CloseIn,
    responses((status = 200, description = "The session, ended", body = SessionEnded)),
    extensions(("x-rockit-auth" = json!("x-rockit-session-token"))))]
async fn close_session(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    JsonBody(b): JsonBody<CloseIn>,
) -> ApiResult<Reply<SessionEnded>> {
    let end = SessionEnd {
        session_id: b.session_id,
        state: b.state,
        play_seconds: b.play_seconds,
        stalls: b.stalls,
        stall_seconds: b.stall_seconds,
    };
    let session_id = launcher::close(&st, session_token(&headers, None).as_deref(), end).await?;
    Ok(Reply(SessionEnded { status: Success, session_id, state: SessionState::Ended }))
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(open_session, close_session))]
pub struct Api;
