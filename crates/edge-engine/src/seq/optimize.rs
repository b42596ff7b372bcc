//! The sequence optimiser: the chunk order that minimises the `percentile`-th percentile
//! (default 90th) of per-trace preload over training traces at one bandwidth (default
//! 100 Mbit/s), evaluated with the exact model of [`model`](super::model). Orders of
//! equal percentile are told apart by the median preload, then by the sum over traces, then
//! by the sum over traces of where each one's last chunk ends in the stream (its preload on
//! a link too slow to stream anything while it plays). That last tie-break matters when the
//! objective's bandwidth streams everything in time: orders then tie, and it puts what many
//! players read before what few do, which keeps the image good on slower links.
//!
//! The tool throughout is *EDD by allowance*: give each trace `j` an allowance `A_j`
//! (bytes it may need before start) and order chunks by the deadline
//! `min over readers j (t_j · B + A_j)`. For fixed allowances this order meets them all
//! whenever any order can (earliest-deadline-first is optimal for maximum lateness), so a
//! search over allowances is a search over the orders worth having.
//!
//! 1. **Candidates.** All allowances 0 (plain EDD: optimal for the worst trace and, for a
//!    single trace, exactly first-access order); orders by the r-th earliest first access
//!    for ranks tied to the percentile, the quartile and the median; EDD after greedily
//!    excluding (allowance ∞) the traces the percentile may ignore, each time the one
//!    whose exclusion helps most; and the traced chunks in archive order (so the result is
//!    never worse than tar order). The best by the objective is kept.
//! 2. **Median tier.** Every trace keeps its preload as its allowance (the percentile
//!    cannot grow); a set of traces, shrunk greedily from the percentile's down to the
//!    median's rank, gets the smallest common allowance EDD still meets (binary search).
//! 3. **Local search**: the order is cut into blocks (runs of chunks read by the same set
//!    of traces, bounded in bytes); each block is tried at positions 1, 2, 4, … blocks
//!    earlier and later and at both ends, and the best improving move is kept. Passes
//!    repeat until none improves, then blocks are halved, down to single chunks.
//!
//! Every evaluation is exact. The search is deterministic for identical input; it stops
//! at `max_evals` evaluations, or earlier at `time_budget` (only then can the result
//! depend on the machine's speed).

use super::model::{rank, whole_bytes};
use crate::tree::Tree;
use crate::Hash;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Optimiser settings.
#[derive(Debug, Clone)]
pub struct SeqParams {
    /// Bandwidth the objective is evaluated at, bytes/s (default 100 Mbit/s = 12.5 MB/s).
    pub bandwidth_bytes_per_s: f64,
    /// Percentile of per-trace preload minimised (nearest rank; default 90).
    pub percentile: f64,
    /// Wall-clock cap on the search (default 30 s).
    pub time_budget: Duration,
    /// Deterministic cap on exact evaluations of the objective (default 60,000).
    pub max_evals: u64,
}

impl Default for SeqParams {
    fn default() -> Self {
        SeqParams {
            bandwidth_bytes_per_s: super::mbit_to_bytes_per_s(100.0),
            percentile: super::PRELOAD_PERCENTILE,
            time_budget: Duration::from_secs(30),
            max_evals: 60_000,
        }
    }
}

/// What the optimiser did.
#[derive(Debug, Clone, Default)]
pub struct SeqStats {
    /// Training traces.
    pub traces: usize,
    /// Distinct traced chunks (the sequence's length).
    pub chunks: usize,
    /// Objective (percentile preload, bytes) of the traced chunks in archive order.
    pub archive_objective: u64,
    /// Objective of the best candidate, before local search.
    pub candidate_objective: u64,
    /// Which candidate that was.
    pub candidate: String,
    /// Final objective (percentile preload, bytes).
    pub objective: u64,
    /// Sum of per-trace preloads of the final order, bytes.
    pub sum: u64,
    /// Exact evaluations made.
    pub evals: u64,
    /// Improving moves accepted.
    pub moves: u64,
    /// True when `time_budget` stopped the search before `max_evals` or convergence.
    pub timed_out: bool,
    /// Wall time.
    pub seconds: f64,
}

