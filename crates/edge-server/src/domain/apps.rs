//! Apps: validation of the app body, creating one (with a fresh client key), one read with
//! the builds and patches it keeps, and the `maxBuilds` rotation. Changing one is
//! [`change`], deleting one [`delete`], a new client key [`client_key`].

use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::ids::{AppId, OrgId};
use crate::names::{text, Name};
use crate::perms::{Resource, C, R};
use crate::state::AppState;
use crate::store::apps::{self, AppRow, KeptBuild, KeptPatch};
use crate::store::Conn;
use serde::Deserialize;
use serde_json::json;

pub mod change;
pub mod client_key;
pub mod delete;

/// The Create App body (also an app item of a configuration bundle).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct AppIn {
    /// Unique in the organization: 2 to 50 letters, digits or `_`.
    #[schema(pattern = "^[A-Za-z0-9_]{2,50}$")]
    pub name: String,
    /// Free text, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub label: String,
    /// How many builds the app keeps (1 to 100, default 5); older ones are removed.
    #[schema(minimum = 1, maximum = 100)]
    pub max_builds: Option<i64>,
    /// The deployments its builds are published to, by name (each at most once); none or
    /// absent: every deployment of the organization.
    pub deployments: Option<Vec<String>>,
}

pub(crate) fn check_max_builds(m: Option<i64>) -> ApiResult<()> {
    if m.is_some_and(|m| !(1..=100).contains(&m)) {
        return Err(ApiError::invalid("maxBuilds", "maxBuilds must be 1..100"));
    }
    Ok(())
}

/// Validates deployment names (pattern, no duplicates); existence is checked against the
/// org's deployments in [`known_deployments`].
pub(crate) fn check_deployments(d: &Option<Vec<String>>) -> ApiResult<()> {
    if let Some(list) = d {
        let mut seen = std::collections::HashSet::new();
        for n in list {
            Name::parse("deployments", n)?;
            if !seen.insert(n) {
                return Err(ApiError::invalid(
                    "deployments",
                    format!("deployment '{n}' is listed twice"),
                ));
            }
        }
    }
    Ok(())
}

pub(crate) async fn known_deployments(
    c: &mut crate::store::Conn,
    org: &OrgId,
    d: &Option<Vec<String>>,
) -> ApiResult<()> {
    if let Some(list) = d {
        let all = crate::store::deployments::list(c, org).await?;
        if let Some(n) = list.iter().find(|n| !all.iter().any(|d| &d.name == *n)) {
            return Err(ApiError::invalid("deployments", format!("unknown deployment '{n}'")));
        }
    }
    Ok(())
}

/// A fresh client key (`ck_…`), for the `x-rockit-client-key` header of launchers.
fn new_client_key() -> String {
    format!("ck_{}", crate::util::random_token())
}

/// Inserts a validated app with a fresh client key; returns its id.
pub(crate) async fn insert_app(
    st: &AppState,
    c: &mut crate::store::Conn,
    org_id: &OrgId,
    name: &str,
    label: &str,
    max_builds: i64,
    deployments: &[String],
) -> ApiResult<AppId> {
    let key = new_client_key();
    Ok(apps::insert(
        c,
        org_id,
        name,
        label,
        max_builds,
        &json!(deployments).to_string(),
        &st.data_key.seal(key.as_bytes()),
    )
    .await?)
}

/// An app with the builds and patches it keeps, read together (in one transaction when
/// the app was just written).
pub(crate) struct AppDetail {
    /// The app's row.
    pub app: AppRow,
    /// The builds it keeps, oldest first.
    pub builds: Vec<KeptBuild>,
    /// The patches it keeps, by older build.
    pub patches: Vec<KeptPatch>,
}

/// Reads the builds and patches `app` keeps.
pub(crate) async fn detail(c: &mut Conn, app: AppRow) -> Result<AppDetail, sqlx::Error> {
    let builds = apps::kept_builds(&mut *c, &app.id).await?;
    let patches = apps::kept_patches(&mut *c, &app.id).await?;
    Ok(AppDetail { app, builds, patches })
}

