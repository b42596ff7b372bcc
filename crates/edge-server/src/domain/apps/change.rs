//! Changing an app: its label, how many builds it keeps (lowering it rotates at once) and
//! the deployments it publishes to.

use super::{
    check_deployments, check_max_builds, detail, known_deployments, update_app, AppDetail,
};
use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::names::text;
use crate::perms::{Resource, U};
use crate::state::AppState;
use crate::store::apps;

/// A change of an app: the app by name, and what changes (`None`: stays).
pub(crate) struct AppChange {
    /// The app to change.
    pub name: String,
    /// The new label, 1 to 200 characters.
    pub label: Option<String>,
    /// How many builds to keep, 1 to 100.
    pub max_builds: Option<i64>,
    /// The deployments to publish to from now on, by name (empty: every deployment).
    pub deployments: Option<Vec<String>>,
}

/// Changes the caller's app. Checks in the API's order: the change (400), `apps: Update`
/// (403), then in the transaction that saves it every deployment named known (400) and
/// the app (404). Answers the app as changed, read in the same transaction.
pub(crate) async fn update(st: &AppState, c: &Caller, ch: AppChange) -> ApiResult<AppDetail> {
    let label = ch.label.as_deref().map(|l| text("label", l, 1, 200)).transpose()?;
    check_max_builds(ch.max_builds)?;
    check_deployments(&ch.deployments)?;
    c.require(Resource::Apps, U)?;
    let mut tx = st.db.tx().await?;
    known_deployments(&mut tx, &c.org_id, &ch.deployments).await?;
    let changed = update_app(
        &mut tx,
        &c.org_id,
        &ch.name,
        label.as_deref(),
        ch.max_builds,
        ch.deployments.as_deref(),
    )
    .await?;
    if !changed {
        return Err(ApiError::not_found("app", &ch.name));
    }
    let r = apps::by_name(&mut tx, &c.org_id, &ch.name)
        .await?
        .ok_or_else(|| ApiError::not_found("app", &ch.name))?;
    let d = detail(&mut tx, r).await?;
    tx.commit().await?;
    Ok(d)
}
