//! The launcher side (client.md): play sessions opened with an app's client key (openings
//! limited per client address, [`openings`]), each telling the launcher where its image is
//! ([`locate`]); the session a token proves; ending one. Traces sent in a session are
//! [`super::traces`].

use crate::error::{ApiError, ApiResult};
use crate::ids::{AppId, BuildId, OrgId};
use crate::state::AppState;
use crate::store::launcher;
use crate::util::{ct_eq, new_id, now_ms, random_token, sha256_hex};
use axum::http::StatusCode;

pub mod locate;
pub mod openings;

/// How long a session token works, in seconds.
pub const SESSION_TTL_S: i64 = 86_400;

/// A session as its token proves it.
pub struct Session {
    /// The session (`rs…`).
    pub id: String,
    /// Its app's organization.
    pub org_id: OrgId,
    /// That organization's name.
    pub org_name: String,
    /// The app played.
    pub app_id: AppId,
    /// The app's name.
    pub app_name: String,
    /// The build played.
    pub build_id: BuildId,
    /// The build's image.
    pub dxf_name: String,
    /// The trace the session sent, once it has.
    pub trace_id: Option<String>,
}

/// The session whose token is `token` (the launcher's `x-rockit-session-token`); 401 for
/// none, an unknown one or an expired one.
pub async fn session(st: &AppState, token: Option<&str>) -> ApiResult<Session> {
    let tok = token.ok_or_else(|| ApiError::unauthorized("x-rockit-session-token is required"))?;
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

/// What a launcher asks to play.
pub(crate) struct OpenRequest {
    /// The app's organization.
    pub org_name: String,
    /// The app.
    pub app_name: String,
    /// A build the app keeps; none: the current build.
    pub build_id: Option<BuildId>,
}

/// A play session, opened.
pub(crate) struct Opened {
    /// The session (`rs…`).
    pub session_id: String,
    /// Its token (`rs_…`): shown this once, kept as a hash.
    pub session_token: String,
    /// Seconds the token works.
    pub expires_in: i64,
    /// The build played.
    pub build_id: BuildId,
    /// Its image.
    pub dxf_name: String,
    /// Where the image is.
    pub location: locate::Location,
    /// The organization's public key (PEM) the image's manifest is signed with, if any.
    pub public_key_pem: Option<String>,
}

/// Opens a play session for the launcher at `client` (its address, as the limit counts
/// it) holding the client key `key`. Checks in the API's order: the openings of `client`
/// (429 with `Retry-After`), the key given (401), the key the app's (401 alike for an
/// unknown organization or app: nothing to enumerate), a build to play (409
/// `invalid-state` before the first publish), the build kept with an image (404).
pub(crate) async fn open(
    st: &AppState,
    client: &str,
    key: Option<&str>,
    req: OpenRequest,
) -> ApiResult<Opened> {
    openings::take(st, client)?;
    let key = key.ok_or_else(|| ApiError::unauthorized("x-rockit-client-key is required"))?;
    let mut c = st.db.conn().await?;
    let app = launcher::app(&mut c, &req.org_name, &req.app_name).await?;
    // Unknown org, unknown app and wrong key answer alike: nothing to enumerate.
    let app = app
        .filter(|a| {
            let stored = a
                .client_key_sealed
                .as_deref()
                .and_then(|k| st.data_key.open(k))
                .unwrap_or_default();
            !stored.is_empty() && ct_eq(&stored, key.as_bytes())
        })
        .ok_or_else(|| ApiError::unauthorized("the client key is not valid for this app"))?;
    let build_id = req
        .build_id
        .or(app.i_cur_build)
        .ok_or_else(|| ApiError::conflict("invalid-state", "the app has no published build yet"))?;
    let dxf = launcher::image_of(&mut c, &app.id, build_id)
        .await?
        .ok_or_else(|| ApiError::not_found("build", &build_id.to_string()))?;
    let location = locate::locate(st, &mut c, &app, &req.org_name, build_id, &dxf).await?;
    let (id, token, now) = (new_id("rs"), format!("rs_{}", random_token()), now_ms());
    launcher::insert_session(
        &mut c,
        launcher::NewSession {
            id: &id,
            org_id: &app.org_id,
            app_id: &app.id,
            build_id,
            dxf_name: &dxf,
            token_hash: sha256_hex(token.as_bytes()),
            client,
            created: now,
            expires: now + SESSION_TTL_S * 1000,
        },
    )
    .await?;
    Ok(Opened {
        session_id: id,
        session_token: token,
        expires_in: SESSION_TTL_S,
        build_id,
        dxf_name: dxf,
        location,
        public_key_pem: app.public_key_pem,
    })
}

/// How a play went, as the launcher ends its session.
pub(crate) struct SessionEnd {
    /// The session the token belongs to.
    pub session_id: String,
    /// The state asked for; only `ended` is.
    pub state: String,
    /// Seconds played.
    pub play_seconds: Option<u64>,
    /// How many times play stalled waiting for data.
    pub stalls: Option<u64>,
    /// Seconds spent stalled.
    pub stall_seconds: Option<u64>,
}

/// Ends the session of `token` with what the launcher measured; answers its id. Checks in
/// the API's order: the state `ended` (400), the token (401), the token the session's
/// (403), the session still open (409 `invalid-state`).
pub(crate) async fn close(
    st: &AppState,
    token: Option<&str>,
    end: SessionEnd,
) -> ApiResult<String> {
    if end.state != "ended" {
        return Err(ApiError::invalid("state", "state must be \"ended\""));
    }
    let sess = session(st, token).await?;
    if sess.id != end.session_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the session token belongs to another session",
        ));
    }
    // Stored as signed integers: a count beyond them is as good as the largest.
    let clamp = |v: Option<u64>| v.map(|v| v.min(i64::MAX as u64) as i64);
    let ended = launcher::end_session(
        &mut *st.db.conn().await?,
        &sess.id,
        clamp(end.play_seconds),
        clamp(end.stalls),
        clamp(end.stall_seconds),
    )
    .await?;
    if !ended {
        return Err(ApiError::conflict("invalid-state", "the session has ended already"));
    }
    Ok(sess.id)
}
