//! Applying a version-2 patch: the older tree is listed and checked against the patch's
//! `from` digest, the stream's records rebuild every changed or new file from copies of
//! older bytes and literal bytes, the unchanged files are copied over, and the result
//! must match the patch's `to` digest. Memory stays bounded: files stream through fixed
//! buffers, and only the listing (one row per file) is held.
//!
//! The newer tree is checked against [`crate::safepath`] although it is only known once
//! the stream has been read: every name and link target as its record is read; regular
//! files (the only things written while the stream is read) are written where no link
//! exists yet and never under a file already written; and the whole tree before any
//! directory of it or any link is created. So nothing is ever created outside `out`.

use crate::ingest::normalize;
use crate::patch::WINDOW_LOG;
use crate::patch_ops::{self as ops, op, rec, Item, MAX_PATH};
use crate::reader::{bad, check_listing, prepare_out, read_all, Source, Stats};
use crate::safepath::{self, shown, Refusal, Why};
use crate::tree::Kind;
use crate::{io_ctx, Hash};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::rc::Rc;

/// Buffer for copying file bytes.
const BUF: usize = 1 << 20;

/// One regular file or symlink of the older tree.
struct Old {
    path: String,
    size: u64,
    link: Option<String>,
}

/// The older tree as listed: files and links in byte-wise path order, and directories.
struct Listing {
    entries: Vec<Old>,
    dirs: Vec<(String, u32)>,
}

#[cfg(unix)]
fn mode_of(m: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(_: &fs::Metadata) -> u32 {
    0o755
}

fn list(root: &Path) -> io::Result<Listing> {
    let mut l = Listing { entries: Vec::new(), dirs: Vec::new() };
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let dir = if rel.is_empty() { root.to_path_buf() } else { root.join(&rel) };
        for e in fs::read_dir(&dir).map_err(|e| io_ctx(dir.display(), e))? {
            let e = e?;
            let name = e
                .file_name()
                .into_string()
                .map_err(|n| bad(format!("older tree: name {n:?} is not UTF-8")))?;
            let path = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let m = fs::symlink_metadata(e.path())?;
            let ft = m.file_type();
            if ft.is_symlink() {
                let t = fs::read_link(e.path())?;
                let t = t
                    .to_str()
                    .ok_or_else(|| bad(format!("older tree: link {path} has a non-UTF-8 target")))?
                    .to_string();
                l.entries.push(Old { path, size: 0, link: Some(t) });
            } else if ft.is_dir() {
                l.dirs.push((path.clone(), mode_of(&m)));
                stack.push(path);
            } else if ft.is_file() {
                l.entries.push(Old { path, size: m.len(), link: None });
            } else {
                return Err(bad(format!(
                    "older tree: {path} is neither a file, a directory nor a symbolic link"
                )));
            }
        }
    }
    l.entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(l)
}

/// The packs of the patch read one after the other as one stream; each pack's BLAKE3 and
/// size are checked when its end is reached.
struct Packs<'a> {
    src: &'a dyn Source,
    list: Vec<(String, u64, String)>,
    next: usize,
    cur: Option<(Box<dyn Read + 'a>, blake3::Hasher, u64)>,
    /// The pack being read (for error messages), shared with the reader.
    name: Rc<RefCell<String>>,
    total: Rc<RefCell<u64>>,
}

impl Read for Packs<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.cur.is_none() {
                let Some((name, _, _)) = self.list.get(self.next) else { return Ok(0) };
                let r = self.src.open(name)?;
                *self.name.borrow_mut() = name.clone();
                self.cur = Some((r, blake3::Hasher::new(), 0));
            }
            let (name, size, hash) = &self.list[self.next];
            let (r, h, got) = self.cur.as_mut().expect("open pack");
            // Never further than the pinned size (plus one byte, to notice a longer pack).
            let room = (*size + 1 - *got).min(buf.len() as u64) as usize;
            let n = r.read(&mut buf[..room]).map_err(|e| io_ctx(name, e))?;
            if n > 0 {
                h.update(&buf[..n]);
                *got += n as u64;
                *self.total.borrow_mut() += n as u64;
                if *got <= *size {
                    return Ok(n);
                }
            }
            if *got != *size || Hash(*h.finalize().as_bytes()).hex() != *hash {
                return Err(bad(format!("{name} does not match its hash")));
            }
            self.cur = None;
            self.next += 1;
        }
    }
}

