//! Apps: validation of the app body, creating and updating an app, and the `maxBuilds`
//! rotation.

use crate::error::{ApiError, ApiResult};
use crate::ids::{AppId, OrgId};
use crate::names::Name;
use crate::state::AppState;
use crate::store::apps;
use serde::Deserialize;
use serde_json::json;

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
    let key = format!("ck_{}", crate::util::random_token());
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

/// Creates an app of the caller's organization with a fresh client key. Checks in the API's
/// order: the body (400), `apps: Create` (403), an unknown deployment (400), a taken name
/// (409). Returns its id.
pub(crate) async fn create(
    st: &AppState,
    c: &crate::caller::Caller,
    b: &AppIn,
) -> ApiResult<AppId> {
    let name = Name::parse("name", &b.name)?;
    let label = crate::names::text("label", &b.label, 1, 200)?;
    check_max_builds(b.max_builds)?;
    check_deployments(&b.deployments)?;
    c.require(crate::perms::Resource::Apps, crate::perms::C)?;
    let mut tx = st.db.tx().await?;
    known_deployments(&mut tx, &c.org_id, &b.deployments).await?;
    let deployments = b.deployments.clone().unwrap_or_default();
    let id = insert_app(
        st,
        &mut tx,
        &c.org_id,
        name.as_str(),
        &label,
        b.max_builds.unwrap_or(5),
        &deployments,
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}
