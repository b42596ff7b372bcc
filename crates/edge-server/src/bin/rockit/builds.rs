//! `rockit builds list|show` and `rockit apps show`: an app's builds and patches, read from
//! `GET /be/v1/apps/{name}` (which carries the builds kept and the patches between them),
//! shown for people: the current build, a builds table, the patches with their size as a
//! share of the image they lead to.

use crate::api::{Api, Global};
use crate::fail::Fail;
use crate::report;
use crate::resources::{self, APPS};
use crate::table;
use clap::Subcommand;
use serde_json::{json, Value};

/// Builds of an app: list, show.
#[derive(Subcommand)]
pub enum BuildsCmd {
    /// List the builds an app keeps (newest first), the current one marked.
    List {
        /// The app.
        app: String,
    },
    /// Show one build of an app: its image and the patches to and from it.
    Show {
        /// The app.
        app: String,
        /// The build id (as `builds list` shows).
        build: i64,
    },
}

/// Runs a `rockit builds` command.
pub fn run(g: &Global, c: BuildsCmd) -> Result<(), Fail> {
    let mut api = Api::open(g)?;
    match c {
        BuildsCmd::List { app } => {
            let a = get_app(&mut api, &app)?;
            let builds = sorted_builds(&a);
            if g.json {
                return table::print_json(&Value::Array(builds));
            }
            if builds.is_empty() {
                println!("no builds of {app} yet (push one: rockit push DIR --app {app})");
                return Ok(());
            }
            print_builds(&a, &builds);
            Ok(())
        }
        BuildsCmd::Show { app, build } => {
            let a = get_app(&mut api, &app)?;
            let b = a["builds"]
                .as_array()
                .and_then(|bs| bs.iter().find(|b| b["buildId"].as_i64() == Some(build)))
                .cloned()
                .ok_or_else(|| {
                    Fail::new(format!(
                        "not-found: {app} keeps no build {build} (see rockit builds list {app})"
                    ))
                })?;
            if g.json {
                return table::print_json(&b);
            }
            let current = a["iCurBuild"].as_i64() == Some(build);
            println!(
                "build     {build} \"{}\"{}",
                b["buildName"].as_str().unwrap_or(""),
                if current { " (current)" } else { "" }
            );
            println!("image     {} ({})", table::plain(&b["dxfName"]), size(&b["sizeBytes"]));
            println!("created   {}", table::plain(&b["created"]));
            for p in a["patches"].as_array().into_iter().flatten() {
                let (from, to) = (p["fromBuildId"].as_i64(), p["toBuildId"].as_i64());
                if to == Some(build) {
                    println!(
                        "patch     from build {}: {}",
                        table::plain(&p["fromBuildId"]),
                        patch_size(&a, p)
                    );
                } else if from == Some(build) {
                    println!(
                        "patch     to build {}: {}",
                        table::plain(&p["toBuildId"]),
                        patch_size(&a, p)
                    );
                }
            }
            Ok(())
        }
    }
}

fn get_app(api: &mut Api, app: &str) -> Result<Value, Fail> {
    Ok(api.get(&resources::item_path(&APPS, app)?, &[])?["app"].clone())
}

/// The app's builds, newest first.
fn sorted_builds(a: &Value) -> Vec<Value> {
    let mut b = a["builds"].as_array().cloned().unwrap_or_default();
    b.sort_by_key(|b| std::cmp::Reverse(b["buildId"].as_i64().unwrap_or(0)));
    b
}

fn size(v: &Value) -> String {
    v.as_u64().map(report::bytes).unwrap_or_else(|| "-".into())
}

/// The image size of build `id` of the app.
fn image_bytes(a: &Value, id: Option<i64>) -> Option<u64> {
    a["builds"].as_array()?.iter().find(|b| b["buildId"].as_i64() == id)?["sizeBytes"].as_u64()
}

/// `1.2 MiB (9.8 % of the image)`: a patch's size, and its share of the image it leads to.
fn patch_size(a: &Value, p: &Value) -> String {
    let s = size(&p["sizeBytes"]);
    match (p["sizeBytes"].as_u64(), image_bytes(a, p["toBuildId"].as_i64())) {
        (Some(n), Some(img)) if img > 0 => {
            format!("{s} ({:.1} % of the image)", n as f64 * 100.0 / img as f64)
        }
        _ => s,
    }
}

fn print_builds(a: &Value, builds: &[Value]) {
    let cur = a["iCurBuild"].as_i64();
    let rows: Vec<Value> = builds
        .iter()
        .map(|b| {
            let id = b["buildId"].as_i64().unwrap_or(0);
            let shown = if Some(id) == cur { format!("{id} (current)") } else { id.to_string() };
            json!({"id": shown, "buildName": b["buildName"], "dxfName": b["dxfName"], "sizeBytes": b["sizeBytes"], "created": b["created"]})
        })
        .collect();
    table::print_table(
        &[
            ("BUILD", "id"),
            ("NAME", "buildName"),
            ("IMAGE", "dxfName"),
            ("SIZE", "bytes:sizeBytes"),
            ("CREATED", "created"),
        ],
        &rows,
    );
}

/// `rockit apps show NAME`: the app as a summary for people (`--json`: the server's object).
pub fn show_app(api: &mut Api, g: &Global, name: &str) -> Result<(), Fail> {
    let a = get_app(api, name)?;
    if g.json {
        return table::print_json(&a);
    }
    let label =
        a["label"].as_str().filter(|l| *l != name).map(|l| format!(" \"{l}\"")).unwrap_or_default();
    println!("{name}{label}");
    let cur = a["iCurBuild"].as_i64().filter(|c| *c > 0);
    match cur {
        Some(c) => println!(
            "current build  {c} \"{}\" ({}, {})",
            a["buildName"].as_str().unwrap_or(""),
            table::plain(&a["dxfName"]),
            size(&image_bytes(&a, Some(c)).map(Value::from).unwrap_or(Value::Null))
        ),
        None => println!("current build  none yet (push one: rockit push DIR --app {name})"),
    }
    println!("state          {}", table::cell(&a, "appstate:"));
    let builds = sorted_builds(&a);
    let patches = a["patches"].as_array().cloned().unwrap_or_default();
    println!("builds kept    {} of at most {}", builds.len(), table::plain(&a["maxBuilds"]));
    println!("deployments    {}", table::cell(&a, "deps:deployments"));
    println!(
        "size           {} ({} image(s), {} patch(es))",
        size(&a["sizeBytes"]),
        builds.len(),
        patches.len()
    );
    if let Some(k) = a["clientKey"].as_str() {
        println!("client key     {k}");
    }
    println!("created        {}", table::plain(&a["created"]));
    println!("updated        {}", table::plain(&a["updated"]));
    if !builds.is_empty() {
        println!();
        print_builds(&a, &builds);
    }
    if !patches.is_empty() {
        println!();
        let rows: Vec<Value> = patches
            .iter()
            .map(|p| {
                let share = match (p["sizeBytes"].as_u64(), image_bytes(&a, p["toBuildId"].as_i64())) {
                    (Some(n), Some(img)) if img > 0 => format!("{:.1} %", n as f64 * 100.0 / img as f64),
                    _ => "-".into(),
                };
                json!({"span": format!("{} → {}", table::plain(&p["fromBuildId"]), table::plain(&p["toBuildId"])),
                       "sizeBytes": p["sizeBytes"], "share": share})
            })
            .collect();
        table::print_table(
            &[("PATCH", "span"), ("SIZE", "bytes:sizeBytes"), ("OF IMAGE", "share")],
            &rows,
        );
    }
    Ok(())
}
