//! The durable task table: every pipeline step, purge and test task is a row, claimed by a
//! worker under a lease that expires, so a dead worker's task is taken up again.

use super::Conn;
use crate::db::{Backend, Db};
use crate::ids::{AppId, OrgId, TaskId};
use crate::util::{new_id, now_ms};
use serde_json::{json, Value};

pub use super::task_payloads::{
    DeployParams, DltarParams, HelloParams, ImportMode, Payload, PayloadError, PurgeParams,
    PurgeReason, TaskParams,
};
pub use super::task_types::{TaskKind, TaskStatus};

/// A task row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Task {
    pub name: TaskId,
    pub org_id: Option<OrgId>,
    pub org_name: Option<String>,
    /// The task type (`type` is a keyword in Rust).
    #[sqlx(rename = "type", try_from = "String")]
    pub kind: TaskKind,
    #[sqlx(rename = "task_group")]
    pub group: String,
    pub app_id: Option<AppId>,
    pub app_name: Option<String>,
    pub build_name: Option<String>,
    pub build_id: Option<i64>,
    #[sqlx(try_from = "String")]
    pub status: TaskStatus,
    pub progress: f64,
    /// What a running task is doing, in words (null when it says nothing, and once it ended).
    pub progress_note: Option<String>,
    pub created: i64,
    pub started: Option<i64>,
    pub ended: Option<i64>,
    pub attempts: i64,
    pub warning: Option<String>,
    pub exception: Option<String>,
    pub result: Option<String>,
    /// The parameters as stored: read them with [`Task::payload`].
    params: String,
    pub lease_owner: Option<String>,
    /// Position in its group.
    pub step: i64,
}

impl Task {
    /// The task's parameters, of its kind's type `P`.
    pub fn payload<P: TaskParams>(&self) -> Result<P, PayloadError> {
        if self.kind != P::KIND {
            return Err(PayloadError::Kind { task: self.kind, asked: P::KIND });
        }
        serde_json::from_str(&self.params)
            .map_err(|source| PayloadError::Json { kind: self.kind, source })
    }

    /// How the archive of a `dltar` arrives (`None` for other kinds, or parameters that do
    /// not decode).
    pub fn import_mode(&self) -> Option<ImportMode> {
        self.payload::<DltarParams>().ok().map(|p| p.mode)
    }

    /// True for a submitted upload-mode `dltar`: it waits for its client, not for a worker.
    pub fn waits_for_upload(&self) -> bool {
        self.status == TaskStatus::Submitted && self.import_mode() == Some(ImportMode::Upload)
    }
}

/// A task to enqueue.
#[derive(Clone)]
pub struct NewTask {
    pub org_id: Option<OrgId>,
    pub org_name: Option<String>,
    /// What the task does (its kind) and is given.
    pub payload: Payload,
    pub group: Option<String>,
    pub app_id: Option<AppId>,
    pub app_name: Option<String>,
    pub build_name: Option<String>,
    pub build_id: Option<i64>,
    /// Position in the group (1 = first).
    pub step: i64,
    /// Position in the app's line (set when the group enters it).
    pub queue_pos: Option<i64>,
    /// Not claimable before this time (epoch ms; `i64::MAX` = only by an upload).
    pub run_after: i64,
}

impl NewTask {
    /// A task doing what `payload` says, with everything else empty (fill in what applies).
    pub fn of(payload: impl Into<Payload>) -> NewTask {
        NewTask {
            org_id: None,
            org_name: None,
            payload: payload.into(),
            group: None,
            app_id: None,
            app_name: None,
            build_name: None,
            build_id: None,
            step: 1,
            queue_pos: None,
            run_after: 0,
        }
    }
}

