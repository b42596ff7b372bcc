//! The import pipeline's task runners: `dltar → mkraw → mkdxf → mkpat → deploy`. Each step
//! is idempotent (files written to temporary names, then renamed; rows keyed so a second
//! run changes nothing), so a crashed step simply runs again. A runner returns its outcome
//! and the state change to commit with it; the worker commits both in one transaction,
//! only while it still holds the task's lease.

use super::builds::app_ctx;
use super::outcome::{internal, Done, Progress};
use super::{download, steps};
use crate::state::AppState;
use crate::store::tasks::{self, TaskKind};
use std::sync::Arc;

/// Runs one pipeline task.
pub async fn run(st: &Arc<AppState>, t: &tasks::Task, progress: &Progress) -> Done {
    let mut c = match st.db.conn().await {
        Ok(c) => c,
        Err(e) => return internal("database", e),
    };
    let app = match t.app_id.as_deref() {
        Some(id) => match app_ctx(&mut c, id).await {
            Ok(Some(a)) => a,
            Ok(None) => return internal("app-deleted", "the app was deleted"),
            Err(e) => return internal("database", e),
        },
        None => return internal("no-app", "pipeline task without an app"),
    };
    drop(c);
    let r = match t.kind {
        TaskKind::Dltar => download::run(st, t, progress).await,
        TaskKind::Mkraw => steps::mkraw::mkraw(st, t, &app, progress).await,
        TaskKind::Mkdxf => steps::mkdxf::mkdxf(st, t, &app).await,
        TaskKind::Mkpat => steps::mkpat::mkpat(st, t, &app, progress).await,
        TaskKind::Deploy => steps::deploy::deploy(st, t, &app, progress).await,
        TaskKind::Mkseq => super::seq::mkseq(st, t, &app).await,
        TaskKind::Purge | TaskKind::Hello => Err(format!("{} is not a pipeline step", t.kind)),
    };
    r.unwrap_or_else(|e| internal("internal", e))
}
