//! The task object of `/be/v1/tasks` and `/adm/v1/tasks` (delivery.md), and the shapes of
//! its `warning`, `exception` and `result`, for `/openapi.json`.
//!
//! The three are stored as JSON text written by the pipeline steps (`delivery/`), the
//! worker and the purges; they go out as stored, so the structs below only describe them.
//! Keep them in step with the `json!` of those writers.

use crate::store::tasks::{Task, TaskKind, TaskStatus};
use crate::util::rfc3339;
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// A task: one step of a build's pipeline, a re-sequencing, a purge or the test task.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    /// Unique name (`t…`).
    task_name: String,
    /// What the task does.
    #[serde(rename = "type")]
    #[schema(value_type = TaskType)]
    kind: &'static str,
    /// The group of the steps of one import or re-sequencing (`g…`), run in order.
    task_group: String,
    /// The app it works on; null for tasks of no app (purges, the test task).
    app_name: Option<String>,
    /// The build's name; null before it has one and for tasks of no build.
    build_name: Option<String>,
    /// The build's id; null until `mkraw` gave it one, and for tasks of no build.
    build_id: Option<i64>,
    /// Where it stands.
    #[schema(value_type = TaskState)]
    status: &'static str,
    /// Fraction done, 0 to 1 (1 once done). `mkdxf` counts the bytes of the image's
    /// packs written, `mkpat` the bytes of the new build worked through for all its
    /// patches together (one run from 0 to 1, however many older builds it patches from).
    progress: f64,
    /// What a running task is doing, for people (`patching from build 1 (2 of 4)`,
    /// `writing image: pack 3 of 7`); null when it says nothing, and once it ended. Not a
    /// closed set: do not parse it.
    progress_note: Option<String>,
    /// When it was submitted (RFC 3339).
    created: String,
    /// When it first started (RFC 3339); null before.
    started: Option<String>,
    /// When it ended (RFC 3339); null while it has not.
    ended: Option<String>,
    /// How many times a worker took it up (a retry counts again).
    attempts: i64,
    /// Something to look at although the task did its work; null when there is none.
    #[schema(value_type = Option<TaskWarning>)]
    warning: Value,
    /// Why it failed (`error` and `expired` tasks); null otherwise.
    #[schema(value_type = Option<TaskException>)]
    exception: Value,
    /// What it did (`done` tasks, and why for some `canceled` ones); null otherwise.
    #[schema(value_type = Option<TaskResult>)]
    result: Value,
    /// Only in the admin API (`/adm/v1/tasks`): the task's organization, null for tasks of
    /// the instance (the test task).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, required = false)]
    org_name: Option<Option<String>>,
    /// Only for `dltar` tasks: true while an upload-mode import waits for its archive
    /// (`PUT /be/v1/uploads/{token}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = bool, required = false)]
    waiting_for_upload: Option<bool>,
}

/// Stored JSON text as a value (null when absent or unreadable).
fn parsed(v: &Option<String>) -> Value {
    v.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null)
}

impl TaskView {
    /// The wire object of a task row; `with_org` adds `orgName` (the admin API).
    pub fn of(t: &Task, with_org: bool) -> TaskView {
        TaskView {
            task_name: t.name.to_string(),
            kind: t.kind.as_str(),
            task_group: t.group.clone(),
            app_name: t.app_name.clone(),
            build_name: t.build_name.clone(),
            build_id: t.build_id,
            status: t.status.as_str(),
            progress: t.progress,
            progress_note: t.progress_note.clone(),
            created: rfc3339(t.created),
            started: t.started.map(rfc3339),
            ended: t.ended.map(rfc3339),
            attempts: t.attempts,
            warning: parsed(&t.warning),
            exception: parsed(&t.exception),
            result: parsed(&t.result),
            org_name: with_org.then(|| t.org_name.clone()),
            waiting_for_upload: (t.kind == TaskKind::Dltar).then(|| t.waits_for_upload()),
        }
    }
}

/// A string schema with the given values, for the closed sets of `store::task_types`.
fn names(values: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    let values: Vec<&str> = values.into_iter().collect();
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(values))
            .build(),
    ))
}

/// The task types (`TaskKind`), as a schema.
pub struct TaskType;

impl PartialSchema for TaskType {
    fn schema() -> RefOr<Schema> {
        names(TaskKind::ALL.map(TaskKind::as_str))
    }
}

impl ToSchema for TaskType {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TaskType")
    }
}

