//! Apps: settings, client keys, the current build, and what the pipeline reads of them.

use super::Conn;
use crate::ids::{AppId, OrgId, TaskId};
use crate::util::{new_id, now_ms};

/// An app as the API shows it, with the counts that make `processing` and `exporting`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AppRow {
    pub id: AppId,
    pub name: String,
    pub label: String,
    pub max_builds: i64,
    /// JSON array of deployment names.
    pub deployments: String,
    pub client_key_sealed: Option<String>,
    pub i_cur_build: Option<i64>,
    pub dxf_name: Option<String>,
    pub build_name: Option<String>,
    /// 1 while the app is locked after a failed publish.
    pub error: i64,
    pub error_task: Option<String>,
    pub created: i64,
    pub updated: i64,
    /// Unfinished pipeline tasks (a waiting upload only once its archive is in).
    pub active: i64,
    /// Running `deploy` tasks.
    pub exporting: i64,
}

const SELECT: &str = "SELECT a.id, a.name, a.label, a.max_builds, a.deployments, a.client_key_sealed, a.i_cur_build, a.dxf_name, \
    a.build_name, a.error, a.error_task, a.created, a.updated, \
    (SELECT COUNT(*) FROM tasks t WHERE t.app_id = a.id AND t.status IN ('submitted', 'running') AND t.type <> 'purge' \
     AND (t.queue_pos IS NOT NULL OR (t.step = 1 AND t.run_after < 9000000000000000000))) AS active, \
    (SELECT COUNT(*) FROM tasks t WHERE t.app_id = a.id AND t.status = 'running' AND t.type = 'deploy') AS exporting \
    FROM apps a";

/// The app `id`.
pub async fn by_id(c: &mut Conn, id: &AppId) -> Result<Option<AppRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE a.id = $1")).bind(id).fetch_optional(c).await
}

/// The app `name` of `org`.
pub async fn by_name(c: &mut Conn, org: &OrgId, name: &str) -> Result<Option<AppRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE a.org_id = $1 AND a.name = $2"))
        .bind(org)
        .bind(name)
        .fetch_optional(c)
        .await
}

/// Every app of `org`.
pub async fn list(c: &mut Conn, org: &OrgId) -> Result<Vec<AppRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE a.org_id = $1")).bind(org).fetch_all(c).await
}

/// A build an app keeps (current or retained).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeptBuild {
    pub build_id: i64,
    pub build_name: String,
    pub dxf_name: Option<String>,
    pub image_bytes: i64,
    pub created: i64,
}

/// The builds an app keeps, oldest first.
pub async fn kept_builds(c: &mut Conn, app_id: &AppId) -> Result<Vec<KeptBuild>, sqlx::Error> {
    sqlx::query_as(
        "SELECT build_id, build_name, dxf_name, image_bytes, created FROM builds WHERE app_id = $1 AND status IN ('current', 'retained') ORDER BY build_id",
    )
    .bind(app_id)
    .fetch_all(c)
    .await
}

/// A patch an app keeps.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeptPatch {
    pub from_build: i64,
    pub to_build: i64,
    pub size_bytes: i64,
}

/// The patches an app keeps, by older build.
pub async fn kept_patches(c: &mut Conn, app_id: &AppId) -> Result<Vec<KeptPatch>, sqlx::Error> {
    sqlx::query_as("SELECT from_build, to_build, size_bytes FROM patches WHERE app_id = $1 ORDER BY from_build")
        .bind(app_id)
        .fetch_all(c)
        .await
}

