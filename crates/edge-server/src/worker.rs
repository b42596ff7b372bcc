//! The worker loop: claims task rows under a lease, runs them, renews the lease while they
//! run (reporting progress), and records the outcome — with the state change it implies —
//! only while it still holds the lease. Also expires uploads that never came, and runs the
//! periodic maintenance sweep under an instance-wide lease (one process per interval).

use crate::delivery::error::exception;
use crate::delivery::outcome::{After, Done, Progress};
use crate::delivery::pipeline::{self};
use crate::delivery::{purge, StepError};
use crate::error::AboutExt;
use crate::ids::TaskId;
use crate::state::AppState;
use crate::store::tasks::{HelloParams, TaskKind, TaskStatus};
use crate::store::{login_attempts, published, sessions, settings, tasks};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::Instrument;

/// Pipeline task types (not taken during maintenance).
const PIPELINE: &[&str] = &["dltar", "mkraw", "mkdxf", "mkpat", "deploy", "mkseq", "purge"];

/// Runs until `stop` flips: the task in hand is finished, then the loop ends.
pub async fn run(st: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let owner = crate::util::new_id("w");
    tracing::info!(worker = %owner, "worker started");
    let mut last_expiry = Instant::now() - Duration::from_secs(60);
    loop {
        if *stop.borrow() {
            break;
        }
        let maintenance = st.maintenance().await.enabled;
        if !maintenance && last_expiry.elapsed() > Duration::from_secs(1) {
            last_expiry = Instant::now();
            if let Err(e) = crate::domain::uploads::expire_uploads(&st).await {
                tracing::warn!(error = %e, "expiring uploads failed");
            }
        }
        let mut kinds = vec!["hello"];
        if !maintenance {
            kinds.extend_from_slice(PIPELINE);
        }
        match tasks::claim(&st.db, &owner, st.cfg.task_lease_seconds, &kinds).await {
            Ok(Some(t)) => run_one(&st, &owner, t).await,
            Ok(None) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(st.cfg.worker_poll_ms)) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "claiming a task failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tracing::info!(worker = %owner, "worker stopped");
}

async fn run_one(st: &Arc<AppState>, owner: &str, t: tasks::Task) {
    // Settling waits while a step runs.
    let _busy = crate::settle::busy();
    // Every log line of the run carries the task, its type, org, app and group.
    let span = tracing::info_span!(
        "task",
        task = %t.name,
        kind = %t.kind,
        org = t.org_name.as_deref().unwrap_or(""),
        app = t.app_name.as_deref().unwrap_or(""),
        group = %t.group,
        worker = %owner
    );
    run_one_inner(st, owner, t).instrument(span).await
}

async fn run_one_inner(st: &Arc<AppState>, owner: &str, t: tasks::Task) {
    tracing::info!(task = %t.name, kind = %t.kind, org = t.org_name.as_deref().unwrap_or(""), app = t.app_name.as_deref().unwrap_or(""), attempt = t.attempts, "task started");
    let started = Instant::now();
    let progress = Progress::default();
    // The reporter (lease renewal and progress) is a task of its own: it waits for a
    // connection without stopping the work, and never asks for one while the work holds
    // one on the same task (`db::held`); each counts its own connections.
    let (stop, stopped) = watch::channel(false);
    let mut reporter = tokio::spawn(crate::db::scope(report(
        st.clone(),
        t.name.clone(),
        owner.to_string(),
        progress.clone(),
        stopped,
    )));
    let work = crate::db::scope(execute(st, &t, &progress));
    tokio::pin!(work);
    let done = tokio::select! {
        d = &mut work => d,
        // The reporter ends by itself only when the lease is lost.
        _ = &mut reporter => {
            tracing::warn!(task = %t.name, "lease lost; abandoning the task");
            st.metrics.task_ended(t.kind.as_str(), "abandoned", None);
            return;
        }
    };
    // No progress write may land after the outcome: the reporter is stopped (a write under
    // way ends first) before the outcome is recorded.
    let _ = stop.send(true);
    let _ = reporter.await;
    let secs = started.elapsed().as_secs_f64();
    match record(st, owner, &t, &done).await {
        Ok(true) => {
            // The task ended when its outcome was committed: say so before the clean-up,
            // which may take a while (deletes on a remote depot) or never finish (a crash).
            st.metrics.task_ended(
                t.kind.as_str(),
                crate::metrics::outcome_of(done.outcome.status.as_str()),
                Some(secs),
            );
            tracing::info!(task = %t.name, kind = %t.kind, status = done.outcome.status.as_str(), seconds = secs, "task ended");
            crate::delivery::commit::after_commit(st, &t, &done).await;
            // An import is published: its new chunks can be settled now, and not before,
            // so that settling never competes with the steps that publish it.
            if t.kind == TaskKind::Deploy {
                st.settle.poke();
            }
        }
        Ok(false) => {
            st.metrics.task_ended(t.kind.as_str(), "abandoned", None);
            tracing::warn!(task = %t.name, "lease lost before the outcome was recorded")
        }
        Err(e) => tracing::error!(task = %t.name, error = %e, "recording the task outcome failed"),
    }
}

/// Renews the lease of the running task `name` every third of it and writes its progress
/// meanwhile: when it moved by a hundredth or its note changed, at most every
/// `progress_interval_ms` (a short step still shows it moving; a long one writes about a
/// hundred times, and once per note). Both are one statement. Returns when `stop` flips,
/// or when the lease is lost (a failed renewal that was due counts as lost, as it always
/// did).
async fn report(
    st: Arc<AppState>,
    name: TaskId,
    owner: String,
    progress: Progress,
    mut stop: watch::Receiver<bool>,
) {
    let lease = st.cfg.task_lease_seconds;
    let renew_every = Duration::from_secs((lease / 3).max(1));
    // Looked at this often, and never less often than the lease needs.
    let every = Duration::from_millis(st.cfg.progress_interval_ms).min(renew_every);
    let mut renewed = Instant::now();
    let mut written: (f64, Option<String>) = (0.0, None);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let now = (progress.get(), progress.note_text());
        let moved = (now.0 - written.0).abs() >= 0.01 || now.1 != written.1;
        let due = renewed.elapsed() >= renew_every;
        if !moved && !due {
            continue;
        }
        match tasks::renew(&st.db, &name, &owner, lease, now.0, now.1.as_deref()).await {
            Ok(true) => {
                renewed = Instant::now();
                written = now;
            }
            Ok(false) => return,
            Err(e) if due => {
                tracing::warn!(task = %name, error = %e, "renewing the lease failed");
                return;
            }
            // Only progress was due: the next round tries again.
            Err(e) => tracing::debug!(task = %name, error = %e, "writing progress failed"),
        }
    }
}

