//! The training page of an app: traces received, how many make `mkseq` run by itself, the
//! last sequence, the preload of the current image at 10, 100 and 1000 Mbit/s and its
//! acceleration, and "process traces now".

use super::form::{Checked, NoFields};
use super::page::{age, bytes, render, Chrome, PageResult};
use super::viewer::Viewer;
use crate::domain;
use crate::error::ApiError;
use crate::perms::{Resource, R, U, X};
use crate::state::AppState;
use crate::store::{tasks, trainings};
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
    can_update: bool,
    chart: Option<Chart>,
}

/// One bar of the chart.
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub h: f64,
}

/// Time-to-play per trace before and after the last sequencing, as SVG bars (drawn on
/// the server: the page runs no script for it).
pub struct Chart {
    pub before: Vec<Bar>,
    pub after: Vec<Bar>,
    pub bar_w: f64,
    /// The top of the scale, seconds.
    pub max: String,
    pub traces: usize,
    pub median_before: String,
    pub median_after: String,
    /// When that sequencing ran.
    pub when: String,
}

/// The chart's drawing area, in SVG units.
const CHART_W: f64 = 600.0;
const CHART_H: f64 = 160.0;

/// The chart of the newest `mkseq` of `app` that says its times-to-play.
async fn chart(st: &AppState, v: &Viewer, app: &str) -> Result<Option<Chart>, ApiError> {
    if !v.can(Resource::Tasks, R) {
        return Ok(None);
    }
    let Some(app_id) =
        crate::store::apps::id_of(&mut *st.db.conn().await?, &v.caller.org_id, app).await?
    else {
        return Ok(None);
    };
    let f = tasks::TaskFilter {
        org: Some(v.caller.org_id.clone()),
        app_id: Some(app_id),
        status: Some("done".into()),
        kind: Some("mkseq".into()),
        ..Default::default()
    };
    let rows =
        tasks::page(&mut *st.db.conn().await?, &f, &[("created".into(), true)], 0, 20).await?;
    let Some((t, ttp)) = rows
        .iter()
        .filter_map(|t| {
            let r: Value = serde_json::from_str(t.result.as_deref()?).ok()?;
            Some((t, r["timeToPlay100"].clone()))
        })
        .find(|(_, v)| v.is_object())
    else {
        return Ok(None);
    };
    let nums = |k: &str| -> Vec<f64> {
        ttp[k].as_array().into_iter().flatten().filter_map(Value::as_f64).collect()
    };
    let (before, after) = (nums("before"), nums("after"));
    let n = before.len().min(after.len());
    if n == 0 {
        return Ok(None);
    }
    let max = before.iter().chain(&after).copied().fold(0.0f64, f64::max).max(0.01);
    let slot = CHART_W / n as f64;
    let bar_w = (slot / 2.0 - 1.0).clamp(0.5, 24.0);
    let bars = |vals: &[f64], shift: f64| -> Vec<Bar> {
        vals.iter()
            .take(n)
            .enumerate()
            .map(|(i, s)| {
                let h = s / max * CHART_H;
                Bar { x: i as f64 * slot + shift, y: CHART_H - h, h }
            })
            .collect()
    };
    let median = |vals: &[f64]| {
        let mut v = vals[..n].to_vec();
        v.sort_by(f64::total_cmp);
        format!("{:.2} s", v[n / 2])
    };
    Ok(Some(Chart {
        before: bars(&before, 0.0),
        after: bars(&after, bar_w + 0.5),
        bar_w,
        max: format!("{max:.2} s"),
        traces: n,
        median_before: median(&before),
        median_after: median(&after),
        when: age(t.created),
    }))
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
        can_update: v.can(Resource::Trainings, U),
        chart: chart(&st, &v, &r.app_name).await?,
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

/// The setting's form.
#[derive(serde::Deserialize)]
pub struct Reliable {
    n_traces_reliable: String,
}

/// `POST /console/apps/{name}/training/reliable`: how many new traces make `mkseq` run by
/// itself (the API's Change Training).
pub async fn set_reliable(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(name): Path<String>,
    Checked(f): Checked<Reliable>,
) -> PageResult {
    let n = f.n_traces_reliable.trim().parse::<i64>().map_err(|_| {
        ApiError::invalid("nTracesReliable", "nTracesReliable must be a whole number 1..100000")
    })?;
    domain::trainings::set_reliable(&st, &v.caller, &name, n).await?;
    Ok(Redirect::to(&format!("/console/apps/{name}/training")).into_response())
}
