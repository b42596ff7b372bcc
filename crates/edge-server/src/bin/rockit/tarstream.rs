//! A directory as an uncompressed tar, made while it is sent: ustar headers, with a PAX
//! extended header for a path or link target over 100 bytes or a file over 8 GiB. The walk
//! comes first (sorted by path, for a deterministic archive) and gives the exact length up
//! front; then [`TarStream`] reads one file at a time, never holding more than a header.
//!
//! Only what the Edge accepts goes in (delivery.md, `mkraw`): regular files, directories,
//! and symlinks that stay inside the tree; names must be UTF-8; the tree must pass the
//! Edge's rules for names, links and what lies under them (`edge_engine::safepath`).
//! Anything else is refused before a byte is sent.
//!
//! The members' bytes come from the files of a directory, or from the entries of a zip
//! archive (ziptar.rs), which is thereby sent as the same tar.

use crate::fail::Fail;
use edge_engine::safepath::{self, shown, Why};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const BLOCK: u64 = 512;
/// Largest value of an 11-digit octal field (8 GiB - 1).
const OCTAL11_MAX: u64 = 0o777_7777_7777;

/// What a member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

/// Where a file member's bytes come from.
#[derive(Debug, Clone)]
pub enum Data {
    /// The file `<root>/<rel>` of a walked directory.
    Disk,
    /// An entry of the zip archive at `<root>`.
    Zip(crate::ziptar::ZipData),
}

/// One archive member, as found by the walk (or read from a zip's central directory).
#[derive(Debug)]
pub struct Member {
    /// Path relative to the root, `/`-separated; directories end with `/`.
    pub rel: String,
    /// File, directory or link.
    pub kind: Kind,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// Modification time, Unix seconds.
    pub mtime: u64,
    /// Bytes of a file (0 for the rest).
    pub size: u64,
    /// A link's target.
    pub link: Option<String>,
    /// Where a file's bytes come from.
    pub data: Data,
}

/// A walked directory (or a read zip): its members and the archive's exact length.
#[derive(Debug)]
pub struct Tree {
    /// The directory, or the zip file.
    root: PathBuf,
    members: Vec<Member>,
    /// Bytes of the whole archive.
    pub len: u64,
    /// Regular files.
    pub files: u64,
}

fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

/// The PAX records a member needs (empty when the ustar header says everything).
fn pax_records(m: &Member) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rec = |key: &str, val: &[u8]| {
        // "<len> <key>=<value>\n", where <len> counts itself.
        let base = key.len() + val.len() + 3;
        let mut len = base + 1;
        while len != base + len.to_string().len() {
            len = base + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(val);
        out.push(b'\n');
    };
    if m.rel.len() > 100 {
        rec("path", m.rel.as_bytes());
    }
    if let Some(l) = m.link.as_deref().filter(|l| l.len() > 100) {
        rec("linkpath", l.as_bytes());
    }
    if m.size > OCTAL11_MAX {
        rec("size", m.size.to_string().as_bytes());
    }
    out
}

fn member_len(m: &Member) -> u64 {
    let pax = pax_records(m).len() as u64;
    let ext = if pax > 0 { BLOCK + padded(pax) } else { 0 };
    ext + BLOCK + if m.kind == Kind::File { padded(m.size) } else { 0 }
}

/// Writes `v` as zero-padded octal followed by NUL; too large: GNU base-256.
fn numeric(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    if s.len() <= digits {
        field[..digits].copy_from_slice(s.as_bytes());
        field[digits] = 0;
    } else {
        field.fill(0);
        let n = field.len();
        for (i, b) in v.to_be_bytes().iter().rev().enumerate() {
            field[n - 1 - i] = *b;
        }
        field[0] |= 0x80;
    }
}

