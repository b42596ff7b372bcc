//! The organization page: its details and key fingerprint, the configuration exported as a
//! download, and a bundle imported in two steps — the plan shown first, committed after.

use super::failure::Failure;
use super::form::{Checked, NoFields};
use super::page::{render, when, Chrome, PageResult};
use super::viewer::Viewer;
use crate::error::ApiError;
use crate::orgconf::service;
use crate::state::AppState;
use crate::store::orgs;
use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

#[derive(Template)]
#[template(path = "console/org.html")]
struct Page {
    chrome: Chrome,
    name: String,
    label: String,
    rid: String,
    fingerprint: String,
    created: String,
    users: i64,
    apps: i64,
}

/// `GET /console/org`: any member may read its organization.
pub async fn page(State(st): State<Arc<AppState>>, v: Viewer) -> PageResult {
    let o = orgs::by_id(&mut *st.db.conn().await?, &v.caller.org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization", &v.caller.org_name))?;
    let page = Page {
        chrome: Chrome::new(&v, "Organization", "/console/org"),
        name: o.name,
        label: o.label,
        rid: o.rid,
        fingerprint: o.key_fingerprint.unwrap_or_else(|| "no key".into()),
        created: when(o.created),
        users: o.users,
        apps: o.apps,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /console/org/export`: the API's Export (every resource the viewer can read), as
/// a file to save.
pub async fn export(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Checked(_): Checked<NoFields>,
) -> PageResult {
    let e = service::export(&st, &v.caller, None).await?;
    let body = serde_json::to_string_pretty(&e.bundle).map_err(ApiError::internal)?;
    let file = format!("attachment; filename=\"{}-config.json\"", v.caller.org_name);
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CONTENT_DISPOSITION, file),
        ],
        body,
    )
        .into_response())
}

/// One entry of a plan, for the page.
struct PlanLine {
    resource: String,
    name: String,
    action: String,
}

#[derive(Template)]
#[template(path = "console/org_plan.html")]
struct PlanPage {
    chrome: Chrome,
    import_id: String,
    lines: Vec<PlanLine>,
    changes: usize,
}

/// The Import form: the bundle's JSON.
#[derive(Deserialize)]
pub struct ImportForm {
    bundle: String,
}

/// `POST /console/org/import`: stages the bundle (the API's Import) and shows its plan;
/// nothing changes yet.
pub async fn import(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Checked(f): Checked<ImportForm>,
) -> PageResult {
    let bundle: Value = serde_json::from_str(&f.bundle)
        .map_err(|e| ApiError::invalid("bundle", format!("the bundle is not JSON: {e}")))?;
    let staged = service::stage(&st, &v.caller, bundle).await?;
    let lines: Vec<PlanLine> = staged
        .plan
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok())
        .map(|e| PlanLine {
            resource: e["resource"].as_str().unwrap_or("").into(),
            name: e["name"].as_str().unwrap_or("").into(),
            action: e["action"].as_str().unwrap_or("").into(),
        })
        .collect();
    let page = PlanPage {
        chrome: Chrome::new(&v, "Import: the plan", "/console/org"),
        import_id: staged.import_id,
        changes: lines.iter().filter(|l| l.action != "unchanged").count(),
        lines,
    };
    Ok(render(StatusCode::OK, &page))
}

/// A credential the commit created, shown once.
struct Secret {
    resource: String,
    name: String,
    what: &'static str,
    value: String,
}

#[derive(Template)]
#[template(path = "console/org_committed.html")]
struct Committed {
    chrome: Chrome,
    applied: usize,
    secrets: Vec<Secret>,
}

/// The Commit form.
#[derive(Deserialize)]
pub struct CommitForm {
    import_id: String,
}

/// `POST /console/org/commit`: applies the staged plan (the API's Commit), all or nothing;
/// the credentials of what it created are shown this once.
pub async fn commit(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Checked(f): Checked<CommitForm>,
) -> Result<axum::response::Response, Failure> {
    let done = service::commit(&st, &v.caller, &f.import_id).await?;
    let secrets = done
        .secrets
        .iter()
        .filter_map(|s| serde_json::to_value(s).ok())
        .map(|s| {
            let (what, value) = match (s["apiKey"].as_str(), s["initialPW"].as_str()) {
                (Some(k), _) => ("API key", k),
                (None, Some(p)) => ("initial password", p),
                _ => ("secret", s["secret"].as_str().unwrap_or("")),
            };
            Secret {
                resource: s["resource"].as_str().unwrap_or("").into(),
                name: s["name"].as_str().unwrap_or("").into(),
                what,
                value: value.into(),
            }
        })
        .collect();
    let page = Committed {
        chrome: Chrome::new(&v, "Import committed", "/console/org"),
        applied: done.applied,
        secrets,
    };
    Ok(render(StatusCode::OK, &page))
}
