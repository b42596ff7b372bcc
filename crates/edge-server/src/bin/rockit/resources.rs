//! The thin resource commands: list, show, create, change and delete of a resource described
//! by one [`Res`] table (used by every resource module); apps, deployments and tasks with
//! the task actions (watch, retry, acknowledge, expire).

use crate::api::{Api, Global};
use crate::fail::Fail;
use crate::follow;
use crate::report;
use crate::table;
use clap::Subcommand;
use edge_server::util::{now_ms, rfc3339};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// One resource of `/be/v1`: where it lives and how its list is shown.
pub struct Res {
    pub singular: &'static str,
    pub plural: &'static str,
    pub path: &'static str,
    /// The name field (the table's first column).
    pub key: &'static str,
    /// Table columns: (title, field path; see table.rs).
    pub cols: &'static [(&'static str, &'static str)],
    /// Items listed when no --limit is given (`None`: all).
    pub default_limit: Option<usize>,
}

pub const APPS: Res = Res {
    singular: "app",
    plural: "apps",
    path: "/be/v1/apps",
    key: "name",
    cols: &[
        ("NAME", "name"),
        ("LABEL", "label"),
        ("BUILD", "iCurBuild"),
        ("BUILD NAME", "buildName"),
        ("BUILDS", "count:builds"),
        ("MAX", "maxBuilds"),
        ("SIZE", "bytes:sizeBytes"),
        ("STATE", "appstate:"),
        ("DEPLOYMENTS", "deps:deployments"),
    ],
    default_limit: None,
};

pub const DEPLOYMENTS: Res = Res {
    singular: "deployment",
    plural: "deployments",
    path: "/be/v1/deployments",
    key: "name",
    cols: &[
        ("NAME", "name"),
        ("TYPE", "origin.type"),
        ("PREFIX", "originPrefix"),
        ("STATUS", "status"),
        ("APPS", "apps"),
        ("MESSAGE", "message"),
    ],
    default_limit: None,
};

pub const TASKS: Res = Res {
    singular: "task",
    plural: "tasks",
    path: "/be/v1/tasks",
    key: "taskName",
    cols: &[
        ("TASK", "taskName"),
        ("TYPE", "type"),
        ("APP", "appName"),
        ("BUILD", "taskbuild:"),
        ("STATUS", "status"),
        ("CREATED", "created"),
        ("ENDED", "ended"),
        ("NOTE", "tasknote:"),
    ],
    default_limit: Some(50),
};

/// Paging options of every list.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Paging {
    /// List at most this many items (default: all; tasks: the 50 most recent).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Sort by this field (prefix - for descending); repeatable.
    #[arg(long, value_name = "FIELD")]
    pub order: Vec<String>,
}

/// Lists every item (page by page), filtered by `filters`.
pub fn fetch_all(
    api: &mut Api,
    r: &Res,
    filters: &[(&str, String)],
    p: &Paging,
) -> Result<Vec<Value>, Fail> {
    let want = p.limit.or(r.default_limit).unwrap_or(usize::MAX);
    let mut items: Vec<Value> = Vec::new();
    loop {
        let page = (want - items.len()).min(1000);
        let mut q: Vec<(&str, String)> = filters.to_vec();
        q.push(("offset", items.len().to_string()));
        q.push(("limit", page.to_string()));
        for o in &p.order {
            q.push(("order[]", o.clone()));
        }
        let v = api.get(r.path, &q)?;
        let got = v[r.plural].as_array().cloned().unwrap_or_default();
        let n = got.len();
        items.extend(got);
        let total = v["total"].as_u64().unwrap_or(0) as usize;
        if n == 0 || items.len() >= total || items.len() >= want {
            return Ok(items);
        }
    }
}

pub fn list(
    api: &mut Api,
    g: &Global,
    r: &Res,
    filters: &[(&str, String)],
    p: &Paging,
) -> Result<(), Fail> {
    let items = fetch_all(api, r, filters, p)?;
    if g.json {
        return table::print_json(&Value::Array(items));
    }
    if items.is_empty() {
        println!("no {}", r.plural);
        return Ok(());
    }
    table::print_table(r.cols, &items);
    Ok(())
}