/// Records the outcome and its state change in one transaction, if the lease is ours.
async fn record(
    st: &AppState,
    owner: &str,
    t: &tasks::Task,
    d: &Done,
) -> Result<bool, sqlx::Error> {
    let mut tx = st.db.tx().await?;
    if !tasks::finish(&mut tx, &t.name, owner, &d.outcome).await? {
        return Ok(false);
    }
    crate::delivery::commit::commit(&mut tx, st, t, d).await?;
    tx.commit().await?;
    Ok(true)
}

fn plain(status: TaskStatus, result: Option<Value>, exception: Option<Value>) -> Done {
    Done {
        outcome: tasks::Outcome { status, result, exception, warning: None },
        after: After::Nothing,
    }
}

async fn execute(st: &Arc<AppState>, t: &tasks::Task, progress: &Progress) -> Done {
    match t.kind {
        TaskKind::Hello => hello(st, t).await,
        TaskKind::Purge => match purge::run(st, t).await {
            Ok(r) => plain(TaskStatus::Done, Some(r), None),
            Err(e) => plain(TaskStatus::Error, None, Some(e.exception(e.code()))),
        },
        _ => pipeline::run(st, t, progress).await,
    }
}

async fn hello(st: &Arc<AppState>, t: &tasks::Task) -> Done {
    let version = crate::version::EDGE_VERSION;
    if let Err(e) = settings::put(&st.db, "worker_version", version).await {
        return plain(TaskStatus::Error, None, Some(exception("database", e)));
    }
    let p: HelloParams = match t.payload() {
        Ok(p) => p,
        Err(e) => return plain(TaskStatus::Error, None, Some(exception("internal", e))),
    };
    let mut result = json!({"message": p.message, "workerVersion": version});
    if p.maintenance {
        match sweep_now(st).await {
            Ok(counts) => result["sweep"] = counts,
            Err(e) => return plain(TaskStatus::Error, None, Some(e.exception("sweep"))),
        }
    }
    plain(TaskStatus::Done, Some(result), None)
}