/// The chunk sequence minimising the `p.percentile`-th percentile of per-trace preload over
/// `training` (each a trace mapped by [`accesses`](super::accesses)) at
/// `p.bandwidth_bytes_per_s`. Only traced chunks are in it: [`stream_order`](crate::image::stream_order)
/// appends the rest in archive order. For one trace the result is its first-access order.
pub fn optimize(tree: &Tree, training: &[Vec<(u64, Hash)>], p: &SeqParams) -> Vec<Hash> {
    optimize_with_stats(tree, training, p).0
}

/// [`optimize`], with what it did.
pub fn optimize_with_stats(
    tree: &Tree,
    training: &[Vec<(u64, Hash)>],
    p: &SeqParams,
) -> (Vec<Hash>, SeqStats) {
    let started = Instant::now();
    let pb = Problem::new(tree, training, p.bandwidth_bytes_per_s);
    let mut stats =
        SeqStats { traces: pb.n_traces(), chunks: pb.hashes.len(), ..SeqStats::default() };
    if pb.hashes.is_empty() || pb.n_traces() == 0 {
        stats.seconds = started.elapsed().as_secs_f64();
        return (Vec::new(), stats);
    }
    let mut s = Search::new(&pb, p, started);
    // Candidates; the first of equal objective wins, EDD first.
    let mut cands: Vec<(String, Vec<u32>)> = vec![("edd".into(), pb.order_by_rank(1))];
    let n = pb.n_traces();
    let keep = rank(n, p.percentile);
    let mut ranks = vec![n - keep + 1, n.div_ceil(4), n.div_ceil(2)];
    ranks.retain(|&r| r > 1);
    ranks.dedup();
    for r in ranks {
        if !cands.iter().any(|(name, _)| name == &format!("rank{r}")) {
            cands.push((format!("rank{r}"), pb.order_by_rank(r)));
        }
    }
    let arch = pb.archive_order();
    let (arch_obj, _) = s.eval(&arch);
    stats.archive_objective = whole_bytes(arch_obj.p);
    let mut best: Option<(Obj, String, Vec<u32>)> = None;
    let consider =
        |obj: Obj, name: String, order: Vec<u32>, best: &mut Option<(Obj, String, Vec<u32>)>| {
            if best.as_ref().is_none_or(|b| obj.better(&b.0)) {
                *best = Some((obj, name, order));
            }
        };
    for (name, order) in cands {
        let (obj, _) = s.eval(&order);
        consider(obj, name, order, &mut best);
    }
    if n > keep {
        let (obj, order, _) = s.greedy_exclusion(n - keep);
        consider(obj, "edd-excluding".into(), order, &mut best);
    }
    consider(arch_obj, "archive".into(), arch, &mut best);
    let (mut obj, mut name, mut order) = best.expect("at least one candidate");
    if let Some((o, better)) = s.tighten_median(&order, obj) {
        (obj, order) = (o, better);
        name.push_str("+median");
    }
    stats.candidate_objective = whole_bytes(obj.p);
    stats.candidate = name;
    let (order, obj) = s.local_search(order, obj);
    stats.objective = whole_bytes(obj.p);
    stats.sum = whole_bytes(obj.sum);
    stats.evals = s.evals;
    stats.moves = s.moves;
    stats.timed_out = s.timed_out;
    stats.seconds = started.elapsed().as_secs_f64();
    (order.iter().map(|&c| pb.hashes[c as usize]).collect(), stats)
}

/// The traced chunks ordered by their `r`-th earliest first-access time across `training`
/// (`r = 1`: the earliest, EDD); chunks read by fewer than `r` traces go after, by their
/// earliest. One of the optimiser's starting points, public for benchmarks.
pub fn rank_order(tree: &Tree, training: &[Vec<(u64, Hash)>], r: usize) -> Vec<Hash> {
    let pb = Problem::new(tree, training, 1000.0);
    pb.order_by_rank(r.max(1)).iter().map(|&c| pb.hashes[c as usize]).collect()
}

/// The objective of one order, compared in this order: the percentile preload, the median
/// preload, the sum of preloads over traces, the sum over traces of where each one's last
/// chunk ends (bytes).
#[derive(Debug, Clone, Copy)]
struct Obj {
    p: f64,
    mid: f64,
    sum: f64,
    reach: f64,
}

