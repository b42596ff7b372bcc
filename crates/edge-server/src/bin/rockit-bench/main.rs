//! `rockit-bench`: the benchmark harness's helpers (not tests). Generates seeded synthetic
//! game builds, applies build-to-build change scenarios, and measures patch creation with
//! the engine. See `bench/` and `docs/BENCHMARKS.md`.

mod events;
mod gen;

use clap::{Parser, Subcommand};
use edge_engine::store::ChunkStore;
use edge_engine::Params;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "rockit-bench", about = "benchmark helpers for rockit-edge")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generates a synthetic game build of about SIZE bytes (suffixes K, M, G).
    Gen {
        dir: PathBuf,
        #[arg(long, default_value = "2G")]
        size: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Applies a change scenario in place: rename, edits, insert, reorder, newfiles.
    Mutate {
        dir: PathBuf,
        #[arg(long)]
        scenario: String,
        #[arg(long, default_value_t = 2)]
        seed: u64,
    },
    /// Ingests two tars into a fresh chunk store and writes the patch old → new; prints
    /// sizes and times as JSON.
    Patch { old: PathBuf, new: PathBuf, work: PathBuf },
    /// Fans EVENTS events out to RECEIVERS local webhook receivers through an in-process
    /// server; prints delivered throughput and latency.
    Events {
        #[arg(long, default_value_t = 1000)]
        events: usize,
        #[arg(long, default_value_t = 10)]
        receivers: usize,
        /// PostgreSQL URL (default: embedded SQLite).
        #[arg(long)]
        database_url: Option<String>,
    },
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.chars().last() {
        Some('K') | Some('k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') | Some('m') => (&s[..s.len() - 1], 1 << 20),
        Some('G') | Some('g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<f64>().map(|n| (n * mult as f64) as u64).map_err(|_| format!("bad size {s}"))
}

fn main() {
    let cli = Cli::parse();
    let r: Result<(), String> = match cli.cmd {
        Cmd::Gen { dir, size, seed } => parse_size(&size).and_then(|n| {
            let t = Instant::now();
            let files = gen::generate(&dir, n, seed).map_err(|e| e.to_string())?;
            eprintln!("generated {} files, {n} bytes in {:.1}s", files.len(), t.elapsed().as_secs_f64());
            Ok(())
        }),
        Cmd::Mutate { dir, scenario, seed } => gen::mutate(&dir, &scenario, seed).map(|m| eprintln!("{m}")).map_err(|e| e.to_string()),
        Cmd::Patch { old, new, work } => patch(&old, &new, &work),
        Cmd::Events { events, receivers, database_url } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(events::run(events, receivers, database_url))),
    };
    if let Err(e) = r {
        eprintln!("rockit-bench: {e}");
        std::process::exit(1);
    }
}

fn patch(old: &std::path::Path, new: &std::path::Path, work: &std::path::Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(work);
    let store = ChunkStore::open(&work.join("chunks")).map_err(|e| e.to_string())?;
    let p = Params::default();
    let ingest = |path: &std::path::Path| -> Result<edge_engine::ingest::Ingested, String> {
        let f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path).map_err(|e| e.to_string())?);
        edge_engine::ingest::ingest(f, &store, &p, &mut |_| {}).map_err(|e| format!("{e:?}"))
    };
    let t0 = Instant::now();
    let a = ingest(old)?;
    let t_old = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let b = ingest(new)?;
    let t_new = t1.elapsed().as_secs_f64();
    let meta = edge_engine::patch::PatchMeta {
        org_name: "Bench".into(),
        app_name: "Game".into(),
        from_build_id: 1,
        to_build_id: 2,
        from_dxf_name: "dxf-old".into(),
        to_dxf_name: "dxf-new".into(),
        created: "2026-12-01T00:00:00Z".into(),
    };
    let t2 = Instant::now();
    let s = edge_engine::patch::write_patch(&a.tree, &b.tree, &store, &meta, &work.join("patch"), &p).map_err(|e| e.to_string())?;
    let t_patch = t2.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"patchBytes": s.size_bytes, "reused": s.reused, "sent": s.sent, "deltas": s.deltas,
            "ingestOldSeconds": t_old, "ingestNewSeconds": t_new, "mkpatSeconds": t_patch})
    );
    Ok(())
}