/// The task statuses (`TaskStatus`), as a schema.
pub struct TaskState;

impl PartialSchema for TaskState {
    fn schema() -> RefOr<Schema> {
        names(TaskStatus::ALL.map(TaskStatus::as_str))
    }
}

impl ToSchema for TaskState {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TaskStatus")
    }
}

/// A task's warning: the task did its work, but something deserves a look.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes stored JSON for the document; never built
pub struct TaskWarning {
    /// `identical-build` (mkraw: same content as the current build, nothing published),
    /// `empty-file` (mkraw), `large-patch` (mkpat: a patch over half the image) or
    /// `no-improvement` (mkseq: the learned order is not better enough).
    code: String,
    /// One sentence for people.
    message: String,
    /// True once someone acknowledged it (`PATCH /be/v1/tasks`).
    acknowledged: bool,
}

/// Why a task failed: one or more of these members.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // describes stored JSON for the document; never built
pub struct TaskException {
    /// The archive could not be had (`dltar`; also an upload that expired, exit code 9).
    #[schema(required = false)]
    http_download_failed: HttpDownloadFailed,
    /// The download's size was not the announced one (with `httpDownloadFailed`, exit 4).
    #[schema(required = false)]
    size_mismatch: SizeMismatch,
    /// The archive holds something a build may not (`mkraw`).
    #[schema(required = false)]
    file_read_failed: FileReadFailed,
    /// Any other failure: a code and a message.
    #[schema(required = false)]
    error: TaskError,
    /// The deployment a `deploy` failed on (with `error`, code `publish-failed`).
    #[schema(required = false)]
    deployment: DeploymentRef,
}

/// A failed download, with the contract's exit code.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // describes stored JSON for the document; never built
pub struct HttpDownloadFailed {
    /// The HTTP status the source answered, null when it answered none.
    #[schema(required = true)]
    http_status: Option<u16>,
    /// 1 failed, 2 HTTP error status, 3 timed out, 4 size or hash mismatch, 5 not a
    /// usable answer, 6 TLS, 7 too many redirects, 8 address refused, 9 upload expired.
    #[schema(minimum = 1, maximum = 9)]
    exit_code: u8,
    /// The URL without credentials and query, null when there is none.
    #[schema(required = true)]
    url: Option<String>,
}

/// Sizes of a download that was not the announced size.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // describes stored JSON for the document; never built
pub struct SizeMismatch {
    /// Bytes that arrived.
    size_bytes_actual: u64,
    /// Bytes announced.
    size_bytes_expected: u64,
}

/// An archive entry a build may not hold.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // describes stored JSON for the document; never built
pub struct FileReadFailed {
    /// The entry's path (or the archive itself).
    filename: String,
    /// What was expected (`tar`, `regular file`, `relative path`).
    type_expected: String,
    /// What was found (`gzip`, `character device`, `truncated`, …).
    type_detected: String,
}

/// A failure's code and message.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes stored JSON for the document; never built
pub struct TaskError {
    /// `publish-failed`, `database`, `depot`, `origin`, `local`, `internal`, `sweep`, …
    code: String,
    /// What went wrong, for people.
    message: String,
}

/// A deployment, by name.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes stored JSON for the document; never built
pub struct DeploymentRef {
    /// The deployment's name.
    name: String,
}

/// Times-to-play per trace, before and after a sequencing (`mkseq`).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes stored JSON for the document; never built
pub struct TimeToPlay {
    /// On the published image, seconds.
    before: Vec<f64>,
    /// On the learned order, seconds.
    after: Vec<f64>,
}

