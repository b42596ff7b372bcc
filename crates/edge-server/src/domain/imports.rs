//! Build imports (`POST /be/v1/builds`): the request's checks, the app's state (locked
//! after a failed publish, too many uploads waiting), and the pipeline's task group queued
//! with, in upload mode, the one-time upload URL. The import URL's validation is [`url`];
//! the upload URL at work is `uploads::claim`. (Configuration imports, `store::imports`,
//! are `orgconf`'s.)

use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::ids::{AppId, TaskId};
use crate::names::{text, Name};
use crate::perms::{Resource, U};
use crate::state::AppState;
use crate::store::{apps, tasks, uploads, Conn};
use crate::util::{new_id, now_ms, random_token, sha256_hex};
use serde_json::Value;

pub mod url;

/// The pipeline steps after `dltar`, in order.
const STEPS: [tasks::Payload; 4] = [
    tasks::Payload::Mkraw,
    tasks::Payload::Mkdxf,
    tasks::Payload::Mkpat,
    tasks::DeployParams::PUBLISH,
];

/// How many upload-mode imports of one app may wait for their archive at once.
const MAX_WAITING_UPLOADS: i64 = 4;

/// An import as asked for.
pub(crate) struct ImportRequest {
    /// The app the build is for.
    pub app_name: String,
    /// A name for the build (1 to 100 characters); none: made up from its id later.
    pub build_name: Option<String>,
    /// Where Edge downloads the archive, as sent (checked by [`url::parse_url`]); none or
    /// null: the client uploads it.
    pub url: Option<Value>,
    /// The archive's size in bytes, when known.
    pub size: Option<u64>,
}

/// An import that started.
pub(crate) struct Imported {
    /// The first task of the pipeline (`dltar`).
    pub task_name: TaskId,
    /// The group of the pipeline's tasks.
    pub task_group: String,
    /// Upload mode only: where the archive goes, and until when.
    pub upload: Option<UploadUrl>,
}

/// The one-time URL an upload-mode import answers.
pub(crate) struct UploadUrl {
    /// The URL to `PUT` the archive to (it holds the token, shown this once).
    pub url: String,
    /// When it expires, epoch milliseconds.
    pub expires: i64,
}

/// Starts an import of a build of the caller's app: the `dltar` → `mkraw` → `mkdxf` →
/// `mkpat` → `deploy` group, all `submitted`. With a URL, `dltar` downloads the archive;
/// without, it waits (never claimed) for the upload URL answered here. Checks in the API's
/// order: the request (400; a `size` over the build size limit 413), `apps: Update` (403),
/// the app (404), then in the transaction that queues the group: the app locked after a
/// failed publish (409 `app-locked`), or in upload mode
/// [`MAX_WAITING_UPLOADS`] uploads already waiting (409 `invalid-state`).
pub(crate) async fn import(st: &AppState, c: &Caller, req: ImportRequest) -> ApiResult<Imported> {
    Name::parse("appName", &req.app_name)?;
    let build_name = req.build_name.as_deref().map(|n| text("buildName", n, 1, 100)).transpose()?;
    let url = req.url.as_ref().filter(|v| !v.is_null()).map(url::parse_url).transpose()?;
    if req.size.is_some_and(|s| s > st.cfg.upload_max_bytes) {
        return Err(ApiError::too_large("size is over the build size limit"));
    }
    c.require(Resource::Apps, U)?;
    let mut tx = st.db.tx().await?;
    let (app_id, locked) = apps::lock_state(&mut tx, &c.org_id, &req.app_name)
        .await?
        .ok_or_else(|| ApiError::not_found("app", &req.app_name))?;
    if locked {
        return Err(ApiError::conflict(
            "app-locked",
            "the app is in error state after a failed publish; fix it and retry the task first",
        ));
    }
    if url.is_none() && uploads::waiting_count(&mut tx, &app_id).await? >= MAX_WAITING_UPLOADS {
        return Err(ApiError::conflict(
            "invalid-state",
            "this app already has 4 uploads waiting; use or expire them first",
        ));
    }
    let mut params = tasks::DltarParams::upload(req.size);
    if let Some(u) = &url {
        params.mode = tasks::ImportMode::Url;
        params.url = Some(u.href.clone());
        params.sha256 = u.sha256.clone();
        if !u.headers.is_empty() {
            // Import headers often carry credentials: sealed at rest like every secret.
            params.headers_sealed =
                Some(st.data_key.seal(Value::Object(u.headers.clone()).to_string().as_bytes()));
        }
    }
    let group = new_id("g");
    let base = tasks::NewTask {
        org_id: Some(c.org_id.clone()),
        org_name: Some(c.org_name.clone()),
        group: Some(group.clone()),
        app_id: Some(app_id.clone()),
        app_name: Some(req.app_name.clone()),
        build_name,
        ..tasks::NewTask::of(params)
    };
    let dltar = enqueue_group(&mut tx, base, url.is_some()).await?;
    let upload = match url {
        Some(_) => None,
        None => Some(open_upload_url(st, &mut tx, c, &app_id, &dltar, req.size).await?),
    };
    tx.commit().await?;
    Ok(Imported { task_name: dltar, task_group: group, upload })
}

/// Queues the group's tasks (`base` holds what they share, `dltar`'s parameters included):
/// `dltar` claimable now when it downloads, never when it waits for an upload (the upload
/// ends it); returns its name.
async fn enqueue_group(c: &mut Conn, base: tasks::NewTask, download: bool) -> ApiResult<TaskId> {
    let (dltar, _) = tasks::enqueue(
        c,
        tasks::NewTask { step: 1, run_after: if download { 0 } else { i64::MAX }, ..base.clone() },
    )
    .await?;
    for (k, step) in STEPS.iter().enumerate() {
        tasks::enqueue(
            c,
            tasks::NewTask { payload: step.clone(), step: k as i64 + 2, ..base.clone() },
        )
        .await?;
    }
    Ok(dltar)
}

/// Records the one-time upload URL of the `dltar` task `task`, valid for `upload_ttl`; the
/// token itself is only in the answer (its hash is kept).
async fn open_upload_url(
    st: &AppState,
    c: &mut Conn,
    caller: &Caller,
    app_id: &AppId,
    task: &TaskId,
    size: Option<u64>,
) -> ApiResult<UploadUrl> {
    let token = random_token();
    let expires = now_ms() + st.cfg.upload_ttl as i64 * 1000;
    let upload = uploads::NewUpload {
        token_hash: sha256_hex(token.as_bytes()),
        task,
        org_id: &caller.org_id,
        app_id,
        expires,
        size_expected: size.map(|s| s as i64),
    };
    uploads::insert(c, upload).await?;
    Ok(UploadUrl { url: format!("{}/be/v1/uploads/{token}", st.public_url), expires })
}
