//! The overview: every app with its current build, image size, last import and open
//! warnings; the tasks running now.

use super::page::{bytes, render, Chrome, PageQuery, PageResult, Pager};
use super::tasks_view::{groups, TaskRow};
use super::viewer::Viewer;
use crate::perms::{Resource, R};
use crate::state::AppState;
use crate::store::{apps, tasks};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use std::sync::Arc;

/// How many of an app's newest tasks the overview reads for its last import and warnings.
const APP_TASKS: usize = 50;

/// An app's line.
struct AppLine {
    name: String,
    label: String,
    current: String,
    image: String,
    last_import: String,
    last_class: &'static str,
    last_age: String,
    warnings: usize,
    locked: bool,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct Overview {
    chrome: Chrome,
    apps: Vec<AppLine>,
    pager: Pager,
    running: Vec<TaskRow>,
}

/// `GET /console/`.
pub async fn page(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Query(q): Query<PageQuery>,
) -> PageResult {
    v.caller.require(Resource::Apps, R)?;
    let mut c = st.db.conn().await?;
    let rows = apps::list(&mut c, &v.caller.org_id).await?;
    let tasks_read = v.can(Resource::Tasks, R);
    let newest = [("created".to_string(), true)];
    let (pager, shown) = Pager::of(q.page, rows.len());
    let mut lines = Vec::new();
    for a in &rows[shown] {
        let builds = apps::kept_builds(&mut c, &a.id).await?;
        let image = builds
            .iter()
            .find(|b| Some(b.build_id) == a.i_cur_build)
            .map(|b| bytes(b.image_bytes))
            .unwrap_or_default();
        let mine = if tasks_read {
            let f = tasks::TaskFilter {
                org: Some(v.caller.org_id.clone()),
                app_id: Some(a.id.clone()),
                ..Default::default()
            };
            tasks::list(&mut c, &f, &newest, 0, APP_TASKS).await?.0
        } else {
            Vec::new()
        };
        let last = groups(&mine, 1).into_iter().next();
        lines.push(AppLine {
            name: a.name.clone(),
            label: a.label.clone(),
            current: match (&a.build_name, a.i_cur_build) {
                (Some(n), Some(id)) => format!("{n} (#{id})"),
                _ => "none yet".into(),
            },
            image,
            last_import: last.as_ref().map(|g| g.state).unwrap_or("").into(),
            last_class: last.as_ref().map(|g| g.class).unwrap_or(""),
            last_age: last.as_ref().map(|g| g.age.clone()).unwrap_or_default(),
            warnings: mine.iter().map(TaskRow::of).filter(|t| t.warning_open).count(),
            locked: a.error == 1,
        });
    }
    let running = if tasks_read {
        let f = tasks::TaskFilter {
            org: Some(v.caller.org_id.clone()),
            status: Some("running".into()),
            ..Default::default()
        };
        tasks::list(&mut c, &f, &newest, 0, APP_TASKS).await?.0.iter().map(TaskRow::of).collect()
    } else {
        Vec::new()
    };
    let chrome = Chrome::new(&v, "Overview", "/console/");
    Ok(render(StatusCode::OK, &Overview { chrome, apps: lines, pager, running }))
}
