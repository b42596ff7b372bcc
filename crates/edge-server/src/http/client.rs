//! The launcher side (`/client/v1`, client.md): play sessions opened with the app's client
//! key, each telling the launcher where the image is (`manifestUrl`, signed with the
//! deployment's download authentication when it has one).

use super::extract::JsonBody;
use super::reply::{Reply, Success};
use crate::error::{ApiError, ApiResult};
use crate::ids::{AppId, OrgId};
use crate::state::AppState;
use crate::store::launcher;
use crate::util::{new_id, now_ms, random_token, sha256_hex};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use utoipa::ToSchema;

/// How long a session token works.
pub const SESSION_TTL_S: i64 = 86_400;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/client/v1/rte-sessions", post(open_session).patch(close_session))
}

/// A session as its token proves it.
pub struct Session {
    pub id: String,
    pub org_id: OrgId,
    pub org_name: String,
    pub app_id: AppId,
    pub app_name: String,
    pub build_id: i64,
    pub dxf_name: String,
    pub trace_id: Option<String>,
}

/// The session whose token is in `x-rockit-session-token` (or `token`, for URLs a
/// launcher cannot add headers to); 401 for anything else.
pub async fn session_from(st: &AppState, h: &HeaderMap, token: Option<&str>) -> ApiResult<Session> {
    let tok = super::auth::header(h, "x-rockit-session-token").or_else(|| token.map(String::from));
    let tok = tok.ok_or_else(|| ApiError::unauthorized("x-rockit-session-token is required"))?;
    let r = launcher::session_by_token(&mut *st.db.conn().await?, &sha256_hex(tok.as_bytes()))
        .await?
        .filter(|r| r.expires > now_ms())
        .ok_or_else(|| ApiError::unauthorized("the session token is unknown or expired"))?;
    Ok(Session {
        id: r.id,
        org_id: r.org_id,
        org_name: r.org_name,
        app_id: r.app_id,
        app_name: r.app_name,
        build_id: r.build_id,
        dxf_name: r.dxf_name,
        trace_id: r.trace_id,
    })
}

/// Session openings per client address: a token bucket of `session_rate_per_minute`
/// tokens refilled at that rate, per process (a launcher opens one per play; a flood
/// from one address is refused before it reaches the database).
struct Bucket {
    tokens: f64,
    at: i64,
}

static OPENINGS: std::sync::LazyLock<Mutex<HashMap<String, Bucket>>> =
    std::sync::LazyLock::new(Default::default);

fn rate_limit(st: &AppState, client: &str) -> ApiResult<()> {
    let limit = f64::from(st.cfg.session_rate_per_minute);
    if limit == 0.0 {
        return Ok(());
    }
    let now = now_ms();
    let per_ms = limit / 60_000.0;
    let mut m = OPENINGS.lock().unwrap_or_else(|e| e.into_inner());
    if m.len() > 100_000 {
        // Full buckets carry no information.
        m.retain(|_, b| b.tokens + (now - b.at) as f64 * per_ms < limit);
    }
    // Keyed by server too: several servers may share a process (tests, embedding).
    let b =
        m.entry(format!("{} {client}", st.public_url)).or_insert(Bucket { tokens: limit, at: now });
    b.tokens = (b.tokens + (now - b.at) as f64 * per_ms).min(limit);
    b.at = now;
    if b.tokens < 1.0 {
        let wait_s = ((1.0 - b.tokens) / per_ms / 1000.0).ceil() as u64;
        return Err(ApiError::too_many(wait_s));
    }
    b.tokens -= 1.0;
    Ok(())
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
    rate_limit(&st, &client)?;
    let key = super::auth::header(&headers, "x-rockit-client-key")
        .ok_or_else(|| ApiError::unauthorized("x-rockit-client-key is required"))?;
    let mut c = st.db.conn().await?;
    let app = launcher::app(&mut c, &b.org_name, &b.app_name).await?;
    // Unknown org, unknown app and wrong key answer alike: nothing to enumerate.
    let app = app
        .filter(|a| {
            let stored = a
                .client_key_sealed
                .as_deref()
                .and_then(|k| st.data_key.open(k))
                .unwrap_or_default();
            !stored.is_empty() && crate::util::ct_eq(&stored, key.as_bytes())
        })
        .ok_or_else(|| ApiError::unauthorized("the client key is not valid for this app"))?;
    let app_id = app.id.clone();
    let build_id = match b.build_id.or(app.i_cur_build) {
        Some(id) => id,
        None => {
            return Err(ApiError::conflict("invalid-state", "the app has no published build yet"))
        }
    };
    let dxf = launcher::image_of(&mut c, &app_id, build_id)
        .await?
        .ok_or_else(|| ApiError::not_found("build", &build_id.to_string()))?;
    let org_name = b.org_name.clone();
    let (manifest_url, query) = locate(&st, &mut c, &app, &org_name, build_id, &dxf).await?;
    let (id, token, now) = (new_id("rs"), format!("rs_{}", random_token()), now_ms());
    launcher::insert_session(
        &mut c,
        launcher::NewSession {
            id: &id,
            org_id: &app.org_id,
            app_id: &app_id,
            build_id,
            dxf_name: &dxf,
            token_hash: sha256_hex(token.as_bytes()),
            client: &client,
            created: now,
            expires: now + SESSION_TTL_S * 1000,
        },
    )
    .await?;
    Ok(Reply(SessionOpened {
        status: Success,
        session_id: id,
        session_token: token,
        expires_in: SESSION_TTL_S,
        build: SessionBuild { build_id, dxf_name: dxf, manifest_url },
        public_key_pem: app.public_key_pem,
        download_query: query,
    }))
}

