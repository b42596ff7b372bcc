//! The patch writer (format version 2): from an older build to a newer one, one zstd
//! stream of records. The newer build's table is a delta against the older one's (entries
//! that did not change cost nothing), and every changed or new file is a run of copy and
//! insert operations against any file of the older build. A launcher holding the older
//! tree rebuilds the newer one from its files and the patch. Byte layout: `docs/FORMAT.md`.

use crate::diff::{self, Base, Op};
use crate::image::{write_atomic, PackWriter};
use crate::patch_ops::{self as ops, op, rec, Item};
use crate::patch_stream::{self, PatchStream};
use crate::similar::Anchors;
use crate::store::ChunkStore;
use crate::tree::{Entry, Kind, Tree};
use crate::{io_ctx, Hash, Params};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// The patch format version this writer produces and the reader accepts.
pub const VERSION: u32 = 2;

/// log2 of the stream's zstd window: what a reader must be ready to hold (8 MiB).
pub const WINDOW_LOG: u32 = 23;

/// Older bytes taken on each side of a candidate place, for a delta base.
const SLACK: u64 = 16 << 10;

/// Largest delta base gathered for one chunk (several windows of the largest chunk).
const MAX_BASE_BYTES: u64 = 16 << 20;

/// Places of a chunk's content elsewhere in the older build added to its base, at most.
const MAX_ALIGNMENTS: usize = 8;

/// Longest literal run at a chunk's end held back for the next chunk's copy to absorb.
const MAX_TAIL: usize = 64 << 10;

/// A base that leaves more than this share of a chunk as literal bytes is widened with
/// the places its content sits anywhere in the older build.
const WIDEN_DIVISOR: u64 = 16;

/// What the patch says about its two ends.
#[derive(Debug, Clone)]
pub struct PatchMeta {
    pub org_name: String,
    pub app_name: String,
    pub from_build_id: u64,
    pub to_build_id: u64,
    pub from_dxf_name: String,
    pub to_dxf_name: String,
    /// RFC 3339 creation time.
    pub created: String,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct PatchSummary {
    /// Files in publishing order (patch.json last).
    pub files: Vec<String>,
    /// Bytes of every file of the patch.
    pub size_bytes: u64,
    /// Distinct chunks of the newer build copied whole from the older build's files.
    pub reused: usize,
    /// Distinct chunks sent as literal bytes only (nothing of them found in the older build).
    pub sent: usize,
    /// Distinct chunks sent as copies of older bytes with literal bytes between.
    pub deltas: usize,
}

/// The BLAKE3 of the newer build's files, kept from one patch to the next. An import
/// patches against several older builds, and each patch ends with the newer build's
/// digest, which needs every file's hash whichever build it starts from: the first patch
/// works them out, the others take them from here. One per newer build (it is keyed by
/// path).
#[derive(Debug, Default)]
pub struct FileHashes(Mutex<HashMap<String, [u8; 32]>>);

impl FileHashes {
    fn get(&self, path: &str) -> Option<[u8; 32]> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(path).copied()
    }

    fn put(&self, path: &str, h: [u8; 32]) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(path.to_string(), h);
    }

    /// Files whose hash is known.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// No hash known yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The older build's regular files and symlinks in byte-wise path order: records and
/// ops name them by their number in this list, which a reader rebuilds by listing its
/// older tree.
pub(crate) struct FromList<'a> {
    pub(crate) entries: Vec<&'a Entry>,
    by_path: HashMap<&'a str, usize>,
}

impl<'a> FromList<'a> {
    pub(crate) fn of(tree: &'a Tree) -> FromList<'a> {
        let mut entries: Vec<&Entry> =
            tree.entries.iter().filter(|e| e.kind != Kind::Dir).collect();
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        let by_path = entries.iter().enumerate().map(|(i, e)| (e.path.as_str(), i)).collect();
        FromList { entries, by_path }
    }

    /// The digest a reader checks its listing against: paths, kinds, sizes, targets.
    pub(crate) fn digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        for e in &self.entries {
            ops::digest_item(&mut h, &e.path, &item(e, None));
        }
        *h.finalize().as_bytes()
    }
}

