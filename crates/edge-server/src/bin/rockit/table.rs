//! Text output: aligned tables for lists, `field: value` lines for one item, pretty JSON.
//!
//! A column is a field path (`origin.type`), optionally with a formatter before a colon:
//! `bytes:` (human size), `count:` (array length), `deps:` (an app's deployments, `[]` is
//! "all"), `perms:` (non-zero permissions as letters, `apps=CRU`), `x:` (a factor, `3.2x`),
//! and the computed `appstate:`, `taskbuild:`, `tasknote:` (a running task's progress and
//! note, else its outcome's gist), `target:`.

use crate::fail::Fail;
use crate::follow::exception_text;
use crate::report;
use serde_json::Value;

/// Pretty JSON on stdout.
pub fn print_json(v: &Value) -> Result<(), Fail> {
    println!("{}", serde_json::to_string_pretty(v).map_err(Fail::new)?);
    Ok(())
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

/// A value as a table cell.
pub fn plain(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "\"\"".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            a.iter().map(plain).collect::<Vec<_>>().join(",")
        }
        v => v.to_string(),
    }
}

/// One cell of column `spec` for `item`.
pub fn cell(item: &Value, spec: &str) -> String {
    let (fmt, path) = spec.split_once(':').unwrap_or(("", spec));
    let v = at(item, path);
    let s = match fmt {
        "bytes" => v.as_u64().map(report::bytes).unwrap_or_else(|| plain(v)),
        "count" => v.as_array().map(|a| a.len().to_string()).unwrap_or_else(|| "-".into()),
        "deps" => match v.as_array() {
            Some(a) if a.is_empty() => "(all)".into(),
            _ => plain(v),
        },
        "x" => v.as_f64().map(|x| format!("{x:.1}x")).unwrap_or_else(|| plain(v)),
        "perms" => match v.as_object() {
            Some(o) => {
                let set: Vec<String> = o
                    .iter()
                    .filter_map(|(k, b)| {
                        b.as_u64()
                            .filter(|b| *b > 0)
                            .map(|b| format!("{k}={}", crate::roles::letters(b)))
                    })
                    .collect();
                if set.is_empty() {
                    "-".into()
                } else {
                    set.join(",")
                }
            }
            None => plain(v),
        },
        "appstate" => {
            if item["error"] == true {
                format!("error ({})", plain(&item["errorTask"]))
            } else if item["exporting"] == true {
                "publishing".into()
            } else if item["processing"] == true {
                "processing".into()
            } else {
                "ok".into()
            }
        }
        "taskbuild" => {
            // A sequencing run republishes a build: its id says which.
            let id = item["buildId"].as_i64();
            match (item["buildName"].as_str(), id) {
                (Some(n), Some(id)) if item["type"] == "mkseq" => format!("{n} (build {id})"),
                (Some(n), _) => n.to_string(),
                (None, Some(id)) => format!("build {id}"),
                (None, None) => "-".into(),
            }
        }
        "tasknote" => {
            let mut notes = Vec::new();
            if item["status"] == "running" {
                notes.push(crate::follow::progress_text(item));
            }
            if let Some(p) = preload_change(&item["result"]) {
                notes.push(p);
            }
            if !item["exception"].is_null() {
                notes.push(exception_text(&item["exception"]));
            } else if let Some(w) = item["warning"].as_object() {
                let ack = if w.get("acknowledged") == Some(&Value::Bool(true)) {
                    " (acknowledged)"
                } else {
                    ""
                };
                notes.push(format!("warning {}{ack}", plain(&w["code"])));
            } else if let Some(r) = item["result"]["reason"].as_str() {
                notes.push(r.to_string());
            }
            notes.join("; ")
        }
        "target" => match (item["url"].as_str(), item["slackChannel"].as_str()) {
            (Some(u), _) => u.to_string(),
            (None, Some(c)) => format!("slack {c}"),
            _ => "-".into(),
        },
        _ => plain(v),
    };
    s.replace(['\n', '\r', '\t'], " ")
}

/// A sequencing result's p90 preload at 100 Mbit/s before and after:
/// `preload 12.0 MiB → 3.1 MiB`.
pub fn preload_change(result: &Value) -> Option<String> {
    let (b, a) = (result["preload100Before"].as_u64()?, result["preload100After"].as_u64()?);
    Some(format!("preload {} → {}", report::bytes(b), report::bytes(a)))
}

/// An aligned table with a header row.
pub fn print_table(cols: &[(&str, &str)], items: &[Value]) {
    let rows: Vec<Vec<String>> =
        items.iter().map(|i| cols.iter().map(|(_, spec)| cell(i, spec)).collect()).collect();
    let mut widths: Vec<usize> = cols.iter().map(|(t, _)| t.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            s.push_str(c);
            if i + 1 < n {
                s.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        }
        println!("{}", s.trim_end());
    };
    line(cols.iter().map(|(t, _)| *t).collect());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// One item as `field: value` lines (nested values as compact JSON).
pub fn print_fields(item: &Value) {
    let Some(o) = item.as_object() else {
        println!("{}", plain(item));
        return;
    };
    let w = o.keys().map(|k| k.chars().count()).max().unwrap_or(0) + 1;
    for (k, v) in o {
        println!("{:<w$} {}", format!("{k}:"), plain(v));
    }
}
