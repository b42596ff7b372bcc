//! The overview: every app with its current build, image size, last import and open
//! warnings; the tasks running now.

use super::page::{bytes, render, Chrome, PageQuery, PageResult, Pager};
use super::tasks_view::{groups, TaskRow};
use super::viewer::Viewer;
use crate::perms::{Resource, R};
use crate::state::AppState;
use crate::store::{apps, builds, tasks};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use std::sync::Arc;

/// Running tasks listed, at most.
const RUNNING_TASKS: usize = 50;

/// Steps of one import read for its state (more than any group has: one patch per kept build).
const GROUP_TASKS: usize = 200;

/// Warned tasks of an app read for the count of open warnings, at most.
const WARNED_TASKS: i64 = 200;

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
    // The task lists keep their count: without it, SQLite's planner serves `ORDER BY created
    // DESC LIMIT n` from the org's index and walks every task of the org (measured: the page
    // took three times as long).
    let rows = apps::list(&mut c, &v.caller.org_id).await?;
    let tasks_read = v.can(Resource::Tasks, R);
    let newest = [("created".to_string(), true)];
    let (pager, shown) = Pager::of(q.page, rows.len());
    let mut lines = Vec::new();
    for a in &rows[shown] {
        let image = match a.i_cur_build {
            Some(id) => bytes(builds::image_bytes_on(&mut c, &a.id, id).await?),
            None => String::new(),
        };
        // The newest import's steps (its task group) and the open warnings: a few rows per
        // app, however many tasks it has.
        let (mine, warned) = if tasks_read {
            let f = tasks::TaskFilter {
                org: Some(v.caller.org_id.clone()),
                app_id: Some(a.id.clone()),
                ..Default::default()
            };
            let newest_one = tasks::list(&mut c, &f, &newest, 0, 1).await?.0;
            let group = match newest_one.first() {
                Some(t) => {
                    let f = tasks::TaskFilter {
                        org: Some(v.caller.org_id.clone()),
                        group: Some(t.group.clone()),
                        ..Default::default()
                    };
                    // By step, which the group's index serves: ordered by `created`, SQLite
                    // (without statistics) walked the org's index instead, every task of it.
                    let by_step = [("step".to_string(), false)];
                    tasks::list(&mut c, &f, &by_step, 0, GROUP_TASKS).await?.0
                }
                None => Vec::new(),
            };
            (group, tasks::warned(&mut c, &a.id, WARNED_TASKS).await?)
        } else {
            (Vec::new(), Vec::new())
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
            warnings: warned.iter().map(TaskRow::of).filter(|t| t.warning_open).count(),
            locked: a.error == 1,
        });
    }
    let running = if tasks_read {
        let f = tasks::TaskFilter {
            org: Some(v.caller.org_id.clone()),
            status: Some("running".into()),
            ..Default::default()
        };
        tasks::list(&mut c, &f, &newest, 0, RUNNING_TASKS)
            .await?
            .0
            .iter()
            .map(TaskRow::of)
            .collect()
    } else {
        Vec::new()
    };
    let chrome = Chrome::new(&v, "Overview", "/console/");
    Ok(render(StatusCode::OK, &Overview { chrome, apps: lines, pager, running }))
}