/// The sweep lease: the `sweep` row of `settings`, JSON `{"owner","until","last"}`, moved
/// only by compare-and-set of its whole text, so two processes never sweep at once and
/// sweeps start at most once per interval across the instance.
const SWEEP_KEY: &str = "sweep";
/// How long a sweep lease lasts without renewal (renewed every third of it).
const SWEEP_LEASE_MS: i64 = 60_000;

/// Compare-and-set of the sweep row from `old` to `new`.
async fn sweep_cas(st: &AppState, old: &str, new: &str) -> Result<bool, sqlx::Error> {
    settings::compare_and_set(&st.db, SWEEP_KEY, old, new).await
}

/// Takes the sweep lease when no sweep runs and (unless `force`) the last one started an
/// interval ago or more. Returns the row text now held.
async fn sweep_claim(
    st: &AppState,
    owner: &str,
    force: bool,
) -> Result<Option<String>, sqlx::Error> {
    let cur = match settings::get(&st.db, SWEEP_KEY).await? {
        Some(v) => v,
        None => {
            settings::get_or_init(&st.db, SWEEP_KEY, r#"{"owner":null,"until":0,"last":0}"#).await?
        }
    };
    let v: Value = serde_json::from_str(&cur).unwrap_or(Value::Null);
    let now = crate::util::now_ms();
    let (until, last) = (v["until"].as_i64().unwrap_or(0), v["last"].as_i64().unwrap_or(0));
    if until > now || (!force && now < last + st.cfg.sweep_interval as i64 * 1000) {
        return Ok(None);
    }
    let held = json!({"owner": owner, "until": now + SWEEP_LEASE_MS, "last": now}).to_string();
    Ok(sweep_cas(st, &cur, &held).await?.then_some(held))
}

/// Runs one sweep under the lease `held`, renewing it meanwhile, then releases it.
async fn sweep_leased(st: &AppState, mut held: String) -> Result<Value, StepError> {
    let work = crate::db::scope(sweep(st));
    tokio::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_millis(SWEEP_LEASE_MS as u64 / 3));
    tick.tick().await;
    let out = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = tick.tick() => {
                let mut v: Value = serde_json::from_str(&held).unwrap_or(Value::Null);
                v["until"] = json!(crate::util::now_ms() + SWEEP_LEASE_MS);
                let next = v.to_string();
                match sweep_cas(st, &held, &next).await {
                    Ok(true) => held = next,
                    _ => return Err(StepError::coded("sweep", "the sweep lease was lost")),
                }
            }
        }
    };
    let mut v: Value = serde_json::from_str(&held).unwrap_or(Value::Null);
    v["until"] = json!(0);
    if let Err(e) = sweep_cas(st, &held, &v.to_string()).await {
        tracing::warn!(error = %e, "releasing the sweep lease failed (it expires by itself)");
    }
    out
}

