//! Trainings: one per app, created with the app's first trace or sequence; each trace
//! counted towards the next sequencing run, queued once enough came (or at once by Process
//! Traces).

use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::ids::{AppId, OrgId, TaskId};
use crate::perms::{Resource, X};
use crate::state::AppState;
use crate::store::{apps, tasks, Conn};
use crate::util::{new_id, now_ms};

/// `nTracesReliable` of an app that never set it.
pub const DEFAULT_RELIABLE: i64 = 12;

/// The training row of an app, created with defaults when missing.
pub async fn ensure(c: &mut Conn, org_id: &OrgId, app_id: &AppId) -> Result<(), sqlx::Error> {
    crate::store::trainings::ensure(c, org_id, app_id).await
}

/// Queues a `mkseq` → `deploy` group in the app's line, unless one is queued or running.
pub async fn enqueue_sequencing(
    c: &mut Conn,
    org_id: &OrgId,
    org_name: &str,
    app_id: &AppId,
    app_name: &str,
) -> Result<Option<TaskId>, sqlx::Error> {
    if tasks::mkseq_pending(c, app_id).await? {
        return Ok(None);
    }
    let cur = apps::current_build(c, app_id).await?;
    let group = new_id("g");
    let base = tasks::NewTask {
        org_id: Some(org_id.clone()),
        org_name: Some(org_name.to_string()),
        group: Some(group.clone()),
        app_id: Some(app_id.clone()),
        app_name: Some(app_name.to_string()),
        build_id: cur,
        queue_pos: Some(now_ms()),
        ..tasks::NewTask::of(tasks::Payload::Mkseq)
    };
    let (name, _) = tasks::enqueue(
        c,
        tasks::NewTask { payload: tasks::Payload::Mkseq, step: 1, ..base.clone() },
    )
    .await?;
    tasks::enqueue(c, tasks::NewTask { payload: tasks::DeployParams::PUBLISH, step: 2, ..base })
        .await?;
    Ok(Some(name))
}

/// After a trace arrives: one more since the last sequence; `mkseq` queued when enough
/// arrived and none is queued or running for the app. In the caller's transaction; answers
/// the `mkseq` task's name when one was queued.
pub async fn on_trace(
    c: &mut Conn,
    org_id: &OrgId,
    org_name: &str,
    app_id: &AppId,
    app_name: &str,
) -> Result<Option<TaskId>, sqlx::Error> {
    ensure(c, org_id, app_id).await?;
    crate::store::trainings::count_trace(c, app_id).await?;
    let (since, reliable) = crate::store::trainings::counts(c, app_id).await?;
    if since < reliable {
        return Ok(None);
    }
    enqueue_sequencing(c, org_id, org_name, app_id, app_name).await
}

/// Process Traces: queues a sequencing run of `org`'s app `app` now, without waiting for
/// enough new traces; answers the `mkseq` task's name. Needs `tasks: Execute`. 404: no such
/// app; 409 `app-locked`: the app is in error state after a failed publish; 409
/// `invalid-state`: it has no traces, no published build, or a `mkseq` is already queued or
/// running.
pub(crate) async fn process_traces(st: &AppState, c: &Caller, app: &str) -> ApiResult<TaskId> {
    c.require(Resource::Tasks, X)?;
    let mut tx = st.db.tx().await?;
    let (app_id, locked) = apps::lock_state(&mut tx, &c.org_id, app)
        .await?
        .ok_or_else(|| ApiError::not_found("app", app))?;
    if locked {
        return Err(ApiError::conflict(
            "app-locked",
            "the app is in error state after a failed publish",
        ));
    }
    if apps::trace_count(&mut tx, &app_id).await? == 0 {
        return Err(ApiError::conflict("invalid-state", "the app has no traces to process"));
    }
    if apps::current_build(&mut tx, &app_id).await?.is_none() {
        return Err(ApiError::conflict(
            "invalid-state",
            "the app has no published build to re-sequence",
        ));
    }
    let queued = enqueue_sequencing(&mut tx, &c.org_id, &c.org_name, &app_id, app).await?;
    tx.commit().await?;
    queued.ok_or_else(|| {
        ApiError::conflict(
            "invalid-state",
            "a mkseq task is already queued or running for this app",
        )
    })
}

/// Sets how many new traces make `mkseq` run by itself for the caller's app `app`: 1 to
/// 100,000 (400), `trainings: Update` (403), a known app (404).
pub(crate) async fn set_reliable(st: &AppState, c: &Caller, app: &str, n: i64) -> ApiResult<()> {
    if !(1..=100_000).contains(&n) {
        return Err(ApiError::invalid("nTracesReliable", "nTracesReliable must be 1..100000"));
    }
    c.require(Resource::Trainings, crate::perms::U)?;
    let mut tx = st.db.tx().await?;
    let app_id = apps::id_of(&mut tx, &c.org_id, app)
        .await?
        .ok_or_else(|| ApiError::not_found("app", app))?;
    ensure(&mut tx, &c.org_id, &app_id).await?;
    crate::store::trainings::set_reliable(&mut tx, &app_id, n).await?;
    tx.commit().await?;
    Ok(())
}
