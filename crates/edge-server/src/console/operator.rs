//! The operator's pages, for members of the operator organization: every organization,
//! creating one (its administrator's password shown once), maintenance mode on and off,
//! the versions, and the test task.

use super::form::Checked;
use super::page::{render, when, Chrome, PageQuery, PageResult, Pager};
use super::viewer::Viewer;
use crate::domain::operator::{self, require_operator};
use crate::domain::orgs::OrgIn;
use crate::perms::{Resource, C, R, U, X};
use crate::state::AppState;
use crate::store::orgs;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use std::sync::Arc;

struct OrgLine {
    name: String,
    label: String,
    users: i64,
    apps: i64,
    created: String,
    operator: bool,
}

#[derive(Template)]
#[template(path = "console/operator.html")]
struct Page {
    chrome: Chrome,
    orgs: Vec<OrgLine>,
    pager: Pager,
    maintenance: bool,
    edge: &'static str,
    engine: &'static str,
    build: &'static str,
    worker: String,
    can_create: bool,
    can_update: bool,
    can_execute: bool,
}

/// `GET /console/operator`.
pub async fn page(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Query(q): Query<PageQuery>,
) -> PageResult {
    require_operator(&v.caller, R)?;
    let all = orgs::list(&mut *st.db.conn().await?).await?;
    let (pager, shown) = Pager::of(q.page, all.len());
    let list = all[shown].to_vec();
    let page = Page {
        chrome: Chrome::new(&v, "Operator", "/console/operator"),
        orgs: list
            .into_iter()
            .map(|o| OrgLine {
                name: o.name,
                label: o.label,
                users: o.users,
                apps: o.apps,
                created: when(o.created),
                operator: o.operator,
            })
            .collect(),
        pager,
        maintenance: st.maintenance_fresh().await.enabled,
        edge: crate::version::EDGE_VERSION,
        engine: crate::version::ENGINE_VERSION,
        build: option_env!("EDGE_GIT_HASH").unwrap_or("unknown"),
        worker: operator::worker_version(&st)
            .await?
            .unwrap_or_else(|| "no test task run yet".into()),
        can_create: require_operator(&v.caller, C).is_ok(),
        can_update: require_operator(&v.caller, U).is_ok(),
        can_execute: require_operator(&v.caller, R).is_ok() && v.can(Resource::Tasks, X),
    };
    Ok(render(StatusCode::OK, &page))
}

/// The New Organization form.
#[derive(Deserialize)]
pub struct NewOrg {
    name: String,
    label: String,
    username: String,
    email: String,
    firstname: String,
    surname: String,
}

#[derive(Template)]
#[template(path = "console/org_created.html")]
struct Created {
    chrome: Chrome,
    name: String,
    username: String,
    password: Option<String>,
}

/// `POST /console/operator/orgs`: the API's Create Organization.
pub async fn create(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Checked(f): Checked<NewOrg>,
) -> PageResult {
    let b = OrgIn {
        name: f.name.trim().into(),
        label: f.label.trim().into(),
        username: f.username.trim().into(),
        email: f.email.trim().into(),
        firstname: f.firstname.trim().into(),
        surname: f.surname.trim().into(),
        dxorglnk: None,
        org_priv_pem_b64: None,
        org_priv_pw: None,
    };
    let (name, username) = (b.name.clone(), b.username.clone());
    let out = crate::domain::orgs::create_by(&st, &v.caller, b).await?;
    let page = Created {
        chrome: Chrome::new(&v, "Organization created", "/console/operator"),
        name,
        username,
        password: out["adminPW"].as_str().map(String::from),
    };
    Ok(render(StatusCode::OK, &page))
}

/// The maintenance form.
#[derive(Deserialize)]
pub struct MaintenanceForm {
    /// `on` or `off`.
    mode: String,
}

/// `POST /console/operator/maintenance`: maintenance mode on or off (`orgs: Update`).
pub async fn maintenance(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Checked(f): Checked<MaintenanceForm>,
) -> PageResult {
    require_operator(&v.caller, U)?;
    let actor = format!("console:{}", v.caller.username);
    operator::set_maintenance(&st, &actor, f.mode == "on", None).await?;
    Ok(Redirect::to("/console/operator").into_response())
}

/// `POST /console/operator/hello`: submits the test task (`orgs: Read` and `tasks: Execute`
/// in the operator organization).
pub async fn hello(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Checked(_): Checked<super::form::NoFields>,
) -> PageResult {
    require_operator(&v.caller, R)?;
    v.caller.require(Resource::Tasks, X)?;
    let actor = format!("console:{}", v.caller.username);
    operator::hello(&st, &actor, "hello from the console".into(), false).await?;
    Ok(Redirect::to("/console/operator").into_response())
}
