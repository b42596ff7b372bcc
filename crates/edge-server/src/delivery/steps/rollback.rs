//! `deploy` of a rollback: a kept build's image, as the depot's published copy holds it,
//! published again to every target of the app, then made current. What a target already
//! holds (recorded as published there and not superseded) is not sent again; a target
//! added since the build was first published gets the whole image, data first and the
//! manifest last. No patches are made: a launcher moves to the build by fetching the
//! chunks it lacks.

use super::publish::{deployment_ids, publish_order, put_recorded, resolved_targets};
use crate::delivery::builds::AppCtx;
use crate::delivery::outcome::{fail, ok, After, Done, Progress};
use crate::delivery::StepError;
use crate::depot;
use crate::state::AppState;
use crate::store::{builds, published, tasks};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

/// Publishes build `build_id`'s image again and makes the build current.
pub(crate) async fn rollback(
    st: &Arc<AppState>,
    t: &tasks::Task,
    app: &AppCtx,
    build_id: i64,
    progress: &Progress,
) -> Result<Done, StepError> {
    let state = builds::state(&mut *st.db.conn().await?, &app.id, build_id).await?;
    let kept = state.filter(|b| matches!(b.status.as_str(), "current" | "retained"));
    let Some((b, dxf)) = kept.and_then(|b| b.dxf_name.clone().map(|d| (b, d))) else {
        // Rotated away while the rollback waited in line (an import made room for itself).
        return Ok(gone(format!("build {build_id} is no longer kept: it was rotated away")));
    };
    let rel = edge_origin::keys::dxf_dir("", &app.org_name, &app.name, build_id as u64, &dxf);
    let scratch = format!("{}/dxf", depot::group_staging_key(&app.id, &t.group));
    let Some(dir) = st.depot.published_dir(&rel, &scratch).await? else {
        return Ok(gone(format!("the depot holds no published copy of build {build_id} ({dxf})")));
    };
    let files = publish_order(&dir, "manifest.json")?;
    let targets = match resolved_targets(st, app).await? {
        Ok(t) => t,
        Err(failed) => return Ok(failed),
    };
    let total = (files.len() * targets.len()).max(1);
    let (mut sent, mut kept_there) = (0usize, 0usize);
    for (tg, origin) in &targets {
        let tg_dir =
            edge_origin::keys::dxf_dir(&tg.prefix, &app.org_name, &app.name, build_id as u64, &dxf);
        let there: HashSet<String> =
            published::live_under(&mut *st.db.conn().await?, &app.id, &tg.deployment_id, &tg_dir)
                .await?
                .into_iter()
                .collect();
        for f in &files {
            let key = edge_origin::keys::join(&tg_dir, f);
            if there.contains(&key) {
                kept_there += 1;
            } else {
                let put = put_recorded(st, app, tg, origin, &key, &dir.join(f), build_id).await?;
                if let Some(failed) = put {
                    return Ok(failed);
                }
                sent += 1;
            }
            progress.set((sent + kept_there) as f64 / total as f64);
        }
    }
    Ok(ok(
        json!({
            "dxfName": dxf,
            "rollback": true,
            "targets": targets.iter().map(|(t, _)| t.name.clone()).collect::<Vec<_>>(),
            "patches": [],
            "objectsSent": sent,
            "objectsAlreadyThere": kept_there,
        }),
        After::Deployed {
            targets: deployment_ids(&targets),
            patches: Vec::new(),
            image_bytes: b.image_bytes.max(0) as u64,
            dxf_name: dxf,
        },
    ))
}

/// The outcome of a rollback whose build can no longer be published: an error that locks
/// nothing (no target failed), with the reason.
fn gone(message: String) -> Done {
    fail(json!({"error": {"code": "build-not-kept", "message": message}}), After::Nothing)
}
