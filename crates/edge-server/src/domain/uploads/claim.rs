//! The one-time upload URL at work: a request's claim on the upload while it receives the
//! archive (one receiver at a time, under a lease it renews), the size rules on the way,
//! and the completion that ends `dltar` and puts the group in its app's line. Receiving the
//! bytes (into the pipeline's ingest or to disk) is the caller's: the ingest is the
//! pipeline's (`delivery::preingest`), a layer above this one.

use crate::depot;
use crate::error::{ApiError, ApiResult};
use crate::ids::{AppId, TaskId};
use crate::state::AppState;
use crate::store::{tasks, uploads};
use crate::util::{new_id, now_ms, sha256_hex};
use axum::http::StatusCode;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A client that sends nothing for this long loses the upload attempt (it may send again).
pub const UPLOAD_IDLE: Duration = Duration::from_secs(60);

/// 404 `not-found` for an upload that cannot be (or no longer is being) received.
pub(crate) fn gone() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "no such upload (completed, expired or unknown)",
    )
}

/// 503 `unavailable`: what was received could not be kept.
pub(crate) fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the upload could not be stored; send it again",
    )
}

/// A request's claim on an upload while it receives it. Unless disarmed (the upload
/// completed), the claim is given back and the partial file removed: a broken or refused
/// upload may be sent again. Dropped armed (the request went away), it is given back in
/// the background. A claim also dies with its process (`store::uploads`).
pub(crate) struct Claim {
    st: Arc<AppState>,
    hash: String,
    receiver: String,
    task: TaskId,
    group: String,
    app_id: AppId,
    expected: Option<u64>,
    part: PathBuf,
    armed: bool,
}

/// Claims the upload of `token` for this request (`receiving`) before any byte is read;
/// `declared`: the request's `Content-Length`. 404 for a completed, expired or unknown
/// upload; 413 when the declared length is over the build size limit; 400 (on `size`)
/// when it is not the size the import announced; 409 `invalid-state` with `Retry-After`
/// while another request receives it.
pub(crate) async fn claim(
    st: &Arc<AppState>,
    token: &str,
    declared: Option<u64>,
) -> ApiResult<Claim> {
    let hash = sha256_hex(token.as_bytes());
    let u = uploads::by_token(&mut *st.db.conn().await?, &hash).await?.ok_or_else(gone)?;
    if u.state == "done" || u.state == "expired" || u.expires < now_ms() {
        return Err(gone());
    }
    let expected = u.size_expected.map(|s| s as u64);
    if declared.is_some_and(|n| n > st.cfg.upload_max_bytes) {
        return Err(ApiError::too_large("the build is over the size limit"));
    }
    if let (Some(d), Some(e)) = (declared, expected) {
        if d != e {
            return Err(size_mismatch(d, e));
        }
    }
    let receiver = format!("{}/{}", st.instance, new_id("r"));
    if !uploads::claim(&mut *st.db.conn().await?, &hash, &receiver, lease_ms(st)).await? {
        return Err(ApiError::conflict(
            "invalid-state",
            "another upload to this URL is in progress",
        )
        .retry_after(st.cfg.upload_lease_seconds));
    }
    let part = st.depot.local(&depot::upload_key(&u.task_group)).with_extension("part");
    Ok(Claim {
        st: st.clone(),
        hash,
        receiver,
        task: u.task_name,
        group: u.task_group,
        app_id: u.app_id,
        expected,
        part,
        armed: true,
    })
}

/// The claim's lease (`upload_lease_seconds`), in milliseconds.
fn lease_ms(st: &AppState) -> i64 {
    st.cfg.upload_lease_seconds as i64 * 1000
}

/// 400 on `size`: `got` bytes where the import announced `expected`.
fn size_mismatch(got: u64, expected: u64) -> ApiError {
    ApiError::invalid("size", format!("the upload has {got} bytes, the import said {expected}"))
}

impl Claim {
    /// The import's task group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The app the build is for.
    pub fn app_id(&self) -> &AppId {
        &self.app_id
    }

    /// Where the archive is written while it comes in, when it goes to disk (the depot's
    /// upload key, `.part`; removed when the claim is given back).
    pub fn part(&self) -> &Path {
        &self.part
    }

    /// How often the claim is renewed while the body comes in (and while it does not): at
    /// a third of its lease.
    pub fn renew_every(&self) -> Duration {
        Duration::from_millis(lease_ms(&self.st) as u64 / 3)
    }

    /// Renews the claim with the bytes received so far; 404 when it was lost (the
    /// publisher expired the upload, or its time ran out, while it was coming in).
    pub async fn renew(&self, received: u64) -> ApiResult<()> {
        let held = uploads::renew(
            &mut *self.st.db.conn().await?,
            &self.hash,
            &self.receiver,
            received,
            lease_ms(&self.st),
        )
        .await?;
        if !held {
            return Err(gone());
        }
        Ok(())
    }

    /// 413 once `received` bytes are over the build size limit.
    pub fn check_received(&self, received: u64) -> ApiResult<()> {
        if received > self.st.cfg.upload_max_bytes {
            return Err(ApiError::too_large("the build is over the size limit"));
        }
        Ok(())
    }

    /// 400 (on `size`) when the whole upload, `received` bytes, is not the size the import
    /// announced.
    pub fn check_complete(&self, received: u64) -> ApiResult<()> {
        match self.expected {
            Some(e) if received != e => Err(size_mismatch(received, e)),
            _ => Ok(()),
        }
    }

    /// Completes the upload once the archive is kept: the upload is `done`, its `dltar`
    /// ends `done` with the size, and the group enters its app's line, in one transaction.
    /// 404 when the claim or the task was lost meanwhile (expired while the last bytes
    /// came in). The claim stays armed until [`Claim::disarm`]ed.
    pub async fn complete(&self, received: u64) -> ApiResult<()> {
        let mut tx = self.st.db.tx().await?;
        if !uploads::complete(&mut tx, &self.hash, &self.receiver, received).await? {
            return Err(gone());
        }
        let result = json!({"sizeBytes": received});
        if !tasks::end_unleased(&mut tx, &self.task, "done", Some(&result), None).await? {
            return Err(gone());
        }
        tasks::enter_line(&mut tx, &self.group).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Keeps the claim as it is (the upload completed): nothing is given back.
    pub fn disarm(mut self) {
        self.armed = false;
    }

    /// Gives the claim back at once (before an error answer goes out), so the URL can
    /// take the next try.
    pub async fn release_now(mut self) {
        self.armed = false;
        release(&self.st, &self.hash, &self.receiver, &self.part).await;
    }
}

/// Removes the partial file and gives the claim back; a claim that cannot be given back
/// is left to its lease.
async fn release(st: &AppState, hash: &str, receiver: &str, part: &Path) {
    let _ = tokio::fs::remove_file(part).await;
    match st.db.conn().await {
        Ok(mut c) => {
            if let Err(e) = uploads::release(&mut c, hash, receiver).await {
                tracing::warn!(error = %e, "an upload claim could not be given back (its lease will expire)");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "an upload claim could not be given back (its lease will expire)")
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (st, hash, receiver, part) =
            (self.st.clone(), self.hash.clone(), self.receiver.clone(), self.part.clone());
        tokio::spawn(crate::db::scope(async move { release(&st, &hash, &receiver, &part).await }));
    }
}