/// The path of one item, its name checked.
pub fn item_path(r: &Res, name: &str) -> Result<String, Fail> {
    if name.is_empty() || name.contains(['/', '?', '#', '%']) {
        return Err(Fail::new(format!("{} name {name:?}: not a valid name", r.singular)));
    }
    Ok(format!("{}/{name}", r.path))
}

pub fn show(api: &mut Api, g: &Global, r: &Res, name: &str) -> Result<(), Fail> {
    let v = api.get(&item_path(r, name)?, &[])?;
    let item = &v[r.singular];
    if g.json {
        return table::print_json(item);
    }
    table::print_fields(item);
    Ok(())
}

pub fn create(api: &mut Api, g: &Global, r: &Res, body: &Value) -> Result<(), Fail> {
    let v = api.post(r.path, body)?;
    if g.json {
        return table::print_json(&v[r.singular]);
    }
    println!("created {} {}", r.singular, v[r.singular][r.key].as_str().unwrap_or("?"));
    Ok(())
}

/// `PATCH` of a resource (the item is named in `body`); prints the changed item's JSON, or
/// one line `changed <resource> <name>`. Answers the whole success envelope.
pub fn change(api: &mut Api, g: &Global, r: &Res, body: &Value) -> Result<Value, Fail> {
    let v = api.patch(r.path, body)?;
    if g.json {
        table::print_json(&v[r.singular])?;
    } else {
        println!("changed {} {}", r.singular, v[r.singular][r.key].as_str().unwrap_or("?"));
    }
    Ok(v)
}

/// The answer of a call that shows a secret once, for `--json`: the envelope without
/// `status` (the item under its name, and the secret beside it).
pub fn without_status(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    v
}

/// Prints a secret the server shows only once, on a line of its own so it can be copied.
pub fn print_secret(what: &str, secret: &Value) {
    if let Some(s) = secret.as_str() {
        println!("{what} (shown only once; store it now):");
        println!("{s}");
    }
}

pub fn delete(
    api: &mut Api,
    g: &Global,
    r: &Res,
    name: &str,
    query: &[(&str, String)],
) -> Result<(), Fail> {
    let v = api.delete(&item_path(r, name)?, query)?;
    if g.json {
        return table::print_json(&without_status(v));
    }
    let msg = v["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{} deleted", r.singular));
    match v["taskName"].as_str() {
        Some(t) => println!("{name}: {msg} (purge task {t})"),
        None => println!("{name}: {msg}"),
    }
    Ok(())
}

// --------------------------------------------------------------------------------------
// Commands
// --------------------------------------------------------------------------------------

