//! Byte-level differencing of a new chunk against a window of older bytes: the copy and
//! insert operations a patch sends instead of the chunk. A greedy matcher in the manner of
//! xdelta: the base is indexed by a hash of 32 bytes at every fourth position, the target
//! is looked up at every position, and a match is extended both ways. After a match ends,
//! the same alignment is tried first at each following position, so a small in-place edit
//! costs only its changed bytes even in text whose short runs repeat everywhere.

/// Older bytes gathered from one or more places of the `from` build.
pub struct Base {
    /// The bytes, the places one after the other.
    pub data: Vec<u8>,
    /// (start in `data`, `from` file number, offset in that file) of each place.
    segs: Vec<(usize, u32, u64)>,
}

/// One step of rebuilding a target from a base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `len` bytes of `from` file `fi` at `off`.
    Copy { fi: u32, off: u64, len: u64 },
    /// The target's own bytes `start..end`.
    Insert { start: usize, end: usize },
}

/// Bytes hashed for a lookup key: long enough that text (whose short runs repeat
/// everywhere) rarely offers a wrong place.
const KEY: usize = 32;
/// Base positions indexed: every STRIDE-th (a match of KEY + STRIDE bytes is always found).
const STRIDE: usize = 4;
/// Shortest copy found by lookup. A copy op costs a few bytes and cuts the literal run
/// that zstd compresses, so in text (where runs of a few words recur everywhere) shorter
/// coincidental matches cost more than the bytes they save.
const MIN_LOOKUP: usize = 64;
/// Shortest copy on the previous match's alignment (after an in-place edit, where the old
/// bytes go on as before): shorter is coincidence.
const MIN_DIAGONAL: usize = 16;
/// Largest hash table (entries of 4 bytes).
const MAX_TABLE_BITS: u32 = 24;

impl Base {
    /// An empty base.
    pub fn new() -> Base {
        Base { data: Vec::new(), segs: Vec::new() }
    }

    /// Appends the bytes of `from` file `fi` read at `off`.
    pub fn push(&mut self, fi: u32, off: u64, bytes: &[u8]) {
        self.segs.push((self.data.len(), fi, off));
        self.data.extend_from_slice(bytes);
    }

    /// Where base byte `at` comes from, and how many bytes of that place follow it.
    fn place(&self, at: usize) -> (u32, u64, usize) {
        let k = self.segs.partition_point(|s| s.0 <= at) - 1;
        let (start, fi, off) = self.segs[k];
        let end = self.segs.get(k + 1).map_or(self.data.len(), |s| s.0);
        (fi, off + (at - start) as u64, end - at)
    }
}

impl Default for Base {
    fn default() -> Self {
        Base::new()
    }
}

fn key(b: &[u8], bits: u32) -> usize {
    let w = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let h = w(0).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ w(8).wrapping_mul(0xC2B2_AE3D_27D4_EB4F).rotate_left(17)
        ^ w(16).wrapping_mul(0x1656_67B1_9E37_79F9).rotate_left(31)
        ^ w(24).wrapping_mul(0x27D4_EB2F_1656_67C5).rotate_left(47);
    (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
}

/// How many bytes `a` and `b` share at their ends.
pub fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    a.iter().rev().zip(b.iter().rev()).take_while(|(x, y)| x == y).count()
}

/// How many bytes `a` and `b` share at their starts.
pub fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n && a[i..i + 8] == b[i..i + 8] {
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// The ops that rebuild `t` from `base`: copies of at least a few bytes, inserts between.
/// Copies never span two places of the base.
pub fn diff(t: &[u8], base: &Base) -> Vec<Op> {
    let b = &base.data;
    let mut ops = Vec::new();
    let mut bits = 10;
    while bits < MAX_TABLE_BITS && (1usize << bits) < b.len() / STRIDE * 2 {
        bits += 1;
    }
    let mut table = vec![0u32; 1 << bits];
    if b.len() >= KEY {
        // Later positions first, so the earliest place wins a shared key.
        for p in (0..b.len() - KEY + 1).step_by(STRIDE).rev() {
            table[key(&b[p..], bits)] = p as u32 + 1;
        }
    }
    let mut lit = 0usize; // start of the bytes not yet covered by an op
    let mut i = 0usize;
    let mut diag: Option<isize> = None;
    while i < t.len() {
        let mut found = None;
        if let Some(d) = diag {
            let p = i as isize + d;
            if p >= 0 && (p as usize) < b.len() {
                let n = common_prefix(&t[i..], &b[p as usize..]);
                if n >= MIN_DIAGONAL {
                    found = Some((p as usize, n));
                }
            }
        }
        if found.is_none() && i + KEY <= t.len() && b.len() >= KEY {
            let slot = table[key(&t[i..], bits)];
            if slot > 0 {
                let p = slot as usize - 1;
                let n = common_prefix(&t[i..], &b[p..]);
                if n >= MIN_LOOKUP {
                    found = Some((p, n));
                }
            }
        }
        let Some((p, n)) = found else {
            i += 1;
            continue;
        };
        // Extend backwards over bytes not yet covered.
        let mut back = 0;
        while i - back > lit && p - back > 0 && t[i - back - 1] == b[p - back - 1] {
            back += 1;
        }
        let (ti, bp, len) = (i - back, p - back, n + back);
        if ti > lit {
            ops.push(Op::Insert { start: lit, end: ti });
        }
        let mut at = bp;
        while at < bp + len {
            let (fi, off, room) = base.place(at);
            let m = room.min(bp + len - at);
            ops.push(Op::Copy { fi, off, len: m as u64 });
            at += m;
        }
        i = ti + len;
        lit = i;
        diag = Some(bp as isize - ti as isize);
    }
    if lit < t.len() {
        ops.push(Op::Insert { start: lit, end: t.len() });
    }
    ops
}

/// Literal bytes of `ops`.
pub fn literal_bytes(ops: &[Op]) -> usize {
    ops.iter().map(|o| if let Op::Insert { start, end } = o { end - start } else { 0 }).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roundtrip_tests::noise;

    fn rebuild(t: &[u8], ops: &[Op], files: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for o in ops {
            match *o {
                Op::Copy { fi, off, len } => {
                    out.extend_from_slice(&files[fi as usize][off as usize..(off + len) as usize])
                }
                Op::Insert { start, end } => out.extend_from_slice(&t[start..end]),
            }
        }
        out
    }

    #[test]
    fn edits_insertions_and_moves_cost_their_new_bytes() {
        let old = noise(1, 300_000);
        let other = noise(2, 100_000);
        let mut t = old[1000..200_000].to_vec();
        t[5000] ^= 1;
        for b in &mut t[90_000..90_016] {
            *b ^= 0x5a;
        }
        t.splice(50_000..50_000, noise(3, 3000));
        t.extend_from_slice(&other[10_000..60_000]);
        let mut base = Base::new();
        base.push(0, 0, &old);
        base.push(1, 5000, &other[5000..]);
        let ops = diff(&t, &base);
        assert_eq!(rebuild(&t, &ops, &[&old, &other]), t);
        assert!(literal_bytes(&ops) <= 3000 + 16 + 1, "{ops:?}");
        assert!(ops.len() <= 12, "{ops:?}");
        // Nothing in common: one insert.
        let ops = diff(&noise(9, 5000), &base);
        assert_eq!(ops, vec![Op::Insert { start: 0, end: 5000 }]);
        assert_eq!(diff(&[], &Base::new()), vec![]);
    }
}
