//! The preload model of the formats spec ("Preload, time-to-play, acceleration"), exactly:
//!
//! A launcher downloads the stream (the packs in order) at `B` bytes/s; a chunk is
//! available once every byte up to its end in the stream has arrived, at `end(c) / B`. For
//! a trace, the game may start at the earliest `S ≥ 0` such that every access (at game
//! time `t`) finds its chunk available by `S + t`:
//!
//! `S = max(0, max over accesses (end(c) / B − t))`, preload = `S · B`,
//! acceleration = (total stream bytes / `B`) / `S` = total / preload.
//!
//! Traces are mapped onto a build by path ([`accesses`]), so a trace recorded on one build
//! applies to any later build that still has those files.

use crate::image::stream_order;
use crate::tree::{Kind, Tree};
use crate::Hash;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

use super::Trace;

/// The bandwidths of the published `preload` figures, Mbit/s (keys "10", "100", "1000").
pub const PRELOAD_MBITS: [u64; 3] = [10, 100, 1000];
/// The percentile of per-trace preload that the figures and the training aggregate use.
pub const PRELOAD_PERCENTILE: f64 = 90.0;

/// Mbit/s → bytes/s (`Mbit · 10⁶ / 8`).
pub fn mbit_to_bytes_per_s(mbit: f64) -> f64 {
    mbit * 1e6 / 8.0
}

/// A trace mapped onto `tree` by path: for every event, the chunks of that file overlapping
/// `[offset, offset + length)` (clipped to the file's size), each chunk kept once at its
/// *first* access time, sorted by time (ties: in the order the trace first touched them).
/// Events wholly beyond the file's end, paths the tree lacks and paths that are not
/// regular files are dropped: this is how traces carry over to later builds.
pub fn accesses(tree: &Tree, trace: &Trace) -> Vec<(u64, Hash)> {
    let by_path: HashMap<&str, usize> = tree
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == Kind::File)
        .map(|(i, e)| (e.path.as_str(), i))
        .collect();
    // For each trace path: the entry and its chunks' cumulative end offsets.
    let files: Vec<Option<(usize, Vec<u64>)>> = trace
        .paths
        .iter()
        .map(|p| {
            by_path.get(p.as_str()).map(|&i| {
                let mut end = 0u64;
                (
                    i,
                    tree.entries[i]
                        .chunks
                        .iter()
                        .map(|c| {
                            end += u64::from(c.len);
                            end
                        })
                        .collect(),
                )
            })
        })
        .collect();
    let mut seen: HashSet<Hash> = HashSet::new();
    let mut out = Vec::new();
    for &[t, p, off, len] in &trace.events {
        let Some(Some((i, ends))) = usize::try_from(p).ok().and_then(|p| files.get(p)) else {
            continue;
        };
        let e = &tree.entries[*i];
        if off >= e.size || len == 0 {
            continue;
        }
        let stop = off.saturating_add(len).min(e.size);
        // The first chunk ending after `off`, then on while chunks start before `stop`.
        let mut k = ends.partition_point(|&x| x <= off);
        while k < ends.len() {
            let start = if k == 0 { 0 } else { ends[k - 1] };
            if start >= stop {
                break;
            }
            let h = e.chunks[k].h;
            if seen.insert(h) {
                out.push((t, h));
            }
            k += 1;
        }
    }
    // Validated traces are in time order already; a stable sort keeps first-touch order.
    out.sort_by_key(|a| a.0);
    out
}

/// Where every chunk ends in the stream of one order.
#[derive(Debug, Clone)]
pub struct Layout {
    end: HashMap<Hash, u64>,
    /// Bytes of the whole stream (all packs).
    pub total_bytes: u64,
}

impl Layout {
    /// Stream offset just past the chunk, when the build has it.
    pub fn end(&self, h: &Hash) -> Option<u64> {
        self.end.get(h).copied()
    }
}