fn item(e: &Entry, content: Option<[u8; 32]>) -> Item<'_> {
    match e.kind {
        Kind::Symlink => Item::Link(e.target.as_deref().unwrap_or("")),
        _ => Item::File { mode: e.mode, size: e.size, content },
    }
}

/// Splits the stream into packs of at most `limit` bytes, so a CDN caches each as one
/// object.
struct Sink<'a> {
    packs: PackWriter<'a>,
    limit: u64,
    room: u64,
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            self.packs.close()?;
            self.room = self.limit;
        }
        let n = buf.len().min(self.room as usize);
        self.packs.append(&buf[..n])?;
        self.room -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Encodes one file's ops, merging copies of adjacent older bytes into one.
struct OpWriter {
    src: Option<u32>,
    expect: u64,
    pending: Option<(u32, u64, u64)>,
}

impl OpWriter {
    fn copy(&mut self, w: &mut PatchStream, fi: u32, off: u64, len: u64) -> io::Result<()> {
        if let Some((pf, po, pl)) = &mut self.pending {
            if *pf == fi && *po + *pl == off {
                *pl += len;
                return Ok(());
            }
        }
        self.flush(w)?;
        self.pending = Some((fi, off, len));
        Ok(())
    }

    fn insert(&mut self, w: &mut PatchStream, bytes: &[u8]) -> io::Result<()> {
        self.insert2(w, bytes, &[])
    }

    /// One insert of `a` then `b`.
    fn insert2(&mut self, w: &mut PatchStream, a: &[u8], b: &[u8]) -> io::Result<()> {
        self.flush(w)?;
        ops::put_varint(w, ((a.len() + b.len()) as u64) << 2 | op::INSERT)?;
        w.literal(&[a, b])
    }

    fn flush(&mut self, w: &mut PatchStream) -> io::Result<()> {
        if let Some((fi, off, len)) = self.pending.take() {
            if self.src != Some(fi) {
                ops::put_varint(w, u64::from(fi) << 2 | op::SRC)?;
                self.src = Some(fi);
                self.expect = 0;
            }
            ops::put_varint(w, len << 2 | op::COPY)?;
            ops::put_varint(w, ops::zigzag(off as i64 - self.expect as i64))?;
            self.expect = off + len;
        }
        Ok(())
    }

    /// Where the next older bytes would continue the last copy.
    fn continuation(&self) -> Option<(u32, u64)> {
        self.pending.map(|(fi, off, len)| (fi, off + len))
    }
}

/// Finds delta bases for new chunks: the older bytes around the same place, around where
/// the previous copy left off, and (lazily built) content-defined anchors for content
/// that moved anywhere in the older build.
struct Differ<'a> {
    from: &'a Tree,
    fl: &'a FromList<'a>,
    store: &'a ChunkStore,
    anchors: Option<(Anchors, Vec<Option<u32>>)>,
    /// Recently read older chunks: the windows of neighbouring chunks overlap.
    cache: HashMap<Hash, std::rc::Rc<Vec<u8>>>,
}

/// Older chunks kept decompressed, at most.
const CACHE_CHUNKS: usize = 16;

