//! Apps: validation of the app body, creating and updating an app, and the `maxBuilds`
//! rotation.

use crate::db::{i, opt_i, s};
use crate::error::{ApiError, ApiResult};
use crate::names::Name;
use crate::state::AppState;
use crate::util::{new_id, now_ms};
use serde::Deserialize;
use serde_json::json;

/// The Create App body (also an app item of a configuration bundle).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct AppIn {
    pub name: String,
    pub label: String,
    pub max_builds: Option<i64>,
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
                return Err(ApiError::invalid("deployments", format!("deployment '{n}' is listed twice")));
            }
        }
    }
    Ok(())
}

pub(crate) async fn known_deployments(c: &mut crate::store::Conn, org: &str, d: &Option<Vec<String>>) -> ApiResult<()> {
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
    org_id: &str,
    name: &str,
    label: &str,
    max_builds: i64,
    deployments: &[String],
) -> ApiResult<String> {
    let key = format!("ck_{}", crate::util::random_token());
    let id = new_id("app");
    sqlx::query(
        "INSERT INTO apps (id, org_id, name, label, max_builds, deployments, client_key_sealed, created, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(name)
    .bind(label)
    .bind(max_builds)
    .bind(json!(deployments).to_string())
    .bind(st.data_key.seal(key.as_bytes()))
    .bind(now_ms())
    .execute(&mut *c)
    .await?;
    Ok(id)
}

/// Changes an app's settings (absent fields stay); lowering `maxBuilds` rotates at once.
/// Returns false when the app does not exist.
pub(crate) async fn update_app(
    c: &mut crate::store::Conn,
    org_id: &str,
    name: &str,
    label: Option<&str>,
    max_builds: Option<i64>,
    deployments: Option<&[String]>,
) -> ApiResult<bool> {
    let done = sqlx::query(
        "UPDATE apps SET label = COALESCE($1, label), max_builds = COALESCE($2, max_builds), deployments = COALESCE($3, deployments), \
         updated = $4 WHERE org_id = $5 AND name = $6",
    )
    .bind(label)
    .bind(max_builds)
    .bind(deployments.map(|d| json!(d).to_string()))
    .bind(now_ms())
    .bind(org_id)
    .bind(name)
    .execute(&mut *c)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    if max_builds.is_some() {
        let r = sqlx::query("SELECT id FROM apps WHERE org_id = $1 AND name = $2").bind(org_id).bind(name).fetch_one(&mut *c).await?;
        crate::domain::apps::rotate(c, &s(&r, "id")).await?;
    }
    Ok(true)
}

/// Keeps at most `maxBuilds` builds and the patches into the current build from them.
pub async fn rotate(c: &mut crate::store::Conn, app_id: &str) -> Result<(), sqlx::Error> {
    let a = sqlx::query(
        "SELECT a.name, a.max_builds, a.i_cur_build, o.name AS org_name FROM apps a JOIN orgs o ON o.id = a.org_id WHERE a.id = $1",
    )
    .bind(app_id)
    .fetch_one(&mut *c)
    .await?;
    let (max, cur) = (i(&a, "max_builds"), opt_i(&a, "i_cur_build").unwrap_or(0));
    let rows =
        sqlx::query("SELECT build_id, dxf_name FROM builds WHERE app_id = $1 AND status IN ('current', 'retained') ORDER BY build_id DESC")
            .bind(app_id)
            .fetch_all(&mut *c)
            .await?;
    let mut live = Vec::new();
    for (k, r) in rows.iter().enumerate() {
        let id = i(r, "build_id");
        if (k as i64) < max {
            live.push(edge_origin::keys::dxf_dir("", &s(&a, "org_name"), &s(&a, "name"), id as u64, &s(r, "dxf_name")));
            if id != cur {
                live.push(edge_origin::keys::pat_dir("", &s(&a, "org_name"), &s(&a, "name"), cur as u64, id as u64));
            }
        } else {
            sqlx::query("UPDATE builds SET status = 'removed' WHERE app_id = $1 AND build_id = $2")
                .bind(app_id)
                .bind(id)
                .execute(&mut *c)
                .await?;
        }
    }
    sqlx::query("DELETE FROM patches WHERE app_id = $1 AND (to_build <> $2 OR from_build IN (SELECT build_id FROM builds WHERE app_id = $1 AND status = 'removed'))")
        .bind(app_id)
        .bind(cur)
        .execute(&mut *c)
        .await?;
    let live: Vec<String> = live.into_iter().map(|l| format!("{l}/")).collect();
    crate::store::published::supersede_except(c, app_id, &live).await?;
    Ok(())
}
