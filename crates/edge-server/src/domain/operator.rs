//! What the operator does to the instance — maintenance mode, the test task — with the
//! checks the admin API and the console share. The admin API's callers hold the admin
//! token; the console's are members of the operator organization, and
//! [`require_operator`] holds them to its permission bits.

use super::audit::audit;
use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::perms::Resource;
use crate::state::{AppState, Maintenance};
use crate::store::tasks;

/// 403 unless `c` is of the operator organization and holds `bits` on `orgs`.
pub fn require_operator(c: &Caller, bits: u8) -> ApiResult<()> {
    if !c.operator {
        return Err(ApiError::forbidden("only the operator organization manages organizations"));
    }
    c.require(Resource::Orgs, bits)
}

/// Turns maintenance mode on or off for `actor` (audited); `retry_after` defaults to the
/// server's setting and must be 1 s to 7 days (400).
pub async fn set_maintenance(
    st: &AppState,
    actor: &str,
    enabled: bool,
    retry_after: Option<u64>,
) -> ApiResult<Maintenance> {
    let ra = retry_after.unwrap_or(st.cfg.maintenance_retry_after);
    if ra == 0 || ra > 7 * 86_400 {
        return Err(ApiError::invalid("retryAfter", "retryAfter must be 1..604800 seconds"));
    }
    let m = st.set_maintenance(enabled, ra).await?;
    audit(st, actor, if enabled { "maintenance.on" } else { "maintenance.off" }, "").await?;
    Ok(m)
}

/// Submits the test task for `actor` (audited); answers its name.
pub async fn hello(st: &AppState, actor: &str, message: String, sweep: bool) -> ApiResult<String> {
    let (name, _) = tasks::enqueue(
        &mut *st.db.conn().await?,
        tasks::NewTask::of(tasks::HelloParams {
            admin: actor.to_string(),
            maintenance: sweep,
            message,
        }),
    )
    .await?;
    audit(st, actor, "hello", name.as_str()).await?;
    Ok(name.into_string())
}

/// The version of the worker that last ran the test task; none before one did.
pub async fn worker_version(st: &AppState) -> ApiResult<Option<String>> {
    Ok(crate::store::settings::get(&st.db, "worker_version").await?)
}
