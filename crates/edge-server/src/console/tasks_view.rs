//! Tasks as the console shows them: one row per step, imports as groups of steps with one
//! state in words.

use super::page::age;
use crate::store::tasks::{Task, TaskKind, TaskStatus};
use serde_json::Value;

/// A task, ready for a template.
pub struct TaskRow {
    pub name: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub app: String,
    pub build: String,
    /// 0 to 100.
    pub percent: u32,
    pub note: String,
    /// The warning's message, when it has one.
    pub warning: Option<String>,
    /// True while the warning is not acknowledged.
    pub warning_open: bool,
    /// What went wrong, for a failed task.
    pub exception: Option<String>,
    pub failed: bool,
}

impl TaskRow {
    /// The row of `t`.
    pub fn of(t: &Task) -> TaskRow {
        let warning: Option<Value> =
            t.warning.as_deref().and_then(|w| serde_json::from_str(w).ok());
        let message =
            |v: &Value| v["message"].as_str().map(String::from).unwrap_or_else(|| v.to_string());
        TaskRow {
            name: t.name.as_str().to_string(),
            kind: t.kind.as_str(),
            status: t.status.as_str(),
            app: t.app_name.clone().unwrap_or_default(),
            build: match (&t.build_name, t.build_id) {
                (Some(n), Some(id)) => format!("{n} (#{id})"),
                (Some(n), None) => n.clone(),
                (None, Some(id)) => format!("#{id}"),
                (None, None) => String::new(),
            },
            percent: (t.progress.clamp(0.0, 1.0) * 100.0).round() as u32,
            note: t.progress_note.clone().unwrap_or_default(),
            warning_open: warning.as_ref().is_some_and(|w| w["acknowledged"] != true),
            warning: warning.as_ref().map(message),
            exception: t.exception.as_deref().map(|e| {
                serde_json::from_str::<Value>(e).map(|v| message(&v)).unwrap_or_else(|_| e.into())
            }),
            failed: t.status == TaskStatus::Error,
        }
    }
}

/// An import (or another group of tasks), its steps in order.
pub struct GroupRow {
    pub group: String,
    /// The state in words: `published`, `running`, `waiting for upload`, `failed`, …
    pub state: &'static str,
    /// The CSS class of the state.
    pub class: &'static str,
    pub build: String,
    pub age: String,
    pub steps: Vec<TaskRow>,
}

/// The state of a group in words, with its CSS class.
pub fn group_state(steps: &[&Task]) -> (&'static str, &'static str) {
    let any = |s: TaskStatus| steps.iter().any(|t| t.status == s);
    if any(TaskStatus::Error) {
        ("failed", "status-error")
    } else if any(TaskStatus::Expired) {
        ("expired", "status-expired")
    } else if steps.iter().any(|t| t.waits_for_upload() && t.status == TaskStatus::Submitted) {
        ("waiting for upload", "status-submitted")
    } else if any(TaskStatus::Running) || any(TaskStatus::Submitted) {
        ("running", "status-running")
    } else if steps.iter().all(|t| t.status == TaskStatus::Canceled) {
        ("canceled", "status-canceled")
    } else if steps.iter().any(|t| t.kind == TaskKind::Deploy && t.status == TaskStatus::Done) {
        ("published", "status-published")
    } else {
        ("done", "status-done")
    }
}

/// `tasks` (any order) as groups, newest group first, at most `max`.
pub fn groups(tasks: &[Task], max: usize) -> Vec<GroupRow> {
    let mut order: Vec<(&str, i64)> = Vec::new();
    for t in tasks {
        match order.iter_mut().find(|(g, _)| *g == t.group) {
            Some(o) => o.1 = o.1.max(t.created),
            None => order.push((&t.group, t.created)),
        }
    }
    order.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(a.0)));
    order
        .into_iter()
        .take(max)
        .map(|(g, created)| {
            let mut steps: Vec<&Task> = tasks.iter().filter(|t| t.group == g).collect();
            steps.sort_by_key(|t| (t.step, t.created));
            let (state, class) = group_state(&steps);
            GroupRow {
                group: g.to_string(),
                state,
                class,
                build: steps
                    .iter()
                    .map(|t| TaskRow::of(t).build)
                    .find(|b| !b.is_empty())
                    .unwrap_or_default(),
                age: age(created),
                steps: steps.into_iter().map(TaskRow::of).collect(),
            }
        })
        .collect()
}
