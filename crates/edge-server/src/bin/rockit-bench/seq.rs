//! The sequence benchmark (`rockit-bench seq`): a game ingested with the engine (real zstd
//! stored sizes), training and held-out traces, and the preload of several chunk orders on
//! the held-out traces at 100 Mbit/s. See `docs/SEQUENCE.md`.

use edge_engine::seq::{self, SeqParams};
use edge_engine::store::ChunkStore;
use edge_engine::tree::Tree;
use edge_engine::{Hash, Params};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Options of `rockit-bench seq`.
pub struct Opts<'a> {
    pub game: &'a Path,
    pub traces: &'a Path,
    pub train: usize,
    pub holdout: usize,
    pub mbit: f64,
    pub tree_cache: Option<&'a Path>,
    pub work: &'a Path,
    pub budget: Duration,
    pub max_evals: u64,
    pub verbose: bool,
    pub percentile: f64,
}

/// Ingests `game` as GNU tar would archive it (`tar --sort=name -cf - -C game .`, streamed
/// through a pipe) into a scratch chunk store; returns the tree (stored sizes are the
/// store's real zstd sizes). The store is removed afterwards.
fn ingest(game: &Path, work: &Path) -> Result<Tree, String> {
    let store_dir = work.join("chunks");
    let _ = std::fs::remove_dir_all(&store_dir);
    let store = ChunkStore::open(&store_dir).map_err(|e| e.to_string())?;
    let mut child = Command::new("tar")
        .args(["--sort=name", "--owner=0", "--group=0", "-cf", "-", "-C"])
        .arg(game)
        .arg(".")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("tar: {e}"))?;
    let out = child.stdout.take().ok_or("tar: no stdout")?;
    let r = edge_engine::ingest::ingest(
        std::io::BufReader::with_capacity(1 << 20, out),
        &store,
        &Params::default(),
        &mut |_| {},
    );
    let status = child.wait().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&store_dir);
    let ing = r.map_err(|e| format!("ingest: {e:?}"))?;
    if !status.success() {
        return Err(format!("tar failed: {status}"));
    }
    Ok(ing.tree)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn mb(b: f64) -> String {
    format!("{:.1} MB", b / 1e6)
}

