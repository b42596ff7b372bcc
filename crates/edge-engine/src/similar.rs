//! Where a new chunk's bytes already sit in the older build, wherever that is: content-
//! defined anchors (a gear rolling hash picks positions by content, so moved data keeps its
//! anchors) keyed by a hash of the 32 bytes before them. The patch writer uses the best
//! alignments as delta bases for content that moved (a reordered pack file, data shifted
//! between files), where the same-offset window finds nothing.

use crate::store::ChunkStore;
use crate::tree::{Kind, Tree};
use std::collections::HashMap;
use std::io;

/// Bytes hashed for an anchor's key.
const WINDOW: usize = 32;
/// At most this many anchors are kept for a build (memory stays bounded): the anchor
/// spacing grows with the build.
const MAX_ANCHORS: u64 = 2 << 20;

/// The gear table: 256 pseudo-random words (splitmix64), fixed forever.
const GEAR: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut i = 0;
    while i < 256 {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        t[i] = z ^ (z >> 31);
        i += 1;
    }
    t
};

fn key(w: &[u8]) -> u64 {
    // FNV-1a: cheap, and collisions only cost a useless candidate.
    w.iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Calls `f(end position, key)` for every anchor of `data` (mask bits set the spacing).
fn anchors(data: &[u8], mask: u64, mut f: impl FnMut(usize, u64)) {
    let mut h = 0u64;
    for (i, b) in data.iter().enumerate() {
        h = (h << 1).wrapping_add(GEAR[*b as usize]);
        if i + 1 >= WINDOW && h & mask == 0 {
            f(i + 1, key(&data[i + 1 - WINDOW..i + 1]));
        }
    }
}

/// The anchors of a build: key → (file number, offset just after the anchor's window).
pub struct Anchors {
    map: HashMap<u64, (u32, u64)>,
    mask: u64,
    /// Paths and sizes of the build's files, by file number.
    pub files: Vec<(String, u64)>,
}

impl Anchors {
    /// Reads every file of `tree` from the chunk store once.
    pub fn build(tree: &Tree, store: &ChunkStore) -> io::Result<Anchors> {
        let total: u64 = tree.size_bytes();
        // Average spacing 2 KiB, or wider so that at most MAX_ANCHORS are kept.
        let mut bits = 11u32;
        while (total >> bits) > MAX_ANCHORS && bits < 40 {
            bits += 1;
        }
        let mask = (1u64 << bits) - 1;
        let mut a = Anchors { map: HashMap::new(), mask, files: Vec::new() };
        for e in tree.entries.iter().filter(|e| e.kind == Kind::File && e.size as usize >= WINDOW) {
            let fi = a.files.len() as u32;
            a.files.push((e.path.clone(), e.size));
            // Chunk by chunk, carrying the window across chunk boundaries.
            let mut carry: Vec<u8> = Vec::new();
            let mut base = 0u64;
            for c in &e.chunks {
                let raw = store.get_raw(&c.h, c.len as usize)?;
                let mut buf = std::mem::take(&mut carry);
                let lead = buf.len();
                buf.extend_from_slice(&raw);
                let start = base - lead as u64;
                anchors(&buf, mask, |end, k| {
                    if end > lead {
                        a.map.entry(k).or_insert((fi, start + end as u64));
                    }
                });
                base += raw.len() as u64;
                carry = buf[buf.len().saturating_sub(WINDOW - 1)..].to_vec();
            }
        }
        Ok(a)
    }

    /// The best places of `data` in the build: up to `max` (file number, start offset)
    /// alignments, by how many anchors agree, at least `min_votes` anchors each. One vote
    /// is already 32 equal bytes (up to a 64-bit key collision); more make a place likelier
    /// to hold more than a sliver of `data`.
    pub fn alignments(&self, data: &[u8], max: usize, min_votes: u32) -> Vec<(usize, u64)> {
        let mut votes: HashMap<(u32, i64), u32> = HashMap::new();
        anchors(data, self.mask, |end, k| {
            if let Some(&(fi, off)) = self.map.get(&k) {
                *votes.entry((fi, off as i64 - end as i64)).or_default() += 1;
            }
        });
        let mut v: Vec<((u32, i64), u32)> =
            votes.into_iter().filter(|(_, n)| *n >= min_votes).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut out: Vec<(usize, u64)> = Vec::new();
        for ((fi, start), _) in v {
            let start = start.max(0) as u64;
            // Alignments a few bytes apart are the same place (one insertion between).
            if out
                .iter()
                .any(|&(f, s)| f == fi as usize && s.abs_diff(start) < data.len() as u64 / 2)
            {
                continue;
            }
            out.push((fi as usize, start));
            if out.len() == max {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_data_is_found_where_it_went() {
        let data = crate::roundtrip_tests::noise(7, 200_000);
        let mut a = Anchors {
            map: HashMap::new(),
            mask: (1 << 11) - 1,
            files: vec![("f".into(), data.len() as u64)],
        };
        anchors(&data, a.mask, |end, k| {
            a.map.entry(k).or_insert((0, end as u64));
        });
        // A piece from the middle, and a piece made of two distant pieces.
        assert_eq!(a.alignments(&data[50_000..70_000], 2, 2), vec![(0, 50_000)]);
        let mut two = data[10_000..30_000].to_vec();
        two.extend_from_slice(&data[150_000..170_000]);
        let got = a.alignments(&two, 2, 2);
        assert!(got.contains(&(0, 10_000)) && got.contains(&(0, 130_000)), "{got:?}");
    }
}
