//! Committing a step's outcome: the state change it implies (a build made current, the
//! rest of the group canceled, an app locked), in the transaction that records the outcome;
//! and what follows the commit.

use crate::db::{i, s};
use crate::delivery::outcome::{After, Done};
use crate::depot;
use crate::state::AppState;
use crate::store::{deployments, tasks, Conn};
use crate::util::{now_ms, rfc3339};
use serde_json::json;

/// Commits the state change of a finished task, in the transaction that records its end.
pub async fn commit(c: &mut Conn, st: &AppState, t: &tasks::Task, d: &Done) -> Result<(), sqlx::Error> {
    let app_id = t.app_id.clone().unwrap_or_default();
    match &d.after {
        After::Nothing => {}
        After::Downloaded => tasks::enter_line(c, &t.group).await?,
        After::CancelRest => {
            tasks::cancel_rest(c, &t.group, None).await?;
        }
        After::Identical => {
            tasks::cancel_rest(c, &t.group, Some(&json!({"reason": "identical-build"}))).await?;
        }
        After::Raw { tree_path, content_hash, size } => {
            let id: i64 = sqlx::query("UPDATE apps SET next_build_id = next_build_id + 1 WHERE id = $1 RETURNING next_build_id")
                .bind(&app_id)
                .fetch_one(&mut *c)
                .await
                .map(|r| i(&r, "next_build_id") - 1)?;
            sqlx::query(
                "INSERT INTO builds (app_id, build_id, org_id, build_name, size_bytes, content_hash, tree_path, task_group, status, created) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9)",
            )
            .bind(&app_id)
            .bind(id)
            .bind(t.org_id.clone().unwrap_or_default())
            .bind(t.build_name.clone().unwrap_or_else(|| format!("build-{id}")))
            .bind(*size as i64)
            .bind(content_hash)
            .bind(tree_path)
            .bind(&t.group)
            .bind(now_ms())
            .execute(&mut *c)
            .await?;
            tasks::set_group_build(c, &t.group, id).await?;
            if t.build_name.is_none() {
                sqlx::query("UPDATE tasks SET build_name = $1 WHERE task_group = $2")
                    .bind(format!("build-{id}"))
                    .bind(&t.group)
                    .execute(&mut *c)
                    .await?;
            }
        }
        After::Dxf { dxf_name, image_bytes } => {
            sqlx::query("UPDATE builds SET dxf_name = $1, image_bytes = $2 WHERE app_id = $3 AND build_id = $4")
                .bind(dxf_name)
                .bind(*image_bytes as i64)
                .bind(&app_id)
                .bind(t.build_id)
                .execute(&mut *c)
                .await?;
        }
        After::DeployFailed { deployment_id, message } => {
            sqlx::query("UPDATE apps SET error = 1, error_task = $1, updated = $2 WHERE id = $3")
                .bind(&t.name)
                .bind(now_ms())
                .bind(&app_id)
                .execute(&mut *c)
                .await?;
            if !deployment_id.is_empty() {
                deployments::set_status(c, deployment_id, false, &format!("publish failed {}: {message}", rfc3339(now_ms()))).await?;
            }
        }
        After::Seq { build_id, .. } => tasks::set_group_build(c, &t.group, *build_id).await?,
        After::SeqNoGain { build_id } => {
            tasks::set_group_build(c, &t.group, *build_id).await?;
            tasks::cancel_rest(c, &t.group, Some(&json!({"reason": "no-improvement"}))).await?;
            sqlx::query("UPDATE trainings SET since_sequence = 0, last_sequence = $1 WHERE app_id = $2")
                .bind(now_ms())
                .bind(&app_id)
                .execute(&mut *c)
                .await?;
        }
        After::Deployed { targets, patches, dxf_name, image_bytes } => {
            make_current(c, st, t, targets, patches, dxf_name, *image_bytes).await?;
            crate::delivery::seq::after_publish(c, t).await?;
        }
    }
    Ok(())
}