/// The stream of `tree` in `order` (a sequence: completed with [`stream_order`], so a
/// partial sequence or a full stream order both work), with stored sizes.
pub fn layout(tree: &Tree, order: &[Hash]) -> Layout {
    let order = stream_order(tree, order);
    let mut end = HashMap::with_capacity(order.len());
    let mut at = 0u64;
    for h in &order {
        at += tree.chunks[h].stored;
        end.insert(*h, at);
    }
    Layout { end, total_bytes: at }
}

/// Time-to-play `S` in milliseconds: the smallest `S ≥ 0` with `end(c) / B ≤ S + t` for
/// every access `(t ms, c)`. Chunks not in the layout are ignored.
pub fn start_ms(layout: &Layout, acc: &[(u64, Hash)], bytes_per_s: f64) -> f64 {
    let mut s = 0f64;
    for (t, h) in acc {
        if let Some(e) = layout.end(h) {
            s = s.max(e as f64 / bytes_per_s * 1000.0 - *t as f64);
        }
    }
    s
}

/// Preload `S · B` in bytes: `max(0, max(end(c) − t · B))`, rounded up to a whole byte.
pub fn preload_bytes(layout: &Layout, acc: &[(u64, Hash)], bytes_per_s: f64) -> u64 {
    let per_ms = bytes_per_s / 1000.0;
    let mut p = 0f64;
    for (t, h) in acc {
        if let Some(e) = layout.end(h) {
            p = p.max(e as f64 - *t as f64 * per_ms);
        }
    }
    whole_bytes(p)
}

/// Rounds a byte count up, ignoring floating-point noise below a millionth of a byte.
pub(crate) fn whole_bytes(p: f64) -> u64 {
    let r = p.round();
    if (p - r).abs() < 1e-6 {
        r as u64
    } else {
        p.ceil() as u64
    }
}

/// The `pct`-th percentile of `values` by the nearest-rank method: sorted ascending, the
/// value at rank `⌈pct/100 · n⌉` (1-based, at least 1). `aggregate(v, 90.0)` of 24 traces is
/// the 22nd smallest: the two worst traces cannot move it. `None` for no values.
pub fn aggregate<T: Copy + PartialOrd>(values: &[T], pct: f64) -> Option<T> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Some(v[rank(v.len(), pct) - 1])
}

/// The nearest rank (1-based) of the `pct`-th percentile among `n ≥ 1` values.
pub(crate) fn rank(n: usize, pct: f64) -> usize {
    ((pct / 100.0 * n as f64 - 1e-9).ceil().max(1.0) as usize).min(n)
}

/// The acceleration for a preload at some bandwidth: full-download time / `S` = total
/// stream bytes / preload bytes (the bandwidth cancels). `None` when the preload is 0.
pub fn acceleration(layout: &Layout, preload_bytes: u64) -> Option<f64> {
    (preload_bytes > 0).then(|| layout.total_bytes as f64 / preload_bytes as f64)
}

/// The image's `preload` figures: `{"10": B, "100": B, "1000": B}` (Mbit/s → bytes), each
/// the 90th percentile ([`aggregate`]) of per-trace preload with the chunks in `order`;
/// `null` without traces.
pub fn preload_figures(tree: &Tree, order: &[Hash], traces: &[Vec<(u64, Hash)>]) -> Value {
    preload_figures_at(&layout(tree, order), traces, PRELOAD_PERCENTILE)
}

/// [`preload_figures`] for a layout already made and any percentile.
pub fn preload_figures_at(layout: &Layout, traces: &[Vec<(u64, Hash)>], pct: f64) -> Value {
    if traces.is_empty() {
        return Value::Null;
    }
    let mut out = serde_json::Map::new();
    for mbit in PRELOAD_MBITS {
        let b = mbit_to_bytes_per_s(mbit as f64);
        let per: Vec<u64> = traces.iter().map(|a| preload_bytes(layout, a, b)).collect();
        out.insert(mbit.to_string(), json!(aggregate(&per, pct).unwrap_or(0)));
    }
    Value::Object(out)
}