/// A ustar header block.
fn header(name: &[u8], typeflag: u8, mode: u32, size: u64, mtime: u64, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    numeric(&mut h[100..108], u64::from(mode & 0o7777));
    numeric(&mut h[108..116], 0);
    numeric(&mut h[116..124], 0);
    numeric(&mut h[124..136], size);
    numeric(&mut h[136..148], mtime.min(OCTAL11_MAX));
    h[156] = typeflag;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    numeric(&mut h[329..337], 0);
    numeric(&mut h[337..345], 0);
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// The header block(s) of a member: a PAX extended header first when needed.
fn headers(m: &Member) -> Vec<u8> {
    let pax = pax_records(m);
    let mut out = Vec::with_capacity(1024 + pax.len());
    if !pax.is_empty() {
        out.extend_from_slice(&header(b"PaxHeader", b'x', 0o644, pax.len() as u64, m.mtime, b""));
        out.extend_from_slice(&pax);
        out.resize(padded(out.len() as u64) as usize, 0);
    }
    let (flag, size) = match m.kind {
        Kind::File => (b'0', m.size),
        Kind::Dir => (b'5', 0),
        Kind::Symlink => (b'2', 0),
    };
    out.extend_from_slice(&header(
        m.rel.as_bytes(),
        flag,
        m.mode,
        size,
        m.mtime,
        m.link.as_deref().unwrap_or("").as_bytes(),
    ));
    out
}

/// Walks `root` (sorted by name at every level; symlinks are not followed).
pub fn walk(root: &Path) -> Result<Tree, Fail> {
    let mut t = Tree { root: root.to_path_buf(), members: Vec::new(), len: 2 * BLOCK, files: 0 };
    visit(root, "", &mut t)?;
    Tree::assemble(root.to_path_buf(), t.members)
}

impl Tree {
    /// The tree of `members` read from `root`: checked against the Edge's rules, with the
    /// archive's length and the file counts.
    pub fn assemble(root: PathBuf, members: Vec<Member>) -> Result<Tree, Fail> {
        check(&members)?;
        let files = members.iter().filter(|m| m.kind == Kind::File).count() as u64;
        let len = 2 * BLOCK + members.iter().map(member_len).sum::<u64>();
        Ok(Tree { root, members, len, files })
    }
}

fn visit(dir: &Path, prefix: &str, t: &mut Tree) -> Result<(), Fail> {
    let io = |p: &Path, e: io::Error| Fail::new(format!("{}: {e}", p.display()));
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        names.push(e.map_err(|e| io(dir, e))?.file_name());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let path = dir.join(&name);
        let Some(name) = name.to_str() else {
            return Err(Fail::new(format!(
                "{}: the file name is not UTF-8 (the Edge accepts UTF-8 names only)",
                path.display()
            )));
        };
        let rel = format!("{prefix}{name}");
        let md = std::fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
        let (mode, mtime) = (md.permissions().mode() & 0o7777, md.mtime().max(0) as u64);
        let ft = md.file_type();
        if ft.is_dir() {
            let rel = format!("{rel}/");
            t.members.push(Member {
                rel: rel.clone(),
                kind: Kind::Dir,
                mode,
                mtime,
                size: 0,
                link: None,
                data: Data::Disk,
            });
            visit(&path, &rel, t)?;
        } else if ft.is_file() {
            t.members.push(Member {
                rel,
                kind: Kind::File,
                mode,
                mtime,
                size: md.len(),
                link: None,
                data: Data::Disk,
            });
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| io(&path, e))?;
            let Some(target) = target.to_str() else {
                return Err(Fail::new(format!("{}: the link target is not UTF-8", path.display())));
            };
            let link = Some(target.to_string());
            t.members.push(Member {
                rel,
                kind: Kind::Symlink,
                mode: 0o777,
                mtime,
                size: 0,
                link,
                data: Data::Disk,
            });
        } else {
            use std::os::unix::fs::FileTypeExt;
            let what = if ft.is_fifo() {
                "a fifo"
            } else if ft.is_socket() {
                "a socket"
            } else if ft.is_char_device() {
                "a character device"
            } else {
                "a block device"
            };
            return Err(Fail::new(format!(
                "{rel}: {what}; the Edge takes regular files, directories and symbolic links only"
            )));
        }
    }
    Ok(())
}

