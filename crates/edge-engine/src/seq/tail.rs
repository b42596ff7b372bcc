//! The order of the untraced rest of the stream. The formats spec puts untraced data after
//! all traced data; [`stream_order`](crate::image::stream_order) appends it in archive
//! order. A new session often reads a little past what the training sessions read —
//! the next voice line, the next cell of a level, more of a streamed movie — and a chunk
//! deep in an archive-order tail then costs it nearly the whole download. [`with_tail`]
//! orders the rest by how close each chunk lies to traced data in its file instead.

use crate::tree::{Kind, Tree};
use crate::Hash;
use std::collections::{HashMap, HashSet};

/// `sequence` (traced chunks, as [`optimize`](super::optimize) returns) followed by every
/// other chunk of `tree`: first those of files the traces read, nearest to a traced chunk
/// of the same file first (distance in chunks, in powers of two: 1, 2, 3–4, 5–8, …), then
/// by the earliest first access of that traced neighbour across `training`, then in
/// archive order; then the chunks of files no trace read, in archive order. Traced data
/// still all comes first, so the formats spec's rule holds.
pub fn with_tail(tree: &Tree, training: &[Vec<(u64, Hash)>], sequence: &[Hash]) -> Vec<Hash> {
    let mut first: HashMap<Hash, u64> = HashMap::new();
    for acc in training {
        for &(t, h) in acc {
            let e = first.entry(h).or_insert(t);
            *e = (*e).min(t);
        }
    }
    let mut out: Vec<Hash> = Vec::with_capacity(tree.chunks.len());
    let mut placed: HashSet<Hash> = HashSet::with_capacity(tree.chunks.len());
    for h in sequence {
        if tree.chunks.contains_key(h) && placed.insert(*h) {
            out.push(*h);
        }
    }
    // (bucket, neighbour time, archive rank) per untraced chunk; the best over its files.
    let mut key: HashMap<Hash, (u32, u64, usize)> = HashMap::new();
    let mut rank = 0usize;
    for e in tree.entries.iter().filter(|e| e.kind == Kind::File) {
        let traced: Vec<usize> =
            (0..e.chunks.len()).filter(|&k| placed.contains(&e.chunks[k].h)).collect();
        for (k, c) in e.chunks.iter().enumerate() {
            rank += 1;
            if placed.contains(&c.h) {
                continue;
            }
            let this = match nearest(&traced, k) {
                Some(n) => {
                    let d = n.abs_diff(k) as u64;
                    let bucket = 64 - (d - 1).leading_zeros();
                    (bucket, first.get(&e.chunks[n].h).copied().unwrap_or(u64::MAX), rank)
                }
                None => (u32::MAX, u64::MAX, rank),
            };
            key.entry(c.h).and_modify(|k| *k = (*k).min(this)).or_insert(this);
        }
    }
    let mut rest: Vec<((u32, u64, usize), Hash)> = key.into_iter().map(|(h, k)| (k, h)).collect();
    rest.sort_unstable();
    out.extend(rest.into_iter().map(|(_, h)| h));
    out
}

/// The traced position nearest to `k` in the sorted `traced` (the earlier one on a tie).
fn nearest(traced: &[usize], k: usize) -> Option<usize> {
    let i = traced.partition_point(|&x| x < k);
    let before = i.checked_sub(1).map(|i| traced[i]);
    let after = traced.get(i).copied();
    match (before, after) {
        (Some(b), Some(a)) => Some(if k - b <= a - k { b } else { a }),
        (b, a) => b.or(a),
    }
}