impl Differ<'_> {
    /// Reads `len` bytes of older file `fi` at `off` from the chunk store.
    fn read(&mut self, fi: u32, off: u64, len: u64) -> io::Result<Vec<u8>> {
        let e = self.fl.entries[fi as usize];
        let mut out = Vec::with_capacity(len as usize);
        let mut pos = 0u64;
        for c in &e.chunks {
            let (start, end) = (pos, pos + u64::from(c.len));
            pos = end;
            if end <= off || start >= off + len {
                continue;
            }
            let raw = match self.cache.get(&c.h) {
                Some(r) => r.clone(),
                None => {
                    if self.cache.len() >= CACHE_CHUNKS {
                        self.cache.clear();
                    }
                    let r = std::rc::Rc::new(self.store.get_raw(&c.h, c.len as usize)?);
                    self.cache.insert(c.h, r.clone());
                    r
                }
            };
            let a = off.saturating_sub(start) as usize;
            let b = ((off + len).min(end) - start) as usize;
            out.extend_from_slice(&raw[a..b]);
        }
        Ok(out)
    }

    /// How many of the first bytes of `t` the older file `fi` holds from `off` on.
    fn match_after(&mut self, t: &[u8], fi: u32, off: u64) -> io::Result<usize> {
        let room = self.fl.entries[fi as usize].size.saturating_sub(off);
        let (mut got, mut step) = (0usize, 4096u64);
        // Growing reads: most literal bytes differ at once, long runs are rare.
        while got < t.len() && (got as u64) < room {
            let want = step.min((t.len() - got) as u64).min(room - got as u64);
            let old = self.read(fi, off + got as u64, want)?;
            let m = diff::common_prefix(&t[got..], &old);
            got += m;
            if m < old.len() {
                break;
            }
            step *= 2;
        }
        Ok(got)
    }

    /// How many of the last bytes of `t` the older file `fi` holds just before `off`.
    fn match_before(&mut self, t: &[u8], fi: u32, off: u64) -> io::Result<usize> {
        let (mut got, mut step) = (0usize, 4096u64);
        while got < t.len() && (got as u64) < off {
            let want = step.min((t.len() - got) as u64).min(off - got as u64);
            let old = self.read(fi, off - got as u64 - want, want)?;
            let m = diff::common_suffix(&t[..t.len() - got], &old);
            got += m;
            if m < old.len() {
                break;
            }
            step *= 2;
        }
        Ok(got)
    }

    /// Grows copies into the literal bytes next to them where the older file goes on
    /// (or began earlier) with the same bytes: a base window may end in the middle of a
    /// run of moved content.
    fn stretch(&mut self, raw: &[u8], ops: &mut Vec<Op>) -> io::Result<()> {
        for k in 0..ops.len() {
            let Op::Insert { start: mut s, end: mut e } = ops[k] else { continue };
            if let Some(&Op::Copy { fi, off, len }) = k.checked_sub(1).and_then(|j| ops.get(j)) {
                let m = self.match_after(&raw[s..e], fi, off + len)?;
                s += m;
                ops[k - 1] = Op::Copy { fi, off, len: len + m as u64 };
            }
            if let Some(&Op::Copy { fi, off, len }) = ops.get(k + 1) {
                let m = self.match_before(&raw[s..e], fi, off)?;
                e -= m;
                ops[k + 1] = Op::Copy { fi, off: off - m as u64, len: len + m as u64 };
            }
            ops[k] = Op::Insert { start: s, end: e };
        }
        ops.retain(|o| !matches!(o, Op::Insert { start, end } if start == end));
        Ok(())
    }

    /// Bytes `[start - before, start + n + after)` of older file `fi`, within the file.
    fn window(
        &self,
        fi: u32,
        start: u64,
        n: u64,
        before: u64,
        after: u64,
    ) -> Option<(u32, u64, u64)> {
        let e = self.fl.entries[fi as usize];
        let s = start.saturating_sub(before);
        let end = (start + n + after).min(e.size);
        (e.kind == Kind::File && end > s).then(|| (fi, s, end - s))
    }

    fn diff_against(&mut self, raw: &[u8], ranges: &mut [(u32, u64, u64)]) -> io::Result<Vec<Op>> {
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u64, u64)> = Vec::new();
        for &(fi, s, l) in ranges.iter() {
            match merged.last_mut() {
                Some((mf, ms, ml)) if *mf == fi && s <= *ms + *ml => *ml = (*ml).max(s + l - *ms),
                _ => merged.push((fi, s, l)),
            }
        }
        let mut base = Base::new();
        let mut total = 0u64;
        for (fi, s, l) in merged {
            let l = l.min(MAX_BASE_BYTES.saturating_sub(total));
            if l == 0 {
                break;
            }
            total += l;
            let bytes = self.read(fi, s, l)?;
            base.push(fi, s, &bytes);
        }
        let mut ops = diff::diff(raw, &base);
        self.stretch(raw, &mut ops)?;
        Ok(ops)
    }

    /// The ops for a chunk of `raw` at offset `off` of a file whose same-path older file
    /// is `same`, the previous copy ending at `cont`.
    fn delta(
        &mut self,
        raw: &[u8],
        off: u64,
        same: Option<u32>,
        cont: Option<(u32, u64)>,
    ) -> io::Result<Vec<Op>> {
        let n = raw.len() as u64;
        let mut ranges = Vec::new();
        // An edit or an insertion left the older bytes near the same offset, shifted by
        // at most the slack…
        if let Some(fi) = same {
            ranges.extend(self.window(fi, off, n, n + SLACK, n + SLACK));
        }
        // …or right after where the last copied older bytes ended.
        if let Some((fi, end)) = cont {
            ranges.extend(self.window(fi, end, n, SLACK, SLACK));
        }
        let mut ops = if ranges.is_empty() {
            vec![Op::Insert { start: 0, end: raw.len() }]
        } else {
            self.diff_against(raw, &mut ranges)?
        };
        if diff::literal_bytes(&ops) as u64 > n / WIDEN_DIVISOR {
            if self.anchors.is_none() {
                let a = Anchors::build(self.from, self.store)?;
                let map = a
                    .files
                    .iter()
                    .map(|(p, _)| self.fl.by_path.get(p.as_str()).map(|i| *i as u32))
                    .collect();
                self.anchors = Some((a, map));
            }
            let (a, map) = self.anchors.as_ref().expect("just built");
            let before = ranges.len();
            for (afi, start) in a.alignments(raw, MAX_ALIGNMENTS, 1) {
                if let Some(fi) = map[afi] {
                    ranges.extend(self.window(fi, start, n, SLACK, SLACK));
                }
            }
            if ranges.len() > before {
                let wide = self.diff_against(raw, &mut ranges)?;
                if diff::literal_bytes(&wide) < diff::literal_bytes(&ops) {
                    ops = wide;
                }
            }
        }
        Ok(ops)
    }
}

