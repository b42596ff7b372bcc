//! Builds (one row per build id of an app, from `mkraw` on) and the patches between them,
//! as the pipeline writes and reads them. Build ids are per app; app ids are unique across
//! the instance, so these functions are scoped by app id.

use super::Conn;
use crate::db::Db;
use crate::ids::{AppId, OrgId};
use crate::util::now_ms;

/// A build as the pipeline steps need it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BuildRow {
    pub build_id: i64,
    pub build_name: String,
    /// The image's name, once `mkdxf` (or `mkseq`) wrote one.
    pub dxf_name: Option<String>,
    /// The build tree's depot key (an absolute path on data from before the depot).
    pub tree_path: String,
}

/// One build of an app, on a pooled connection of its own (steps hold none while they work).
pub async fn row(db: &Db, app_id: &AppId, build_id: i64) -> Result<Option<BuildRow>, sqlx::Error> {
    sqlx::query_as("SELECT build_id, build_name, dxf_name, tree_path FROM builds WHERE app_id = $1 AND build_id = $2")
        .bind(app_id)
        .bind(build_id)
        .fetch_optional(db.pool())
        .await
}

/// Ids of the kept builds (current or retained) older than `build_id`, newest first: the
/// candidates a new build gets patches from.
pub async fn kept_before(db: &Db, app_id: &AppId, build_id: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT build_id FROM builds WHERE app_id = $1 AND build_id < $2 AND status IN ('current', 'retained') ORDER BY build_id DESC",
    )
    .bind(app_id)
    .bind(build_id)
    .fetch_all(db.pool())
    .await
}

/// The image size of a build (an error when the build is not recorded).
pub async fn image_bytes(db: &Db, app_id: &AppId, build_id: i64) -> Result<i64, sqlx::Error> {
    image_bytes_on(&mut *db.conn().await?, app_id, build_id).await
}

/// [`image_bytes`] on a connection the caller holds.
pub async fn image_bytes_on(
    c: &mut Conn,
    app_id: &AppId,
    build_id: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT image_bytes FROM builds WHERE app_id = $1 AND build_id = $2")
        .bind(app_id)
        .bind(build_id)
        .fetch_one(c)
        .await
}

/// The content hash of a build, when it is recorded (`mkraw` compares a new build's with
/// the current one's).
pub async fn content_hash(
    c: &mut Conn,
    app_id: &AppId,
    build_id: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT content_hash FROM builds WHERE app_id = $1 AND build_id = $2")
        .bind(app_id)
        .bind(build_id)
        .fetch_optional(c)
        .await
}

/// A build `mkraw` committed (still `pending`: no image is published yet).
pub struct NewBuild<'a> {
    pub app_id: &'a AppId,
    pub build_id: i64,
    pub org_id: &'a OrgId,
    pub build_name: &'a str,
    pub size_bytes: i64,
    pub content_hash: &'a str,
    pub tree_path: &'a str,
    /// The task group that made it.
    pub task_group: &'a str,
}

/// Records a new `pending` build.
pub async fn insert(c: &mut Conn, b: NewBuild<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO builds (app_id, build_id, org_id, build_name, size_bytes, content_hash, tree_path, task_group, status, created) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9)",
    )
    .bind(b.app_id)
    .bind(b.build_id)
    .bind(b.org_id)
    .bind(b.build_name)
    .bind(b.size_bytes)
    .bind(b.content_hash)
    .bind(b.tree_path)
    .bind(b.task_group)
    .bind(now_ms())
    .execute(c)
    .await?;
    Ok(())
}

/// Records the image written for a build. `build_id` is the task's, which may be unset:
/// then nothing matches (as the statement always did).
pub async fn set_image(
    c: &mut Conn,
    app_id: &AppId,
    build_id: Option<i64>,
    dxf_name: &str,
    image_bytes: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE builds SET dxf_name = $1, image_bytes = $2 WHERE app_id = $3 AND build_id = $4",
    )
    .bind(dxf_name)
    .bind(image_bytes)
    .bind(app_id)
    .bind(build_id)
    .execute(c)
    .await?;
    Ok(())
}

/// The image name a build has now (an error when the build is not recorded).
pub async fn dxf_name(
    c: &mut Conn,
    app_id: &AppId,
    build_id: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT dxf_name FROM builds WHERE app_id = $1 AND build_id = $2")
        .bind(app_id)
        .bind(build_id)
        .fetch_one(c)
        .await
}

/// The build's name and image name, as the app shows them once it is current (an error
/// when the build is not recorded).
pub async fn names(
    c: &mut Conn,
    app_id: &AppId,
    build_id: i64,
) -> Result<(String, Option<String>), sqlx::Error> {
    sqlx::query_as("SELECT build_name, dxf_name FROM builds WHERE app_id = $1 AND build_id = $2")
        .bind(app_id)
        .bind(build_id)
        .fetch_one(c)
        .await
}

/// The app's current build becomes a retained one (before another is made current).
pub async fn retain_current(c: &mut Conn, app_id: &AppId) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE builds SET status = 'retained' WHERE app_id = $1 AND status = 'current'")
        .bind(app_id)
        .execute(c)
        .await?;
    Ok(())
}

/// Makes a build the app's current one (after [`retain_current`], in its transaction).
pub async fn set_current(c: &mut Conn, app_id: &AppId, build_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE builds SET status = 'current' WHERE app_id = $1 AND build_id = $2")
        .bind(app_id)
        .bind(build_id)
        .execute(c)
        .await?;
    Ok(())
}

/// Records a published patch from `from_build` to `to_build` (idempotent: a rerun of the
/// deploy keeps the first row).
pub async fn insert_patch(
    c: &mut Conn,
    app_id: &AppId,
    from_build: i64,
    to_build: i64,
    size_bytes: i64,
    to_dxf_name: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO patches (app_id, from_build, to_build, size_bytes, to_dxf_name, created) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(app_id)
    .bind(from_build)
    .bind(to_build)
    .bind(size_bytes)
    .bind(to_dxf_name)
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}

/// What a rollback needs to know of a build: whether the app still keeps it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BuildState {
    pub build_name: String,
    /// `pending` (not published yet), `current`, `retained` or `removed` (rotated away).
    pub status: String,
    pub dxf_name: Option<String>,
    pub image_bytes: i64,
}

/// The state of build `build_id` of the app, `None` when there never was one.
pub async fn state(
    c: &mut Conn,
    app_id: &AppId,
    build_id: i64,
) -> Result<Option<BuildState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT build_name, status, dxf_name, image_bytes FROM builds WHERE app_id = $1 AND build_id = $2",
    )
    .bind(app_id)
    .bind(build_id)
    .fetch_optional(c)
    .await
}
