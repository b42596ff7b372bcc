//! Upload-mode imports: the upload URL's claim while a request receives the archive
//! ([`claim`]), and expiring the imports whose upload never came (or that the publisher
//! expires), wherever their state short of done.

use crate::depot;
use crate::ids::TaskId;
use crate::state::AppState;
use crate::store::tasks;
use serde_json::json;

pub mod claim;

/// Ends `dltar` upload tasks whose upload never came (exit code 9), cancelling their group.
/// Time spent in maintenance mode does not count against an upload's lifetime: while it is
/// on, only uploads that had expired before it began are expired (ending it extends the
/// others by its length).
pub async fn expire_uploads(st: &AppState) -> Result<u64, sqlx::Error> {
    let now = crate::util::now_ms();
    let m = st.maintenance_fresh().await;
    let cutoff = if m.enabled { m.since.min(now) } else { now };
    // Claims whose process died without coming back give their upload back first.
    let reset = crate::store::uploads::reset_expired_claims(&mut *st.db.conn().await?).await?;
    if reset > 0 {
        tracing::info!(uploads = reset, "upload claims of a process that stopped were reset");
    }
    let rows = crate::store::uploads::expired_waiting(&mut *st.db.conn().await?, cutoff).await?;
    let mut n = 0;
    for (hash, task) in rows {
        if expire_upload(st, &hash, &task, Some(cutoff)).await? {
            st.metrics.task_ended("dltar", "expired", None);
            n += 1;
        }
    }
    Ok(n)
}

/// Expires one upload task that is waiting for (or receiving) its upload: `PATCH
/// /be/v1/tasks {"expire":true}`. A request still receiving it stops at its next step.
pub async fn expire_upload_task(
    st: &AppState,
    token_hash: &str,
    task: &TaskId,
) -> Result<bool, sqlx::Error> {
    expire_upload(st, token_hash, task, None).await
}

/// Expires one upload task; with `before`, only if its expiry is still earlier (an expiry
/// extended meanwhile wins) and no live claim is receiving it.
pub(crate) async fn expire_upload(
    st: &AppState,
    token_hash: &str,
    task: &TaskId,
    before: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let mut tx = st.db.tx().await?;
    if !crate::store::uploads::expire(&mut tx, token_hash, before).await? {
        return Ok(false);
    }
    let exc = json!({"httpDownloadFailed": {"httpStatus": null, "exitCode": 9, "url": null}});
    let ended = tasks::end_unleased(&mut tx, task, "expired", None, Some(&exc)).await?;
    if let Some(t) = tasks::get(&mut tx, None, task).await? {
        tasks::cancel_rest(&mut tx, &t.group, None).await?;
        let _ = std::fs::remove_file(
            st.depot.local(&depot::upload_key(&t.group)).with_extension("part"),
        );
    }
    tx.commit().await?;
    Ok(ended)
}