/// The tree against the Edge's rules (`edge_engine::safepath`), as `mkraw` will check it.
fn check(members: &[Member]) -> Result<(), Fail> {
    let kind = |k: Kind| match k {
        Kind::File => edge_engine::tree::Kind::File,
        Kind::Dir => edge_engine::tree::Kind::Dir,
        Kind::Symlink => edge_engine::tree::Kind::Symlink,
    };
    let listing = members
        .iter()
        .map(|m| safepath::Item::new(m.rel.trim_end_matches('/'), kind(m.kind), m.link.as_deref()));
    safepath::check(listing).map_err(|r| {
        let target = members.iter().find(|m| m.rel == r.path).and_then(|m| m.link.as_deref());
        match (r.why, target) {
            (Why::Leaves | Why::Loop | Why::TargetBackslash | Why::TargetControl, Some(t)) => {
                Fail::new(format!("{r} (-> {}); the Edge refuses it", shown(t)))
            }
            _ => Fail::new(format!("{r}; the Edge refuses it")),
        }
    })
}

/// What went wrong on the sending side (a file changed or could not be read), as opposed
/// to the connection: set by the stream when it fails.
pub type LocalError = Arc<Mutex<Option<String>>>;

struct Open {
    file: Box<dyn Read + Send>,
    /// The file (or `archive.zip: entry`) for messages.
    shown: String,
    left: u64,
    pad: usize,
}

/// The archive of a walked tree as a byte stream.
pub struct TarStream {
    tree: Arc<Tree>,
    next: usize,
    buf: Vec<u8>,
    pos: usize,
    open: Option<Open>,
    trailer: bool,
    local: LocalError,
}

impl TarStream {
    pub fn new(tree: Arc<Tree>, local: LocalError) -> TarStream {
        TarStream { tree, next: 0, buf: Vec::new(), pos: 0, open: None, trailer: false, local }
    }

    fn fail(&self, msg: String) -> io::Error {
        *self.local.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg.clone());
        io::Error::other(msg)
    }
}

