//! What was published where: one row per object key per target (deployment id, the empty
//! one for the depot). Purges delete exactly these; the sweep removes superseded ones after the
//! grace period.

use super::Conn;
use crate::ids::{AppId, DeploymentId, OrgId};
use crate::util::now_ms;

/// Records an object as published (idempotent).
pub async fn record(
    c: &mut Conn,
    org: &OrgId,
    app: &AppId,
    target: &DeploymentId,
    key: &str,
    build_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO published (id, org_id, app_id, deployment_id, obj_key, build_id, created) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (app_id, deployment_id, obj_key) DO UPDATE SET superseded = NULL, build_id = excluded.build_id",
    )
    .bind(crate::util::new_id("p"))
    .bind(org)
    .bind(app)
    .bind(target)
    .bind(key)
    .bind(build_id)
    .bind(now_ms())
    .execute(c)
    .await?;
    Ok(())
}

/// (target, key) of every object published for an app.
pub async fn of_app(c: &mut Conn, app: &AppId) -> Result<Vec<(DeploymentId, String)>, sqlx::Error> {
    sqlx::query_as("SELECT deployment_id, obj_key FROM published WHERE app_id = $1")
        .bind(app)
        .fetch_all(c)
        .await
}

/// (app, key) of every object published to one deployment.
pub async fn of_deployment(
    c: &mut Conn,
    deployment: &DeploymentId,
) -> Result<Vec<(AppId, String)>, sqlx::Error> {
    sqlx::query_as("SELECT app_id, obj_key FROM published WHERE deployment_id = $1")
        .bind(deployment)
        .fetch_all(c)
        .await
}

/// Forgets rows (after their purge was queued).
pub async fn forget_app(c: &mut Conn, app: &AppId) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM published WHERE app_id = $1").bind(app).execute(c).await?;
    Ok(())
}

/// Forgets rows of a deployment.
pub async fn forget_deployment(c: &mut Conn, deployment: &DeploymentId) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM published WHERE deployment_id = $1")
        .bind(deployment)
        .execute(c)
        .await?;
    Ok(())
}

/// Marks as superseded every object of the app whose key lies in none of the `live`
/// directories (`dxf/<org>/<app>/<NNNN>/<dxf>/`, `pat/<org>/<app>/<to>/<from>/`).
pub async fn supersede_except(
    c: &mut Conn,
    app: &AppId,
    live: &[String],
) -> Result<u64, sqlx::Error> {
    let rows: Vec<(String, String, Option<i64>)> =
        sqlx::query_as("SELECT id, obj_key, superseded FROM published WHERE app_id = $1")
            .bind(app)
            .fetch_all(&mut *c)
            .await?;
    let mut n = 0;
    let now = now_ms();
    for (id, key, superseded) in rows {
        if superseded.is_none()
            && !live.iter().any(|l| key.starts_with(l.as_str()) || key.contains(&format!("/{l}")))
        {
            sqlx::query("UPDATE published SET superseded = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *c)
                .await?;
            n += 1;
        }
    }
    Ok(n)
}

/// Marks as superseded at `now` the files of a build's image `old_dxf` still live (a
/// re-sequenced image replaced it: they leave with the grace period, like a rotated
/// build's).
pub async fn supersede_image(
    c: &mut Conn,
    app: &AppId,
    build_id: i64,
    old_dxf: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE published SET superseded = $1 WHERE app_id = $2 AND build_id = $3 AND superseded IS NULL AND obj_key LIKE $4")
        .bind(now)
        .bind(app)
        .bind(build_id)
        .bind(format!("%/{old_dxf}/%"))
        .execute(c)
        .await?;
    Ok(())
}

/// Superseded rows older than `before`: (id, org, app, target, key).
pub async fn due(
    c: &mut Conn,
    before: i64,
) -> Result<Vec<(String, OrgId, AppId, DeploymentId, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, org_id, app_id, deployment_id, obj_key FROM published WHERE superseded IS NOT NULL AND superseded < $1")
        .bind(before)
        .fetch_all(c)
        .await
}

/// Removes one row.
pub async fn remove(c: &mut Conn, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM published WHERE id = $1").bind(id).execute(c).await?;
    Ok(())
}

/// Keys published to `target` for the app under the directory `dir` (a key prefix without
/// the trailing `/`) and not superseded: what a rollback need not send again.
pub async fn live_under(
    c: &mut Conn,
    app: &AppId,
    target: &DeploymentId,
    dir: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT obj_key FROM published WHERE app_id = $1 AND deployment_id = $2 AND superseded IS NULL",
    )
    .bind(app)
    .bind(target)
    .fetch_all(c)
    .await?;
    // Filtered here rather than with LIKE: keys may hold `_` and `%`.
    let dir = format!("{dir}/");
    Ok(rows.into_iter().filter(|k| k.starts_with(&dir)).collect())
}
