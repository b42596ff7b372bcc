//! `mkdxf`: the build's image, its packs in the order learned from the app's traces.

use crate::delivery::builds::{build_row, load_tree, write_dxf, AppCtx};
use crate::delivery::outcome::{ok, After, Done, Progress};
use crate::delivery::StepError;
use crate::state::AppState;
use crate::store::tasks;
use serde_json::json;
use std::sync::Arc;

pub(crate) async fn mkdxf(
    st: &Arc<AppState>,
    t: &tasks::Task,
    app: &AppCtx,
    progress: &Progress,
) -> Result<Done, StepError> {
    let build_id = t.build_id.ok_or("the task has no build id")?;
    let b = build_row(st, &app.id, build_id).await?;
    // The app's traces carry over to every new build (by path): its first image is
    // already in trained order.
    let ids = crate::delivery::seq::trace_ids(st, &app.id).await?;
    let gen = crate::delivery::seq::generation(st, &app.id).await?;
    let tree = load_tree(st, &app.id, &b.tree_path, false).await?;
    if !ids.is_empty() {
        progress.note(format!("learning the order from {} trace(s)", ids.len()));
    }
    crate::delivery::seq::fetch_traces(st, &app.id, &ids).await;
    let (st2, app_id) = (st.clone(), app.id.clone());
    let learned = tokio::task::spawn_blocking(move || {
        if ids.is_empty() {
            None
        } else {
            crate::delivery::seq::learn(&st2, &app_id, &ids, &tree)
        }
    })
    .await?;
    let (sequence, traces, accesses) = match learned {
        Some(l) => (l.sequence, l.traces, l.accesses),
        None => (Vec::new(), 0, Vec::new()),
    };
    let summary = write_dxf(
        st,
        t,
        app,
        &b,
        &sequence,
        traces,
        if traces > 0 { gen as u64 } else { 0 },
        &accesses,
        progress,
    )
    .await?;
    Ok(ok(
        json!({"dxfName": summary.dxf_name, "packBytes": summary.pack_bytes, "sizeBytes": summary.total_bytes, "files": summary.files,
               "traces": traces, "preload": summary.preload, "acceleration100": summary.acceleration100}),
        After::Dxf { dxf_name: summary.dxf_name.clone(), image_bytes: summary.total_bytes },
    ))
}