/// Makes the deployed build current, rotates old builds out, and marks what left the
/// window as superseded (the sweep removes it after the grace period).
pub(crate) async fn make_current(
    c: &mut Conn,
    _st: &AppState,
    t: &tasks::Task,
    targets: &[String],
    patches: &[(i64, u64)],
    dxf_name: &str,
    image_bytes: u64,
) -> Result<(), sqlx::Error> {
    let app_id = t.app_id.clone().unwrap_or_default();
    let build_id = t.build_id.unwrap_or(0);
    let now = now_ms();
    let before = sqlx::query("SELECT dxf_name FROM builds WHERE app_id = $1 AND build_id = $2")
        .bind(&app_id)
        .bind(build_id)
        .fetch_one(&mut *c)
        .await?;
    if let Some(old) = crate::db::opt_s(&before, "dxf_name").filter(|o| o != dxf_name) {
        // A re-sequenced image replaces the build's previous one: its files leave with the
        // grace period, like a rotated build's.
        sqlx::query("UPDATE published SET superseded = $1 WHERE app_id = $2 AND build_id = $3 AND superseded IS NULL AND obj_key LIKE $4")
            .bind(now)
            .bind(&app_id)
            .bind(build_id)
            .bind(format!("%/{old}/%"))
            .execute(&mut *c)
            .await?;
    }
    sqlx::query("UPDATE builds SET dxf_name = $1, image_bytes = $2 WHERE app_id = $3 AND build_id = $4")
        .bind(dxf_name)
        .bind(image_bytes as i64)
        .bind(&app_id)
        .bind(build_id)
        .execute(&mut *c)
        .await?;
    let b = sqlx::query("SELECT build_name, dxf_name FROM builds WHERE app_id = $1 AND build_id = $2")
        .bind(&app_id)
        .bind(build_id)
        .fetch_one(&mut *c)
        .await?;
    sqlx::query("UPDATE builds SET status = 'retained' WHERE app_id = $1 AND status = 'current'").bind(&app_id).execute(&mut *c).await?;
    sqlx::query("UPDATE builds SET status = 'current' WHERE app_id = $1 AND build_id = $2")
        .bind(&app_id)
        .bind(build_id)
        .execute(&mut *c)
        .await?;
    sqlx::query(
        "UPDATE apps SET i_cur_build = $1, dxf_name = $2, build_name = $3, error = 0, error_task = NULL, updated = $4 WHERE id = $5",
    )
    .bind(build_id)
    .bind(crate::db::opt_s(&b, "dxf_name"))
    .bind(s(&b, "build_name"))
    .bind(now)
    .bind(&app_id)
    .execute(&mut *c)
    .await?;
    for (from, size) in patches {
        sqlx::query(
            "INSERT INTO patches (app_id, from_build, to_build, size_bytes, to_dxf_name, created) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&app_id)
        .bind(from)
        .bind(build_id)
        .bind(*size as i64)
        .bind(crate::db::opt_s(&b, "dxf_name").unwrap_or_default())
        .bind(now)
        .execute(&mut *c)
        .await?;
    }
    for d in targets {
        deployments::set_status(c, d, true, &format!("last publish {}", rfc3339(now))).await?;
    }
    crate::domain::apps::rotate(c, &app_id).await
}

/// Cleans up working files once a finished task's transaction committed. A failed clean-up
/// only leaves garbage (the app's purge removes it), so it is logged, not retried.
pub async fn after_commit(st: &AppState, t: &tasks::Task, d: &Done) {
    let res = match (&d.after, t.kind.as_str()) {
        // The archive is no longer needed once it is chunked; a refused one stays, so a
        // retry gives the same verdict.
        (After::Raw { .. } | After::Identical, "mkraw") => {
            let app_id = t.app_id.as_deref().unwrap_or("_");
            crate::delivery::preingest::forget(st, app_id, &t.group).await;
            if matches!(d.after, After::Identical) {
                // A pre-ingest wrote the tree of a build that is not kept.
                let _ = st.depot.remove(&depot::tree_key(app_id, &t.group)).await;
            }
            st.depot.remove(&depot::upload_key(&t.group)).await
        }
        (After::Deployed { .. }, _) => st.depot.remove_dir(&depot::group_staging_key(t.app_id.as_deref().unwrap_or("_"), &t.group)).await,
        _ => Ok(()),
    };
    if let Err(e) = res {
        tracing::warn!(task = %t.name, error = %e, "cleaning up after the task failed");
    }
}