/// Inserts a `submitted` task in the caller's transaction; returns (name, group).
pub async fn enqueue(c: &mut Conn, t: NewTask) -> Result<(TaskId, String), sqlx::Error> {
    let name = TaskId::new(new_id("t"));
    let group = t.group.unwrap_or_else(|| new_id("g"));
    let params = t.payload.to_json().map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO tasks (name, org_id, org_name, type, task_group, app_id, app_name, build_name, build_id, status, created, params, \
         step, queue_pos, run_after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'submitted', $10, $11, $12, $13, $14)",
    )
    .bind(&name)
    .bind(t.org_id)
    .bind(t.org_name)
    .bind(t.payload.kind().as_str())
    .bind(&group)
    .bind(t.app_id)
    .bind(t.app_name)
    .bind(t.build_name)
    .bind(t.build_id)
    .bind(now_ms())
    .bind(params)
    .bind(t.step.max(1))
    .bind(t.queue_pos)
    .bind(t.run_after)
    .execute(&mut *c)
    .await?;
    super::events::emit(c, &name, "submit").await?;
    Ok((name, group))
}

const COLS: &str = "name, org_id, org_name, type, task_group, app_id, app_name, build_name, build_id, status, progress, progress_note, \
    created, started, ended, attempts, warning, exception, result, params, lease_owner, step";

/// One task by name, any org (admin) or within `org`.
pub async fn get(
    c: &mut Conn,
    org: Option<&OrgId>,
    name: &TaskId,
) -> Result<Option<Task>, sqlx::Error> {
    match org {
        Some(o) => {
            sqlx::query_as(&format!("SELECT {COLS} FROM tasks WHERE name = $1 AND org_id = $2"))
                .bind(name)
                .bind(o)
                .fetch_optional(c)
                .await
        }
        None => {
            sqlx::query_as(&format!("SELECT {COLS} FROM tasks WHERE name = $1"))
                .bind(name)
                .fetch_optional(c)
                .await
        }
    }
}

/// An app's tasks that carry a warning, newest first (at most `limit`): warnings are rare, so
/// this reads far fewer rows than the app's task list would.
pub async fn warned(c: &mut Conn, app_id: &AppId, limit: i64) -> Result<Vec<Task>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLS} FROM tasks WHERE app_id = $1 AND warning IS NOT NULL ORDER BY created DESC LIMIT $2"
    ))
    .bind(app_id)
    .bind(limit)
    .fetch_all(c)
    .await
}

/// Filters of a task list.
#[derive(Default)]
pub struct TaskFilter {
    pub org: Option<OrgId>,
    /// Exactly this app's tasks (by id, which the index on `(app_id, created)` serves).
    pub app_id: Option<AppId>,
    pub app_name: Option<String>,
    pub group: Option<String>,
    pub status: Option<String>,
    pub kind: Option<String>,
    pub created_after: Option<i64>,
    pub created_before: Option<i64>,
}

/// Lists tasks with filters, order and paging done in SQL; returns (page, total).
pub async fn list(
    c: &mut Conn,
    f: &TaskFilter,
    order: &[(String, bool)],
    offset: usize,
    limit: usize,
) -> Result<(Vec<Task>, i64), sqlx::Error> {
    query(c, f, order, offset, limit, true).await
}

/// [`list`] without the total, for pages that show no count: counting every task an
/// org or app matches is the costly part of a short list.
pub async fn page(
    c: &mut Conn,
    f: &TaskFilter,
    order: &[(String, bool)],
    offset: usize,
    limit: usize,
) -> Result<Vec<Task>, sqlx::Error> {
    Ok(query(c, f, order, offset, limit, false).await?.0)
}

