//! `rockit-bench`: the benchmark harness's helpers (not tests). Generates seeded synthetic
//! game builds, applies build-to-build change scenarios, and measures patch creation with
//! the engine; generates structured games and play traces and measures sequence
//! optimisation (`docs/SEQUENCE.md`). See `bench/` and `docs/BENCHMARKS.md`.

mod console;
mod events;
mod game;
mod gen;
mod http;
mod seq;

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
    /// Generates a synthetic game build of about SIZE bytes (suffixes K, M, G). With
    /// `--layout game`: a game with structure (boot, menu, shared assets, levels) and its
    /// description in `DIR.layout.json`, for `traces` and `seq`.
    /// Fetches every console page of an organization holding BUILDS kept builds and TASKS
    /// finished tasks (written straight into the database) ROUNDS times; prints latencies.
    Console {
        #[arg(long, default_value_t = 10)]
        apps: usize,
        #[arg(long, default_value_t = 1000)]
        builds: usize,
        #[arg(long, default_value_t = 10_000)]
        tasks: usize,
        #[arg(long, default_value_t = 50)]
        rounds: usize,
        /// PostgreSQL instead of the embedded SQLite.
        #[arg(long)]
        database_url: Option<String>,
        /// Leaves the data directory (and its SQLite database) behind, to query it after.
        #[arg(long)]
        keep: bool,
    },
    Gen {
        dir: PathBuf,
        #[arg(long, default_value = "2G")]
        size: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// `mix` (the default: a realistic mix of file kinds) or `game`.
        #[arg(long, default_value = "mix")]
        layout: String,
        /// Levels of a `game` layout.
        #[arg(long, default_value_t = 12)]
        levels: usize,
    },
    /// Synthesises COUNT play sessions on a game made by `gen --layout game`, as
    /// `rockit-trace` files `trace-NNNN.json` in OUT.
    Traces {
        #[arg(long)]
        game: PathBuf,
        #[arg(long, default_value_t = 36)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
        /// `en`: every player plays in English (default); `mixed`: players speak the
        /// layout's five languages in its shares (text, fonts and voice per language).
        #[arg(long, default_value = "en")]
        languages: String,
        /// Share of first sessions: new players go through first-run settings and the
        /// intro, then start the campaign's first level; the others pick a level (Zipf)
        /// right after the menu.
        #[arg(long, default_value_t = 0.8)]
        new_players: f64,
    },
    /// Ingests a game, trains a sequence on the first TRAIN traces and reports the preload
    /// of tar order, per-file first-access order, chunk first-access order, `optimize` and
    /// the per-trace bound on the next HOLDOUT traces.
    Seq {
        #[arg(long)]
        game: PathBuf,
        #[arg(long)]
        traces: PathBuf,
        #[arg(long, default_value_t = 24)]
        train: usize,
        #[arg(long, default_value_t = 12)]
        holdout: usize,
        /// Bandwidth, Mbit/s.
        #[arg(long, default_value_t = 100.0)]
        mbit: f64,
        /// Caches the ingested tree (JSON) here: read when present, written otherwise.
        #[arg(long)]
        tree: Option<PathBuf>,
        /// Scratch directory for the chunk store (default: a temporary one).
        #[arg(long)]
        work: Option<PathBuf>,
        /// Optimiser time budget, seconds.
        #[arg(long, default_value_t = 55.0)]
        budget: f64,
        /// Optimiser evaluation budget (deterministic).
        #[arg(long, default_value_t = edge_engine::seq::SeqParams::default().max_evals)]
        max_evals: u64,
        /// Explains each held-out trace's preload under `optimize`.
        #[arg(long)]
        verbose: bool,
        /// The percentile of training preload `optimize` minimises.
        #[arg(long, default_value_t = 90.0)]
        percentile: f64,
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
    /// sizes and times as JSON. With `--also`, patches from more older builds follow, as an
    /// import makes them (the new build's file hashes kept from one to the next, unless
    /// `--no-reuse`).
    Patch {
        old: PathBuf,
        new: PathBuf,
        work: PathBuf,
        /// More older builds (tars), patched to NEW after OLD, in this order.
        #[arg(long)]
        also: Vec<PathBuf>,
        /// Work every patch out from scratch (the new build's file hashes not kept).
        #[arg(long)]
        no_reuse: bool,
    },
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
        Cmd::Gen { dir, size, seed, layout, levels } => parse_size(&size).and_then(|n| {
            let t = Instant::now();
            match layout.as_str() {
                "mix" => {
                    let files = gen::generate(&dir, n, seed).map_err(|e| e.to_string())?;
                    eprintln!(
                        "generated {} files, {n} bytes in {:.1}s",
                        files.len(),
                        t.elapsed().as_secs_f64()
                    );
                }
                "game" => {
                    let g =
                        game::generate(&dir, n, seed, levels.max(1)).map_err(|e| e.to_string())?;
                    eprintln!(
                        "generated a game of {} files, {} bytes, {} levels in {:.1}s; layout in {}",
                        g.files.len(),
                        g.size_bytes,
                        g.levels.len(),
                        t.elapsed().as_secs_f64(),
                        game::layout_path(&dir).display()
                    );
                }
                other => return Err(format!("unknown layout {other} (mix or game)")),
            }
            Ok(())
        }),
        Cmd::Traces { game, count, seed, out, languages, new_players } => {
            match languages.as_str() {
                "en" | "mixed" => traces(
                    &game,
                    count,
                    seed,
                    &out,
                    languages == "mixed",
                    new_players.clamp(0.0, 1.0),
                ),
                other => Err(format!("unknown languages {other} (en or mixed)")),
            }
        }
        Cmd::Seq {
            game,
            traces,
            train,
            holdout,
            mbit,
            tree,
            work,
            budget,
            max_evals,
            verbose,
            percentile,
        } => {
            let tmp = work.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("rockit-bench-seq-{}", std::process::id()))
            });
            let r = seq::run(&seq::Opts {
                game: &game,
                traces: &traces,
                train,
                holdout,
                mbit,
                tree_cache: tree.as_deref(),
                work: &tmp,
                budget: std::time::Duration::from_secs_f64(budget),
                max_evals,
                verbose,
                percentile,
            });
            let _ = std::fs::remove_dir_all(&tmp);
            r
        }
        Cmd::Mutate { dir, scenario, seed } => {
            gen::mutate(&dir, &scenario, seed).map(|m| eprintln!("{m}")).map_err(|e| e.to_string())
        }
        Cmd::Patch { old, new, work, also, no_reuse } => patch(&old, &new, &work, &also, !no_reuse),
        Cmd::Console { apps, builds, tasks, rounds, database_url, keep } => {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| {
                    rt.block_on(console::run(console::Opts {
                        apps,
                        builds,
                        tasks,
                        rounds,
                        database_url,
                        keep,
                    }))
                })
        }
        Cmd::Events { events, receivers, database_url } => {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(events::run(events, receivers, database_url)))
        }
    };
    if let Err(e) = r {
        eprintln!("rockit-bench: {e}");
        std::process::exit(1);
    }
}