/// A sweep now (the `hello` test task with `maintenance: true`): waits for a sweep in
/// progress elsewhere to end (up to the lease length), ignoring the interval.
pub async fn sweep_now(st: &AppState) -> Result<Value, StepError> {
    let owner = crate::util::new_id("sw");
    let deadline = Instant::now() + Duration::from_millis(SWEEP_LEASE_MS as u64);
    loop {
        match sweep_claim(st, &owner, true).await {
            Ok(Some(held)) => return sweep_leased(st, held).await,
            Ok(None) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Ok(None) => {
                return Err(StepError::coded("sweep", "another maintenance sweep is running"))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The periodic sweep (`sweep_interval` seconds, 0 = off): every process looks often, one
/// per interval sweeps.
pub async fn run_sweeper(st: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let interval = st.cfg.sweep_interval;
    if interval == 0 {
        return;
    }
    let owner = crate::util::new_id("sw");
    let poll = Duration::from_millis((interval * 1000 / 4).clamp(200, 30_000));
    loop {
        if *stop.borrow() {
            break;
        }
        match sweep_claim(&st, &owner, false).await {
            Ok(Some(held)) => {
                let t0 = Instant::now();
                match sweep_leased(&st, held).await {
                    Ok(counts) => tracing::info!(
                        sweeper = %owner,
                        expired_uploads = counts["expiredUploads"].as_u64().unwrap_or(0),
                        removed_files = counts["removedFiles"].as_u64().unwrap_or(0),
                        session_rows = counts["expiredSessionRows"].as_u64().unwrap_or(0),
                        login_counter_rows = counts["loginCounterRows"].as_u64().unwrap_or(0),
                        seconds = t0.elapsed().as_secs_f64(),
                        "maintenance sweep done"
                    ),
                    Err(e) => {
                        tracing::warn!(sweeper = %owner, error = %e, "maintenance sweep failed")
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "claiming the maintenance sweep failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => {}
        }
    }
}

/// One maintenance sweep; returns what it removed, by kind. Callers hold the sweep lease.
async fn sweep(st: &AppState) -> Result<Value, StepError> {
    let expired = crate::domain::uploads::expire_uploads(st).await?;
    let mut c = st.db.conn().await?;
    let sessions = sessions::sweep(&mut c).await?;
    let cutoff = crate::util::now_ms() - st.cfg.login_window as i64 * 1000;
    let failures = login_attempts::prune(&mut c, cutoff).await?;
    // Launcher sessions past their token's life (their traces stay), and staged imports
    // no one committed in time.
    let now = crate::util::now_ms();
    let gone = [
        crate::store::launcher::expire_sessions(&mut c, now).await?,
        crate::store::imports::expire(&mut c, now).await?,
    ];
    drop(c);
    let removed = remove_superseded(st).await?;
    st.metrics.sweep_done(&[
        ("expired_uploads", expired),
        ("removed_files", removed),
        ("session_rows", sessions),
        ("login_counter_rows", failures),
        ("launcher_session_rows", gone[0]),
        ("import_rows", gone[1]),
    ]);
    Ok(
        json!({"expiredUploads": expired, "removedFiles": removed, "expiredSessionRows": sessions, "loginCounterRows": failures,
              "launcherSessionRows": gone[0], "importRows": gone[1]}),
    )
}

/// Removes published objects superseded longer ago than the grace period.
async fn remove_superseded(st: &AppState) -> Result<u64, StepError> {
    let before = crate::util::now_ms() - st.cfg.grace_period as i64 * 1000;
    let mut c = st.db.conn().await?;
    let due = published::due(&mut c, before).await?;
    let mut removed = 0;
    let mut specs = std::collections::HashMap::new();
    for (id, org, _app, target, key) in due {
        if !specs.contains_key(&target) {
            let spec = if target.as_str().is_empty() {
                Some(crate::targets::TargetSpec::depot(st))
            } else {
                let all = crate::store::deployments::list(&mut c, &org).await?;
                all.iter()
                    .find(|d| d.id == target)
                    .and_then(|d| crate::domain::deployments::target_of(st, d).ok())
            };
            specs.insert(target.clone(), spec);
        }
        // A target that no longer exists has nothing left to remove.
        if let Some(spec) = specs.get(&target).and_then(|s| s.as_ref()) {
            let origin = spec.origin(st)?;
            origin.delete(&key).await.about(|| spec.name.as_str())?;
            removed += 1;
        }
        published::remove(&mut c, &id).await?;
    }
    Ok(removed)
}