/// The decoded patch stream, with errors that say where they happened.
struct Stream<R> {
    r: R,
    pack: Rc<RefCell<String>>,
}

impl<R: Read> Stream<R> {
    fn err(&self, e: io::Error) -> io::Error {
        let msg = e.to_string();
        let pack = self.pack.borrow();
        if msg.contains("does not match its hash")
            || (!pack.is_empty() && msg.contains(pack.as_str()))
        {
            return e;
        }
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return bad(format!("the patch stream ends early (in {pack})"));
        }
        bad(format!("the patch data is corrupt (in {pack}): {msg}"))
    }
    fn varint(&mut self) -> io::Result<u64> {
        ops::get_varint(&mut self.r).map_err(|e| self.err(e))
    }
    fn path(&mut self) -> io::Result<String> {
        let p = ops::get_str(&mut self.r, MAX_PATH).map_err(|e| self.err(e))?;
        match normalize(&p) {
            Ok(Some(n)) if n == p => {}
            _ => return Err(bad(format!("unsafe path in patch: {}", shown(&p)))),
        }
        safepath::check_name(&p).map_err(|why| {
            bad(format!("unsafe path in patch: {}", Refusal { path: p.clone(), why }))
        })?;
        Ok(p)
    }
    fn bytes<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).map_err(|e| self.err(e))?;
        Ok(b)
    }
}

/// Open older files (copies of one file mostly come in a row).
struct OldFiles<'a> {
    root: &'a Path,
    open: HashMap<usize, fs::File>,
}

impl OldFiles<'_> {
    fn get(&mut self, i: usize, path: &str) -> io::Result<&mut fs::File> {
        if !self.open.contains_key(&i) {
            if self.open.len() >= 64 {
                self.open.clear();
            }
            let f = fs::File::open(self.root.join(path))
                .map_err(|e| io_ctx(format!("older build file {path}"), e))?;
            self.open.insert(i, f);
        }
        Ok(self.open.get_mut(&i).expect("just opened"))
    }
}

/// A newer file being written, hashed on the way.
struct Out {
    w: io::BufWriter<fs::File>,
    h: blake3::Hasher,
    done: u64,
}

impl Out {
    fn create(out: &Path, path: &str) -> io::Result<Out> {
        let p = out.join(path);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| io_ctx(parent.display(), e))?;
        }
        let f = fs::File::create(&p).map_err(|e| io_ctx(p.display(), e))?;
        Ok(Out { w: io::BufWriter::with_capacity(BUF, f), h: blake3::Hasher::new(), done: 0 })
    }
    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.h.update(b);
        self.done += b.len() as u64;
        self.w.write_all(b)
    }
    /// Copies `len` bytes of `r` into the file.
    fn copy_from(&mut self, r: &mut impl Read, mut len: u64, buf: &mut [u8]) -> io::Result<()> {
        while len > 0 {
            let n = len.min(buf.len() as u64) as usize;
            r.read_exact(&mut buf[..n])?;
            self.put(&buf[..n])?;
            len -= n as u64;
        }
        Ok(())
    }
    fn finish(mut self) -> io::Result<[u8; 32]> {
        self.w.flush()?;
        Ok(*self.h.finalize().as_bytes())
    }
}

