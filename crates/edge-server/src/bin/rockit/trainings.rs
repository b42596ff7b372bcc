//! `rockit trainings`: one training per app — the play traces it has, how many arrived
//! since the last sequence, after how many new ones `mkseq` runs by itself
//! (`nTracesReliable`), and the preload figures of the published image.

use crate::api::{Api, Global};
use crate::fail::Fail;
use crate::report;
use crate::resources::{self, Paging, Res};
use crate::table;
use clap::Subcommand;
use serde_json::{json, Value};

/// The trainings of `/be/v1/trainings`.
pub const TRAININGS: Res = Res {
    singular: "training",
    plural: "trainings",
    path: "/be/v1/trainings",
    key: "appName",
    cols: &[
        ("APP", "appName"),
        ("TRACES", "nTraces"),
        ("NEW", "nTracesSinceSequence"),
        ("RELIABLE", "nTracesReliable"),
        ("GENERATION", "sequenceGeneration"),
        ("LAST SEQUENCE", "lastSequence"),
        ("PRELOAD@100", "bytes:preload.100"),
        ("ACCELERATION", "x:acceleration100"),
    ],
    default_limit: None,
};

/// Trainings: list, show, set.
#[derive(Subcommand)]
pub enum TrainingsCmd {
    /// List the trainings of the organization's apps.
    List {
        /// Only apps whose name contains this.
        #[arg(long)]
        app: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show an app's training: traces, sequencing, preload of the published image.
    Show {
        /// The app.
        app: String,
    },
    /// Change after how many new traces the Edge re-sequences an app by itself.
    ///
    /// Example: rockit trainings set MyGame --reliable 24
    Set {
        /// The app.
        app: String,
        /// New traces that start `mkseq` (nTracesReliable, 1..100000).
        #[arg(long, value_name = "N")]
        reliable: i64,
    },
}

/// Runs a `rockit trainings` command.
pub fn run(g: &Global, c: TrainingsCmd) -> Result<(), Fail> {
    let mut api = Api::open(g)?;
    match c {
        TrainingsCmd::List { app, paging } => {
            let f: Vec<(&str, String)> = app.into_iter().map(|a| ("appName", a)).collect();
            resources::list(&mut api, g, &TRAININGS, &f, &paging)
        }
        TrainingsCmd::Show { app } => {
            let v = api.get(&resources::item_path(&TRAININGS, &app)?, &[])?;
            if g.json {
                return table::print_json(&v["training"]);
            }
            print_training(&v["training"]);
            Ok(())
        }
        TrainingsCmd::Set { app, reliable } => {
            let v =
                api.patch(TRAININGS.path, &json!({"appName": app, "nTracesReliable": reliable}))?;
            if g.json {
                return table::print_json(&v["training"]);
            }
            let t = &v["training"];
            println!(
                "{app}: mkseq runs after {} new traces ({} so far)",
                table::plain(&t["nTracesReliable"]),
                table::plain(&t["nTracesSinceSequence"])
            );
            Ok(())
        }
    }
}

/// A training for people.
fn print_training(t: &Value) {
    println!("app                {}", table::plain(&t["appName"]));
    println!(
        "traces             {} ({} since the last sequence)",
        table::plain(&t["nTraces"]),
        table::plain(&t["nTracesSinceSequence"])
    );
    println!("mkseq after        {} new traces", table::plain(&t["nTracesReliable"]));
    println!(
        "sequence           generation {}, last {}",
        table::plain(&t["sequenceGeneration"]),
        table::plain(&t["lastSequence"])
    );
    match t["preload"].as_object() {
        Some(p) => {
            let mut rows: Vec<(u64, u64)> =
                p.iter().filter_map(|(k, v)| Some((k.parse::<u64>().ok()?, v.as_u64()?))).collect();
            rows.sort();
            let shown: Vec<String> = rows
                .iter()
                .map(|(mbit, b)| format!("{} at {mbit} Mbit/s", report::bytes(*b)))
                .collect();
            println!("preload (p90)      {}", shown.join(", "));
        }
        None => println!("preload (p90)      - (no traces of the published image yet)"),
    }
    if let Some(x) = t["acceleration100"].as_f64() {
        println!("acceleration       {x:.1}x at 100 Mbit/s (full download time / time to play)");
    }
}