/// The records that turn the older table into the newer one, in stream order.
struct Plan<'a> {
    removes: Vec<usize>,
    rmdirs: Vec<&'a str>,
    dirs: Vec<&'a Entry>,
    links: Vec<&'a Entry>,
    /// Newer files described by ops, in the newer build's order, with the same-path
    /// older entry they replace.
    files: Vec<(&'a Entry, Option<usize>)>,
    /// Newer files carried unchanged from the older tree.
    carried: Vec<&'a Entry>,
    /// The mode of each older entry in the newer build (repeats for the ones that go).
    modes: Vec<u32>,
}

fn plan<'a>(from: &'a Tree, fl: &FromList<'a>, to: &'a Tree) -> Plan<'a> {
    let to_by_path: HashMap<&str, &Entry> =
        to.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut p = Plan {
        removes: vec![],
        rmdirs: vec![],
        dirs: vec![],
        links: vec![],
        files: vec![],
        carried: vec![],
        modes: vec![],
    };
    let mut last_mode = 0o644;
    for (i, f) in fl.entries.iter().enumerate() {
        let t = to_by_path.get(f.path.as_str()).copied();
        let mode = match t {
            Some(t)
                if t.kind == Kind::File
                    && f.kind == Kind::File
                    && t.size == f.size
                    && t.chunks == f.chunks =>
            {
                p.carried.push(t);
                t.mode
            }
            Some(t)
                if t.kind == Kind::Symlink && f.kind == Kind::Symlink && t.target == f.target =>
            {
                last_mode
            }
            Some(t) if t.kind == Kind::File => t.mode,
            _ => {
                p.removes.push(i);
                last_mode
            }
        };
        p.modes.push(mode);
        last_mode = mode;
    }
    let from_dirs: HashMap<&str, u32> = from
        .entries
        .iter()
        .filter(|e| e.kind == Kind::Dir)
        .map(|e| (e.path.as_str(), e.mode))
        .collect();
    for t in &to.entries {
        let old = fl.by_path.get(t.path.as_str()).map(|i| (*i, fl.entries[*i]));
        match t.kind {
            Kind::Dir if from_dirs.get(t.path.as_str()) != Some(&t.mode) => p.dirs.push(t),
            Kind::Dir => {}
            Kind::Symlink if !matches!(old, Some((_, f)) if f.kind == Kind::Symlink && f.target == t.target) => {
                p.links.push(t)
            }
            Kind::Symlink => {}
            Kind::File => match old {
                Some((_, f))
                    if f.kind == Kind::File && f.size == t.size && f.chunks == t.chunks => {}
                Some((i, _)) => p.files.push((t, Some(i))),
                None => p.files.push((t, None)),
            },
        }
    }
    let to_dirs: HashSet<&str> =
        to.entries.iter().filter(|e| e.kind == Kind::Dir).map(|e| e.path.as_str()).collect();
    p.rmdirs = from
        .entries
        .iter()
        .filter(|e| e.kind == Kind::Dir && !to_dirs.contains(e.path.as_str()))
        .map(|e| e.path.as_str())
        .collect();
    p
}

