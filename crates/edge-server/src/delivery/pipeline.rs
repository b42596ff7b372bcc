//! The import pipeline's task runners: `dltar → mkraw → mkdxf → mkpat → deploy`. Each step
//! is idempotent (files written to temporary names, then renamed; rows keyed so a second
//! run changes nothing), so a crashed step simply runs again. A runner returns its outcome
//! and the state change to commit with it; the worker commits both in one transaction,
//! only while it still holds the task's lease.

use super::builds::{app_ctx, AppCtx};
use super::outcome::{internal, Done, Progress};
use super::{download, steps, StepError};
use crate::state::AppState;
use crate::store::tasks::{self, TaskKind};
use std::sync::Arc;

/// Runs one pipeline task. A failure of the runner's own (the database, the app gone) is
/// recorded under its code; every failure of a step is recorded as `internal`.
pub async fn run(st: &Arc<AppState>, t: &tasks::Task, progress: &Progress) -> Done {
    let app = match app_of(st, t).await {
        Ok(a) => a,
        Err(e) => return internal(e.code(), e),
    };
    step(st, t, &app, progress).await.unwrap_or_else(|e| internal("internal", e))
}

/// The app the task works for.
async fn app_of(st: &AppState, t: &tasks::Task) -> Result<AppCtx, StepError> {
    let mut c = st.db.conn().await?;
    let id = t
        .app_id
        .as_ref()
        .ok_or_else(|| StepError::coded("no-app", "pipeline task without an app"))?;
    app_ctx(&mut c, id).await?.ok_or_else(|| StepError::coded("app-deleted", "the app was deleted"))
}

async fn step(
    st: &Arc<AppState>,
    t: &tasks::Task,
    app: &AppCtx,
    progress: &Progress,
) -> Result<Done, StepError> {
    match t.kind {
        TaskKind::Dltar => download::run(st, t, progress).await,
        TaskKind::Mkraw => steps::mkraw::mkraw(st, t, app, progress).await,
        TaskKind::Mkdxf => steps::mkdxf::mkdxf(st, t, app, progress).await,
        TaskKind::Mkpat => steps::mkpat::mkpat(st, t, app, progress).await,
        TaskKind::Deploy if t.payload::<tasks::DeployParams>().is_ok_and(|p| p.rollback) => {
            let build_id = t.build_id.ok_or("the task has no build id")?;
            steps::rollback::rollback(st, t, app, build_id, progress).await
        }
        TaskKind::Deploy => steps::deploy::deploy(st, t, app, progress).await,
        TaskKind::Mkseq => super::seq::mkseq(st, t, app, progress).await,
        TaskKind::Purge | TaskKind::Hello => {
            Err(StepError::internal(format!("{} is not a pipeline step", t.kind)))
        }
    }
}