/// What the records say about the newer build.
#[derive(Default)]
struct Newer {
    removed: Vec<bool>,
    rmdirs: HashSet<String>,
    dirs: Vec<(String, u32)>,
    links: Vec<(String, String)>,
    /// Files written from ops: path, mode, size, BLAKE3.
    files: Vec<(String, u32, u64, [u8; 32])>,
    /// Every path the records name, to refuse one named twice.
    named: HashSet<String>,
    /// Paths of the LINK records.
    link_at: HashSet<String>,
    /// Regular files written so far.
    written: HashSet<String>,
    /// Directories the files written so far lie in, each with one such file.
    under: HashMap<String, String>,
}

impl Newer {
    /// Before a regular file is written at `p`: refuses it under a file already written or
    /// under a LINK record's path, or where a file already written needs a directory.
    /// (No link exists in `out` while files are written; the whole tree is checked
    /// before any is created, this only refuses early and with the entry's name.)
    fn claim_file(&mut self, p: &str) -> io::Result<()> {
        let refuse = |path: &str, why: Why| {
            bad(format!("unsafe tree in patch: {}", Refusal { path: path.to_string(), why }))
        };
        for (k, _) in p.match_indices('/') {
            let q = &p[..k];
            if self.written.contains(q) {
                return Err(refuse(p, Why::ThroughFile));
            }
            if self.link_at.contains(q) {
                return Err(refuse(p, Why::ThroughLink));
            }
        }
        if let Some(f) = self.under.get(p) {
            return Err(refuse(f, Why::ThroughFile));
        }
        for (k, _) in p.match_indices('/') {
            self.under.entry(p[..k].to_string()).or_insert_with(|| p.to_string());
        }
        self.written.insert(p.to_string());
        Ok(())
    }
}