/// A new app of `org`; returns its id.
pub async fn insert(
    c: &mut Conn,
    org: &OrgId,
    name: &str,
    label: &str,
    max_builds: i64,
    deployments_json: &str,
    client_key_sealed: &str,
) -> Result<AppId, sqlx::Error> {
    let id = AppId::new(new_id("app"));
    sqlx::query(
        "INSERT INTO apps (id, org_id, name, label, max_builds, deployments, client_key_sealed, created, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(&id)
    .bind(org)
    .bind(name)
    .bind(label)
    .bind(max_builds)
    .bind(deployments_json)
    .bind(client_key_sealed)
    .bind(now_ms())
    .execute(c)
    .await?;
    Ok(id)
}

/// Changes what is given of an app's settings; false when `org` has no app `name`.
pub async fn update(
    c: &mut Conn,
    org: &OrgId,
    name: &str,
    label: Option<&str>,
    max_builds: Option<i64>,
    deployments_json: Option<String>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE apps SET label = COALESCE($1, label), max_builds = COALESCE($2, max_builds), deployments = COALESCE($3, deployments), \
         updated = $4 WHERE org_id = $5 AND name = $6",
    )
    .bind(label)
    .bind(max_builds)
    .bind(deployments_json)
    .bind(now_ms())
    .bind(org)
    .bind(name)
    .execute(c)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The id of `org`'s app `name`.
pub async fn id_of(c: &mut Conn, org: &OrgId, name: &str) -> Result<Option<AppId>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM apps WHERE org_id = $1 AND name = $2")
        .bind(org)
        .bind(name)
        .fetch_optional(c)
        .await
}

/// A new sealed client key; false when `org` has no app `name`.
pub async fn set_client_key(
    c: &mut Conn,
    org: &OrgId,
    name: &str,
    sealed: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE apps SET client_key_sealed = $1, updated = $2 WHERE org_id = $3 AND name = $4",
    )
    .bind(sealed)
    .bind(now_ms())
    .bind(org)
    .bind(name)
    .execute(c)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Cancels the app's unfinished tasks (purges aside).
pub async fn cancel_tasks(c: &mut Conn, app_id: &AppId) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE tasks SET status = 'canceled', ended = $1 WHERE app_id = $2 AND status IN ('submitted', 'running') AND type <> 'purge'",
    )
    .bind(now_ms())
    .bind(app_id)
    .execute(c)
    .await?;
    Ok(())
}

/// Deletes the app with its tasks, builds, patches, uploads, launcher sessions, traces and
/// training.
pub async fn delete(c: &mut Conn, app_id: &AppId) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM tasks WHERE app_id = $1").bind(app_id).execute(&mut *c).await?;
    for table in ["builds", "patches", "uploads", "rte_sessions", "traces", "trainings"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE app_id = $1"))
            .bind(app_id)
            .execute(&mut *c)
            .await?;
    }
    sqlx::query("DELETE FROM apps WHERE id = $1").bind(app_id).execute(c).await?;
    Ok(())
}

/// What rotation needs to know of an app.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RotationFacts {
    pub name: String,
    pub max_builds: i64,
    pub i_cur_build: Option<i64>,
    pub org_name: String,
}

/// [`RotationFacts`] of app `id`.
pub async fn rotation_facts(c: &mut Conn, id: &AppId) -> Result<RotationFacts, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.name, a.max_builds, a.i_cur_build, o.name AS org_name FROM apps a JOIN orgs o ON o.id = a.org_id WHERE a.id = $1",
    )
    .bind(id)
    .fetch_one(c)
    .await
}

/// The app's kept builds, newest first: (build id, image name).
pub async fn kept_images_newest_first(
    c: &mut Conn,
    app_id: &AppId,
) -> Result<Vec<(i64, Option<String>)>, sqlx::Error> {
    sqlx::query_as("SELECT build_id, dxf_name FROM builds WHERE app_id = $1 AND status IN ('current', 'retained') ORDER BY build_id DESC")
        .bind(app_id)
        .fetch_all(c)
        .await
}

/// Marks a build rotated out.
pub async fn remove_build(c: &mut Conn, app_id: &AppId, build_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE builds SET status = 'removed' WHERE app_id = $1 AND build_id = $2")
        .bind(app_id)
        .bind(build_id)
        .execute(c)
        .await?;
    Ok(())
}

/// Drops the patches that do not lead into build `cur` or start from a removed build.
pub async fn prune_patches(c: &mut Conn, app_id: &AppId, cur: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM patches WHERE app_id = $1 AND (to_build <> $2 OR from_build IN (SELECT build_id FROM builds WHERE app_id = $1 AND status = 'removed'))")
        .bind(app_id)
        .bind(cur)
        .execute(c)
        .await?;
    Ok(())
}

