//! Login sessions: opening one in an organization the user belongs to, the token pair it
//! answers, refresh (the refresh token rotated, a reused one ending the session), logout,
//! and the older exchange of the session token for an access token.

use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, UserId};
use crate::perms::Perms;
use crate::state::AppState;
use crate::store::{orgs, sessions, users, Conn};

/// The lifetimes of a session's tokens, in seconds: (access, refresh).
pub(crate) type Ttls = (u64, u64);

/// A session's tokens with what the answer shows about it.
pub(crate) struct SessionTokens {
    /// The bearer token of every other request.
    pub access_token: String,
    /// The token of the next refresh.
    pub refresh_token: String,
    /// Seconds the access token is valid.
    pub access_expires_in: u64,
    /// Seconds the refresh token is valid.
    pub refresh_expires_in: u64,
    /// The organization of the session.
    pub org_name: String,
    /// The user logged in.
    pub username: String,
    /// The user's effective permissions in that organization.
    pub perms: Perms,
    /// True in the operator organization (its permissions show more resources).
    pub operator: bool,
}

/// Opens a session of `user` in the organization called `org_name` and issues its token
/// pair, in the caller's transaction. Not a member (or no such organization): 403.
pub(crate) async fn open(
    tx: &mut Conn,
    user: &UserId,
    org_name: &str,
    ttls: Ttls,
) -> ApiResult<SessionTokens> {
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
async fn token_pair(
    tx: &mut Conn,
    session: &str,
    org_id: &OrgId,
    user: &UserId,
    ttls: Ttls,
) -> ApiResult<SessionTokens> {
    let u = users::by_id(tx, user)
        .await?
        .ok_or_else(|| ApiError::unauthorized("user no longer exists"))?;
    let (org_name, operator) = orgs::brief(tx, org_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("organization no longer exists"))?;
    let perms = users::effective_perms(tx, org_id, user).await?;
    let access = sessions::issue(tx, "access", user, Some(session), ttls.0).await?;
    let refresh = sessions::issue(tx, "refresh", user, Some(session), ttls.1).await?;
    Ok(SessionTokens {
        access_token: access,
        refresh_token: refresh,
        access_expires_in: ttls.0,
        refresh_expires_in: ttls.1,
        org_name,
        username: u.username,
        perms,
        operator,
    })
}

/// Uses up refresh token `token` and issues the session's next pair at the server's full
/// lifetimes. A used-up token presented again ends the session (401), except within the
/// grace period (a concurrent refresh: 401, the session lives on); unknown, expired or
/// revoked, or a membership that ended: 401.
pub(crate) async fn refresh(st: &AppState, token: &str) -> ApiResult<SessionTokens> {
    let mut tx = st.db.tx().await?;
    let outcome = sessions::refresh(&mut tx, token, true, st.cfg.refresh_grace_seconds).await?;
    let grant = match outcome {
        sessions::Refresh::Rotated(g) => g,
        other => {
            // A reuse ends the session: that must stick although the answer is an error.
            tx.commit().await?;
            if matches!(other, sessions::Refresh::Reused) {
                tracing::warn!("refresh token reuse: session revoked");
                return Err(ApiError::unauthorized(
                    "refresh token already used; the session has been ended",
                ));
            }
            return Err(ApiError::unauthorized("invalid or expired refresh token"));
        }
    };
    if !users::is_member(&mut tx, &grant.org_id, &grant.user_id).await? {
        // The old token stays used up, as before the membership was looked at.
        tx.commit().await?;
        return Err(ApiError::unauthorized("membership ended"));
    }
    let out = token_pair(
        &mut tx,
        &grant.session_id,
        &grant.org_id,
        &grant.user_id,
        (st.cfg.access_ttl, st.cfg.refresh_ttl),
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

/// Ends the session named by `token` (one of its access or refresh tokens, not used up),
/// and with `all` every other session of the user, in every organization. No such valid
/// token: 401.
pub(crate) async fn logout(st: &AppState, token: &str, all: bool) -> ApiResult<()> {
    let mut tx = st.db.tx().await?;
    let (session, user) = if let Some(g) = sessions::access(&mut tx, token).await? {
        (g.session_id, g.user_id)
    } else if let sessions::Refresh::Rotated(g) =
        sessions::refresh(&mut tx, token, false, st.cfg.refresh_grace_seconds).await?
    {
        (g.session_id, g.user_id)
    } else {
        return Err(ApiError::unauthorized("invalid or expired token"));
    };
    sessions::revoke(&mut tx, &session).await?;
    if all {
        sessions::revoke_user(&mut tx, &user, None).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Older clients: an access token of the session whose current refresh token is `token`,
/// which is not used up. Returns it with its lifetime in seconds. Invalid, expired or
/// already replaced (a replaced one ends the session unless within the grace period), or a
/// membership that ended: 401.
pub(crate) async fn access_for_session_token(
    st: &AppState,
    token: &str,
) -> ApiResult<(String, u64)> {
    let mut tx = st.db.tx().await?;
    let outcome = sessions::refresh(&mut tx, token, false, st.cfg.refresh_grace_seconds).await?;
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
    let access = sessions::issue(
        &mut tx,
        "access",
        &grant.user_id,
        Some(&grant.session_id),
        st.cfg.access_ttl,
    )
    .await?;
    tx.commit().await?;
    Ok((access, st.cfg.access_ttl))
}
