//! `mkpat`: patches to the new build from the builds still kept.

use crate::delivery::builds::{build_row, load_tree, params, AppCtx, BuildRow};
use crate::delivery::outcome::{ok, After, Done, Progress};
use crate::delivery::StepError;
use crate::depot;
use crate::state::AppState;
use crate::store::{builds, tasks};
use crate::util::{now_ms, rfc3339};
use edge_engine::store::ChunkStore;
use serde_json::json;
use std::sync::Arc;

/// Older builds a new build gets patches from: the newest `max_builds - 1` retained ones.
pub(crate) async fn patch_sources(
    st: &AppState,
    app: &AppCtx,
    build_id: i64,
) -> Result<Vec<BuildRow>, StepError> {
    let ids = builds::kept_before(&st.db, &app.id, build_id).await?;
    let mut out = Vec::new();
    for id in ids.into_iter().take((app.max_builds - 1).max(0) as usize) {
        out.push(build_row(st, &app.id, id).await?);
    }
    Ok(out)
}

pub(crate) async fn mkpat(
    st: &Arc<AppState>,
    t: &tasks::Task,
    app: &AppCtx,
    progress: &Progress,
) -> Result<Done, StepError> {
    let build_id = t.build_id.ok_or("the task has no build id")?;
    let to = build_row(st, &app.id, build_id).await?;
    let sources = patch_sources(st, app, build_id).await?;
    let owner = t.lease_owner.as_deref().ok_or("the task is not leased")?;
    let base_key = format!("{}/pat", depot::staging_key(&app.id, &t.group, owner));
    let base = st.depot.local(&base_key);
    let _ = std::fs::remove_dir_all(&base);
    let to_tree = if sources.is_empty() {
        None
    } else {
        Some(std::sync::Arc::new(load_tree(st, &app.id, &to.tree_path, true).await?))
    };
    let image_bytes = builds::image_bytes(&st.db, &app.id, build_id).await?;
    let mut patches = Vec::new();
    let mut large = Vec::new();
    let n = sources.len();
    // One run from 0 to 1 over all the patches: each works through every byte of the new
    // build once (`write_patch` counts them), so the whole is that many times its size.
    if let Some(tt) = &to_tree {
        progress.count_bytes(tt.size_bytes().saturating_mul(n as u64));
    }
    // The newer build's file hashes: worked out by the first patch, reused by the others.
    let known = Arc::new(edge_engine::patch::FileHashes::default());
    for (k, from) in sources.into_iter().enumerate() {
        progress.note(format!("patching from build {} ({} of {n})", from.build_id, k + 1));
        let store = ChunkStore::open(&st.depot.local(&depot::chunks_key(&app.id)))
            .map_err(StepError::Engine)?;
        let ft = load_tree(st, &app.id, &from.tree_path, true).await?;
        let tt = to_tree.clone().ok_or("no target tree")?;
        let meta = edge_engine::patch::PatchMeta {
            org_name: app.org_name.clone(),
            app_name: app.name.clone(),
            from_build_id: from.build_id as u64,
            to_build_id: build_id as u64,
            from_dxf_name: from.dxf_name.clone().unwrap_or_default(),
            to_dxf_name: to.dxf_name.clone().unwrap_or_default(),
            created: rfc3339(now_ms()),
        };
        let dir = base.join(from.build_id.to_string());
        let p = params(st);
        let (prog, known) = (progress.clone(), known.clone());
        let sum = tokio::task::spawn_blocking(move || {
            edge_engine::patch::write_patch(&ft, &tt, &store, &meta, &dir, &p, &known, prog.bytes())
        })
        .await?
        .map_err(StepError::Engine)?;
        if sum.size_bytes as i64 * 2 > image_bytes {
            large.push(from.build_id);
        }
        patches.push(json!({"fromBuildId": from.build_id, "sizeBytes": sum.size_bytes, "reusedChunks": sum.reused, "deltaChunks": sum.deltas, "sentChunks": sum.sent}));
    }
    if !patches.is_empty() {
        if st.depot.is_shared() {
            progress.note("sending the patches to the depot");
        }
        st.depot.push_dir(&base_key, "patch.json").await?;
    }
    let mut d = ok(json!({"patches": patches}), After::Nothing);
    if !large.is_empty() {
        d.outcome.warning = Some(
            json!({"code": "large-patch", "message": format!("patch(es) from build(s) {large:?} exceed 50 % of the image"), "acknowledged": false}),
        );
    }
    Ok(d)
}