impl Read for TarStream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pos < self.buf.len() {
                let n = out.len().min(self.buf.len() - self.pos);
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if let Some(o) = &mut self.open {
                if o.left > 0 {
                    let want = out.len().min(o.left.min(usize::MAX as u64) as usize);
                    let n = match o.file.read(&mut out[..want]) {
                        Ok(0) => {
                            let msg = match self.tree.members[self.next - 1].data {
                                Data::Disk => format!("{} shrank while it was being sent", o.shown),
                                Data::Zip(_) => format!(
                                    "{}: the entry's data ends early (a damaged zip)",
                                    o.shown
                                ),
                            };
                            return Err(self.fail(msg));
                        }
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            let msg = format!("{}: {e}", o.shown);
                            return Err(self.fail(msg));
                        }
                    };
                    o.left -= n as u64;
                    return Ok(n);
                }
                self.buf.clear();
                self.buf.resize(o.pad, 0);
                self.pos = 0;
                self.open = None;
                continue;
            }
            if self.next < self.tree.members.len() {
                let m = &self.tree.members[self.next];
                self.next += 1;
                self.buf = headers(m);
                self.pos = 0;
                if m.kind == Kind::File && m.size > 0 {
                    let (file, shown): (Box<dyn Read + Send>, String) = match &m.data {
                        Data::Disk => {
                            let path = self.tree.root.join(&m.rel);
                            let file = File::open(&path)
                                .map_err(|e| self.fail(format!("{}: {e}", path.display())))?;
                            let now = file.metadata().map(|md| md.len()).unwrap_or(0);
                            if now != m.size {
                                return Err(self.fail(format!(
                                    "{} changed while the build was being sent",
                                    path.display()
                                )));
                            }
                            (Box::new(file), path.display().to_string())
                        }
                        Data::Zip(z) => {
                            let shown = format!("{}: {}", self.tree.root.display(), m.rel);
                            let r = z
                                .open(&self.tree.root, m.size)
                                .map_err(|e| self.fail(format!("{shown}: {e}")))?;
                            (Box::new(r), shown)
                        }
                    };
                    let pad = (padded(m.size) - m.size) as usize;
                    self.open = Some(Open { file, shown, left: m.size, pad });
                }
                continue;
            }
            if !self.trailer {
                self.trailer = true;
                self.buf.clear();
                self.buf.resize(2 * BLOCK as usize, 0);
                self.pos = 0;
                continue;
            }
            return Ok(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rockit-tar-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let m = Member {
            rel: "x".repeat(150),
            kind: Kind::File,
            mode: 0o644,
            mtime: 0,
            size: 1,
            link: None,
            data: Data::Disk,
        };
        let r = String::from_utf8(pax_records(&m)).unwrap();
        let (len, _) = r.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), r.len());
        let m = Member {
            rel: "x".repeat(93),
            kind: Kind::File,
            mode: 0,
            mtime: 0,
            size: 1 << 40,
            link: None,
            data: Data::Disk,
        };
        let r = String::from_utf8(pax_records(&m)).unwrap();
        assert_eq!(r, "22 size=1099511627776\n");
    }

    #[test]
    fn streams_exactly_the_computed_length_and_gnu_tar_reads_it() {
        let d = tmp("gnu");
        let src = d.join("src");
        let long_dir = format!("{}/{}", "d".repeat(90), "e".repeat(90));
        std::fs::create_dir_all(src.join(&long_dir)).unwrap();
        std::fs::write(src.join(&long_dir).join("f.bin"), vec![7u8; 1000]).unwrap();
        std::fs::write(src.join("a.txt"), b"hello").unwrap();
        std::fs::write(src.join("empty"), b"").unwrap();
        let target = format!("{long_dir}/f.bin");
        std::os::unix::fs::symlink(&target, src.join("link")).unwrap();
        let tree = Arc::new(walk(&src).unwrap());
        assert_eq!(tree.files, 3);
        let mut out = Vec::new();
        TarStream::new(tree.clone(), LocalError::default()).read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, tree.len);
        let tar = d.join("x.tar");
        std::fs::write(&tar, &out).unwrap();
        let dst = d.join("dst");
        std::fs::create_dir_all(&dst).unwrap();
        let st = std::process::Command::new("tar").arg("xf").arg(&tar).arg("-C").arg(&dst).status();
        if let Ok(st) = st {
            assert!(st.success());
            assert_eq!(std::fs::read(dst.join(&long_dir).join("f.bin")).unwrap(), vec![7u8; 1000]);
            assert_eq!(std::fs::read(dst.join("a.txt")).unwrap(), b"hello");
            assert_eq!(std::fs::read_link(dst.join("link")).unwrap().to_str().unwrap(), target);
        }
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn refuses_links_leaving_the_tree() {
        let d = tmp("out");
        std::os::unix::fs::symlink("../../etc/passwd", d.join("bad")).unwrap();
        let e = walk(&d).unwrap_err().to_string();
        assert!(e.contains("bad: symbolic link leaving the tree"), "{e}");
        std::fs::remove_dir_all(d).unwrap();
        // Through another link: `s -> .` makes `../s/..` the root's parent.
        let d = tmp("via");
        std::fs::create_dir_all(d.join("a")).unwrap();
        std::os::unix::fs::symlink(".", d.join("s")).unwrap();
        std::os::unix::fs::symlink("../s/..", d.join("a/l")).unwrap();
        let e = walk(&d).unwrap_err().to_string();
        assert!(e.contains("a/l: symbolic link leaving the tree (-> ../s/..)"), "{e}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn refuses_names_unsafe_for_players() {
        for (name, why) in
            [("..\\..\\evil.dll", "backslash in name"), ("new\nline", "control character in name")]
        {
            let d = tmp("names");
            std::fs::write(d.join(name), b"x").unwrap();
            let e = walk(&d).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
            assert!(!e.contains('\n'), "one line: {e:?}");
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}