/// What a task did. Which members are there depends on its type:
/// `dltar` sizeBytes, sha256, url (a download) or sizeBytes (an upload);
/// `mkraw` fileCount, sizeBytes, chunkCount, newChunks, ingestedDuringUpload;
/// `mkdxf` dxfName, packBytes, sizeBytes, files, traces, preload, acceleration100;
/// `mkpat` patches; `deploy` dxfName, targets (names), patches;
/// `mkseq` traces, preload100Before, preload100After, timeToPlay100, and when it published
/// dxfName, generation, preload, acceleration100;
/// `purge` removed, targets (a count), localDirs; `hello` message, workerVersion, sweep;
/// a `canceled` task, reason.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // describes stored JSON for the document; never built
pub struct TaskResult {
    /// Bytes: of the archive (dltar), of the build's files (mkraw), of the image (mkdxf).
    #[schema(required = false)]
    size_bytes: u64,
    /// SHA-256 of the downloaded archive, hex (dltar).
    #[schema(required = false)]
    sha256: String,
    /// Where the archive came from, without credentials and query (dltar).
    #[schema(required = false)]
    url: String,
    /// Files in the build (mkraw).
    #[schema(required = false)]
    file_count: u64,
    /// Chunks of the build (mkraw).
    #[schema(required = false)]
    chunk_count: u64,
    /// Chunks the app's store did not have yet (mkraw).
    #[schema(required = false)]
    new_chunks: u64,
    /// True when the archive was ingested as it arrived (mkraw of an upload).
    #[schema(required = false)]
    ingested_during_upload: bool,
    /// The image written or published (mkdxf, mkseq, deploy).
    #[schema(required = false)]
    dxf_name: String,
    /// Bytes of the image's packs (mkdxf).
    #[schema(required = false)]
    pack_bytes: u64,
    /// The image's files (mkdxf).
    #[schema(required = false)]
    files: Vec<String>,
    /// Traces the order was learned from (mkdxf, mkseq).
    #[schema(required = false)]
    traces: u64,
    /// p90 bytes to load before play, by link speed in Mbit/s (`"100"`, …); null without
    /// traces (mkdxf, mkseq).
    #[schema(required = false)]
    preload: Option<BTreeMap<String, u64>>,
    /// Full download time over time to play at 100 Mbit/s; null without traces (mkdxf,
    /// mkseq).
    #[schema(required = false)]
    acceleration100: Option<f64>,
    /// p90 preload bytes at 100 Mbit/s with the current order (mkseq).
    #[schema(required = false)]
    preload100_before: u64,
    /// p90 preload bytes at 100 Mbit/s with the learned order (mkseq).
    #[schema(required = false)]
    preload100_after: u64,
    /// The newest (at most 100) training traces' times-to-play at 100 Mbit/s, in seconds,
    /// on the published image (`before`) and on the learned order (`after`), trace by trace
    /// (mkseq).
    #[schema(required = false)]
    time_to_play100: TimeToPlay,
    /// The sequence generation published (mkseq).
    #[schema(required = false)]
    generation: i64,
    /// Patches written (mkpat) or published (deploy).
    #[schema(required = false)]
    patches: Vec<PatchResult>,
    /// Deployments published to (deploy: names) or purged (purge: a count).
    #[schema(required = false)]
    targets: ResultTargets,
    /// Objects removed (purge).
    #[schema(required = false)]
    removed: u64,
    /// Local directories removed (purge).
    #[schema(required = false)]
    local_dirs: u64,
    /// Why the task was canceled: `identical-build` or `no-improvement`.
    #[schema(required = false)]
    reason: String,
    /// The test task's message, echoed (hello).
    #[schema(required = false)]
    message: String,
    /// The version of the worker that ran it (hello).
    #[schema(required = false)]
    worker_version: String,
    /// What the maintenance sweep removed (hello with maintenance).
    #[schema(required = false)]
    sweep: SweepCounts,
}

/// One patch of a `mkpat` or `deploy` result.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // describes stored JSON for the document; never built
pub struct PatchResult {
    /// The build it patches from.
    from_build_id: i64,
    /// Its size in bytes.
    size_bytes: u64,
    /// Chunks taken from the old build as they were (mkpat).
    #[schema(required = false)]
    reused_chunks: u64,
    /// Chunks sent as deltas (mkpat).
    #[schema(required = false)]
    delta_chunks: u64,
    /// Chunks sent whole (mkpat).
    #[schema(required = false)]
    sent_chunks: u64,
}

/// `targets` of a result: deployment names (deploy) or a count (purge).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // describes stored JSON for the document; never built
pub enum ResultTargets {
    /// The deployments published to.
    Names(Vec<String>),
    /// How many targets were purged.
    Count(u64),
}

/// What one maintenance sweep removed, by kind.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // describes stored JSON for the document; never built
pub struct SweepCounts {
    /// Upload imports that expired.
    expired_uploads: u64,
    /// Superseded published files removed.
    removed_files: u64,
    /// Login sessions that expired.
    expired_session_rows: u64,
    /// Login failure counters pruned.
    login_counter_rows: u64,
    /// Launcher sessions past their token's life.
    launcher_session_rows: u64,
    /// Staged imports no one committed in time.
    import_rows: u64,
}
