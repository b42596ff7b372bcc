//! Following a pipeline through the tasks API: one line per task as it ends, a progress
//! line on a terminal meanwhile, and a failed task's exception as the failure.

use crate::api::Api;
use crate::fail::Fail;
use crate::report;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// The pipeline's steps in order.
pub const STEPS: [&str; 5] = ["dltar", "mkraw", "mkdxf", "mkpat", "deploy"];

/// A task status after which nothing more happens (unless retried).
pub fn ended(status: &str) -> bool {
    matches!(status, "done" | "error" | "expired" | "canceled")
}

/// What a `dltar` exit code means (delivery.md).
fn exit_meaning(code: i64) -> &'static str {
    match code {
        1 => "source unreachable",
        2 => "HTTP status not 2xx",
        3 => "timeout",
        4 => "size or hash mismatch",
        5 => "over the size limit",
        6 => "TLS failure",
        7 => "too many redirects",
        8 => "address not allowed",
        9 => "upload expired",
        _ => "download failed",
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    }
}

/// A task exception in one line: `<code>: <message>` and the typed facts.
pub fn exception_text(e: &Value) -> String {
    let Some(obj) = e.as_object() else { return s(e) };
    let mut parts = Vec::new();
    for (k, v) in obj {
        let p = match k.as_str() {
            "error" => format!("{}: {}", s(&v["code"]), s(&v["message"])),
            "fileReadFailed" => {
                format!(
                    "fileReadFailed: {}: expected {}, found {}",
                    s(&v["filename"]),
                    s(&v["typeExpected"]),
                    s(&v["typeDetected"])
                )
            }
            "httpDownloadFailed" => {
                let code = v["exitCode"].as_i64().unwrap_or(0);
                let mut t =
                    format!("httpDownloadFailed: exit code {code} ({})", exit_meaning(code));
                if !v["httpStatus"].is_null() {
                    t.push_str(&format!(", HTTP {}", s(&v["httpStatus"])));
                }
                if !v["url"].is_null() {
                    t.push_str(&format!(", {}", s(&v["url"])));
                }
                t
            }
            "sizeMismatch" => {
                format!(
                    "sizeMismatch: {} bytes arrived, {} expected",
                    s(&v["sizeBytesActual"]),
                    s(&v["sizeBytesExpected"])
                )
            }
            "deployment" => format!("deployment {}", s(&v["name"])),
            _ => format!("{k}: {v}"),
        };
        parts.push(p);
    }
    // The error code first, the deployment last.
    parts.sort_by_key(|p| if p.starts_with("deployment ") { 1 } else { 0 });
    parts.join("; ")
}

/// Where a running task stands: `42 %, patching from build 1 (2 of 4)` (the server's
/// `progress` and `progressNote`); empty when it says neither.
pub fn progress_text(t: &Value) -> String {
    let pct = t["progress"].as_f64().map(|p| format!("{:.0} %", p * 100.0));
    let note = t["progressNote"].as_str().filter(|n| !n.is_empty());
    match (pct, note) {
        (Some(p), Some(n)) => format!("{p}, {n}"),
        (Some(p), None) => p,
        (None, Some(n)) => n.to_string(),
        (None, None) => String::new(),
    }
}

/// The one-line state of a task: the outcome of an ended one, where a running one stands.
pub fn outcome_line(t: &Value) -> String {
    let r = &t["result"];
    let status = t["status"].as_str().unwrap_or("?");
    let mut detail = match (t["type"].as_str().unwrap_or(""), status) {
        // A task that has not ended has no result to tell of yet.
        (_, "running") => progress_text(t),
        (_, "submitted") => String::new(),
        (_, "error" | "expired") => exception_text(&t["exception"]),
        (_, "canceled") => r["reason"].as_str().map(|x| format!("({x})")).unwrap_or_default(),
        ("dltar", _) => r["sizeBytes"]
            .as_u64()
            .map(|n| format!("received {}", report::bytes(n)))
            .unwrap_or_default(),
        ("mkraw", _) => match (r["fileCount"].as_u64(), r["sizeBytes"].as_u64()) {
            (Some(f), Some(b)) => format!(
                "{f} files, {}, {} chunks ({} new)",
                report::bytes(b),
                s(&r["chunkCount"]),
                s(&r["newChunks"])
            ),
            _ => String::new(),
        },
        ("mkdxf", _) => match r["dxfName"].as_str() {
            Some(d) => {
                format!("{d}, {} in packs", report::bytes(r["packBytes"].as_u64().unwrap_or(0)))
            }
            None => String::new(),
        },
        ("mkpat", _) => match r["patches"].as_array().map(Vec::len) {
            Some(0) | None => "no older build to patch from".into(),
            Some(n) => format!("{n} patch(es)"),
        },
        ("mkseq", _) => crate::table::preload_change(r)
            .map(|p| format!("{p} (p90 at 100 Mbit/s)"))
            .unwrap_or_default(),
        ("deploy", _) => match r["targets"].as_array() {
            Some(ts) => {
                let names: Vec<String> = ts.iter().map(s).collect();
                format!("published to {}", names.join(", "))
            }
            None => String::new(),
        },
        _ => String::new(),
    };
    if let Some(w) = t["warning"].as_object() {
        if !detail.is_empty() {
            detail.push_str("; ");
        }
        detail.push_str(&format!("warning {}: {}", s(&w["code"]), s(&w["message"])));
    }
    format!("{:<7} {:<9} {detail}", t["type"].as_str().unwrap_or("?"), status)
        .trim_end()
        .to_string()
}

