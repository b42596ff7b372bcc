//! What every publish shares: the app's targets, the order files go out in, and sending one
//! file to a target with the record that it is there.

use crate::delivery::builds::AppCtx;
use crate::delivery::outcome::{fail, After, Done};
use crate::delivery::StepError;
use crate::error::AboutExt;
use crate::ids::DeploymentId;
use crate::state::AppState;
use crate::store::{deployments, published};
use crate::targets::TargetSpec;
use serde_json::json;
use std::path::Path;
use std::sync::atomic::Ordering;

/// The files of a staged directory in publishing order: data, then the manifest last.
pub(crate) fn publish_order(dir: &Path, manifest: &str) -> Result<Vec<String>, StepError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .about(|| dir.display().to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != manifest)
        .collect();
    names.sort();
    names.push(manifest.to_string());
    Ok(names)
}

/// The targets of an app: its deployments (all of the org's when its list is empty), in
/// order, then the depot. A deployment that cannot be resolved (an `fs` path gone bad) is
/// `Err((deployment id, name, why))`, so its publish fails naming it.
pub async fn app_targets(
    st: &AppState,
    app: &AppCtx,
) -> Result<Vec<Result<TargetSpec, (DeploymentId, String, String)>>, sqlx::Error> {
    let mut c = st.db.conn().await?;
    let all = deployments::list(&mut c, &app.org_id).await?;
    let chosen: Vec<&deployments::Deployment> = if app.deployments.is_empty() {
        all.iter().collect()
    } else {
        app.deployments.iter().filter_map(|n| all.iter().find(|d| &d.name == n)).collect()
    };
    let mut out = Vec::new();
    for d in chosen {
        out.push(
            crate::domain::deployments::target_of(st, d)
                .map_err(|e| (d.id.clone(), d.name.clone(), e.message)),
        );
    }
    out.push(Ok(TargetSpec::depot(st)));
    Ok(out)
}

/// The app's targets with their origins, or the failed outcome naming the first that
/// cannot be resolved or reached.
pub(crate) async fn resolved_targets(
    st: &AppState,
    app: &AppCtx,
) -> Result<Result<Vec<(TargetSpec, edge_origin::Origin)>, Done>, StepError> {
    let mut targets = Vec::new();
    for tg in app_targets(st, app).await? {
        match tg {
            Ok(t) => match t.origin(st) {
                Ok(o) => targets.push((t, o)),
                Err(e) => return Ok(Err(target_failed(&t, e.to_string()))),
            },
            Err((id, name, msg)) => {
                return Ok(Err(fail(
                    json!({"error": {"code": "publish-failed", "message": format!("{name}: {msg}")}, "deployment": {"name": name}}),
                    After::DeployFailed { deployment_id: id, message: msg },
                )))
            }
        }
    }
    Ok(Ok(targets))
}

/// The failed outcome of a publish that target `tg` refused, saying why.
pub(crate) fn target_failed(tg: &TargetSpec, msg: String) -> Done {
    fail(
        json!({"error": {"code": "publish-failed", "message": format!("{}: {msg}", tg.name)}, "deployment": {"name": tg.name}}),
        After::DeployFailed { deployment_id: tg.deployment_id.clone(), message: msg },
    )
}

/// Sends one file to `key` on the target and records it as published there. The origin's
/// refusal is `Ok(Some(outcome))`, the publish failed naming the target; the database's is
/// an error.
pub(crate) async fn put_recorded(
    st: &AppState,
    app: &AppCtx,
    tg: &TargetSpec,
    origin: &edge_origin::Origin,
    key: &str,
    path: &Path,
    build_id: i64,
) -> Result<Option<Done>, StepError> {
    if let Err(e) = origin.put_file(key, path).await {
        return Ok(Some(target_failed(tg, e.to_string())));
    }
    st.metrics
        .published_bytes
        .fetch_add(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0), Ordering::Relaxed);
    let mut c = st.db.conn().await?;
    published::record(&mut c, &app.org_id, &app.id, &tg.deployment_id, key, Some(build_id)).await?;
    Ok(None)
}

/// The deployments among published-to targets (the depot, whose id is empty, left out):
/// whose status a successful publish sets.
pub(crate) fn deployment_ids(targets: &[(TargetSpec, edge_origin::Origin)]) -> Vec<DeploymentId> {
    targets
        .iter()
        .map(|(t, _)| t.deployment_id.clone())
        .filter(|d| !d.as_str().is_empty())
        .collect()
}