/// The caller's app `name` with what it keeps (`apps: Read`; 404 for an unknown name).
pub(crate) async fn get(st: &AppState, c: &Caller, name: &str) -> ApiResult<AppDetail> {
    c.require(Resource::Apps, R)?;
    let mut conn = st.db.conn().await?;
    let r = apps::by_name(&mut conn, &c.org_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found("app", name))?;
    Ok(detail(&mut conn, r).await?)
}

/// Creates an app of the caller's organization with a fresh client key. Checks in the
/// API's order: the body (400), `apps: Create` (403), then in the transaction that saves
/// it every deployment named known (400) and the name free (409 `item-exists`). Answers
/// the app as saved, read in the same transaction.
pub(crate) async fn create(st: &AppState, c: &Caller, b: &AppIn) -> ApiResult<AppDetail> {
    let name = Name::parse("name", &b.name)?;
    let label = text("label", &b.label, 1, 200)?;
    check_max_builds(b.max_builds)?;
    check_deployments(&b.deployments)?;
    c.require(Resource::Apps, C)?;
    let mut tx = st.db.tx().await?;
    known_deployments(&mut tx, &c.org_id, &b.deployments).await?;
    let id = insert_app(
        st,
        &mut tx,
        &c.org_id,
        name.as_str(),
        &label,
        b.max_builds.unwrap_or(5),
        b.deployments.as_deref().unwrap_or_default(),
    )
    .await?;
    let r = apps::by_id(&mut tx, &id).await?.ok_or_else(|| ApiError::internal("app vanished"))?;
    let d = detail(&mut tx, r).await?;
    tx.commit().await?;
    Ok(d)
}

/// Changes an app's settings (absent fields stay); lowering `maxBuilds` rotates at once.
/// Returns false when the app does not exist.
pub(crate) async fn update_app(
    c: &mut crate::store::Conn,
    org_id: &OrgId,
    name: &str,
    label: Option<&str>,
    max_builds: Option<i64>,
    deployments: Option<&[String]>,
) -> ApiResult<bool> {
    if !apps::update(
        &mut *c,
        org_id,
        name,
        label,
        max_builds,
        deployments.map(|d| json!(d).to_string()),
    )
    .await?
    {
        return Ok(false);
    }
    if max_builds.is_some() {
        let id = apps::id_of(&mut *c, org_id, name)
            .await?
            .ok_or_else(|| ApiError::internal("app vanished"))?;
        rotate(c, &id).await?;
    }
    Ok(true)
}

/// Keeps at most `maxBuilds` builds and the patches into the current build from them: the
/// current build, whatever its age (after a rollback it is not the newest), and the newest
/// of the others.
pub async fn rotate(c: &mut crate::store::Conn, app_id: &AppId) -> Result<(), sqlx::Error> {
    let a = apps::rotation_facts(&mut *c, app_id).await?;
    let (max, cur) = (a.max_builds, a.i_cur_build.unwrap_or(0));
    let kept = apps::kept_images_newest_first(&mut *c, app_id).await?;
    let mut others = max - i64::from(kept.iter().any(|(id, _)| *id == cur));
    let mut live = Vec::new();
    for (id, dxf) in kept {
        let keep = id == cur || others > 0;
        if id != cur && keep {
            others -= 1;
        }
        if keep {
            live.push(edge_origin::keys::dxf_dir(
                "",
                &a.org_name,
                &a.name,
                id as u64,
                &dxf.unwrap_or_default(),
            ));
            if id != cur {
                live.push(edge_origin::keys::pat_dir(
                    "",
                    &a.org_name,
                    &a.name,
                    cur as u64,
                    id as u64,
                ));
            }
        } else {
            apps::remove_build(&mut *c, app_id, id).await?;
        }
    }
    apps::prune_patches(&mut *c, app_id, cur).await?;
    let live: Vec<String> = live.into_iter().map(|l| format!("{l}/")).collect();
    crate::store::published::supersede_except(c, app_id, &live).await?;
    Ok(())
}
