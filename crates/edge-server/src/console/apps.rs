//! The app page: builds, patches, the live pipeline of its imports with warnings to
//! acknowledge and Retry on a failed step, its settings and client key; creating an app.

use super::failure::Failure;
use super::form::Checked;
use super::page::{bytes, render, when, Chrome, PageResult};
use super::tasks_view::{groups, GroupRow};
use super::viewer::Viewer;
use crate::domain;
use crate::error::ApiError;
use crate::perms::{Resource, R};
use crate::state::AppState;
use crate::store::{apps, tasks};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use std::sync::Arc;

/// How many imports the pipeline shows.
const GROUPS_SHOWN: usize = 5;
/// How many of the app's newest tasks are read for them.
const TASKS_READ: usize = 200;

struct BuildLine {
    id: i64,
    name: String,
    created: String,
    size: String,
    current: bool,
}

struct PatchLine {
    from: i64,
    to: i64,
    size: String,
    /// The patch's size as a share of the image it leads to.
    share: String,
}

#[derive(Template)]
#[template(path = "console/app.html")]
struct AppPage {
    chrome: Chrome,
    name: String,
    label: String,
    current: String,
    max_builds: i64,
    deployments: String,
    locked_by: Option<String>,
    client_key: Option<String>,
    /// Every deployment of the organization, and whether the app names it.
    choices: Vec<(String, bool)>,
    keys_update: bool,
    builds: Vec<BuildLine>,
    patches: Vec<PatchLine>,
    pipeline: Pipeline,
}

/// The live part of the app page.
#[derive(Template)]
#[template(path = "console/pipeline.html")]
struct Pipeline {
    groups: Vec<GroupRow>,
    csrf: String,
    tasks_update: bool,
    tasks_execute: bool,
    tasks_read: bool,
}

/// The app `name` of the viewer's organization (404 for another's).
async fn app_of(st: &AppState, v: &Viewer, name: &str) -> Result<apps::AppRow, Failure> {
    v.caller.require(Resource::Apps, R)?;
    let mut c = st.db.conn().await?;
    Ok(apps::by_name(&mut c, &v.caller.org_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found("app", name))?)
}

/// The app's recent imports.
async fn pipeline_of(st: &AppState, v: &Viewer, a: &apps::AppRow) -> Result<Pipeline, Failure> {
    let tasks_read = v.can(Resource::Tasks, R);
    let groups = if tasks_read {
        let f = tasks::TaskFilter {
            org: Some(v.caller.org_id.clone()),
            app_id: Some(a.id.clone()),
            ..Default::default()
        };
        let mut c = st.db.conn().await?;
        let rows = tasks::page(&mut c, &f, &[("created".into(), true)], 0, TASKS_READ).await?;
        groups(&rows, GROUPS_SHOWN)
    } else {
        Vec::new()
    };
    let may = v.may();
    Ok(Pipeline {
        groups,
        csrf: v.csrf.clone(),
        tasks_update: may.tasks_update,
        tasks_execute: may.tasks_execute,
        tasks_read,
    })
}