/// The page, and the total when `count` (else 0).
async fn query(
    c: &mut Conn,
    f: &TaskFilter,
    order: &[(String, bool)],
    offset: usize,
    limit: usize,
    count: bool,
) -> Result<(Vec<Task>, i64), sqlx::Error> {
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut push = |cond: &str, v: Value| {
        args.push(v);
        conds.push(cond.replace('?', &format!("${}", args.len())));
    };
    if let Some(o) = &f.org {
        push("org_id = ?", json!(o));
    }
    if let Some(a) = &f.app_id {
        push("app_id = ?", json!(a));
    }
    if let Some(a) = &f.app_name {
        push(
            "LOWER(app_name) LIKE ? ESCAPE '\\'",
            json!(format!("%{}%", like_escape(&a.to_lowercase()))),
        );
    }
    if let Some(g) = &f.group {
        push("task_group = ?", json!(g));
    }
    if let Some(st) = &f.status {
        push("status = ?", json!(st));
    }
    if let Some(k) = &f.kind {
        push("type = ?", json!(k));
    }
    if let Some(t) = f.created_after {
        push("created > ?", json!(t));
    }
    if let Some(t) = f.created_before {
        push("created < ?", json!(t));
    }
    let where_ =
        if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
    let order_sql: Vec<String> = order
        .iter()
        .map(|(field, desc)| {
            let col = match field.as_str() {
                "taskName" => "name",
                "type" => "type",
                "status" => "status",
                "appName" => "app_name",
                "buildId" => "build_id",
                "started" => "started",
                "ended" => "ended",
                // Not an API order: a group's steps, which `tasks_group` serves in order.
                "step" => "step",
                _ => "created",
            };
            format!("{col} {}", if *desc { "DESC" } else { "ASC" })
        })
        .collect();
    let sql = format!(
        "SELECT {COLS} FROM tasks{where_} ORDER BY {} LIMIT {} OFFSET {}",
        order_sql.join(", "),
        limit,
        offset
    );
    let count_sql = format!("SELECT COUNT(*) AS n FROM tasks{where_}");
    fn bind<'q, O>(
        sql: &'q str,
        args: &'q [Value],
    ) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>>
    where
        O: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let mut q = sqlx::query_as(sql);
        for a in args {
            q = match a {
                Value::Number(n) => q.bind(n.as_i64().unwrap_or(0)),
                other => q.bind(other.as_str().unwrap_or("").to_string()),
            };
        }
        q
    }
    let rows: Vec<Task> = bind(&sql, &args).fetch_all(&mut *c).await?;
    if !count {
        return Ok((rows, 0));
    }
    let (total,): (i64,) = bind(&count_sql, &args).fetch_one(&mut *c).await?;
    Ok((rows, total))
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
pub fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Claims the oldest runnable task of one of `kinds`, taking a lease for `owner`. A task
/// is runnable when it is submitted, its group's previous step is done, and no task of an
/// earlier group in its app's line is unfinished; or when it runs under an expired lease
/// (its worker died). Atomic on both backends.
pub async fn claim(
    db: &Db,
    owner: &str,
    lease_s: u64,
    kinds: &[&str],
) -> Result<Option<Task>, sqlx::Error> {
    let now = now_ms();
    let kinds_sql = kinds.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ");
    let lock = if db.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "UPDATE tasks SET status = 'running', lease_owner = $1, lease_until = $2, started = COALESCE(started, $3), progress_note = NULL, \
         attempts = CASE WHEN status = 'submitted' THEN attempts + 1 ELSE attempts END \
         WHERE name = (SELECT t.name FROM tasks t WHERE t.type IN ({kinds_sql}) AND t.run_after <= $3 AND \
         ((t.status = 'submitted' \
           AND (t.step = 1 OR EXISTS (SELECT 1 FROM tasks p WHERE p.task_group = t.task_group AND p.step = t.step - 1 AND p.status = 'done')) \
           AND (t.queue_pos IS NULL OR NOT EXISTS (SELECT 1 FROM tasks o WHERE o.app_id = t.app_id AND o.queue_pos IS NOT NULL \
                AND (o.queue_pos < t.queue_pos OR (o.queue_pos = t.queue_pos AND o.task_group < t.task_group)) \
                AND o.status IN ('submitted', 'running')))) \
          OR (t.status = 'running' AND t.lease_until < $3)) \
         ORDER BY t.created, t.name LIMIT 1{lock}) \
         RETURNING {COLS}"
    );
    let mut tx = db.tx().await?;
    let t: Option<Task> = sqlx::query_as(&sql)
        .bind(owner)
        .bind(now + lease_s as i64 * 1000)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
    match &t {
        Some(t) => {
            super::events::emit(&mut tx, &t.name, "begin").await?;
            tx.commit().await?;
        }
        // Nothing claimed: nothing written (and caches stay valid).
        None => drop(tx),
    }
    Ok(t)
}

/// The task of `group` at `step`.
pub async fn group_step(c: &mut Conn, group: &str, step: i64) -> Result<Option<Task>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLS} FROM tasks WHERE task_group = $1 AND step = $2"))
        .bind(group)
        .bind(step)
        .fetch_optional(c)
        .await
}

