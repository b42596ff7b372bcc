//! Committing a step's outcome: the state change it implies (a build made current, the
//! rest of the group canceled, an app locked), in the transaction that records the outcome;
//! and what follows the commit.

use crate::delivery::outcome::{After, Done};
use crate::depot;
use crate::ids::{AppId, DeploymentId};
use crate::state::AppState;
use crate::store::{apps, builds, deployments, published, tasks, trainings, Conn};
use crate::util::{now_ms, rfc3339};
use serde_json::json;

/// Commits the state change of a finished task, in the transaction that records its end.
pub async fn commit(
    c: &mut Conn,
    st: &AppState,
    t: &tasks::Task,
    d: &Done,
) -> Result<(), sqlx::Error> {
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
            let id = apps::take_build_id(c, &app_id).await?;
            let org_id = t.org_id.clone().unwrap_or_default();
            let build_name = t.build_name.clone().unwrap_or_else(|| format!("build-{id}"));
            let b = builds::NewBuild {
                app_id: &app_id,
                build_id: id,
                org_id: &org_id,
                build_name: &build_name,
                size_bytes: *size as i64,
                content_hash,
                tree_path,
                task_group: &t.group,
            };
            builds::insert(c, b).await?;
            tasks::set_group_build(c, &t.group, id).await?;
            if t.build_name.is_none() {
                tasks::set_group_build_name(c, &t.group, &format!("build-{id}")).await?;
            }
        }
        After::Dxf { dxf_name, image_bytes } => {
            builds::set_image(c, &app_id, t.build_id, dxf_name, *image_bytes as i64).await?
        }
        After::DeployFailed { deployment_id, message } => {
            apps::lock_on_failure(c, &app_id, &t.name).await?;
            if !deployment_id.as_str().is_empty() {
                deployments::set_status(
                    c,
                    deployment_id,
                    false,
                    &format!("publish failed {}: {message}", rfc3339(now_ms())),
                )
                .await?;
            }
        }
        After::Seq { build_id, .. } => tasks::set_group_build(c, &t.group, *build_id).await?,
        After::SeqNoGain { build_id } => {
            tasks::set_group_build(c, &t.group, *build_id).await?;
            tasks::cancel_rest(c, &t.group, Some(&json!({"reason": "no-improvement"}))).await?;
            trainings::restart_count(c, &app_id, now_ms()).await?;
        }
        After::Deployed { targets, patches, dxf_name, image_bytes } => {
            make_current(c, st, t, targets, patches, dxf_name, *image_bytes).await?;
            crate::delivery::seq::after_publish(c, t, dxf_name).await?;
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
    targets: &[DeploymentId],
    patches: &[(i64, u64)],
    dxf_name: &str,
    image_bytes: u64,
) -> Result<(), sqlx::Error> {
    let app_id = t.app_id.clone().unwrap_or_default();
    let build_id = t.build_id.unwrap_or(0);
    let now = now_ms();
    let before = builds::dxf_name(c, &app_id, build_id).await?;
    if let Some(old) = before.filter(|o| o != dxf_name) {
        // A re-sequenced image replaces the build's previous one: its files leave with the
        // grace period, like a rotated build's.
        published::supersede_image(c, &app_id, build_id, &old, now).await?;
    }
    builds::set_image(c, &app_id, Some(build_id), dxf_name, image_bytes as i64).await?;
    let (build_name, new_dxf) = builds::names(c, &app_id, build_id).await?;
    builds::retain_current(c, &app_id).await?;
    builds::set_current(c, &app_id, build_id).await?;
    apps::set_current_build(c, &app_id, build_id, new_dxf.as_deref(), &build_name, now).await?;
    for (from, size) in patches {
        builds::insert_patch(
            c,
            &app_id,
            *from,
            build_id,
            *size as i64,
            new_dxf.as_deref().unwrap_or_default(),
            now,
        )
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
    let res = match (&d.after, t.kind) {
        // The archive is no longer needed once it is chunked; a refused one stays, so a
        // retry gives the same verdict.
        (After::Raw { .. } | After::Identical, tasks::TaskKind::Mkraw) => {
            let none = AppId::new("_");
            let app_id = t.app_id.as_ref().unwrap_or(&none);
            crate::delivery::preingest::forget(st, app_id, &t.group).await;
            if matches!(d.after, After::Identical) {
                // A pre-ingest wrote the tree of a build that is not kept.
                let _ = st.depot.remove(&depot::tree_key(app_id, &t.group)).await;
            }
            st.depot.remove(&depot::upload_key(&t.group)).await
        }
        (After::Deployed { .. }, _) => {
            let none = AppId::new("_");
            st.depot
                .remove_dir(&depot::group_staging_key(t.app_id.as_ref().unwrap_or(&none), &t.group))
                .await
        }
        _ => Ok(()),
    };
    if let Err(e) = res {
        tracing::warn!(task = %t.name, error = %e, "cleaning up after the task failed");
    }
}
