//! Purges, queued: when an app, deployment or organization is deleted, a `purge` task with
//! a sealed snapshot of exactly which objects were published where, taken in the deleting
//! transaction, so a re-created one of the same name is never touched (the task runs in
//! `delivery::purge`).

use crate::depot;
use crate::error::{ApiError, ApiResult};
use crate::ids::{AppId, DeploymentId, OrgId, TaskId};
use crate::state::AppState;
use crate::store::{deployments, published, tasks, Conn};
use crate::targets::TargetSpec;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What a purge removes.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Snapshot {
    /// Per target: where, and which keys.
    pub targets: Vec<(TargetSpec, Vec<String>)>,
    /// Depot directories (keys) to remove; absolute paths in snapshots from before the
    /// depot had keys.
    pub dirs: Vec<String>,
}

/// Builds the snapshot of the objects of `rows` (target id, key), resolving each target.
pub(crate) async fn snapshot(
    st: &AppState,
    c: &mut Conn,
    org: &OrgId,
    rows: Vec<(DeploymentId, String)>,
    known: Option<(DeploymentId, TargetSpec)>,
) -> ApiResult<Snapshot> {
    let mut by_target: HashMap<DeploymentId, Vec<String>> = HashMap::new();
    for (t, k) in rows {
        by_target.entry(t).or_default().push(k);
    }
    let all = deployments::list(c, org).await?;
    let mut snap = Snapshot::default();
    for (tid, keys) in by_target {
        let spec = if tid.as_str().is_empty() {
            Some(TargetSpec::depot(st))
        } else if let Some((id, spec)) = known.as_ref().filter(|(id, _)| *id == tid) {
            let _ = id;
            Some(spec.clone())
        } else {
            all.iter()
                .find(|d| d.id == tid)
                .and_then(|d| crate::domain::deployments::target_of(st, d).ok())
        };
        if let Some(spec) = spec {
            snap.targets.push((spec, keys));
        }
    }
    Ok(snap)
}

pub(crate) async fn enqueue(
    st: &AppState,
    c: &mut Conn,
    org: &OrgId,
    org_name: &str,
    app_name: Option<&str>,
    snap: Snapshot,
    reason: tasks::PurgeReason,
) -> ApiResult<TaskId> {
    let sealed = st.data_key.seal(&serde_json::to_vec(&snap).map_err(ApiError::internal)?);
    let (name, _) = tasks::enqueue(
        c,
        tasks::NewTask {
            org_id: Some(org.clone()),
            org_name: Some(org_name.into()),
            app_name: app_name.map(String::from),
            ..tasks::NewTask::of(tasks::PurgeParams { reason, snapshot: sealed })
        },
    )
    .await?;
    Ok(name)
}

/// Queues the purge of everything published to a deployment being deleted.
pub async fn enqueue_for_deployment(
    st: &AppState,
    c: &mut Conn,
    org: &OrgId,
    org_name: &str,
    d: &deployments::Deployment,
    spec: Option<TargetSpec>,
) -> ApiResult<TaskId> {
    let rows = published::of_deployment(c, &d.id)
        .await?
        .into_iter()
        .map(|(_, k)| (d.id.clone(), k))
        .collect();
    let snap = snapshot(st, c, org, rows, spec.map(|s| (d.id.clone(), s))).await?;
    published::forget_deployment(c, &d.id).await?;
    enqueue(st, c, org, org_name, None, snap, tasks::PurgeReason::DeploymentDeleted).await
}

/// Queues the purge of an app: its published objects everywhere and its local data.
pub async fn enqueue_for_app(
    st: &AppState,
    c: &mut Conn,
    org: &OrgId,
    org_name: &str,
    app_id: &AppId,
    app_name: &str,
) -> ApiResult<TaskId> {
    let rows = published::of_app(c, app_id).await?;
    let mut snap = snapshot(st, c, org, rows, None).await?;
    snap.dirs = depot::app_keys(app_id);
    published::forget_app(c, app_id).await?;
    enqueue(st, c, org, org_name, Some(app_name), snap, tasks::PurgeReason::AppDeleted).await
}

/// Queues the purge of an organization's apps (with `prune`, their published files too).
pub async fn enqueue_for_org(
    st: &AppState,
    c: &mut Conn,
    org: &OrgId,
    org_name: &str,
    prune: bool,
) -> ApiResult<Option<TaskId>> {
    let apps = crate::store::apps::ids_of_org(&mut *c, org).await?;
    let mut snap = Snapshot::default();
    let mut rows = Vec::new();
    for a in &apps {
        snap.dirs.extend(depot::app_keys(a));
        if prune {
            rows.extend(published::of_app(c, a).await?);
        }
        published::forget_app(c, a).await?;
    }
    if !prune {
        // Without prune the published files stay; the Edge's own copies go: at once from
        // the data directory, by a purge task from a shared depot (many objects).
        if st.depot.is_shared() {
            return Ok(Some(
                enqueue(st, c, org, org_name, None, snap, tasks::PurgeReason::OrgDeleted).await?,
            ));
        }
        let dirs: Vec<_> = snap.dirs.iter().map(|d| st.depot.local(d)).collect();
        tokio::task::spawn_blocking(move || {
            dirs.iter().for_each(|d| drop(std::fs::remove_dir_all(d)))
        });
        return Ok(None);
    }
    let mut s2 = snapshot(st, c, org, rows, None).await?;
    s2.dirs = snap.dirs;
    Ok(Some(enqueue(st, c, org, org_name, None, s2, tasks::PurgeReason::OrgDeleted).await?))
}