// What the pipeline (`delivery`) reads and changes of an app.

/// An app as a pipeline task sees it, with its organization's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PipelineApp {
    pub id: AppId,
    pub name: String,
    pub org_id: OrgId,
    pub org_name: String,
    pub max_builds: i64,
    /// JSON array of deployment names.
    pub deployments: String,
    pub i_cur_build: Option<i64>,
}

/// The app `app_id` as a pipeline task sees it (`None` once it was deleted).
pub async fn for_pipeline(
    c: &mut Conn,
    app_id: &AppId,
) -> Result<Option<PipelineApp>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.id, a.name, a.org_id, o.name AS org_name, a.max_builds, a.deployments, a.i_cur_build FROM apps a JOIN orgs o ON o.id = a.org_id WHERE a.id = $1",
    )
    .bind(app_id)
    .fetch_optional(c)
    .await
}

/// Takes the app's next build id. The counter moves in the caller's transaction (the one
/// that records the build), so two builds never get the same id.
pub async fn take_build_id(c: &mut Conn, app_id: &AppId) -> Result<i64, sqlx::Error> {
    let next: i64 = sqlx::query_scalar(
        "UPDATE apps SET next_build_id = next_build_id + 1 WHERE id = $1 RETURNING next_build_id",
    )
    .bind(app_id)
    .fetch_one(c)
    .await?;
    Ok(next - 1)
}

/// Locks the app after task `task` failed to publish (the API shows `error` until a
/// build is made current again).
pub async fn lock_on_failure(
    c: &mut Conn,
    app_id: &AppId,
    task: &TaskId,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE apps SET error = 1, error_task = $1, updated = $2 WHERE id = $3")
        .bind(task)
        .bind(now_ms())
        .bind(app_id)
        .execute(c)
        .await?;
    Ok(())
}

/// Makes `build_id` the app's current build as of `now` (and unlocks the app).
pub async fn set_current_build(
    c: &mut Conn,
    app_id: &AppId,
    build_id: i64,
    dxf_name: Option<&str>,
    build_name: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE apps SET i_cur_build = $1, dxf_name = $2, build_name = $3, error = 0, error_task = NULL, updated = $4 WHERE id = $5",
    )
    .bind(build_id)
    .bind(dxf_name)
    .bind(build_name)
    .bind(now)
    .bind(app_id)
    .execute(c)
    .await?;
    Ok(())
}

/// The app's current build id (an error when the app does not exist).
pub async fn current_build(c: &mut Conn, app_id: &AppId) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT i_cur_build FROM apps WHERE id = $1").bind(app_id).fetch_one(c).await
}

/// The app's current build id (`None` before its first publish, or without the app).
pub async fn current_build_if_any(
    c: &mut Conn,
    app_id: &AppId,
) -> Result<Option<i64>, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, Option<i64>>("SELECT i_cur_build FROM apps WHERE id = $1")
        .bind(app_id)
        .fetch_optional(c)
        .await?
        .flatten())
}

/// `org`'s app `name`: (id, locked after a failed publish).
pub async fn lock_state(
    c: &mut Conn,
    org: &OrgId,
    name: &str,
) -> Result<Option<(AppId, bool)>, sqlx::Error> {
    let r: Option<(AppId, i64)> =
        sqlx::query_as("SELECT id, error FROM apps WHERE org_id = $1 AND name = $2")
            .bind(org)
            .bind(name)
            .fetch_optional(c)
            .await?;
    Ok(r.map(|(id, e)| (id, e == 1)))
}

/// How many traces the app keeps.
pub async fn trace_count(c: &mut Conn, app_id: &AppId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) AS n FROM traces WHERE app_id = $1")
        .bind(app_id)
        .fetch_one(c)
        .await
}

/// The ids of every app of `org`.
pub async fn ids_of_org(c: &mut Conn, org: &OrgId) -> Result<Vec<AppId>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM apps WHERE org_id = $1").bind(org).fetch_all(c).await
}