/// Runs the benchmark; prints a table and a JSON summary.
pub fn run(o: &Opts<'_>) -> Result<(), String> {
    std::fs::create_dir_all(o.work).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let tree: Tree = match o.tree_cache.filter(|p| p.exists()) {
        Some(p) => serde_json::from_slice(&std::fs::read(p).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?,
        None => {
            let t = ingest(o.game, o.work)?;
            if let Some(p) = o.tree_cache {
                std::fs::write(p, serde_json::to_vec(&t).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
            }
            t
        }
    };
    let ingest_s = t0.elapsed().as_secs_f64();
    let stream_bytes: u64 = tree.chunks.values().map(|c| c.stored).sum();
    eprintln!(
        "tree: {} files, {} chunks, {:.2} GiB raw, {:.2} GiB stored ({ingest_s:.0} s)",
        tree.file_count(),
        tree.chunks.len(),
        tree.size_bytes() as f64 / (1u64 << 30) as f64,
        stream_bytes as f64 / (1u64 << 30) as f64
    );

    // Traces, in name order: the first `train` for training, the next `holdout` held out.
    let mut names: Vec<_> = std::fs::read_dir(o.traces)
        .map_err(|e| format!("{}: {e}", o.traces.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    if names.len() < o.train + o.holdout {
        return Err(format!(
            "{} traces in {}, need {}",
            names.len(),
            o.traces.display(),
            o.train + o.holdout
        ));
    }
    let mut traces = Vec::new();
    let mut raw = Vec::new();
    for p in &names[..o.train + o.holdout] {
        let data = std::fs::read(p).map_err(|e| e.to_string())?;
        let t = seq::parse_trace(&data).map_err(|e| format!("{}: {e}", p.display()))?;
        traces.push(seq::accesses(&tree, &t));
        raw.push(t);
    }
    let (train, hold) = traces.split_at(o.train);
    let read_bytes =
        |a: &[(u64, Hash)]| a.iter().map(|x| tree.chunks[&x.1].stored).sum::<u64>() as f64;
    let per_trace_read: Vec<f64> = traces.iter().map(|a| read_bytes(a)).collect();
    eprintln!(
        "traces: {} training + {} held out; a session touches {} stored (median) of {} ({:.1} %)",
        o.train,
        o.holdout,
        mb(median(&per_trace_read)),
        mb(stream_bytes as f64),
        100.0 * median(&per_trace_read) / stream_bytes as f64
    );

    let b = seq::mbit_to_bytes_per_s(o.mbit);
    // Orders.
    let mut orders: Vec<(&str, Vec<Hash>)> = vec![("tar", Vec::new())];
    orders.push(("files", file_order(&tree, &raw[..o.train])));
    orders.push(("chunks-edd", edd(train)));
    let params = SeqParams {
        bandwidth_bytes_per_s: b,
        time_budget: o.budget,
        max_evals: o.max_evals,
        percentile: o.percentile,
    };
    let t1 = Instant::now();
    let (ours, stats) = seq::optimize_with_stats(&tree, train, &params);
    let optimize_s = t1.elapsed().as_secs_f64();
    eprintln!(
        "optimize: {:.1} s, {} chunks, {} evaluations, {} moves, candidate {} (p90 {} → {}; archive {}){}",
        optimize_s,
        stats.chunks,
        stats.evals,
        stats.moves,
        stats.candidate,
        mb(stats.candidate_objective as f64),
        mb(stats.objective as f64),
        mb(stats.archive_objective as f64),
        if stats.timed_out { ", stopped by the time budget" } else { "" }
    );
    if o.verbose {
        // What one order could do at best for these held-out traces: optimised on them
        // (in-sample), for their median and their 90th percentile.
        for (name, pct) in [("oracle-p50", 50.0), ("oracle-p90", 90.0)] {
            orders.push((
                name,
                seq::optimize(&tree, hold, &SeqParams { percentile: pct, ..params.clone() }),
            ));
        }
        for (name, q) in [("rank-q25", 4), ("rank-q50", 2)] {
            orders.push((name, seq::rank_order(&tree, train, o.train.div_ceil(q))));
        }
    }
    let order_hash =
        Hash::of(&ours.iter().flat_map(|h| h.0).collect::<Vec<u8>>()).hex()[..16].to_string();
    let tailed = seq::with_tail(&tree, train, &ours);
    orders.push(("optimize", ours));
    orders.push(("optimize+tail", tailed));

    // Held-out preloads per order, and the per-trace bound.
    let bound: Vec<f64> = hold
        .iter()
        .map(|a| {
            let own: Vec<Hash> = a.iter().map(|x| x.1).collect();
            seq::preload_bytes(&seq::layout(&tree, &own), a, b) as f64
        })
        .collect();
    let accel = |p: &[f64]| -> Vec<f64> {
        p.iter().map(|&x| if x > 0.0 { stream_bytes as f64 / x } else { f64::INFINITY }).collect()
    };
    println!(
        "rockit-bench seq: {} at {} Mbit/s, {} held-out traces (training p90 over {})",
        o.game.display(),
        o.mbit,
        o.holdout,
        o.train
    );
    println!(
        "{:<14} {:>14} {:>14} {:>10} {:>10} {:>10} {:>10} {:>14} {:>14}",
        "order",
        "preload med",
        "preload worst",
        "accel med",
        "accel worst",
        "gap med",
        "gap worst",
        "train p90",
        "train med"
    );
    let mut summary = serde_json::Map::new();
    let mut ours_per = Vec::new();
    for (name, order) in &orders {
        let l = seq::layout(&tree, order);
        let per: Vec<f64> = hold.iter().map(|a| seq::preload_bytes(&l, a, b) as f64).collect();
        let train_per: Vec<u64> = train.iter().map(|a| seq::preload_bytes(&l, a, b)).collect();
        let p90 = seq::aggregate(&train_per, 90.0).unwrap_or(0);
        let ac = accel(&per);
        let gap: Vec<f64> = per
            .iter()
            .zip(&bound)
            .map(|(x, y)| {
                if *y > 0.0 {
                    x / y
                } else if *x > 0.0 {
                    f64::INFINITY
                } else {
                    1.0
                }
            })
            .collect();
        println!(
            "{:<14} {:>14} {:>14} {:>9.1}x {:>9.1}x {:>9.2}x {:>9.2}x {:>14} {:>14}",
            name,
            mb(median(&per)),
            mb(max(&per)),
            median(&ac),
            min(&ac),
            median(&gap),
            max(&gap),
            mb(p90 as f64),
            mb(median(&train_per.iter().map(|&x| x as f64).collect::<Vec<_>>()))
        );
        summary.insert(
            name.to_string(),
            json!({"preloadMedian": median(&per), "preloadWorst": max(&per), "accelMedian": median(&ac), "accelWorst": min(&ac),
                   "gapMedian": median(&gap), "gapWorst": max(&gap), "trainP90": p90}),
        );
        if *name == "optimize" {
            ours_per = per;
        }
    }
    let ac = accel(&bound);
    println!(
        "{:<14} {:>14} {:>14} {:>9.1}x {:>9.1}x",
        "bound",
        mb(median(&bound)),
        mb(max(&bound)),
        median(&ac),
        min(&ac)
    );
    summary.insert(
        "bound".into(),
        json!({"preloadMedian": median(&bound), "preloadWorst": max(&bound), "accelMedian": median(&ac), "accelWorst": min(&ac)}),
    );
    println!("per held-out trace (optimize vs bound, MB): {}", {
        let v: Vec<String> = ours_per
            .iter()
            .zip(&bound)
            .map(|(x, y)| format!("{:.0}/{:.0}", x / 1e6, y / 1e6))
            .collect();
        v.join(" ")
    });
    if o.verbose {
        println!("held-out traces under optimize+tail:");
        explain(&tree, &orders[orders.len() - 1].1, train, hold, &raw[o.train..], b);
        println!("training traces under optimize+tail:");
        explain(&tree, &orders[orders.len() - 1].1, train, train, &raw[..o.train], b);
    }
    println!("optimize wall time: {optimize_s:.1} s (sequence {order_hash})");
    println!(
        "{}",
        json!({"streamBytes": stream_bytes, "chunks": tree.chunks.len(), "mbit": o.mbit, "train": o.train, "holdout": o.holdout,
               "optimizeSeconds": optimize_s, "optimizeEvals": stats.evals, "optimizeOrder": order_hash, "orders": summary})
    );
    Ok(())
}

/// Whole files ordered by their earliest first access across `traces` (by path), each
/// file's chunks in file order.
fn file_order(tree: &Tree, traces: &[seq::Trace]) -> Vec<Hash> {
    let mut first: HashMap<&str, u64> = HashMap::new();
    for t in traces {
        let mut seen = vec![false; t.paths.len()];
        for e in &t.events {
            let i = e[1] as usize;
            if !seen[i] {
                seen[i] = true;
                let v = first.entry(t.paths[i].as_str()).or_insert(u64::MAX);
                *v = (*v).min(e[0]);
            }
        }
    }
    let mut files: Vec<(u64, usize)> = tree
        .entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| first.get(e.path.as_str()).map(|&t| (t, i)))
        .collect();
    files.sort_unstable();
    files.iter().flat_map(|&(_, i)| tree.entries[i].chunks.iter().map(|c| c.h)).collect()
}

/// Chunks by their earliest first access across traces.
fn edd(traces: &[Vec<(u64, Hash)>]) -> Vec<Hash> {
    let mut first: HashMap<Hash, (u64, usize)> = HashMap::new();
    let mut n = 0;
    for a in traces {
        for &(t, h) in a {
            let e = first.entry(h).or_insert((u64::MAX, n));
            n += 1;
            e.0 = e.0.min(t);
        }
    }
    let mut v: Vec<((u64, usize), Hash)> = first.into_iter().map(|(h, k)| (k, h)).collect();
    v.sort_unstable();
    v.into_iter().map(|x| x.1).collect()
}

/// For each held-out trace: the access that sets its preload under `order` (time, file,
/// offset, whether training traced that chunk), its preload counting only chunks the
/// training traces read, and how many of its chunks training never read.
fn explain(
    tree: &Tree,
    order: &[Hash],
    train: &[Vec<(u64, Hash)>],
    hold: &[Vec<(u64, Hash)>],
    raw: &[seq::Trace],
    b: f64,
) {
    let traced: std::collections::HashSet<Hash> = train.iter().flatten().map(|a| a.1).collect();
    let mut where_: HashMap<Hash, (String, u64)> = HashMap::new();
    for e in &tree.entries {
        let mut off = 0u64;
        for c in &e.chunks {
            where_.entry(c.h).or_insert_with(|| (e.path.clone(), off));
            off += u64::from(c.len);
        }
    }
    let l = seq::layout(tree, order);
    for (k, (a, _t)) in hold.iter().zip(raw).enumerate() {
        let per_ms = b / 1000.0;
        let mut worst = (f64::MIN, 0u64, Hash([0; 32]));
        for &(t, h) in a {
            let v = l.end(&h).unwrap_or(0) as f64 - t as f64 * per_ms;
            if v > worst.0 {
                worst = (v, t, h);
            }
        }
        let known: Vec<(u64, Hash)> = a.iter().copied().filter(|x| traced.contains(&x.1)).collect();
        let novel = a.len() - known.len();
        let novel_bytes: u64 =
            a.iter().filter(|x| !traced.contains(&x.1)).map(|x| tree.chunks[&x.1].stored).sum();
        let (path, off) = where_.get(&worst.2).cloned().unwrap_or_default();
        println!(
            "  held-out {k:2}: preload {:>8} set at {:>6.1} s by {}@{} ({}); traced-only preload {:>8}; {} novel chunks ({})",
            mb(worst.0.max(0.0)),
            worst.1 as f64 / 1000.0,
            path,
            off,
            if traced.contains(&worst.2) { "traced" } else { "novel" },
            mb(seq::preload_bytes(&l, &known, b) as f64),
            novel,
            mb(novel_bytes as f64)
        );
    }
}
