//! The durable event outbox: every state change of a customer-facing task writes an event
//! here, in the transaction of the change, and one delivery per matching subscription.

use super::Conn;
use crate::ids::{OrgId, TaskId};
use crate::util::{new_seq_id, now_ms, rfc3339};
use serde_json::{json, Value};

/// Task types whose changes are events (events.md).
pub const TYPES: [&str; 6] = ["dltar", "mkraw", "mkdxf", "mkpat", "deploy", "mkseq"];
/// Event names.
pub const EVENTS: [&str; 4] = ["submit", "begin", "end", "error"];
/// Most pending deliveries one subscription may hold.
pub const QUEUE_LIMIT: i64 = 10_000;

/// How often (in events per subscription and process) the queue limit is probed: a queue
/// may pass [`QUEUE_LIMIT`] by less than this many deliveries per process.
const PROBE_EVERY: u32 = 32;

static PROBES: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, u32>>> =
    std::sync::LazyLock::new(Default::default);

/// True when this event should probe `sub`'s queue length (its first, then one in
/// [`PROBE_EVERY`]).
fn probe_due(sub: &str) -> bool {
    let mut m = PROBES.lock().unwrap_or_else(|e| e.into_inner());
    if m.len() > 100_000 {
        m.clear();
    }
    let n = m.entry(sub.to_string()).or_insert(0);
    let due = n.is_multiple_of(PROBE_EVERY);
    *n = n.wrapping_add(1);
    due
}

/// A full queue is probed again on its next event (so it refills only once drained).
fn reprobe(sub: &str) {
    PROBES.lock().unwrap_or_else(|e| e.into_inner()).remove(sub);
}

/// What an event tells of its task.
#[derive(sqlx::FromRow)]
struct EventTask {
    name: String,
    org_id: Option<OrgId>,
    org_name: Option<String>,
    #[sqlx(rename = "type")]
    kind: String,
    task_group: String,
    app_name: Option<String>,
    build_name: Option<String>,
    build_id: Option<i64>,
    exception: Option<String>,
    result: Option<String>,
}

/// Writes the event `event` of task `task` (its state as of now) and fans it out.
pub async fn emit(c: &mut Conn, task: &TaskId, event: &str) -> Result<(), sqlx::Error> {
    let Some(t) = sqlx::query_as::<_, EventTask>(
        "SELECT name, org_id, org_name, type, task_group, app_name, build_name, build_id, exception, result FROM tasks WHERE name = $1",
    )
    .bind(task)
    .fetch_optional(&mut *c)
    .await?
    else {
        return Ok(());
    };
    let kind = t.kind.clone();
    let Some(org) = t.org_id.clone().filter(|_| TYPES.contains(&kind.as_str())) else {
        return Ok(());
    };
    let parse = |v: &Option<String>| {
        v.as_deref().and_then(|v| serde_json::from_str::<Value>(v).ok()).unwrap_or(Value::Null)
    };
    let exception = if event == "error" { parse(&t.exception) } else { Value::Null };
    let result = parse(&t.result);
    let deployment = exception.get("deployment").cloned().unwrap_or(Value::Null);
    let now = now_ms();
    let body = json!({
        "type": kind, "event": event, "orgName": t.org_name, "appName": t.app_name,
        "buildName": t.build_name, "buildId": t.build_id,
        "dxfName": result.get("dxfName").cloned().unwrap_or(Value::Null),
        "taskName": t.name, "taskGroup": t.task_group, "timestamp": rfc3339(now),
        "exception": exception, "deployment": deployment,
    });
    let id = new_seq_id("e");
    let app = t.app_name;
    sqlx::query("INSERT INTO outbox (id, org_id, app_name, task_type, event, body, created) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(&id)
        .bind(&org)
        .bind(&app)
        .bind(&kind)
        .bind(event)
        .bind(body.to_string())
        .bind(now)
        .execute(&mut *c)
        .await?;
    let subs: Vec<(String, String)> =
        sqlx::query_as("SELECT id, filter FROM subscriptions WHERE org_id = $1 AND enabled = 1")
            .bind(&org)
            .fetch_all(&mut *c)
            .await?;
    let mut fan_out = Vec::new();
    for (sub_id, filter) in subs {
        let f: Value = serde_json::from_str(&filter).unwrap_or(Value::Null);
        let pass = |k: &str, v: &str| {
            f[k].as_array().is_none_or(|a| a.is_empty() || a.iter().any(|x| x == v))
        };
        if !(pass("types", &kind)
            && pass("events", event)
            && pass("apps", app.as_deref().unwrap_or("")))
        {
            continue;
        }
        if probe_due(&sub_id) {
            // The queue limit, probed at its edge. The probe walks up to QUEUE_LIMIT index
            // entries, so it runs for one event in PROBE_EVERY per subscription: during a
            // burst, probing every event cost more than writing it.
            let full: Option<String> = sqlx::query_scalar(
                "SELECT id FROM deliveries WHERE subscription_id = $1 AND status = 'pending' ORDER BY id LIMIT 1 OFFSET $2",
            )
            .bind(&sub_id)
            .bind(QUEUE_LIMIT - 1)
            .fetch_optional(&mut *c)
            .await?;
            if full.is_some() {
                // Overflow is dropped and counted, never blocking the pipeline.
                sqlx::query("UPDATE subscriptions SET failed = failed + 1, last_error = 'queue overflow' WHERE id = $1")
                    .bind(&sub_id)
                    .execute(&mut *c)
                    .await?;
                reprobe(&sub_id);
                continue;
            }
        }
        fan_out.push(sub_id);
    }
    if !fan_out.is_empty() {
        // One statement for the whole fan-out.
        let rows: Vec<String> = (0..fan_out.len())
            .map(|k| format!("(${}, ${}, $1, $2, 'pending', 0, $3, $3)", 4 + 2 * k, 5 + 2 * k))
            .collect();
        let sql = format!(
            "INSERT INTO deliveries (id, subscription_id, event_id, org_id, status, attempts, next_at, created) VALUES {}",
            rows.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(&id).bind(&org).bind(now);
        for sub_id in &fan_out {
            q = q.bind(new_seq_id("d")).bind(sub_id);
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}