/// Where a launcher finds the image: the first of the app's deployments (its list order,
/// by name when the list is empty) with a `publicUrl` that holds the image, signed when it
/// has download authentication; else the depot through this server.
async fn locate(
    st: &AppState,
    c: &mut crate::store::Conn,
    app: &launcher::LauncherApp,
    org: &str,
    build: i64,
    dxf: &str,
) -> ApiResult<(String, Option<String>)> {
    let (app_id, app_name) = (&app.id, &app.name);
    let listed: Vec<String> = serde_json::from_str(&app.deployments).unwrap_or_default();
    let mut deps = crate::store::deployments::list(c, &app.org_id).await?;
    if listed.is_empty() {
        deps.sort_by(|a, b| a.name.cmp(&b.name));
    } else {
        deps = listed.iter().filter_map(|n| deps.iter().find(|d| &d.name == n).cloned()).collect();
    }
    for d in deps {
        let Some(base) = &d.public_url else { continue };
        let dir = edge_origin::keys::dxf_dir(&d.prefix, org, app_name, build as u64, dxf);
        let manifest_key = format!("{dir}/manifest.json");
        if !launcher::holds(c, app_id, &d.id, &manifest_key).await? {
            continue;
        }
        let url = format!("{base}/{manifest_key}");
        let query = match (d.download_auth["type"].as_str(), &d.download_secret_sealed) {
            (Some(kind), Some(sealed)) => {
                let secret = st
                    .data_key
                    .open(sealed)
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| ApiError::internal("download secret unreadable"))?;
                let window = d.download_auth["window"].as_i64().unwrap_or(3600);
                // The URL path of the image directory on the CDN, for the token's scope.
                let dir_path = reqwest::Url::parse(&format!("{base}/{dir}/"))
                    .map(|u| u.path().to_string())
                    .map_err(ApiError::internal)?;
                let now_s = now_ms() / 1000;
                Some(match kind {
                    "akamai" => {
                        crate::dlauth::akamai(&secret, &format!("{dir_path}*"), now_s, window)
                            .ok_or_else(|| ApiError::internal("akamai key is not hex"))?
                    }
                    _ => crate::dlauth::gcore(&secret, &dir_path, now_s + window),
                })
            }
            _ => None,
        };
        return Ok((url, query));
    }
    let url = format!(
        "{}/client/v1/depot/{org}/{app_name}/{}/{dxf}/manifest.json",
        st.public_url,
        edge_origin::keys::build_dir_name(build as u64)
    );
    Ok((url, None))
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
    if b.state != "ended" {
        return Err(ApiError::invalid("state", "state must be \"ended\""));
    }
    let sess = session_from(&st, &headers, None).await?;
    if sess.id != b.session_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the session token belongs to another session",
        ));
    }
    let clamp = |v: Option<u64>| v.map(|v| v.min(i64::MAX as u64) as i64);
    let ended = launcher::end_session(
        &mut *st.db.conn().await?,
        &sess.id,
        clamp(b.play_seconds),
        clamp(b.stalls),
        clamp(b.stall_seconds),
    )
    .await?;
    if !ended {
        return Err(ApiError::conflict("invalid-state", "the session has ended already"));
    }
    Ok(Reply(SessionEnded { status: Success, session_id: sess.id, state: SessionState::Ended }))
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(open_session, close_session))]
pub struct Api;