fn traces(
    game: &std::path::Path,
    count: u64,
    seed: u64,
    out: &std::path::Path,
    mixed: bool,
    new_players: f64,
) -> Result<(), String> {
    let g = game::read_layout(game).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let (mut events, mut bytes, mut last) = (0usize, 0u64, 0u64);
    for k in 0..count {
        let t = game::session(&g, seed, k, mixed, new_players);
        t.validate().map_err(|e| e.to_string())?;
        events += t.events.len();
        bytes += t.events.iter().map(|e| e[3]).sum::<u64>();
        last += t.events.last().map_or(0, |e| e[0]);
        std::fs::write(out.join(format!("trace-{k:04}.json")), t.to_json())
            .map_err(|e| e.to_string())?;
    }
    let n = count.max(1);
    eprintln!(
        "{count} traces in {}: {} events, {:.0} MB read, {:.0} s long on average (game {:.0} MB)",
        out.display(),
        events as u64 / n,
        bytes as f64 / n as f64 / 1e6,
        last as f64 / n as f64 / 1000.0,
        g.size_bytes as f64 / 1e6
    );
    Ok(())
}

fn patch(
    old: &std::path::Path,
    new: &std::path::Path,
    work: &std::path::Path,
    also: &[PathBuf],
    reuse: bool,
) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(work);
    let store = ChunkStore::open(&work.join("chunks")).map_err(|e| e.to_string())?;
    let p = Params::default();
    let ingest = |path: &std::path::Path| -> Result<edge_engine::ingest::Ingested, String> {
        let f = std::io::BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(path).map_err(|e| e.to_string())?,
        );
        edge_engine::ingest::ingest(f, &store, &p, &mut |_| {}).map_err(|e| format!("{e:?}"))
    };
    let t0 = Instant::now();
    let a = ingest(old)?;
    let t_old = t0.elapsed().as_secs_f64();
    let older = also.iter().map(|o| ingest(o)).collect::<Result<Vec<_>, _>>()?;
    let t1 = Instant::now();
    let b = ingest(new)?;
    let t_new = t1.elapsed().as_secs_f64();
    let known = edge_engine::patch::FileHashes::default();
    let mut runs = Vec::new();
    for (k, from) in std::iter::once(&a).chain(&older).enumerate() {
        let meta = edge_engine::patch::PatchMeta {
            org_name: "Bench".into(),
            app_name: "Game".into(),
            from_build_id: k as u64 + 1,
            to_build_id: 100,
            from_dxf_name: format!("dxf-old-{k}"),
            to_dxf_name: "dxf-new".into(),
            created: "2026-12-01T00:00:00Z".into(),
        };
        let fresh = edge_engine::patch::FileHashes::default();
        let t2 = Instant::now();
        let s = edge_engine::patch::write_patch(
            &from.tree,
            &b.tree,
            &store,
            &meta,
            &work.join(format!("patch-{k}")),
            &p,
            if reuse { &known } else { &fresh },
            &Default::default(),
        )
        .map_err(|e| e.to_string())?;
        runs.push((s, t2.elapsed().as_secs_f64()));
    }
    let (s, t_patch) = &runs[0];
    let mut out = serde_json::json!({"patchBytes": s.size_bytes, "reused": s.reused, "sent": s.sent, "deltas": s.deltas,
        "ingestOldSeconds": t_old, "ingestNewSeconds": t_new, "mkpatSeconds": t_patch});
    if runs.len() > 1 {
        out["patches"] = runs
            .iter()
            .map(|(s, t)| serde_json::json!({"patchBytes": s.size_bytes, "seconds": t}))
            .collect();
        out["allPatchesSeconds"] = runs.iter().map(|r| r.1).sum::<f64>().into();
    }
    println!("{out}");
    Ok(())
}