/// BLAKE3 of a file of the newer build: known from an earlier patch, else read from the
/// chunk store (and kept). Its bytes are added to `done`, chunk by chunk as they are read.
fn content_hash(
    store: &ChunkStore,
    e: &Entry,
    known: &FileHashes,
    done: &AtomicU64,
) -> io::Result<[u8; 32]> {
    if let Some(h) = known.get(&e.path) {
        done.fetch_add(e.size, Ordering::Relaxed);
        return Ok(h);
    }
    let mut h = blake3::Hasher::new();
    for c in &e.chunks {
        h.update(&store.get_raw(&c.h, c.len as usize)?);
        done.fetch_add(u64::from(c.len), Ordering::Relaxed);
    }
    let h = *h.finalize().as_bytes();
    known.put(&e.path, h);
    Ok(h)
}

/// Counts of distinct chunks, for the summary.
#[derive(Default)]
struct Counts {
    seen: HashSet<Hash>,
    reused: usize,
    sent: usize,
    deltas: usize,
}

/// Writes the ops of the newer file `t` (whose same-path older entry is `same`); returns
/// the BLAKE3 of its content. Its bytes are added to `done` chunk by chunk.
fn file_ops(
    w: &mut PatchStream,
    d: &mut Differ<'_>,
    t: &Entry,
    same: Option<u32>,
    places: &Places,
    counts: &mut Counts,
    done: &AtomicU64,
) -> io::Result<[u8; 32]> {
    let same = same.filter(|i| d.fl.entries[*i as usize].kind == Kind::File);
    let mut ow = OpWriter { src: same, expect: 0, pending: None };
    let mut h = blake3::Hasher::new();
    let mut off = 0u64;
    // A chunk's last literal bytes wait for the next chunk: when that one begins with a
    // copy, the older bytes just before it may hold them too (content moved in runs that
    // do not end where chunks do).
    let mut tail: Option<Vec<u8>> = None;
    for c in &t.chunks {
        let raw = d.store.get_raw(&c.h, c.len as usize)?;
        h.update(&raw);
        let first = counts.seen.insert(c.h);
        let len = u64::from(c.len);
        // A chunk the older build has: copied, preferably right where the last copy ended.
        let cont = ow.continuation();
        let place = cont
            .filter(|k| places.starts.get(k) == Some(&c.h))
            .or_else(|| places.first.get(&c.h).copied());
        let chunk_ops = match place {
            Some((fi, o)) => {
                counts.reused += usize::from(first);
                vec![Op::Copy { fi, off: o, len }]
            }
            None => {
                let ops = d.delta(&raw, off, same, cont)?;
                if first {
                    if ops.iter().any(|o| matches!(o, Op::Copy { .. })) {
                        counts.deltas += 1;
                    } else {
                        counts.sent += 1;
                    }
                }
                ops
            }
        };
        let mut skip_first = false;
        if let Some(lit) = tail.take() {
            match chunk_ops.first() {
                Some(&Op::Copy { fi, off, .. }) => {
                    let m = d.match_before(&lit, fi, off)?;
                    if m < lit.len() {
                        ow.insert(w, &lit[..lit.len() - m])?;
                    }
                    if m > 0 {
                        ow.copy(w, fi, off - m as u64, m as u64)?;
                    }
                }
                // Literal bytes on both sides of a chunk boundary go as one insert.
                Some(&Op::Insert { start, end })
                    if chunk_ops.len() > 1 || end - start + lit.len() > MAX_TAIL =>
                {
                    ow.insert2(w, &lit, &raw[start..end])?;
                    skip_first = true;
                }
                Some(&Op::Insert { start, end }) => {
                    tail = Some([&lit[..], &raw[start..end]].concat());
                    skip_first = true;
                }
                None => tail = Some(lit),
            }
        }
        let n_ops = chunk_ops.len();
        for (k, o) in chunk_ops.into_iter().enumerate().skip(usize::from(skip_first)) {
            match o {
                Op::Copy { fi, off, len } => ow.copy(w, fi, off, len)?,
                Op::Insert { start, end } if k + 1 == n_ops && end - start <= MAX_TAIL => {
                    tail = Some(raw[start..end].to_vec())
                }
                Op::Insert { start, end } => ow.insert(w, &raw[start..end])?,
            }
        }
        off += len;
        done.fetch_add(len, Ordering::Relaxed);
    }
    if let Some(lit) = tail {
        ow.insert(w, &lit)?;
    }
    ow.flush(w)?;
    Ok(*h.finalize().as_bytes())
}

