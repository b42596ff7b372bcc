//! An app's settings from its page: label, builds kept and the deployments it publishes to
//! (the API's Change App), and a new client key (the API's Rotate Client Key).

use super::form::{Checked, NoFields};
use super::page::PageResult;
use super::viewer::Viewer;
use crate::domain::apps::{change, client_key};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use std::sync::Arc;

/// The app page again.
fn back(name: &str) -> PageResult {
    Ok(Redirect::to(&format!("/console/apps/{name}")).into_response())
}

/// `POST /console/apps/{name}/settings`: the form's fields (`label`, `max_builds`, one
/// `deployment` per box ticked; none: every deployment).
pub async fn save(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(name): Path<String>,
    Checked(f): Checked<Vec<(String, String)>>,
) -> PageResult {
    let field = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim().to_string());
    let max_builds = match field("max_builds").as_deref() {
        None | Some("") => None,
        Some(m) => Some(m.parse::<i64>().map_err(|_| {
            ApiError::invalid("maxBuilds", "maxBuilds must be a whole number 1..100")
        })?),
    };
    let ch = change::AppChange {
        name: name.clone(),
        label: field("label"),
        max_builds,
        deployments: Some(
            f.iter().filter(|(k, _)| k == "deployment").map(|(_, v)| v.clone()).collect(),
        ),
    };
    change::update(&st, &v.caller, ch).await?;
    back(&name)
}

/// `POST /console/apps/{name}/client-key`: a new client key; launchers holding the old one
/// can no longer open sessions.
pub async fn rotate_key(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(name): Path<String>,
    Checked(_): Checked<NoFields>,
) -> PageResult {
    client_key::rotate(&st, &v.caller, &name).await?;
    back(&name)
}