/// `GET /console/apps/{name}`.
pub async fn page(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(name): Path<String>,
) -> PageResult {
    let a = app_of(&st, &v, &name).await?;
    let (builds, patches) = {
        let mut c = st.db.conn().await?;
        (apps::kept_builds(&mut c, &a.id).await?, apps::kept_patches(&mut c, &a.id).await?)
    };
    let image_of = |id: i64| builds.iter().find(|b| b.build_id == id).map(|b| b.image_bytes);
    let client_key = v
        .can(Resource::Keys, R)
        .then(|| {
            a.client_key_sealed
                .as_deref()
                .and_then(|k| st.data_key.open(k))
                .and_then(|b| String::from_utf8(b).ok())
        })
        .flatten();
    let deployments: Vec<String> = serde_json::from_str(&a.deployments).unwrap_or_default();
    let choices = if v.can(Resource::Deployments, R) {
        crate::store::deployments::list(&mut *st.db.conn().await?, &v.caller.org_id)
            .await?
            .into_iter()
            .map(|d| {
                let on = deployments.contains(&d.name);
                (d.name, on)
            })
            .collect()
    } else {
        Vec::new()
    };
    let page = AppPage {
        chrome: Chrome::new(&v, a.name.clone(), ""),
        name: a.name.clone(),
        label: a.label.clone(),
        current: match (&a.build_name, a.i_cur_build) {
            (Some(n), Some(id)) => format!("{n} (#{id})"),
            _ => "none yet".into(),
        },
        max_builds: a.max_builds,
        deployments: if deployments.is_empty() {
            "every deployment".into()
        } else {
            deployments.join(", ")
        },
        locked_by: (a.error == 1).then(|| a.error_task.clone().unwrap_or_default()),
        client_key,
        choices,
        keys_update: v.can(Resource::Keys, crate::perms::U),
        builds: builds
            .iter()
            .rev()
            .map(|b| BuildLine {
                id: b.build_id,
                name: b.build_name.clone(),
                created: when(b.created),
                size: bytes(b.image_bytes),
                current: Some(b.build_id) == a.i_cur_build,
            })
            .collect(),
        patches: patches
            .iter()
            .map(|p| PatchLine {
                from: p.from_build,
                to: p.to_build,
                size: bytes(p.size_bytes),
                share: image_of(p.to_build)
                    .filter(|&i| i > 0)
                    .map(|i| format!("{:.1} %", p.size_bytes as f64 * 100.0 / i as f64))
                    .unwrap_or_default(),
            })
            .collect(),
        pipeline: pipeline_of(&st, &v, &a).await?,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `GET /console/apps/{name}/pipeline`: the live part alone, polled by the page.
pub async fn pipeline(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(name): Path<String>,
) -> PageResult {
    let a = app_of(&st, &v, &name).await?;
    Ok(render(StatusCode::OK, &pipeline_of(&st, &v, &a).await?))
}

/// The New App form.
#[derive(Deserialize)]
pub struct NewApp {
    name: String,
    label: String,
    /// Empty: the default.
    #[serde(default)]
    max_builds: String,
}

/// `POST /console/apps`: creates the app (the API's Create App), then shows it.
pub async fn create(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Checked(f): Checked<NewApp>,
) -> PageResult {
    let max_builds = match f.max_builds.trim() {
        "" => None,
        m => Some(m.parse::<i64>().map_err(|_| {
            ApiError::invalid("maxBuilds", "maxBuilds must be a whole number 1..100")
        })?),
    };
    let b = domain::apps::AppIn {
        name: f.name.trim().to_string(),
        label: f.label.trim().to_string(),
        max_builds,
        deployments: None,
    };
    domain::apps::create(&st, &v.caller, &b).await?;
    Ok(Redirect::to(&format!("/console/apps/{}", b.name)).into_response())
}

/// A task action's form: where to go back to.
#[derive(Deserialize)]
pub struct TaskAction {
    app: String,
}

/// Back to the app page of a task action.
fn back(app: &str) -> PageResult {
    // Names are letters, digits and `_`: nothing to escape; anything else goes home.
    if crate::names::Name::parse("app", app).is_ok() {
        Ok(Redirect::to(&format!("/console/apps/{app}")).into_response())
    } else {
        Ok(Redirect::to("/console/").into_response())
    }
}

/// `POST /console/tasks/{name}/acknowledge`: marks the task's warning as seen.
pub async fn acknowledge(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(name): Path<String>,
    Checked(f): Checked<TaskAction>,
) -> PageResult {
    domain::tasks::acknowledge(&st, &v.caller, &crate::ids::TaskId::new(name)).await?;
    back(&f.app)
}

/// `POST /console/tasks/{name}/retry`: puts a failed task back in line.
pub async fn retry(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(name): Path<String>,
    Checked(f): Checked<TaskAction>,
) -> PageResult {
    domain::tasks::retry(&st, &v.caller, &crate::ids::TaskId::new(name)).await?;
    back(&f.app)
}