/// Where the older build's chunks are: the first place of each, and the chunk starting
/// at each (file number, offset).
struct Places {
    first: HashMap<Hash, (u32, u64)>,
    starts: HashMap<(u32, u64), Hash>,
}

impl Places {
    fn of(fl: &FromList<'_>) -> Places {
        let mut p = Places { first: HashMap::new(), starts: HashMap::new() };
        for (fi, e) in fl.entries.iter().enumerate().filter(|(_, e)| e.kind == Kind::File) {
            let mut off = 0u64;
            for c in &e.chunks {
                p.first.entry(c.h).or_insert((fi as u32, off));
                p.starts.insert((fi as u32, off), c.h);
                off += u64::from(c.len);
            }
        }
        p
    }
}

/// Writes the records: the older listing's digest and modes, removals, directories, links,
/// then each changed or new file's ops; answers the BLAKE3 of each of those files.
#[allow(clippy::too_many_arguments)]
fn write_records<'t>(
    w: &mut PatchStream,
    from: &Tree,
    fl: &FromList<'_>,
    plan: &Plan<'t>,
    store: &ChunkStore,
    places: &Places,
    counts: &mut Counts,
    done: &AtomicU64,
) -> io::Result<Vec<(&'t str, [u8; 32])>> {
    w.write_all(ops::MAGIC)?;
    ops::put_varint(w, fl.entries.len() as u64)?;
    w.write_all(&fl.digest())?;
    let mut runs: Vec<(u64, u32)> = Vec::new();
    for m in &plan.modes {
        match runs.last_mut() {
            Some((n, lm)) if lm == m => *n += 1,
            _ => runs.push((1, *m)),
        }
    }
    ops::put_varint(w, runs.len() as u64)?;
    for (n, m) in &runs {
        ops::put_varint(w, *n)?;
        ops::put_varint(w, u64::from(*m))?;
    }
    for i in &plan.removes {
        ops::put_varint(w, rec::REMOVE)?;
        ops::put_varint(w, *i as u64)?;
    }
    for path in &plan.rmdirs {
        ops::put_varint(w, rec::RMDIR)?;
        ops::put_str(w, path)?;
    }
    for e in &plan.dirs {
        ops::put_varint(w, rec::DIR)?;
        ops::put_str(w, &e.path)?;
        ops::put_varint(w, u64::from(e.mode))?;
    }
    for e in &plan.links {
        ops::put_varint(w, rec::LINK)?;
        ops::put_str(w, &e.path)?;
        ops::put_str(w, e.target.as_deref().unwrap_or(""))?;
    }
    let mut d = Differ { from, fl, store, anchors: None, cache: HashMap::new() };
    let mut hashes = Vec::with_capacity(plan.files.len());
    for (t, same) in &plan.files {
        match same {
            Some(i) => {
                ops::put_varint(w, rec::FILE_AT)?;
                ops::put_varint(w, *i as u64)?;
                ops::put_varint(w, ops::zigzag(t.size as i64 - fl.entries[*i].size as i64))?;
            }
            None => {
                ops::put_varint(w, rec::FILE_NEW)?;
                ops::put_str(w, &t.path)?;
                ops::put_varint(w, u64::from(t.mode))?;
                ops::put_varint(w, t.size)?;
            }
        }
        let h = file_ops(w, &mut d, t, same.map(|i| i as u32), places, counts, done)?;
        hashes.push((t.path.as_str(), h));
    }
    Ok(hashes)
}

