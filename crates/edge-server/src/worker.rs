//! The worker loop: claims task rows under a lease, runs them, renews the lease while they
//! run (reporting progress), and records the outcome — with the state change it implies —
//! only while it still holds the lease. Also expires uploads that never came.

use crate::delivery::pipeline::{self, After, Done, Progress};
use crate::delivery::{depot, purge};
use crate::state::AppState;
use crate::store::{published, sessions, settings, tasks};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

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
            if let Err(e) = expire_uploads(&st).await {
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
    tracing::info!(task = %t.name, kind = %t.kind, org = t.org_name.as_deref().unwrap_or(""), app = t.app_name.as_deref().unwrap_or(""), "task started");
    let lease = st.cfg.task_lease_seconds;
    let progress = Progress::default();
    let work = execute(st, &t, &progress);
    tokio::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_secs((lease / 3).max(1)));
    tick.tick().await;
    let done = loop {
        tokio::select! {
            d = &mut work => break d,
            _ = tick.tick() => {
                if !matches!(tasks::renew(&st.db, &t.name, owner, lease, Some(progress.get())).await, Ok(true)) {
                    tracing::warn!(task = %t.name, "lease lost; abandoning the task");
                    return;
                }
            }
        }
    };
    match record(st, owner, &t, &done).await {
        Ok(true) => {
            pipeline::after_commit(st, &t, &done);
            tracing::info!(task = %t.name, status = done.outcome.status, "task ended");
        }
        Ok(false) => tracing::warn!(task = %t.name, "lease lost before the outcome was recorded"),
        Err(e) => tracing::error!(task = %t.name, error = %e, "recording the task outcome failed"),
    }
}

/// Records the outcome and its state change in one transaction, if the lease is ours.
async fn record(st: &AppState, owner: &str, t: &tasks::Task, d: &Done) -> Result<bool, sqlx::Error> {
    let mut tx = st.db.tx().await?;
    if !tasks::finish(&mut tx, &t.name, owner, &d.outcome).await? {
        return Ok(false);
    }
    pipeline::commit(&mut tx, st, t, d).await?;
    tx.commit().await?;
    Ok(true)
}

fn plain(status: &'static str, result: Option<Value>, exception: Option<Value>) -> Done {
    Done { outcome: tasks::Outcome { status, result, exception, warning: None }, after: After::Nothing }
}

async fn execute(st: &Arc<AppState>, t: &tasks::Task, progress: &Progress) -> Done {
    match t.kind.as_str() {
        "hello" => hello(st, t).await,
        "purge" => match purge::run(st, &t.params()).await {
            Ok(r) => plain("done", Some(r), None),
            Err((code, message)) => plain("error", None, Some(json!({"error": {"code": code, "message": message}}))),
        },
        _ => pipeline::run(st, t, progress).await,
    }
}

async fn hello(st: &Arc<AppState>, t: &tasks::Task) -> Done {
    let p = t.params();
    let version = crate::http::admin::EDGE_VERSION;
    if let Err(e) = settings::put(&st.db, "worker_version", version).await {
        return plain("error", None, Some(json!({"error": {"code": "database", "message": e.to_string()}})));
    }
    let mut result = json!({"message": p["message"], "workerVersion": version});
    if p["maintenance"].as_bool() == Some(true) {
        match sweep(st).await {
            Ok(counts) => result["sweep"] = counts,
            Err(e) => return plain("error", None, Some(json!({"error": {"code": "sweep", "message": e}}))),
        }
    }
    plain("done", Some(result), None)
}

/// Ends `dltar` upload tasks whose upload never came (exit code 9), cancelling their group.
/// Time spent in maintenance mode does not count against an upload's lifetime.
pub async fn expire_uploads(st: &AppState) -> Result<u64, sqlx::Error> {
    let now = crate::util::now_ms();
    let rows = sqlx::query("SELECT token_hash, task_name FROM uploads WHERE state IN ('waiting') AND expires < $1")
        .bind(now)
        .fetch_all(&st.db.pool)
        .await?;
    let mut n = 0;
    for r in rows {
        let (hash, task) = (crate::db::s(&r, "token_hash"), crate::db::s(&r, "task_name"));
        if expire_upload_task(st, &hash, &task).await? {
            n += 1;
        }
    }
    Ok(n)
}

/// Expires one waiting upload task (also used by `PATCH /be/v1/tasks {"expire":true}`).
pub async fn expire_upload_task(st: &AppState, token_hash: &str, task: &str) -> Result<bool, sqlx::Error> {
    let mut tx = st.db.tx().await?;
    let moved = sqlx::query("UPDATE uploads SET state = 'expired' WHERE token_hash = $1 AND state = 'waiting'")
        .bind(token_hash)
        .execute(&mut *tx)
        .await?;
    if moved.rows_affected() == 0 {
        return Ok(false);
    }
    let exc = json!({"httpDownloadFailed": {"httpStatus": null, "exitCode": 9, "url": null}});
    let ended = tasks::end_unleased(&mut tx, task, "expired", None, Some(&exc)).await?;
    if let Some(t) = tasks::get(&mut tx, None, task).await? {
        tasks::cancel_rest(&mut tx, &t.group, None).await?;
        let _ = std::fs::remove_file(depot::upload_path(st, &t.group).with_extension("part"));
    }
    tx.commit().await?;
    Ok(ended)
}

/// One maintenance sweep; returns what it removed, by kind.
pub async fn sweep(st: &AppState) -> Result<Value, String> {
    let expired = expire_uploads(st).await.map_err(|e| e.to_string())?;
    let mut c = st.db.pool.acquire().await.map_err(|e| e.to_string())?;
    let sessions = sessions::sweep(&mut c).await.map_err(|e| e.to_string())?;
    let cutoff = crate::util::now_ms() - st.cfg.login_window as i64 * 1000;
    let failures = sqlx::query("DELETE FROM login_failures WHERE at < $1")
        .bind(cutoff)
        .execute(&mut *c)
        .await
        .map_err(|e| e.to_string())?
        .rows_affected();
    let removed = remove_superseded(st).await?;
    Ok(json!({"expiredUploads": expired, "removedFiles": removed, "expiredSessionRows": sessions, "loginCounterRows": failures}))
}

/// Removes published objects superseded longer ago than the grace period.
async fn remove_superseded(st: &AppState) -> Result<u64, String> {
    let before = crate::util::now_ms() - st.cfg.grace_period as i64 * 1000;
    let mut c = st.db.pool.acquire().await.map_err(|e| e.to_string())?;
    let due = published::due(&mut c, before).await.map_err(|e| e.to_string())?;
    let mut removed = 0;
    let mut specs = std::collections::HashMap::new();
    for (id, org, _app, target, key) in due {
        if !specs.contains_key(&target) {
            let spec = if target.is_empty() {
                Some(crate::delivery::targets::TargetSpec::depot(st))
            } else {
                let all = crate::store::deployments::list(&mut c, &org).await.map_err(|e| e.to_string())?;
                all.iter().find(|d| d.id == target).and_then(|d| crate::http::deployments::target_of(st, d).ok())
            };
            specs.insert(target.clone(), spec);
        }
        // A target that no longer exists has nothing left to remove.
        if let Some(spec) = specs.get(&target).and_then(|s| s.as_ref()) {
            let origin = spec.origin(st).map_err(|e| e.to_string())?;
            origin.delete(&key).await.map_err(|e| format!("{}: {e}", spec.name))?;
            removed += 1;
        }
        published::remove(&mut c, &id).await.map_err(|e| e.to_string())?;
    }
    Ok(removed)
}