/// Every task of a group, in step order.
pub async fn group(c: &mut Conn, group: &str) -> Result<Vec<Task>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLS} FROM tasks WHERE task_group = $1 ORDER BY step"))
        .bind(group)
        .fetch_all(c)
        .await
}

/// Cancels the group's tasks that have not run, with an optional result.
pub async fn cancel_rest(
    c: &mut Conn,
    group: &str,
    result: Option<&Value>,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE tasks SET status = 'canceled', ended = $1, result = $2, queue_pos = NULL WHERE task_group = $3 AND status = 'submitted'",
    )
    .bind(now_ms())
    .bind(result.map(|v| v.to_string()))
    .bind(group)
    .execute(c)
    .await?;
    Ok(r.rows_affected())
}

/// Puts the group at the back of its app's line.
pub async fn enter_line(c: &mut Conn, group: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tasks SET queue_pos = $1 WHERE task_group = $2")
        .bind(now_ms())
        .bind(group)
        .execute(c)
        .await?;
    Ok(())
}

/// Sets the build id on every task of a group.
pub async fn set_group_build(c: &mut Conn, group: &str, build_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tasks SET build_id = $1 WHERE task_group = $2")
        .bind(build_id)
        .bind(group)
        .execute(c)
        .await?;
    Ok(())
}

/// Ends a task that no worker holds (upload completion, expiry) with `status`.
pub async fn end_unleased(
    c: &mut Conn,
    name: &TaskId,
    status: &str,
    result: Option<&Value>,
    exception: Option<&Value>,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let r = sqlx::query(
        "UPDATE tasks SET status = $1, result = $2, exception = $3, started = COALESCE(started, $4), ended = $4, \
         progress = CASE WHEN $1 = 'done' THEN 1.0 ELSE progress END, attempts = CASE WHEN attempts = 0 THEN 1 ELSE attempts END \
         WHERE name = $5 AND status = 'submitted'",
    )
    .bind(status)
    .bind(result.map(|v| v.to_string()))
    .bind(exception.map(|v| v.to_string()))
    .bind(now)
    .bind(name)
    .execute(&mut *c)
    .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    // Nobody leased this task: its begin and its end are one moment.
    match status {
        "done" => {
            super::events::emit(c, name, "begin").await?;
            super::events::emit(c, name, "end").await?;
        }
        "error" | "expired" => super::events::emit(c, name, "error").await?,
        _ => {}
    }
    Ok(true)
}

/// Sets a task's warning.
pub async fn set_warning(
    c: &mut Conn,
    name: &TaskId,
    warning: Option<&Value>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tasks SET warning = $1 WHERE name = $2")
        .bind(warning.map(|v| v.to_string()))
        .bind(name)
        .execute(c)
        .await?;
    Ok(())
}

