//! One deployment: its settings in a form (the type's fields filled in, secrets left empty
//! to keep them), saved as the API's Change Deployment (a new reach is probed first), and a
//! probe on demand.

use super::deployments::{origin_of, NewDeployment};
use super::form::{Checked, NoFields};
use super::page::{render, Chrome, PageResult};
use super::viewer::Viewer;
use crate::domain::deployments::{self as rules, change::DeploymentChange};
use crate::error::ApiError;
use crate::perms::{Resource, R, U};
use crate::state::AppState;
use crate::store::deployments as store;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use std::sync::Arc;

#[derive(Template)]
#[template(path = "console/deployment.html")]
struct Page {
    chrome: Chrome,
    name: String,
    label: String,
    kind: String,
    prefix: String,
    public_url: String,
    path: String,
    endpoint: String,
    region: String,
    bucket: String,
    access_key_id: String,
    path_style: bool,
    has_secret: bool,
    apps: String,
    can_update: bool,
    /// What the last probe said.
    probed: Option<String>,
}

async fn show(st: &AppState, v: &Viewer, name: &str, probed: Option<String>) -> PageResult {
    v.caller.require(Resource::Deployments, R)?;
    let mut c = st.db.conn().await?;
    let d = store::get(&mut c, &v.caller.org_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found("deployment", name))?;
    let apps = store::apps_using(&mut c, &v.caller.org_id, name).await?;
    let o = |k: &str| d.origin[k].as_str().unwrap_or("").to_string();
    let page = Page {
        chrome: Chrome::new(v, format!("Deployment {name}"), "/console/deployments"),
        name: d.name.clone(),
        label: d.label.clone().unwrap_or_default(),
        kind: d.kind.clone(),
        prefix: d.prefix.clone(),
        public_url: d.public_url.clone().unwrap_or_default(),
        path: o("path"),
        endpoint: o("endpoint"),
        region: o("region"),
        bucket: o("bucket"),
        access_key_id: o("accessKeyId"),
        path_style: d.origin["pathStyle"] == true,
        has_secret: d.secret_sealed.is_some(),
        apps: if apps.is_empty() { "no app names it".into() } else { apps.join(", ") },
        can_update: v.can(Resource::Deployments, U),
        probed,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `GET /console/deployments/{name}`.
pub async fn page(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(name): Path<String>,
) -> PageResult {
    show(&st, &v, &name, None).await
}

/// `POST /console/deployments/{name}`: the API's Change Deployment with the form's fields
/// (an empty secret keeps the stored one).
pub async fn update(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(name): Path<String>,
    Checked(f): Checked<NewDeployment>,
) -> PageResult {
    let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let ch = DeploymentChange {
        name: name.clone(),
        label: Some(opt(&f.label)),
        origin_prefix: Some(f.prefix.trim().to_string()),
        origin: Some(origin_of(&f)),
        download_auth: None,
        public_url: Some(opt(&f.public_url)),
        probe: true,
    };
    rules::change::update(&st, &v.caller, ch).await?;
    Ok(Redirect::to(&format!("/console/deployments/{name}")).into_response())
}

/// `POST /console/deployments/{name}/probe`: the API's Probe; the page shows the answer
/// (a failure is the API's 400 with its cause).
pub async fn probe(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(name): Path<String>,
    Checked(_): Checked<NoFields>,
) -> PageResult {
    let started = std::time::Instant::now();
    let key = rules::probe_now(&st, &v.caller, &name).await?;
    let said = format!("wrote and removed {key} in {} ms", started.elapsed().as_millis());
    show(&st, &v, &name, Some(said)).await
}
