//! The training page of an app: traces received, how many make `mkseq` run by itself, the
//! last sequence, the preload of the current image at 10, 100 and 1000 Mbit/s and its
//! acceleration, and "process traces now".

use super::form::{Checked, NoFields};
use super::page::{age, bytes, render, Chrome, PageResult};
use super::viewer::Viewer;
use crate::domain;
use crate::error::ApiError;
use crate::perms::{Resource, R, X};
use crate::state::AppState;
use crate::store::trainings;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde_json::Value;
use std::sync::Arc;

/// The preload of the current image at one bandwidth.
struct Preload {
    mbit: &'static str,
    bytes: String,
    /// Seconds of download before the game starts at that bandwidth.
    seconds: String,
}

#[derive(Template)]
#[template(path = "console/training.html")]
struct Page {
    chrome: Chrome,
    app: String,
    n_traces: i64,
    since: i64,
    reliable: i64,
    generation: i64,
    last_sequence: String,
    preload: Vec<Preload>,
    acceleration: String,
    can_process: bool,
}

/// `GET /console/apps/{name}/training`.
pub async fn page(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(name): Path<String>,
) -> PageResult {
    v.caller.require(Resource::Trainings, R)?;
    let r = trainings::view_by_name(&mut *st.db.conn().await?, &v.caller.org_id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("app", &name))?;
    let figures: Value =
        r.preload.as_deref().and_then(|p| serde_json::from_str(p).ok()).unwrap_or(Value::Null);
    let preload = [("10", 10.0), ("100", 100.0), ("1000", 1000.0)]
        .into_iter()
        .filter_map(|(k, mbit)| {
            let b = figures[k].as_u64()?;
            Some(Preload {
                mbit: k,
                bytes: bytes(b as i64),
                seconds: format!("{:.1} s", b as f64 * 8.0 / (mbit * 1e6)),
            })
        })
        .collect();
    let acceleration = r
        .acceleration
        .as_deref()
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .and_then(|a| a.as_f64())
        .map(|a| format!("{a:.1}×"))
        .unwrap_or_default();
    let page = Page {
        chrome: Chrome::new(&v, format!("{name}: training"), ""),
        app: r.app_name.clone(),
        n_traces: r.n_traces,
        since: r.since_sequence.unwrap_or(0),
        reliable: r.n_traces_reliable.unwrap_or(domain::trainings::DEFAULT_RELIABLE),
        generation: r.generation.unwrap_or(0),
        last_sequence: r.last_sequence.map(age).unwrap_or_else(|| "never".into()),
        preload,
        acceleration,
        can_process: v.can(Resource::Tasks, X),
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /console/apps/{name}/training/process`: queues a sequencing run now (the API's
/// Process Traces), then shows the app's pipeline.
pub async fn process(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(name): Path<String>,
    Checked(_): Checked<NoFields>,
) -> PageResult {
    domain::trainings::process_traces(&st, &v.caller, &name).await?;
    Ok(Redirect::to(&format!("/console/apps/{name}")).into_response())
}