fn step(t: &Value) -> usize {
    STEPS.iter().position(|x| *x == t["type"]).unwrap_or(STEPS.len())
}

/// Polls the tasks of `group` (or the one task `name` when it has no group) until all
/// have ended or one failed; prints each task's outcome as it ends (unless `quiet`).
/// Answers the tasks in step order, or the failure of the first failed task.
pub fn follow(
    api: &mut Api,
    group: Option<&str>,
    name: &str,
    quiet: bool,
) -> Result<Vec<Value>, Fail> {
    let tty = std::io::stderr().is_terminal();
    let mut told: HashMap<String, (String, i64)> = HashMap::new();
    let mut wait = Duration::from_millis(200);
    let mut empty = 0;
    loop {
        let mut tasks: Vec<Value> = match group {
            Some(g) => {
                let q = [
                    ("taskGroup", g.to_string()),
                    ("limit", "100".to_string()),
                    ("order[]", "created".to_string()),
                ];
                api.get("/be/v1/tasks", &q)?["tasks"].as_array().cloned().unwrap_or_default()
            }
            None => vec![api.get(&format!("/be/v1/tasks/{name}"), &[])?["task"].clone()],
        };
        tasks.sort_by_key(step);
        if tasks.is_empty() {
            empty += 1;
            if empty >= 3 {
                return Err(Fail::new(format!(
                    "the tasks of import {} are gone (was the app deleted?)",
                    group.unwrap_or(name)
                )));
            }
        }
        let mut changed = false;
        for t in &tasks {
            let status = t["status"].as_str().unwrap_or("?").to_string();
            let key = (status.clone(), t["attempts"].as_i64().unwrap_or(0));
            let tn = t["taskName"].as_str().unwrap_or("?").to_string();
            if ended(&status) && told.get(&tn) != Some(&key) {
                told.insert(tn, key);
                changed = true;
                if !quiet {
                    report::clear_progress();
                    println!("{}", outcome_line(t));
                }
            }
        }
        if let Some(bad) =
            tasks.iter().find(|t| matches!(t["status"].as_str(), Some("error" | "expired")))
        {
            report::clear_progress();
            let what = if bad["status"] == "expired" { "expired" } else { "failed" };
            let _ = std::io::stdout().flush();
            return Err(Fail::new(format!(
                "{} {what} (task {}): {}",
                s(&bad["type"]),
                s(&bad["taskName"]),
                exception_text(&bad["exception"])
            )));
        }
        if !tasks.is_empty() && tasks.iter().all(|t| ended(t["status"].as_str().unwrap_or(""))) {
            report::clear_progress();
            return Ok(tasks);
        }
        if tty && !quiet {
            if let Some(t) = tasks.iter().find(|t| !ended(t["status"].as_str().unwrap_or(""))) {
                let mut e = std::io::stderr();
                let _ = write!(
                    e,
                    "\r\x1b[K{}",
                    report::one_line(&format!(
                        "{} {} {}",
                        s(&t["type"]),
                        s(&t["status"]),
                        progress_text(t)
                    ))
                );
                let _ = e.flush();
                report::mark_shown();
            }
        }
        if changed {
            wait = Duration::from_millis(200);
        }
        std::thread::sleep(wait);
        wait = (wait * 3 / 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exceptions_in_one_line() {
        let e = json!({"error": {"code": "publish-failed", "message": "site: cannot write"}, "deployment": {"name": "site"}});
        assert_eq!(exception_text(&e), "publish-failed: site: cannot write; deployment site");
        let e = json!({"fileReadFailed": {"filename": "a", "typeExpected": "regular file", "typeDetected": "fifo"}});
        assert_eq!(exception_text(&e), "fileReadFailed: a: expected regular file, found fifo");
        let e = json!({"httpDownloadFailed": {"httpStatus": null, "exitCode": 9, "url": null}});
        assert_eq!(exception_text(&e), "httpDownloadFailed: exit code 9 (upload expired)");
    }

    #[test]
    fn a_running_step_says_where_it_stands() {
        // A running mkpat has no result yet: it is not "no older build to patch from".
        let t = json!({"type": "mkpat", "status": "running", "progress": 0.421, "progressNote": "patching from build 1 (2 of 4)", "result": null});
        assert_eq!(outcome_line(&t), "mkpat   running   42 %, patching from build 1 (2 of 4)");
        let t =
            json!({"type": "mkdxf", "status": "running", "progress": 0.0, "progressNote": null});
        assert_eq!(outcome_line(&t), "mkdxf   running   0 %");
        let t = json!({"type": "mkpat", "status": "submitted", "progress": 0.0, "result": null});
        assert_eq!(outcome_line(&t), "mkpat   submitted");
        let t =
            json!({"type": "mkpat", "status": "done", "progress": 1.0, "result": {"patches": []}});
        assert_eq!(outcome_line(&t), "mkpat   done      no older build to patch from");
    }
}
