//! `deploy`: the image and its patches published to every target of the app and the depot,
//! data first and manifests last.

use super::publish::{deployment_ids, publish_order, put_recorded, resolved_targets};
use crate::delivery::builds::AppCtx;
use crate::delivery::outcome::{ok, After, Done, Progress};
use crate::delivery::StepError;
use crate::depot;
use crate::error::AboutExt;
use crate::state::AppState;
use crate::store::tasks;
use crate::store::tasks::{TaskKind, TaskStatus};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

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
    let targets = match resolved_targets(st, app).await? {
        Ok(t) => t,
        Err(failed) => return Ok(failed),
    };
    let total_objects =
        (image_files.len() + patch_dirs.iter().map(|p| p.2.len()).sum::<usize>()) * targets.len();
    let mut done_objects = 0usize;
    for (tg, origin) in &targets {
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
            if let Some(failed) = put_recorded(st, app, tg, origin, &key, &path, build_id).await? {
                return Ok(failed);
            }
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
        json!({"dxfName": dxf, "targets": targets.iter().map(|(t, _)| t.name.clone()).collect::<Vec<_>>(), "patches": patches.iter().map(|p| json!({"fromBuildId": p.0, "sizeBytes": p.1})).collect::<Vec<_>>()}),
        After::Deployed {
            targets: deployment_ids(&targets),
            patches,
            image_bytes: image_files
                .iter()
                .map(|f| std::fs::metadata(image_dir.join(f)).map(|m| m.len()).unwrap_or(0))
                .sum(),
            dxf_name: dxf,
        },
    ))
}
