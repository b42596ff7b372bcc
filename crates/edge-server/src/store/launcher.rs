//! What launchers reach: their sessions (`rte_sessions`), the app as a client key opens
//! it, and which deployment holds a published image.

use super::Conn;
use crate::ids::{AppId, BuildId, DeploymentId, OrgId};
use crate::util::now_ms;

/// A launcher session with its org's and app's names.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: String,
    pub org_id: OrgId,
    pub app_id: AppId,
    pub build_id: BuildId,
    pub dxf_name: String,
    pub trace_id: Option<String>,
    pub expires: i64,
    pub org_name: String,
    pub app_name: String,
}

/// The session whose token hashes to `token_hash`.
pub async fn session_by_token(
    c: &mut Conn,
    token_hash: &str,
) -> Result<Option<SessionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.id, s.org_id, s.app_id, s.build_id, s.dxf_name, s.trace_id, s.expires, o.name AS org_name, a.name AS app_name \
         FROM rte_sessions s JOIN orgs o ON o.id = s.org_id JOIN apps a ON a.id = s.app_id WHERE s.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(c)
    .await
}

/// The app a launcher names, with what opening a session needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LauncherApp {
    pub id: AppId,
    pub org_id: OrgId,
    pub name: String,
    /// JSON array of deployment names.
    pub deployments: String,
    pub client_key_sealed: Option<String>,
    pub i_cur_build: Option<BuildId>,
    pub public_key_pem: Option<String>,
}

/// App `app` of organization `org` (by names).
pub async fn app(c: &mut Conn, org: &str, app: &str) -> Result<Option<LauncherApp>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.id, a.org_id, a.name, a.deployments, a.client_key_sealed, a.i_cur_build, o.public_key_pem FROM apps a \
         JOIN orgs o ON o.id = a.org_id WHERE o.name = $1 AND a.name = $2",
    )
    .bind(org)
    .bind(app)
    .fetch_optional(c)
    .await
}

/// The image name of a build the app keeps (current or retained) that has one.
pub async fn image_of(
    c: &mut Conn,
    app_id: &AppId,
    build_id: BuildId,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT dxf_name FROM builds WHERE app_id = $1 AND build_id = $2 AND status IN ('current', 'retained') AND dxf_name IS NOT NULL",
    )
    .bind(app_id)
    .bind(build_id)
    .fetch_optional(c)
    .await
}

/// A new open session.
pub struct NewSession<'a> {
    pub id: &'a str,
    pub org_id: &'a OrgId,
    pub app_id: &'a AppId,
    pub build_id: BuildId,
    pub dxf_name: &'a str,
    pub token_hash: String,
    pub client: &'a str,
    pub created: i64,
    pub expires: i64,
}

/// Records a new open session.
pub async fn insert_session(c: &mut Conn, s: NewSession<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rte_sessions (id, org_id, app_id, build_id, dxf_name, token_hash, state, client, created, expires) \
         VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9)",
    )
    .bind(s.id)
    .bind(s.org_id)
    .bind(s.app_id)
    .bind(s.build_id)
    .bind(s.dxf_name)
    .bind(s.token_hash)
    .bind(s.client)
    .bind(s.created)
    .bind(s.expires)
    .execute(c)
    .await?;
    Ok(())
}

/// Ends an open session with what the launcher measured; false when it had ended.
pub async fn end_session(
    c: &mut Conn,
    id: &str,
    play_seconds: Option<i64>,
    stalls: Option<i64>,
    stall_seconds: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE rte_sessions SET state = 'ended', ended = $1, play_seconds = $2, stalls = $3, stall_seconds = $4 WHERE id = $5 AND state = 'open'",
    )
    .bind(now_ms())
    .bind(play_seconds)
    .bind(stalls)
    .bind(stall_seconds)
    .bind(id)
    .execute(c)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// True when deployment `deployment` holds the published object `key` of the app (not
/// superseded).
pub async fn holds(
    c: &mut Conn,
    app_id: &AppId,
    deployment: &DeploymentId,
    key: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("SELECT 1 FROM published WHERE app_id = $1 AND deployment_id = $2 AND obj_key = $3 AND superseded IS NULL")
        .bind(app_id)
        .bind(deployment)
        .bind(key)
        .fetch_optional(c)
        .await?
        .is_some())
}

/// Marks trace `trace_id` as the session's one trace; false when it sent one already.
pub async fn claim_trace(c: &mut Conn, session: &str, trace_id: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE rte_sessions SET trace_id = $1 WHERE id = $2 AND trace_id IS NULL")
        .bind(trace_id)
        .bind(session)
        .execute(c)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Deletes launcher sessions whose token expired before `now` (their traces stay);
/// returns how many.
pub async fn expire_sessions(c: &mut Conn, now: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM rte_sessions WHERE expires < $1")
        .bind(now)
        .execute(c)
        .await?
        .rows_affected())
}
