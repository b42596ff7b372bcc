//! `deploy`: the image and its patches published to every target of the app and the depot,
//! data first and manifests last.

use crate::delivery::builds::AppCtx;
use crate::delivery::outcome::{fail, ok, After, Done, Progress};
use crate::delivery::StepError;
use crate::depot;
use crate::error::AboutExt;
use crate::ids::DeploymentId;
use crate::state::AppState;
use crate::store::tasks::{TaskKind, TaskStatus};
use crate::store::{deployments, published, tasks};
use crate::targets::TargetSpec;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

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

pub(crate) async fn deploy(
    st: &Arc<AppState>,
    t: &tasks::Task,
    app: &AppCtx,
    progress: &Progress,
) -> Result<Done, StepError> {
    let build_id = t.build_id.ok_or("the task has no build id")?;
    // The files the group's image and patch steps staged (the runs that committed).
    let mut c = st.db.conn().await?;
    let steps = tasks::group(&mut c, &t.group).await?;
    drop(c);
    let owner_of = |kinds: &[TaskKind]| {
        steps
            .iter()
            .find(|x| kinds.contains(&x.kind) && x.status == TaskStatus::Done)
            .and_then(|x| x.lease_owner.clone())
    };
    let image_owner =
        owner_of(&[TaskKind::Mkdxf, TaskKind::Mkseq]).ok_or("the group has no staged image")?;
    let image_key = format!("{}/dxf", depot::staging_key(&app.id, &t.group, &image_owner));
    if !st.depot.pull_dir(&image_key).await? {
        return Err(crate::depot::DepotError::Missing("the staged image".into()).into());
    }
    let image_dir = st.depot.local(&image_key);
    let pat_dir = match owner_of(&[TaskKind::Mkpat]) {
        Some(o) => {
            let k = format!("{}/pat", depot::staging_key(&app.id, &t.group, &o));
            st.depot.pull_dir(&k).await?;
            Some(st.depot.local(&k))
        }
        None => None,
    };
    // The image this group staged (an import's first image, or a re-sequenced one).
    let staged = std::fs::read(image_dir.join("manifest.json")).about(|| "staged image")?;
    let staged: Value = serde_json::from_slice(&staged).about(|| "staged manifest")?;
    let dxf = staged["dxfName"].as_str().ok_or("the staged manifest has no dxfName")?.to_string();
    let image_files = publish_order(&image_dir, "manifest.json")?;
    let mut patch_dirs: Vec<(i64, PathBuf, Vec<String>)> = Vec::new();
    if let Some(Ok(rd)) = pat_dir.as_ref().map(std::fs::read_dir) {
        for e in rd.flatten() {
            if let Ok(from) = e.file_name().to_string_lossy().parse::<i64>() {
                patch_dirs.push((from, e.path(), publish_order(&e.path(), "patch.json")?));
            }
        }
    }
    patch_dirs.sort_by_key(|p| -p.0);
    let mut targets = Vec::new();
    for tg in app_targets(st, app).await? {
        match tg {
            Ok(t) => targets.push(t),
            Err((id, name, msg)) => {
                return Ok(fail(
                    json!({"error": {"code": "publish-failed", "message": format!("{name}: {msg}")}, "deployment": {"name": name}}),
                    After::DeployFailed { deployment_id: id, message: msg },
                ))
            }
        }
    }
    let total_objects =
        (image_files.len() + patch_dirs.iter().map(|p| p.2.len()).sum::<usize>()) * targets.len();
    let mut done_objects = 0usize;
    for tg in &targets {
        let fail_target = |msg: String| {
            fail(
                json!({"error": {"code": "publish-failed", "message": format!("{}: {msg}", tg.name)}, "deployment": {"name": tg.name}}),
                After::DeployFailed { deployment_id: tg.deployment_id.clone(), message: msg },
            )
        };
        let origin = match tg.origin(st) {
            Ok(o) => o,
            Err(e) => return Ok(fail_target(e.to_string())),
        };
        let dxf_dir =
            edge_origin::keys::dxf_dir(&tg.prefix, &app.org_name, &app.name, build_id as u64, &dxf);
        // Patches and image data first; the image manifest last of all.
        let mut uploads: Vec<(String, PathBuf)> = Vec::new();
        for (from, dir, files) in &patch_dirs {
            let pd = edge_origin::keys::pat_dir(
                &tg.prefix,
                &app.org_name,
                &app.name,
                build_id as u64,
                *from as u64,
            );
            uploads.extend(files.iter().map(|f| (edge_origin::keys::join(&pd, f), dir.join(f))));
        }
        let (manifest, data): (Vec<&String>, Vec<&String>) =
            image_files.iter().partition(|f| *f == "manifest.json");
        let mut ordered: Vec<(String, PathBuf)> = data
            .iter()
            .map(|f| (edge_origin::keys::join(&dxf_dir, f), image_dir.join(f)))
            .collect();
        ordered.extend(uploads);
        ordered.extend(
            manifest.iter().map(|f| (edge_origin::keys::join(&dxf_dir, f), image_dir.join(f))),
        );
        for (key, path) in ordered {
            if let Err(e) = origin.put_file(&key, &path).await {
                return Ok(fail_target(e.to_string()));
            }
            st.metrics.published_bytes.fetch_add(
                std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                Ordering::Relaxed,
            );
            let mut c = st.db.conn().await?;
            published::record(
                &mut c,
                &app.org_id,
                &app.id,
                &tg.deployment_id,
                &key,
                Some(build_id),
            )
            .await?;
            done_objects += 1;
            progress.set(done_objects as f64 / total_objects.max(1) as f64);
        }
    }
    let patches: Vec<(i64, u64)> = patch_dirs
        .iter()
        .map(|(from, dir, files)| {
            (
                *from,
                files
                    .iter()
                    .map(|f| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0))
                    .sum(),
            )
        })
        .collect();
    Ok(ok(
        json!({"dxfName": dxf, "targets": targets.iter().map(|t| t.name.clone()).collect::<Vec<_>>(), "patches": patches.iter().map(|p| json!({"fromBuildId": p.0, "sizeBytes": p.1})).collect::<Vec<_>>()}),
        After::Deployed {
            targets: targets
                .iter()
                .map(|t| t.deployment_id.clone())
                .filter(|d| !d.as_str().is_empty())
                .collect(),
            patches,
            image_bytes: image_files
                .iter()
                .map(|f| std::fs::metadata(image_dir.join(f)).map(|m| m.len()).unwrap_or(0))
                .sum(),
            dxf_name: dxf,
        },
    ))
}