/// Writes the patch `from` → `to` into `dir` (created). Every byte of the newer build's
/// files is added to `done` once worked through — diffed against `from` when its file
/// changed, hashed for the build's digest when it did not (or taken from `known`) — so a
/// finished patch has added `to.size_bytes()`, and another thread can follow the work.
/// `known` carries the newer build's file hashes from one patch to the next.
#[allow(clippy::too_many_arguments)]
pub fn write_patch(
    from: &Tree,
    to: &Tree,
    store: &ChunkStore,
    meta: &PatchMeta,
    dir: &Path,
    p: &Params,
    known: &FileHashes,
    done: &AtomicU64,
) -> io::Result<PatchSummary> {
    fs::create_dir_all(dir).map_err(|e| io_ctx(dir.display(), e))?;
    let fl = FromList::of(from);
    let plan = plan(from, &fl, to);
    let places = Places::of(&fl);
    let limit = p.pack_limit.max(1);
    let sink = Sink { packs: PackWriter::new(dir, limit), limit, room: limit };
    let mut counts = Counts::default();
    let (to_digest, mut sink) = patch_stream::with_stream(sink, WINDOW_LOG, |w| {
        // Unchanged files are hashed for the newer build's digest on another core while
        // this one works out the changed ones.
        let (hashes, carried_hashes) = std::thread::scope(|s| -> io::Result<_> {
            let carried = s.spawn(|| {
                plan.carried
                    .iter()
                    .map(|e| content_hash(store, e, known, done).map(|h| (e.path.as_str(), h)))
                    .collect::<io::Result<Vec<_>>>()
            });
            write_records(w, from, &fl, &plan, store, &places, &mut counts, done).and_then(
                |hashes| {
                    let carried = carried
                        .join()
                        .map_err(|_| io::Error::other("hashing thread panicked"))??;
                    Ok((hashes, carried))
                },
            )
        })?;
        for (path, h) in &hashes {
            known.put(path, *h);
        }
        // The newer build's digest: every file and symlink, in path order.
        let content: HashMap<&str, [u8; 32]> = hashes.into_iter().chain(carried_hashes).collect();
        let mut items: Vec<&Entry> = to.entries.iter().filter(|e| e.kind != Kind::Dir).collect();
        items.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        let mut dh = blake3::Hasher::new();
        for e in items {
            ops::digest_item(&mut dh, &e.path, &item(e, content.get(e.path.as_str()).copied()));
        }
        ops::put_varint(w, rec::END)?;
        let to_digest = *dh.finalize().as_bytes();
        w.write_all(&to_digest)?;
        Ok(to_digest)
    })?;
    sink.packs.close()?;
    let packs = sink.packs;
    let size_bytes: u64 = packs.packs.iter().map(|p| p.1).sum();
    let manifest = json!({
        "format": "rockit-patch", "version": VERSION, "orgName": meta.org_name, "appName": meta.app_name,
        "fromBuildId": meta.from_build_id, "toBuildId": meta.to_build_id,
        "fromDxfName": meta.from_dxf_name, "toDxfName": meta.to_dxf_name, "created": meta.created,
        "sizeBytes": size_bytes, "toSizeBytes": to.size_bytes(), "chunkCount": to.chunks.len(),
        "reusedChunks": counts.reused, "sentChunks": counts.sent, "deltaChunks": counts.deltas,
        "packs": packs.json(),
        // The `to` build's index travels in the stream (as a delta against `from`); this
        // says so and gives the digest the rebuilt tree must have.
        "index": {"in": "packs", "toDigest": crate::Hash(to_digest).hex()},
    });
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
    write_atomic(dir, "patch.json", &manifest_bytes)?;
    let mut files: Vec<String> = packs.packs.iter().map(|p| p.0.clone()).collect();
    files.push("patch.json".into());
    Ok(PatchSummary {
        files,
        size_bytes: size_bytes + manifest_bytes.len() as u64,
        reused: counts.reused,
        sent: counts.sent,
        deltas: counts.deltas,
    })
}