/// Apps: list, show, create, delete, roll back.
#[derive(Subcommand)]
pub enum AppsCmd {
    /// List the organization's apps.
    List {
        /// Only apps whose name contains this (case-insensitive).
        #[arg(long)]
        name: Option<String>,
        /// Only apps in error state (true) or not (false).
        #[arg(long, value_name = "BOOL")]
        error: Option<bool>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show one app: its current build, the builds kept and the patches between them.
    Show { name: String },
    /// Create an app.
    Create {
        #[arg(long)]
        name: String,
        /// Display label (default: the name).
        #[arg(long)]
        label: Option<String>,
        /// Builds kept (1..100; server default 5).
        #[arg(long, value_name = "N")]
        max_builds: Option<u32>,
        /// Publish to this deployment (repeatable; default: every deployment of the org).
        #[arg(long = "deployment", value_name = "D")]
        deployments: Vec<String>,
    },
    /// Delete an app, its builds and its published files.
    Delete {
        name: String,
        /// Cancel a running pipeline of the app instead of refusing.
        #[arg(long)]
        force: bool,
    },
    /// Make a kept build current again: its image is published again to every target
    /// (only what a target lacks is sent), then launchers get it. Follows the publish
    /// unless --no-wait.
    Rollback {
        name: String,
        /// The build id to bring back (`rockit apps show NAME` lists the kept builds).
        #[arg(long = "to", value_name = "BUILD_ID")]
        to: i64,
        /// Print the queued task and return instead of following it.
        #[arg(long)]
        no_wait: bool,
    },
}

pub fn apps(g: &Global, c: AppsCmd) -> Result<(), Fail> {
    let mut api = Api::open(g)?;
    match c {
        AppsCmd::List { name, error, paging } => {
            let mut f = Vec::new();
            if let Some(n) = name {
                f.push(("name", n));
            }
            if let Some(e) = error {
                f.push(("error", e.to_string()));
            }
            list(&mut api, g, &APPS, &f, &paging)
        }
        AppsCmd::Show { name } => crate::builds::show_app(&mut api, g, &name),
        AppsCmd::Create { name, label, max_builds, deployments } => {
            let mut body = json!({"name": name, "label": label.unwrap_or_else(|| name.clone())});
            if let Some(m) = max_builds {
                body["maxBuilds"] = json!(m);
            }
            if !deployments.is_empty() {
                body["deployments"] = json!(deployments);
            }
            create(&mut api, g, &APPS, &body)
        }
        AppsCmd::Delete { name, force } => {
            let q: Vec<(&str, String)> =
                if force { vec![("force", "true".into())] } else { vec![] };
            delete(&mut api, g, &APPS, &name, &q)
        }
        AppsCmd::Rollback { name, to, no_wait } => rollback(&mut api, g, &name, to, no_wait),
    }
}

/// `rockit apps rollback NAME --to N`: queues the rollback's publish and follows it.
fn rollback(api: &mut Api, g: &Global, app: &str, to: i64, no_wait: bool) -> Result<(), Fail> {
    let body = json!({"type": "rollback", "appName": app, "buildId": to});
    let task = api.post("/be/v1/trigger", &body)?["taskName"].as_str().unwrap_or("?").to_string();
    if no_wait {
        let t = api.get(&item_path(&TASKS, &task)?, &[])?["task"].clone();
        if g.json {
            return table::print_json(&t);
        }
        println!("{task}: rollback of {app} to build {to} queued");
        return Ok(());
    }
    if !g.json {
        println!("{task}: rolling {app} back to build {to}");
    }
    let tasks = follow::follow(api, None, &task, g.json)?;
    if g.json {
        return table::print_json(&Value::Array(tasks));
    }
    let d = tasks.first().cloned().unwrap_or(Value::Null);
    let r = &d["result"];
    println!(
        "{app}: build {to} \"{}\" ({}) is current again; {} object(s) sent, {} already on the targets",
        d["buildName"].as_str().unwrap_or(""),
        r["dxfName"].as_str().unwrap_or("?"),
        r["objectsSent"],
        r["objectsAlreadyThere"]
    );
    Ok(())
}

/// Deployments (CDN origins): list, show, create, delete.
#[derive(Subcommand)]
pub enum DeploymentsCmd {
    /// List the organization's deployments.
    List {
        #[command(flatten)]
        paging: Paging,
    },
    /// Show one deployment (secrets are shown as ********).
    Show { name: String },
    /// Create a deployment: an fs directory on the Edge host, or an S3 bucket.
    Create(Box<DeploymentCreate>),
    /// Check that the Edge can write to and delete from a deployment's origin now (it
    /// writes and deletes `<prefix>/.rockit-probe`; nothing else changes).
    Probe { name: String },
    /// Delete a deployment and purge what was published to it.
    Delete { name: String },
}

#[derive(clap::Args)]
pub struct DeploymentCreate {
    #[arg(long)]
    name: String,
    /// Origin type.
    #[arg(long = "type", value_name = "TYPE", value_parser = ["fs", "s3"])]
    kind: String,
    /// fs: the directory, absolute or relative to the Edge's fs_origin_root.
    #[arg(long, required_if_eq("kind", "fs"))]
    path: Option<String>,
    /// s3: endpoint (host[:port], or an http(s) URL).
    #[arg(long, required_if_eq("kind", "s3"))]
    endpoint: Option<String>,
    /// s3: region.
    #[arg(long, required_if_eq("kind", "s3"))]
    region: Option<String>,
    /// s3: bucket.
    #[arg(long, required_if_eq("kind", "s3"))]
    bucket: Option<String>,
    /// s3: access key id.
    #[arg(long, required_if_eq("kind", "s3"))]
    access_key_id: Option<String>,
    /// s3: secret access key (default: $ROCKIT_S3_SECRET_ACCESS_KEY).
    #[arg(long)]
    secret_access_key: Option<String>,
    /// s3: path-style requests.
    #[arg(long)]
    path_style: bool,
    /// Key prefix on the origin ("" by default).
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// Display label.
    #[arg(long)]
    label: Option<String>,
    /// Base URL at which launchers download from this origin.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Skip the write/delete probe of the origin.
    #[arg(long)]
    no_probe: bool,
}

pub fn deployments(g: &Global, c: DeploymentsCmd) -> Result<(), Fail> {
    let mut api = Api::open(g)?;
    match c {
        DeploymentsCmd::List { paging } => list(&mut api, g, &DEPLOYMENTS, &[], &paging),
        DeploymentsCmd::Show { name } => show(&mut api, g, &DEPLOYMENTS, &name),
        DeploymentsCmd::Delete { name } => delete(&mut api, g, &DEPLOYMENTS, &name, &[]),
        DeploymentsCmd::Probe { name } => {
            let path = item_path(&DEPLOYMENTS, &name)?;
            let v = api.post(&format!("{path}/probe"), &json!({}))?;
            if g.json {
                return table::print_json(&v);
            }
            let d = api.get(&path, &[])?["deployment"].clone();
            let o = &d["origin"];
            let at =
                o["path"].as_str().or(o["bucket"].as_str()).or(o["host"].as_str()).unwrap_or("?");
            println!(
                "{name}: probe passed ({} {at}, prefix {})",
                o["type"].as_str().unwrap_or("?"),
                table::plain(&d["originPrefix"])
            );
            Ok(())
        }
        DeploymentsCmd::Create(d) => {
            let origin = if d.kind == "fs" {
                json!({"type": "fs", "path": d.path})
            } else {
                let secret = d
                    .secret_access_key
                    .or_else(|| std::env::var("ROCKIT_S3_SECRET_ACCESS_KEY").ok())
                    .ok_or_else(|| {
                        Fail::new("s3 needs --secret-access-key or $ROCKIT_S3_SECRET_ACCESS_KEY")
                    })?;
                json!({"type": "s3", "endpoint": d.endpoint, "region": d.region, "bucket": d.bucket,
                       "accessKeyId": d.access_key_id, "secretAccessKey": secret, "pathStyle": d.path_style})
            };
            let mut body = json!({"name": d.name, "origin": origin});
            for (k, v) in
                [("originPrefix", d.prefix), ("label", d.label), ("publicUrl", d.public_url)]
            {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            if d.no_probe {
                body["probe"] = json!(false);
            }
            create(&mut api, g, &DEPLOYMENTS, &body)
        }
    }
}

/// Tasks: list, show, watch, acknowledge, expire.
#[derive(Subcommand)]
pub enum TasksCmd {
    /// List tasks: the most recent imports first, each in pipeline order.
    ///
    /// The tasks of one import (or one sequencing run) are shown together in the order
    /// they run (dltar, mkraw, mkdxf, mkpat, deploy; mkseq before its deploy); imports
    /// most recent first. With --order, the server's order as asked.
    List {
        /// Only tasks of apps whose name contains this.
        #[arg(long)]
        app: Option<String>,
        /// Only tasks in this status.
        #[arg(long, value_parser = ["submitted", "running", "done", "error", "expired", "canceled"])]
        status: Option<String>,
        /// Only tasks of this type (dltar, mkraw, mkdxf, mkpat, deploy, mkseq, purge).
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// Only the tasks of this import (taskGroup).
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show one task with its result, warning and exception.
    Show { task: String },
    /// Print task state changes as they happen, until Ctrl-C (or --until-idle).
    Watch(WatchArgs),
    /// Mark a task's warning as seen (same as `rockit ack`).
    Ack { task: String },
    /// End a build import still waiting for its upload.
    Expire { task: String },
}

#[derive(clap::Args)]
pub struct WatchArgs {
    /// Only tasks of apps whose name contains this.
    #[arg(long)]
    app: Option<String>,
    /// Stop when no task is queued or running (an import waiting for its upload does not count).
    #[arg(long)]
    until_idle: bool,
    /// Seconds between polls.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    interval: f64,
}

pub fn tasks(g: &Global, c: TasksCmd) -> Result<(), Fail> {
    let mut api = Api::open(g)?;
    match c {
        TasksCmd::List { app, status, kind, group, paging } => {
            let f: Vec<(&str, String)> =
                [("appName", app), ("status", status), ("type", kind), ("taskGroup", group)]
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect();
            if g.json || !paging.order.is_empty() {
                return list(&mut api, g, &TASKS, &f, &paging);
            }
            let items = pipeline_order(fetch_all(&mut api, &TASKS, &f, &paging)?);
            if items.is_empty() {
                println!("no tasks");
                return Ok(());
            }
            table::print_table(TASKS.cols, &items);
            Ok(())
        }
        TasksCmd::Show { task } => show(&mut api, g, &TASKS, &task),
        TasksCmd::Watch(w) => watch(&mut api, g, w),
        TasksCmd::Ack { task } => ack_with(&mut api, g, &task),
        TasksCmd::Expire { task } => {
            let v = api.patch("/be/v1/tasks", &json!({"taskName": task, "expire": true}))?;
            if g.json {
                return table::print_json(&v["task"]);
            }
            println!("{task}: expired");
            Ok(())
        }
    }
}

/// Where a task type runs in its pipeline: an import's dltar → mkraw → mkdxf → mkpat →
/// deploy; a sequencing run's mkseq → deploy (mkseq before deploy); purges last.
fn step_rank(t: &Value) -> usize {
    match t["type"].as_str().unwrap_or("") {
        "dltar" => 0,
        "mkraw" => 1,
        "mkdxf" => 2,
        "mkpat" => 3,
        "mkseq" => 4,
        "deploy" => 5,
        _ => 6,
    }
}

/// Tasks (most recent first, as the server lists them) grouped by import: the groups in the
/// order their most recent task appears, the tasks of each in pipeline order.
pub fn pipeline_order(items: Vec<Value>) -> Vec<Value> {
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    for (i, t) in items.into_iter().enumerate() {
        // A task without a group (a purge) is a group of its own.
        let key = t["taskGroup"].as_str().map(str::to_string).unwrap_or_else(|| format!("#{i}"));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(t),
            None => groups.push((key, vec![t])),
        }
    }
    let mut out = Vec::new();
    for (_, mut g) in groups {
        g.sort_by_key(step_rank);
        out.extend(g);
    }
    out
}

/// Still to happen: queued or running (a `dltar` waiting for its upload does not count).
fn active(t: &Value) -> bool {
    match t["status"].as_str() {
        Some("running") => true,
        // A download-mode dltar is queued work; an upload-mode one waits for its client.
        Some("submitted") => t["waitingForUpload"] != true,
        _ => false,
    }
}

/// Prints task state changes as they happen; on a terminal, a line on stderr meanwhile says
/// where the running tasks stand (their progress and note).
fn watch(api: &mut Api, g: &Global, w: WatchArgs) -> Result<(), Fail> {
    use std::io::{IsTerminal, Write};
    let live = !g.json && std::io::stderr().is_terminal();
    let mut seen: HashMap<String, (String, i64)> = HashMap::new();
    let mut first = true;
    let mut printed = false;
    let interval = Duration::from_secs_f64(w.interval.clamp(0.1, 3600.0));
    loop {
        let mut q = vec![("limit", "200".to_string())];
        if let Some(a) = &w.app {
            q.push(("appName", a.clone()));
        }
        let v = api.get("/be/v1/tasks", &q)?;
        let mut ts = v["tasks"].as_array().cloned().unwrap_or_default();
        ts.reverse(); // oldest first
        for t in &ts {
            let name = t["taskName"].as_str().unwrap_or("?").to_string();
            let key = (
                t["status"].as_str().unwrap_or("?").to_string(),
                t["attempts"].as_i64().unwrap_or(0),
            );
            if seen.get(&name) == Some(&key) {
                continue;
            }
            // At the start, only what is still going on is shown.
            if !first || !follow::ended(&key.0) {
                printed = true;
                report::clear_progress();
                if g.json {
                    println!("{}", serde_json::to_string(t).unwrap_or_default());
                } else {
                    let app = t["appName"].as_str().unwrap_or("-");
                    println!(
                        "{}  {name}  {app:<12} {}",
                        rfc3339(now_ms()),
                        follow::outcome_line(t)
                    );
                }
            }
            seen.insert(name, key);
        }
        let _ = std::io::stdout().flush();
        first = false;
        let running: Vec<String> = ts
            .iter()
            .filter(|t| t["status"] == "running")
            .map(|t| {
                format!(
                    "{} {} {}",
                    t["appName"].as_str().unwrap_or("-"),
                    t["type"].as_str().unwrap_or("?"),
                    follow::progress_text(t)
                )
            })
            .collect();
        if live && !running.is_empty() {
            let mut e = std::io::stderr();
            let _ = write!(e, "\r\x1b[K{}", report::one_line(&running.join(" | ")));
            let _ = e.flush();
            report::mark_shown();
        } else {
            report::clear_progress();
        }
        if w.until_idle && !ts.iter().any(active) {
            if !printed && !g.json {
                match &w.app {
                    Some(a) => println!(
                        "nothing running (no task of apps matching {a:?} is queued or running)"
                    ),
                    None => println!("nothing running (no task is queued or running)"),
                }
            }
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

fn ack_with(api: &mut Api, g: &Global, task: &str) -> Result<(), Fail> {
    let v = api.patch("/be/v1/tasks", &json!({"taskName": task, "acknowledge": true}))?;
    if g.json {
        return table::print_json(&v["task"]);
    }
    let w = &v["task"]["warning"];
    println!("{task}: warning {} acknowledged", w["code"].as_str().unwrap_or("?"));
    Ok(())
}

/// `rockit ack <task>`.
pub fn ack(g: &Global, task: &str) -> Result<(), Fail> {
    ack_with(&mut Api::open(g)?, g, task)
}

/// `rockit retry <task> [--no-wait]`: runs a failed task again and follows its pipeline.
/// Reports the attempt that will run: the task's attempts so far, plus one (read before
/// the retry, as a worker may start it at once).
pub fn retry(g: &Global, task: &str, no_wait: bool) -> Result<(), Fail> {
    let mut api = Api::open(g)?;
    let path = item_path(&TASKS, task)?;
    let before = api.get(&path, &[])?["task"]["attempts"].as_i64().unwrap_or(0);
    api.post("/be/v1/trigger", &json!({"type": "retry", "taskName": task}))?;
    let t = api.get(&path, &[])?["task"].clone();
    let line =
        format!("{task}: retrying ({}, attempt {})", t["type"].as_str().unwrap_or("?"), before + 1);
    if no_wait {
        if g.json {
            return table::print_json(&t);
        }
        println!("{line}");
        return Ok(());
    }
    if !g.json {
        println!("{line}");
    }
    let group = t["taskGroup"].as_str().map(str::to_string);
    let tasks = follow::follow(&mut api, group.as_deref(), task, g.json)?;
    if g.json {
        return table::print_json(&Value::Array(tasks));
    }
    if group.is_some() {
        println!("{}", crate::push::summary(t["appName"].as_str().unwrap_or("?"), &tasks));
    }
    Ok(())
}