/// Puts a failed task back in line (Retry Task): it and its group's canceled tasks are
/// submitted again, at the back of the app's line.
pub async fn retry(c: &mut Conn, t: &Task) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "UPDATE tasks SET status = 'submitted', exception = NULL, result = NULL, ended = NULL, progress = 0, progress_note = NULL, run_after = 0 WHERE name = $1",
    )
    .bind(&t.name)
    .execute(&mut *c)
    .await?;
    let revived: Vec<TaskId> = sqlx::query_scalar(
        "SELECT name FROM tasks WHERE task_group = $1 AND status = 'canceled' ORDER BY step",
    )
    .bind(&t.group)
    .fetch_all(&mut *c)
    .await?;
    sqlx::query("UPDATE tasks SET status = 'submitted', result = NULL, ended = NULL WHERE task_group = $1 AND status = 'canceled'")
        .bind(&t.group)
        .execute(&mut *c)
        .await?;
    super::events::emit(c, &t.name, "submit").await?;
    for name in revived {
        super::events::emit(c, &name, "submit").await?;
    }
    if t.kind != TaskKind::Dltar || t.import_mode() == Some(ImportMode::Url) {
        sqlx::query("UPDATE tasks SET queue_pos = $1 WHERE task_group = $2")
            .bind(now)
            .bind(&t.group)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

/// Extends the lease and records the progress and its note (none: no note); false when
/// the lease is no longer ours (taken over after expiry).
pub async fn renew(
    db: &Db,
    name: &TaskId,
    owner: &str,
    lease_s: u64,
    progress: f64,
    note: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE tasks SET lease_until = $1, progress = $2, progress_note = $3 WHERE name = $4 AND lease_owner = $5 AND status = 'running'",
    )
    .bind(now_ms() + lease_s as i64 * 1000)
    .bind(progress)
    .bind(note)
    .bind(name)
    .bind(owner)
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// How a task run ended.
pub struct Outcome {
    /// `done` or `error` (or `expired`, `canceled`).
    pub status: TaskStatus,
    pub result: Option<Value>,
    pub exception: Option<Value>,
    pub warning: Option<Value>,
}

/// Records the end of a run, only while `owner` still holds the lease. Returns false when
/// the lease was lost (the write is refused). The owner stays on the row: the next step
/// finds what this run staged by it.
pub async fn finish(
    c: &mut Conn,
    name: &TaskId,
    owner: &str,
    o: &Outcome,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE tasks SET status = $1, result = $2, exception = $3, warning = COALESCE($4, warning), ended = $5, \
         progress = CASE WHEN $1 = 'done' THEN 1.0 ELSE progress END, progress_note = NULL, lease_until = NULL \
         WHERE name = $6 AND lease_owner = $7 AND status = 'running'",
    )
    .bind(o.status.as_str())
    .bind(o.result.as_ref().map(|v| v.to_string()))
    .bind(o.exception.as_ref().map(|v| v.to_string()))
    .bind(o.warning.as_ref().map(|v| v.to_string()))
    .bind(now_ms())
    .bind(name)
    .bind(owner)
    .execute(&mut *c)
    .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    match o.status {
        TaskStatus::Done => super::events::emit(c, name, "end").await?,
        TaskStatus::Error | TaskStatus::Expired => super::events::emit(c, name, "error").await?,
        _ => {}
    }
    Ok(true)
}

/// Task counts by (status, type) for the queue gauge: one grouped query over the
/// `tasks_status` index.
pub async fn queue_depth(db: &Db) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT status, type, COUNT(*) AS n FROM tasks WHERE status IN ('submitted', 'running') GROUP BY status, type")
        .fetch_all(db.pool())
        .await
}

/// Names the builds of a group's tasks (`build-<id>`, when the import gave no name).
pub async fn set_group_build_name(
    c: &mut Conn,
    group: &str,
    build_name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tasks SET build_name = $1 WHERE task_group = $2")
        .bind(build_name)
        .bind(group)
        .execute(c)
        .await?;
    Ok(())
}

/// True while a `mkseq` of the app is queued or running (one at a time is enough).
pub async fn mkseq_pending(c: &mut Conn, app_id: &AppId) -> Result<bool, sqlx::Error> {
    // Only whether a row exists matters: nothing of it is read.
    let busy = sqlx::query("SELECT 1 FROM tasks WHERE app_id = $1 AND type = 'mkseq' AND status IN ('submitted', 'running')")
        .bind(app_id)
        .fetch_optional(c)
        .await?;
    Ok(busy.is_some())
}

/// The finished tasks that wrote images of build `build_id` (`mkseq` or `mkdxf`), newest
/// first: (type, result JSON). A rollback's group has none of its own.
pub async fn image_steps_of_build(
    c: &mut Conn,
    app_id: &AppId,
    build_id: i64,
) -> Result<Vec<(String, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT type, result FROM tasks WHERE app_id = $1 AND build_id = $2 AND type IN ('mkseq', 'mkdxf') AND status = 'done' \
         ORDER BY ended DESC, name DESC",
    )
    .bind(app_id)
    .bind(build_id)
    .fetch_all(c)
    .await
}

/// The task of a group that wrote its image (`mkseq` or `mkdxf`): (type, result JSON).
pub async fn image_step(
    c: &mut Conn,
    group: &str,
) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT type, result FROM tasks WHERE task_group = $1 AND type IN ('mkseq', 'mkdxf')",
    )
    .bind(group)
    .fetch_optional(c)
    .await
}
