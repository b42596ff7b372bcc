//! Logging in, in one or two steps: a person's username and password answer the
//! organizations to choose from and an organization-selection token; that token with an
//! organization (or the password with one at once) opens a session. Password checks go
//! through the brute-force limit of [`crate::ratelimit`].

use super::sessions::{self, SessionTokens, Ttls};
use crate::error::{ApiError, ApiResult};
use crate::ratelimit;
use crate::state::AppState;
use crate::store::{self, users};

/// What a login presents: the fields of the Login body, each optional; which are present
/// tells the steps apart (so that a missing field is named in the 400 of its step).
pub(crate) struct LoginInput {
    /// A person's username (with `password`).
    pub username: Option<String>,
    /// The person's password.
    pub password: Option<String>,
    /// The first step's token (without `username` and `password`).
    pub org_selection_token: Option<String>,
    /// The organization to open a session in.
    pub org_name: Option<String>,
    /// The access token's lifetime asked for, in seconds.
    pub access_ttl: Option<u64>,
    /// The refresh token's lifetime asked for, in seconds.
    pub refresh_ttl: Option<u64>,
}

/// An organization a user may open a session in: (name, label).
pub(crate) type OrgOption = (String, String);

/// What a login ends with.
pub(crate) enum LoginOutcome {
    /// A session was opened in the organization named.
    Session(SessionTokens),
    /// The password was right; an organization is to be chosen.
    Choice {
        /// The organization-selection token, reusable while valid.
        token: String,
        /// Seconds the token is valid.
        expires_in: u64,
        /// The organizations the user belongs to, by name.
        orgs: Vec<OrgOption>,
    },
}

/// Runs a login from `client` (the address its attempts count against). Checks in order:
/// the lifetimes (400), the step's fields (400), then either the organization-selection
/// token (401) or the attempt limit (429, or 503 when too many wait at once) and the
/// password (401 for a wrong one, an unknown username or a machine user, alike and as slow),
/// then the membership of the organization named (403).
pub(crate) async fn login(st: &AppState, client: &str, b: LoginInput) -> ApiResult<LoginOutcome> {
    for (f, v) in [("accessTTL", b.access_ttl), ("refreshTTL", b.refresh_ttl)] {
        if v == Some(0) {
            return Err(ApiError::invalid(f, format!("{f} must be a positive number of seconds")));
        }
    }
    let ttls = (
        b.access_ttl.unwrap_or(st.cfg.access_ttl).min(st.cfg.access_ttl),
        b.refresh_ttl.unwrap_or(st.cfg.refresh_ttl).min(st.cfg.refresh_ttl),
    );
    if let Some(tok) = b.org_selection_token {
        if b.username.is_some() || b.password.is_some() {
            return Err(ApiError::bad_request(
                "orgSelectionToken goes without username and password",
            ));
        }
        let org =
            b.org_name.ok_or_else(|| ApiError::invalid("orgName", "missing field 'orgName'"))?;
        return select_org(st, &tok, &org, ttls).await.map(LoginOutcome::Session);
    }
    let username =
        b.username.ok_or_else(|| ApiError::invalid("username", "missing field 'username'"))?;
    let password =
        b.password.ok_or_else(|| ApiError::invalid("password", "missing field 'password'"))?;
    let user = check_password(st, client, &username, password).await?;
    let mut tx = st.db.tx().await?;
    let out = match b.org_name {
        Some(org) => LoginOutcome::Session(sessions::open(&mut tx, &user.id, &org, ttls).await?),
        None => {
            let orgs = users::orgs_of(&mut tx, &user.id)
                .await?
                .into_iter()
                .map(|(_, name, label)| (name, label))
                .collect();
            let token =
                store::sessions::issue(&mut tx, "orgsel", &user.id, None, st.cfg.orgsel_ttl)
                    .await?;
            LoginOutcome::Choice { token, expires_in: st.cfg.orgsel_ttl, orgs }
        }
    };
    tx.commit().await?;
    Ok(out)
}

/// The second step: the user of organization-selection token `token` (401 when invalid
/// or expired) opens a session in `org_name`.
async fn select_org(
    st: &AppState,
    token: &str,
    org_name: &str,
    ttls: Ttls,
) -> ApiResult<SessionTokens> {
    let mut tx = st.db.tx().await?;
    let user = store::sessions::org_selection(&mut tx, token)
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid or expired orgSelectionToken"))?;
    let out = sessions::open(&mut tx, &user, org_name, ttls).await?;
    tx.commit().await?;
    Ok(out)
}

/// The person `username` if `password` is theirs, under the attempt limit: the attempt is
/// counted before the check, so parallel guesses cannot pass the limit together; a wrong
/// password makes it a failure, a right one (or none checked) releases it.
async fn check_password(
    st: &AppState,
    client: &str,
    username: &str,
    password: String,
) -> ApiResult<users::User> {
    let attempt = ratelimit::reserve(st, username, client).await?;
    let user = users::by_username(&mut *st.db.conn().await?, username).await?;
    // Check a hash either way so an unknown username takes as long as a wrong password.
    // No connection is held meanwhile (`db::held`).
    let hash =
        user.as_ref().and_then(|u| u.pw_hash.clone()).unwrap_or_else(|| st.dummy_hash.clone());
    let ok = match st.passwords.verify(password, hash).await {
        Ok(ok) => ok,
        Err(e) => {
            // Not checked (too busy): the attempt does not count.
            attempt.release(st).await?;
            return Err(e);
        }
    };
    match user {
        Some(u) if ok && !u.is_machine() && u.pw_hash.is_some() => {
            attempt.release(st).await?;
            Ok(u)
        }
        _ => {
            attempt.failed(st).await?;
            Err(ApiError::unauthorized("wrong username or password"))
        }
    }
}