impl Obj {
    fn better(&self, o: &Obj) -> bool {
        (self.p, self.mid, self.sum, self.reach).partial_cmp(&(o.p, o.mid, o.sum, o.reach))
            == Some(std::cmp::Ordering::Less)
    }
}

/// The training traces over dense chunk ids.
struct Problem {
    /// Chunk id → hash; ids in order of first sight (trace by trace, access by access).
    hashes: Vec<Hash>,
    /// Stored size per chunk.
    size: Vec<u64>,
    /// Archive (first-use) rank per chunk.
    arch: Vec<u32>,
    /// All accesses, trace after trace: deadline (bytes: t · B) and chunk.
    deadline: Vec<f64>,
    chunk: Vec<u32>,
    /// Trace `j`'s accesses are `start[j]..start[j + 1]`.
    start: Vec<usize>,
    /// Per chunk: (first-access time in ms, trace) for every trace reading it, by time.
    first: Vec<Vec<(u64, u32)>>,
    /// Bytes streamed per millisecond.
    per_ms: f64,
}

impl Problem {
    fn new(tree: &Tree, training: &[Vec<(u64, Hash)>], bytes_per_s: f64) -> Problem {
        let per_ms = bytes_per_s / 1000.0;
        let mut id: HashMap<Hash, u32> = HashMap::new();
        let mut pb = Problem {
            hashes: Vec::new(),
            size: Vec::new(),
            arch: Vec::new(),
            deadline: Vec::new(),
            chunk: Vec::new(),
            start: vec![0],
            first: Vec::new(),
            per_ms,
        };
        for (j, acc) in training.iter().enumerate() {
            for &(t, h) in acc {
                let Some(info) = tree.chunks.get(&h) else { continue };
                let c = *id.entry(h).or_insert_with(|| {
                    pb.hashes.push(h);
                    pb.size.push(info.stored);
                    pb.first.push(Vec::new());
                    (pb.hashes.len() - 1) as u32
                });
                let first = &mut pb.first[c as usize];
                match first.last_mut() {
                    // Already read by this trace: keep the earliest time.
                    Some(last) if last.1 == j as u32 => last.0 = last.0.min(t),
                    _ => first.push((t, j as u32)),
                }
                pb.deadline.push(t as f64 * per_ms);
                pb.chunk.push(c);
            }
            pb.start.push(pb.chunk.len());
        }
        for f in &mut pb.first {
            f.sort_unstable();
        }
        let mut arch = vec![u32::MAX; pb.hashes.len()];
        for (r, h) in tree.chunk_order().iter().enumerate() {
            if let Some(&c) = id.get(h) {
                arch[c as usize] = r as u32;
            }
        }
        pb.arch = arch;
        pb
    }

    fn n_traces(&self) -> usize {
        self.start.len() - 1
    }

    /// Chunks by their `r`-th earliest first-access time (1-based; fewer readers: after,
    /// by the earliest), ties by id.
    fn order_by_rank(&self, r: usize) -> Vec<u32> {
        let key = |c: usize| {
            let f = &self.first[c];
            (f.get(r - 1).map_or(u64::MAX, |x| x.0), f[0].0)
        };
        let mut o: Vec<u32> = (0..self.hashes.len() as u32).collect();
        o.sort_by_key(|&c| (key(c as usize), c));
        o
    }

    /// Earliest-deadline-first where trace `j` may start `allow[j]` bytes late: chunk `c`'s
    /// deadline is `min over its readers j (t · B + allow[j])`. For fixed allowances this
    /// order meets them all whenever any order does. Chunks read only by traces with an
    /// infinite allowance go after, by their earliest read; ties by id.
    fn order_by_allowance(&self, allow: &[f64]) -> Vec<u32> {
        let mut keyed: Vec<(f64, u64, u32)> = (0..self.hashes.len())
            .map(|c| {
                let f = &self.first[c];
                let d = f
                    .iter()
                    .map(|&(t, j)| t as f64 * self.per_ms + allow[j as usize])
                    .fold(f64::INFINITY, f64::min);
                (d, f[0].0, c as u32)
            })
            .collect();
        keyed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        keyed.into_iter().map(|k| k.2).collect()
    }