/// Applies a patch to the older tree `from`, writing the newer tree into `out` (absent or
/// empty). On failure `out` holds a partial tree that must not be used.
pub fn apply(src: &dyn Source, from: &Path, out: &Path) -> io::Result<Stats> {
    let manifest: Value = serde_json::from_slice(&read_all(src, "patch.json")?)
        .map_err(|e| bad(format!("patch.json: {e}")))?;
    if manifest["format"] != "rockit-patch" {
        return Err(bad("not a rockit-patch manifest"));
    }
    if manifest["version"].as_u64() != Some(u64::from(crate::patch::VERSION)) {
        return Err(bad(format!(
            "patch format version {} is not supported (this reader reads version {})",
            manifest["version"],
            crate::patch::VERSION
        )));
    }
    let mut packs = Vec::new();
    for p in manifest["packs"].as_array().ok_or_else(|| bad("patch.json lists no packs"))? {
        let name =
            p["name"].as_str().filter(|n| !n.contains('/') && !n.starts_with('.') && !n.is_empty());
        match (name, p["sizeBytes"].as_u64(), p["blake3"].as_str()) {
            (Some(n), Some(s), Some(h)) => packs.push((n.to_string(), s, h.to_string())),
            _ => return Err(bad("patch.json: a pack without a safe name, size or hash")),
        }
    }
    let from_id = &manifest["fromBuildId"];
    let listing = list(from)?;
    let name = Rc::new(RefCell::new(String::new()));
    let total = Rc::new(RefCell::new(0u64));
    let chain =
        Packs { src, list: packs, next: 0, cur: None, name: name.clone(), total: total.clone() };
    let mut dec = zstd::stream::read::Decoder::new(chain)?;
    dec.window_log_max(WINDOW_LOG)?;
    let s_pack = name.clone();
    let mut s = Stream { r: io::BufReader::with_capacity(1 << 16, dec), pack: name };
    if &s.bytes::<4>()? != ops::MAGIC {
        return Err(bad("the patch data is not a version-2 patch stream"));
    }
    // The older tree must be build `from` as listed: same files and links, same sizes.
    let n = s.varint()?;
    let want = s.bytes::<32>()?;
    let from_shown = from.display();
    if n != listing.entries.len() as u64 {
        return Err(bad(format!(
            "the older tree {from_shown} is not build {from_id}: it holds {} files and links, the build has {n}",
            listing.entries.len()
        )));
    }
    let mut dh = blake3::Hasher::new();
    for e in &listing.entries {
        let it = match &e.link {
            Some(t) => Item::Link(t),
            None => Item::File { mode: 0, size: e.size, content: None },
        };
        ops::digest_item(&mut dh, &e.path, &it);
    }
    if *dh.finalize().as_bytes() != want {
        return Err(bad(format!("the older tree {from_shown} is not build {from_id}: a file's name or size, or a link's target, differs")));
    }
    prepare_out(out)?;
    let modes = read_modes(&mut s, listing.entries.len())?;
    let by_path: HashMap<&str, usize> =
        listing.entries.iter().enumerate().map(|(i, e)| (e.path.as_str(), i)).collect();
    let mut nw = Newer { removed: vec![false; listing.entries.len()], ..Default::default() };
    let mut old = OldFiles { root: from, open: HashMap::new() };
    let mut buf = vec![0u8; BUF];
    let mut stats = Stats::default();
    // Every record. A malformed one can only come from damaged patch data (the older
    // tree's listing was checked above), so errors name the pack being read.
    let mut records = || -> io::Result<[u8; 32]> {
        loop {
            let code = s.varint()?;
            let index = |s: &mut Stream<_>| -> io::Result<usize> {
                let i = s.varint()?;
                (i < listing.entries.len() as u64).then_some(i as usize).ok_or_else(|| {
                    bad(format!("patch names older entry {i} of {}", listing.entries.len()))
                })
            };
            match code {
                rec::END => break,
                rec::REMOVE => {
                    let i = index(&mut s)?;
                    nw.removed[i] = true;
                }
                rec::RMDIR => {
                    let p = s.path()?;
                    nw.rmdirs.insert(p);
                }
                rec::DIR => {
                    let p = s.path()?;
                    let mode = s.varint()? as u32;
                    name_once(&mut nw, &by_path, &p)?;
                    nw.dirs.push((p, mode));
                }
                rec::LINK => {
                    let p = s.path()?;
                    let t = ops::get_str(&mut s.r, MAX_PATH).map_err(|e| s.err(e))?;
                    // Where it leads is checked with the whole tree, before it is created.
                    safepath::check_target(&t).map_err(|why| {
                        bad(format!("unsafe link in patch: {}", Refusal { path: p.clone(), why }))
                    })?;
                    name_once(&mut nw, &by_path, &p)?;
                    nw.link_at.insert(p.clone());
                    nw.links.push((p, t));
                }
                rec::FILE_AT | rec::FILE_NEW => {
                    let (path, mode, size, same) = if code == rec::FILE_AT {
                        let i = index(&mut s)?;
                        if nw.removed[i] {
                            return Err(bad(format!(
                                "patch replaces {} twice",
                                listing.entries[i].path
                            )));
                        }
                        nw.removed[i] = true;
                        let e = &listing.entries[i];
                        let size = e.size as i64 + ops::unzigzag(s.varint()?);
                        let size = u64::try_from(size)
                            .map_err(|_| bad(format!("negative size for {}", e.path)))?;
                        name_once(&mut nw, &by_path, &e.path)?;
                        (e.path.clone(), modes[i], size, e.link.is_none().then_some(i))
                    } else {
                        let p = s.path()?;
                        let mode = s.varint()? as u32;
                        let size = s.varint()?;
                        name_once(&mut nw, &by_path, &p)?;
                        (p, mode, size, None)
                    };
                    nw.claim_file(&path)?;
                    let mut f = Out::create(out, &path)?;
                    file_ops(&mut s, &mut f, &listing, &mut old, same, size, &mut buf).map_err(
                        |e| match e.kind() {
                            io::ErrorKind::InvalidData => e,
                            _ => io_ctx(format!("writing {path}"), e),
                        },
                    )?;
                    stats.bytes += size;
                    nw.files.push((path, mode, size, f.finish()?));
                }
                other => {
                    return Err(bad(format!("the patch data is corrupt: unknown record {other}")))
                }
            }
        }
        let want_to = s.bytes::<32>()?;
        // Reading to the end checks every pack's hash and that nothing follows the records.
        let mut rest = [0u8; 1];
        if s.r.read(&mut rest).map_err(|e| s.err(e))? != 0 {
            return Err(bad("the patch data goes on after its last record"));
        }
        Ok(want_to)
    };
    let want_to = records().map_err(|e| {
        let pack = s_pack.borrow();
        let msg = e.to_string();
        if e.kind() == io::ErrorKind::InvalidData
            && !pack.is_empty()
            && !msg.contains(pack.as_str())
        {
            bad(format!("{msg} (patch data in {pack})"))
        } else {
            e
        }
    })?;
    // patch.json names the digest too: a description and a stream of different patches
    // never mix.
    if manifest["index"]["toDigest"].as_str() != Some(crate::Hash(want_to).hex().as_str()) {
        return Err(bad("patch.json's index.toDigest does not match the patch data"));
    }
    stats.pack_bytes = *total.borrow();
    // Unchanged files and links come from the older tree.
    let mut carried = Vec::new();
    for (i, e) in listing.entries.iter().enumerate() {
        if nw.removed[i] {
            continue;
        }
        match &e.link {
            Some(t) => nw.links.push((e.path.clone(), t.clone())),
            None => {
                nw.claim_file(&e.path)?;
                let mut f = Out::create(out, &e.path)?;
                let mut r = fs::File::open(from.join(&e.path))
                    .map_err(|x| io_ctx(format!("older build file {}", e.path), x))?;
                f.copy_from(&mut r, e.size, &mut buf)
                    .map_err(|x| io_ctx(format!("older build file {}", e.path), x))?;
                stats.bytes += e.size;
                carried.push((e.path.clone(), modes[i], e.size, f.finish()?));
            }
        }
    }
    nw.files.extend(carried);
    stats.files = nw.files.len();
    finish(out, &listing, &mut nw)?;
    // The newer build as rebuilt must be the one the patch was made for.
    let mut items: Vec<(&str, Item<'_>)> = nw
        .files
        .iter()
        .map(|(p, mode, size, h)| {
            (p.as_str(), Item::File { mode: *mode, size: *size, content: Some(*h) })
        })
        .chain(nw.links.iter().map(|(p, t)| (p.as_str(), Item::Link(t))))
        .collect();
    items.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut th = blake3::Hasher::new();
    for (p, it) in &items {
        ops::digest_item(&mut th, p, it);
    }
    if *th.finalize().as_bytes() != want_to {
        return Err(bad(format!(
            "the rebuilt build {} does not match the patch: the older tree {from_shown} differs from build {from_id} in a file's content",
            manifest["toBuildId"]
        )));
    }
    Ok(stats)
}

/// Records that a record names `p`; a path named twice, or one the older tree still
/// carries, is refused.
fn name_once(nw: &mut Newer, by_path: &HashMap<&str, usize>, p: &str) -> io::Result<()> {
    let carried = by_path.get(p).is_some_and(|i| !nw.removed[*i]);
    if carried || !nw.named.insert(p.to_string()) {
        return Err(bad(format!("the patch names {p} twice")));
    }
    Ok(())
}

/// The mode runs: the newer mode of every older entry, in listing order.
fn read_modes<R: Read>(s: &mut Stream<R>, n: usize) -> io::Result<Vec<u32>> {
    let runs = s.varint()?;
    let mut modes = Vec::with_capacity(n);
    for _ in 0..runs {
        let k = s.varint()?;
        let m = s.varint()? as u32;
        if k > (n - modes.len()) as u64 {
            return Err(bad("the patch's mode runs cover more entries than the older tree has"));
        }
        modes.resize(modes.len() + k as usize, m);
    }
    if modes.len() != n {
        return Err(bad("the patch's mode runs do not cover the older tree"));
    }
    Ok(modes)
}

/// Runs one file's ops until `size` bytes are written.
fn file_ops<R: Read>(
    s: &mut Stream<R>,
    f: &mut Out,
    listing: &Listing,
    old: &mut OldFiles<'_>,
    mut src: Option<usize>,
    size: u64,
    buf: &mut [u8],
) -> io::Result<()> {
    let mut expect = 0u64;
    while f.done < size {
        let v = s.varint()?;
        let arg = v >> 2;
        let left = size - f.done;
        match v & 3 {
            op::COPY => {
                let delta = ops::unzigzag(s.varint()?);
                let i = src.ok_or_else(|| bad("the patch copies before naming a source file"))?;
                let e = &listing.entries[i];
                let off = u64::try_from(expect as i64 + delta)
                    .map_err(|_| bad("the patch copies from before a file's start"))?;
                if arg > left || off.checked_add(arg).is_none_or(|end| end > e.size) {
                    return Err(bad(format!("the patch copies beyond the end of {}", e.path)));
                }
                let r = old.get(i, &e.path)?;
                r.seek(SeekFrom::Start(off))?;
                f.copy_from(r, arg, buf)
                    .map_err(|x| io_ctx(format!("older build file {}", e.path), x))?;
                expect = off + arg;
            }
            op::INSERT => {
                if arg > left {
                    return Err(bad("the patch inserts beyond a file's size"));
                }
                f.copy_from(&mut s.r, arg, buf).map_err(|e| s.err(e))?;
            }
            op::SRC => {
                let i = usize::try_from(arg)
                    .ok()
                    .filter(|i| listing.entries.get(*i).is_some_and(|e| e.link.is_none()));
                src = Some(i.ok_or_else(|| {
                    bad(format!("the patch copies from older entry {arg}, which is not a file"))
                })?);
                expect = 0;
            }
            _ => return Err(bad("the patch data is corrupt: unknown op")),
        }
    }
    Ok(())
}

/// Directories, symlinks and modes, once every file is written. Modes last, deepest
/// directory first, so a read-only directory stops nothing inside it.
fn finish(out: &Path, listing: &Listing, nw: &mut Newer) -> io::Result<()> {
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;
    // A file or link of the newer build where the older tree had a directory (one its
    // table did not list) wins over that directory.
    let taken: HashSet<&str> = nw
        .files
        .iter()
        .map(|f| f.0.as_str())
        .chain(nw.links.iter().map(|l| l.0.as_str()))
        .collect();
    let blocked = |p: &str| {
        p.match_indices('/')
            .map(|(k, _)| &p[..k])
            .chain(std::iter::once(p))
            .any(|a| taken.contains(a))
    };
    let mut dirs: Vec<(String, u32)> = listing
        .dirs
        .iter()
        .filter(|(p, _)| !nw.rmdirs.contains(p) && !nw.named.contains(p) && !blocked(p))
        .cloned()
        .collect();
    dirs.extend(nw.dirs.iter().cloned());
    // The newer tree whole, before any of its directories or links is created.
    let tree = nw.files.iter().map(|f| safepath::Item::new(&f.0, Kind::File, None));
    let tree = tree.chain(dirs.iter().map(|d| safepath::Item::new(&d.0, Kind::Dir, None)));
    let links = nw.links.iter().map(|l| safepath::Item::new(&l.0, Kind::Symlink, Some(&l.1)));
    check_listing("the patched tree", tree.chain(links))?;
    for (p, _) in &dirs {
        fs::create_dir_all(out.join(p))?;
    }
    for (p, t) in &nw.links {
        let at = out.join(p);
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent)?;
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(t, &at).map_err(|e| io_ctx(format!("symlink {p}"), e))?;
    }
    #[cfg(unix)]
    {
        for (p, mode, _, _) in &nw.files {
            fs::set_permissions(out.join(p), fs::Permissions::from_mode(mode & 0o7777))?;
        }
        dirs.sort_by(|a, b| b.0.cmp(&a.0));
        for (p, mode) in &dirs {
            fs::set_permissions(out.join(p), fs::Permissions::from_mode(mode & 0o7777))?;
        }
    }
    Ok(())
}