    /// Traced chunks in archive order.
    fn archive_order(&self) -> Vec<u32> {
        let mut o: Vec<u32> = (0..self.hashes.len() as u32).collect();
        o.sort_by_key(|&c| (self.arch[c as usize], c));
        o
    }
}

/// Evaluation state and budget.
struct Search<'a> {
    pb: &'a Problem,
    /// Nearest ranks of the percentile and of the median.
    keep: usize,
    mid: usize,
    max_evals: u64,
    deadline: Instant,
    evals: u64,
    moves: u64,
    timed_out: bool,
    end: Vec<u64>,
    per: Vec<f64>,
    scratch: Vec<f64>,
}

impl<'a> Search<'a> {
    fn new(pb: &'a Problem, p: &SeqParams, started: Instant) -> Search<'a> {
        Search {
            pb,
            keep: rank(pb.n_traces(), p.percentile),
            mid: rank(pb.n_traces(), 50.0),
            max_evals: p.max_evals,
            deadline: started + p.time_budget,
            evals: 0,
            moves: 0,
            timed_out: false,
            end: vec![0; pb.hashes.len()],
            per: vec![0.0; pb.n_traces()],
            scratch: Vec::with_capacity(pb.n_traces()),
        }
    }

    /// True while the budget allows another evaluation.
    fn can_eval(&mut self) -> bool {
        if self.evals >= self.max_evals {
            return false;
        }
        if self.evals.is_multiple_of(32) && Instant::now() >= self.deadline {
            self.timed_out = true;
        }
        !self.timed_out
    }

    /// The exact objective of an order of every traced chunk; also leaves per-trace
    /// preloads in `self.per`.
    fn eval(&mut self, order: &[u32]) -> (Obj, &[f64]) {
        self.evals += 1;
        let pb = self.pb;
        let mut at = 0u64;
        for &c in order {
            at += pb.size[c as usize];
            self.end[c as usize] = at;
        }
        let (mut sum, mut reach) = (0.0, 0u64);
        for j in 0..pb.n_traces() {
            let (mut p, mut last) = (0f64, 0u64);
            let (a, b) = (pb.start[j], pb.start[j + 1]);
            for (d, c) in pb.deadline[a..b].iter().zip(&pb.chunk[a..b]) {
                let end = self.end[*c as usize];
                let v = end as f64 - d;
                if v > p {
                    p = v;
                }
                last = last.max(end);
            }
            self.per[j] = p;
            sum += p;
            reach += last;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.per);
        self.scratch.sort_unstable_by(|a, b| a.total_cmp(b));
        let obj = Obj {
            p: self.scratch[self.keep - 1],
            mid: self.scratch[self.mid - 1],
            sum,
            reach: reach as f64,
        };
        (obj, &self.per)
    }

    /// Excludes `count` traces one at a time, each time the one (among the currently
    /// worst few) whose exclusion gives the best EDD order over the rest; returns the best
    /// order met and its allowances (0 for the traces served, infinite for the excluded).
    fn greedy_exclusion(&mut self, count: usize) -> (Obj, Vec<u32>, Vec<f64>) {
        let n = self.pb.n_traces();
        let mut allow = vec![0.0; n];
        let order = self.pb.order_by_allowance(&allow);
        let (obj, per) = self.eval(&order);
        let mut per = per.to_vec();
        let mut best = (obj, order, allow.clone());
        for _ in 0..count {
            let mut cand: Vec<usize> = (0..n).filter(|&j| allow[j] == 0.0).collect();
            cand.sort_by(|&a, &b| per[b].total_cmp(&per[a]).then(a.cmp(&b)));
            cand.truncate(8);
            let mut step: Option<(Obj, usize, Vec<u32>, Vec<f64>)> = None;
            for j in cand {
                if !self.can_eval() {
                    break;
                }
                allow[j] = f64::INFINITY;
                let order = self.pb.order_by_allowance(&allow);
                allow[j] = 0.0;
                let (obj, p) = self.eval(&order);
                if step.as_ref().is_none_or(|s| obj.better(&s.0)) {
                    step = Some((obj, j, order, p.to_vec()));
                }
            }
            let Some((obj, j, order, p)) = step else { break };
            allow[j] = f64::INFINITY;
            per = p;
            if obj.better(&best.0) {
                best = (obj, order, allow.clone());
            }
        }
        best
    }

    /// Serves a median tier better without losing the percentile. Every trace keeps its
    /// current preload as its allowance (so the percentile cannot grow); a set `J` of
    /// traces gets the smallest common allowance `V(J)` that EDD by allowance still meets
    /// (binary search). `J` starts as the percentile's traces and sheds, one at a time, the
    /// trace whose removal lowers `V` most, down to the median's rank. Returns the best
    /// order met when it beats `obj`.
    fn tighten_median(&mut self, order: &[u32], obj: Obj) -> Option<(Obj, Vec<u32>)> {
        let n = self.pb.n_traces();
        let (_, per) = self.eval(order);
        let per = per.to_vec();
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_by(|&a, &b| per[a].total_cmp(&per[b]).then(a.cmp(&b)));
        // The percentile's traces keep their preload (plus a byte: floating point).
        let mut base = vec![f64::INFINITY; n];
        for &j in &idx[..self.keep] {
            base[j] = per[j] + 1.0;
        }
        let mut members: Vec<usize> = idx[..self.keep].to_vec();
        members.sort_unstable();
        let mut best: Option<(Obj, Vec<u32>)> = None;
        let Some((_, mut cur_per)) = self.common_allowance(&base, &members, &mut best, obj) else {
            return best;
        };
        while members.len() > self.mid && self.can_eval() {
            let mut cand: Vec<usize> = members.clone();
            cand.sort_by(|&a, &b| cur_per[b].total_cmp(&cur_per[a]).then(a.cmp(&b)));
            cand.truncate(6);
            let mut step: Option<(f64, usize, Vec<f64>)> = None;
            for j in cand {
                let rest: Vec<usize> = members.iter().copied().filter(|&m| m != j).collect();
                if let Some((w, p)) = self.common_allowance(&base, &rest, &mut best, obj) {
                    if step.as_ref().is_none_or(|s| w < s.0) {
                        step = Some((w, j, p));
                    }
                }
            }
            let Some((_, j, p)) = step else { break };
            members.retain(|&m| m != j);
            cur_per = p;
        }
        best
    }

    /// The smallest common allowance (±0.1 %) the traces `members` can all get on top of
    /// `base`, by binary search over EDD-by-allowance orders; with the per-trace preloads
    /// of that order. Every feasible order met updates `best` when it beats `obj` and it.
    fn common_allowance(
        &mut self,
        base: &[f64],
        members: &[usize],
        best: &mut Option<(Obj, Vec<u32>)>,
        obj: Obj,
    ) -> Option<(f64, Vec<f64>)> {
        let n = base.len();
        let mut hi = members.iter().map(|&j| base[j]).fold(0.0, f64::max);
        let mut lo = 0.0f64;
        let mut found: Option<(f64, Vec<f64>)> = None;
        let mut allow = base.to_vec();
        loop {
            if !self.can_eval() {
                return found;
            }
            let v = if found.is_none() { hi } else { (lo + hi) / 2.0 };
            for &j in members {
                allow[j] = base[j].min(v);
            }
            let o = self.pb.order_by_allowance(&allow);
            let (ob, p) = self.eval(&o);
            if (0..n).all(|j| p[j] <= allow[j] + 1.0) {
                hi = v;
                found = Some((v, p.to_vec()));
                if ob.better(best.as_ref().map_or(&obj, |b| &b.0)) {
                    *best = Some((ob, o));
                }
            } else if found.is_none() {
                return None;
            } else {
                lo = v;
            }
            if hi - lo <= (hi * 1e-3).max(4096.0) {
                return found;
            }
        }
    }

    /// Block moves from `order` (objective `obj`) until no move improves, halving blocks
    /// then, within the budget.
    fn local_search(&mut self, order: Vec<u32>, mut obj: Obj) -> (Vec<u32>, Obj) {
        let pb = self.pb;
        let total: u64 = order.iter().map(|&c| pb.size[c as usize]).sum();
        let mut limit = (total / 64).max(1);
        let sig = self.signatures();
        let mut blocks = cut_blocks(&order, |c| sig[c as usize], |c| pb.size[c as usize], limit);
        let mut flat = Vec::with_capacity(order.len());
        loop {
            let mut improved = true;
            while improved && self.can_eval() {
                improved = false;
                let mut i = 0;
                while i < blocks.len() && self.can_eval() {
                    if let Some((to, o)) = self.best_move(&blocks, i, obj, &mut flat) {
                        let b = blocks.remove(i);
                        blocks.insert(to, b);
                        obj = o;
                        self.moves += 1;
                        improved = true;
                    }
                    i += 1;
                }
            }
            if !self.can_eval() || blocks.iter().all(|b| b.len() == 1) {
                break;
            }
            limit = (limit / 2).max(1);
            blocks =
                blocks.into_iter().flat_map(|b| split(b, |c| pb.size[c as usize], limit)).collect();
        }
        flatten(&blocks, &mut flat);
        (flat, obj)
    }

    /// The best improving destination for block `i`, trying 1, 2, 4, … blocks away in both
    /// directions and both ends.
    fn best_move(
        &mut self,
        blocks: &[Vec<u32>],
        i: usize,
        cur: Obj,
        flat: &mut Vec<u32>,
    ) -> Option<(usize, Obj)> {
        let n = blocks.len();
        let mut dests = Vec::new();
        let mut d = 1;
        while d < n {
            if i >= d {
                dests.push(i - d);
            }
            if i + d < n {
                dests.push(i + d);
            }
            d *= 2;
        }
        dests.push(0);
        dests.push(n - 1);
        dests.sort_unstable();
        dests.dedup();
        let mut best: Option<(usize, Obj)> = None;
        for to in dests {
            if to == i || !self.can_eval() {
                continue;
            }
            flat.clear();
            // `blocks` with block i removed and reinserted at index `to`.
            for (k, b) in blocks.iter().enumerate() {
                if k == i {
                    continue;
                }
                if to < i && k == to {
                    flat.extend_from_slice(&blocks[i]);
                }
                flat.extend_from_slice(b);
                if to > i && k == to {
                    flat.extend_from_slice(&blocks[i]);
                }
            }
            let (o, _) = self.eval(flat);
            if o.better(best.as_ref().map_or(&cur, |b| &b.1)) {
                best = Some((to, o));
            }
        }
        best
    }

    /// A hash of the set of traces reading each chunk.
    fn signatures(&self) -> Vec<u64> {
        self.pb
            .first
            .iter()
            .map(|r| {
                r.iter().fold(0u64, |acc, &(_, j)| {
                    let mut x = u64::from(j).wrapping_add(0x9E37_79B9_7F4A_7C15);
                    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                    acc ^ (x ^ (x >> 31))
                })
            })
            .collect()
    }
}

fn flatten(blocks: &[Vec<u32>], out: &mut Vec<u32>) {
    out.clear();
    for b in blocks {
        out.extend_from_slice(b);
    }
}

/// Cuts `order` into runs of equal signature, each at most `limit` bytes (or one chunk).
fn cut_blocks(
    order: &[u32],
    sig: impl Fn(u32) -> u64,
    size: impl Fn(u32) -> u64,
    limit: u64,
) -> Vec<Vec<u32>> {
    let mut out: Vec<Vec<u32>> = Vec::new();
    let mut bytes = 0u64;
    for &c in order {
        let same = out.last().and_then(|b| b.last()).is_some_and(|&l| sig(l) == sig(c));
        if same && bytes + size(c) <= limit {
            out.last_mut().expect("a block").push(c);
            bytes += size(c);
        } else {
            out.push(vec![c]);
            bytes = size(c);
        }
    }
    out
}

/// Splits a block into pieces of at most `limit` bytes (at least one chunk each).
fn split(b: Vec<u32>, size: impl Fn(u32) -> u64, limit: u64) -> Vec<Vec<u32>> {
    let total: u64 = b.iter().map(|&c| size(c)).sum();
    if total <= limit || b.len() == 1 {
        return vec![b];
    }
    let mut out: Vec<Vec<u32>> = vec![Vec::new()];
    let mut bytes = 0u64;
    for c in b {
        let cur = out.last_mut().expect("a piece");
        if !cur.is_empty() && bytes + size(c) > limit {
            out.push(vec![c]);
            bytes = size(c);
        } else {
            cur.push(c);
            bytes += size(c);
        }
    }
    out
}
