//! The image as a read-only FUSE file system (cargo feature `fuse`): the build's tree
//! exactly (paths, sizes, modes, symbolic links, directories), served by a [`Runtime`]
//! while it streams — every byte verified, every read recorded in the trace. `rockit mount`,
//! `rockit run` and the C interface's `rockit_mount` are this module.
//!
//! No libfuse is linked: as root the directory is mounted with `mount(2)`, otherwise
//! through `fusermount3` (package `fuse3`).

use crate::error::{Error, ErrorKind, Result};
use crate::{Kind, Runtime};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEntry, ReplyOpen, ReplyStatfs, Request,
};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How an image is mounted.
#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// Let other users (and root) see the file system (`allow_other`; non-root users need
    /// `user_allow_other` in `/etc/fuse.conf`).
    pub allow_other: bool,
    /// Print each read that fails on stderr (`rockit: read PATH at OFFSET: why`), as the
    /// `rockit` command does; a library caller finds the last failure in
    /// [`crate::Progress::last_error`] instead.
    pub report_errors: bool,
    /// Open files with direct I/O instead of through the kernel's page cache. Then every
    /// read a program makes reaches the runtime as it was made, and the trace holds exactly
    /// the program's reads; but each read is a round trip to the runtime, which is slow for
    /// programs that read in small pieces (GNU `tar`'s 10 KiB records: 37–45 % of the
    /// local disk's speed, against 82 % through the page cache; docs/BENCHMARKS.md).
    /// Through the page cache (the default) the runtime sees the kernel's reads: the
    /// program's reads in pieces of up to [`READ_AHEAD`], and what the kernel reads ahead
    /// of a program reading on (at most twice [`READ_AHEAD`] beyond where it stops); reads
    /// the page cache serves again are not seen.
    pub direct_io: bool,
}

/// The kernel's read-ahead window through the page cache (its own default for FUSE): the
/// largest request it sends the runtime for small reads, and how far beyond a program's
/// reads the trace may reach.
pub const READ_AHEAD: u32 = 128 << 10;

/// One node of the mounted tree.
struct Node {
    parent: u64,
    kind: FileType,
    perm: u16,
    size: u64,
    /// The image entry (absent for the root and for directories the index only implies).
    entry: Option<usize>,
    target: Option<OsString>,
    /// Directories: name → inode, sorted.
    children: BTreeMap<OsString, u64>,
}

/// The read-only file system over a runtime.
struct ImageFs {
    rt: Arc<Runtime>,
    /// Inode `n` is `nodes[n - 1]`; the root is inode 1.
    nodes: Vec<Node>,
    mtime: SystemTime,
    uid: u32,
    gid: u32,
    report_errors: bool,
    /// How regular files are opened: through the page cache, or with direct I/O.
    open_flags: FopenFlags,
}

/// Attributes never change: the kernel may keep them.
const TTL: Duration = Duration::from_secs(3600);
/// What `stat` reports as the preferred I/O size (stdio and Python buffer with it).
const BLKSIZE: u32 = 128 << 10;

/// The image's `created` time (RFC 3339) as a file time; the epoch when it does not parse.
fn created(rfc3339: &str) -> SystemTime {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
        .unwrap_or(UNIX_EPOCH)
}

impl ImageFs {
    /// The tree of the runtime's image.
    fn new(rt: Arc<Runtime>, report_errors: bool, direct_io: bool) -> ImageFs {
        use std::os::unix::fs::MetadataExt;
        let dir = |parent| Node {
            parent,
            kind: FileType::Directory,
            perm: 0o755,
            size: 0,
            entry: None,
            target: None,
            children: BTreeMap::new(),
        };
        let mut nodes = vec![dir(1)];
        let mut by_path: BTreeMap<String, u64> = BTreeMap::new();
        for (i, e) in rt.image().entries().iter().enumerate() {
            // Parents the index does not list are directories.
            let mut parent = 1u64;
            let mut prefix = String::new();
            let parts: Vec<&str> = e.path.split('/').collect();
            for p in &parts[..parts.len() - 1] {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(p);
                parent = match by_path.get(&prefix) {
                    Some(&ino) => ino,
                    None => {
                        nodes.push(dir(parent));
                        let ino = nodes.len() as u64;
                        nodes[parent as usize - 1].children.insert(OsString::from(p), ino);
                        by_path.insert(prefix.clone(), ino);
                        ino
                    }
                };
            }
            let (kind, perm, size, target) = match e.kind {
                Kind::File => (FileType::RegularFile, (e.mode & 0o7777) as u16, e.size, None),
                Kind::Dir => (FileType::Directory, (e.mode & 0o7777) as u16, 0, None),
                Kind::Symlink => {
                    let t = e.target.clone().unwrap_or_default();
                    (FileType::Symlink, 0o777, t.len() as u64, Some(OsString::from(t)))
                }
            };
            match by_path.get(&e.path) {
                // A directory implied by an earlier entry, listed now: it takes its mode.
                Some(&ino) if kind == FileType::Directory => {
                    let n = &mut nodes[ino as usize - 1];
                    n.perm = perm;
                    n.entry = Some(i);
                }
                _ => {
                    nodes.push(Node {
                        parent,
                        kind,
                        perm,
                        size,
                        entry: Some(i),
                        target,
                        children: BTreeMap::new(),
                    });
                    let ino = nodes.len() as u64;
                    let name = parts[parts.len() - 1];
                    nodes[parent as usize - 1].children.insert(OsString::from(name), ino);
                    by_path.insert(e.path.clone(), ino);
                }
            }
        }
        let mtime = created(&rt.image().manifest().created);
        let me = std::fs::metadata("/proc/self").ok();
        let (uid, gid) = me.map(|m| (m.uid(), m.gid())).unwrap_or((0, 0));
        // The image never changes while it is mounted: what the kernel keeps in its page
        // cache from an earlier open of a file stays right (FOPEN_KEEP_CACHE).
        let open_flags =
            if direct_io { FopenFlags::FOPEN_DIRECT_IO } else { FopenFlags::FOPEN_KEEP_CACHE };
        ImageFs { rt, nodes, mtime, uid, gid, report_errors, open_flags }
    }

    fn node(&self, ino: INodeNo) -> Option<&Node> {
        let i = u64::from(ino);
        (i >= 1).then(|| self.nodes.get(i as usize - 1)).flatten()
    }

    fn attr(&self, ino: u64) -> FileAttr {
        let n = &self.nodes[ino as usize - 1];
        let subdirs = n
            .children
            .values()
            .filter(|&&c| self.nodes[c as usize - 1].kind == FileType::Directory)
            .count() as u32;
        FileAttr {
            ino: INodeNo(ino),
            size: n.size,
            blocks: n.size.div_ceil(512),
            atime: self.mtime,
            mtime: self.mtime,
            ctime: self.mtime,
            crtime: self.mtime,
            kind: n.kind,
            perm: n.perm,
            nlink: if n.kind == FileType::Directory { 2 + subdirs } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: BLKSIZE,
            flags: 0,
        }
    }
}

impl Filesystem for ImageFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Shared read-only mappings of direct-I/O files (a game mapping its data), where the
        // kernel allows it (Linux 6.6+); elsewhere private mappings still work.
        let _ = config.add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP);
        // The kernel's read-ahead through the page cache, bounded: what it reads beyond a
        // program's reads lands in the trace too.
        if let Err(most) = config.set_max_readahead(READ_AHEAD) {
            let _ = config.set_max_readahead(most);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.node(parent).and_then(|p| p.children.get(name)) {
            Some(&ino) => reply.entry(&TTL, &self.attr(ino), Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Some(_) => reply.attr(&TTL, &self.attr(u64::from(ino))),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.node(ino).and_then(|n| n.target.as_ref()) {
            Some(t) => reply.data(t.as_bytes()),
            None => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.node(ino).map(|n| n.kind) {
            Some(FileType::RegularFile) => reply.opened(FileHandle(0), self.open_flags),
            Some(FileType::Directory) => reply.error(Errno::EISDIR),
            Some(_) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(entry) = self.node(ino).and_then(|n| n.entry) else {
            return reply.error(Errno::ENOENT);
        };
        let report = self.report_errors;
        let serve =
            move |rt: &Runtime, reply: ReplyData| match rt.read(entry, offset, u64::from(size)) {
                Ok(data) => reply.data(&data),
                Err(e) => {
                    if report {
                        eprintln!(
                            "rockit: read {} at {offset}: {e}",
                            rt.image().entries()[entry].path
                        );
                    }
                    reply.error(Errno::from_i32(e.errno()))
                }
            };
        if self.rt.ready(entry, offset, u64::from(size)) {
            return serve(&self.rt, reply);
        }
        // A read that waits for the network gets a thread of its own: the file system's
        // threads stay free for lookups and for reads the cache can serve.
        let rt = self.rt.clone();
        let _ =
            std::thread::Builder::new().name("rockit-read".into()).spawn(move || serve(&rt, reply));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.node(ino).map(|n| n.kind) {
            Some(FileType::Directory) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Some(_) => reply.error(Errno::ENOTDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(n) = self.node(ino) else { return reply.error(Errno::ENOENT) };
        let me = u64::from(ino);
        let fixed = [
            (me, FileType::Directory, OsStr::new(".")),
            (n.parent, FileType::Directory, OsStr::new("..")),
        ];
        let rest = n
            .children
            .iter()
            .map(|(name, &c)| (c, self.nodes[c as usize - 1].kind, name.as_os_str()));
        for (i, (ino, kind, name)) in
            fixed.into_iter().chain(rest).enumerate().skip(offset as usize)
        {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let m = self.rt.image().manifest();
        reply.statfs(
            m.size_bytes.div_ceil(4096),
            0,
            0,
            self.nodes.len() as u64,
            0,
            4096,
            255,
            4096,
        );
    }
}

/// A mounted image. Dropping it unmounts it, as [`Mount::unmount`] does.
pub struct Mount {
    bg: Option<fuser::BackgroundSession>,
    dir: PathBuf,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount").field("dir", &self.dir).field("ended", &self.ended()).finish()
    }
}

/// Mounts the runtime's image read-only on `dir` (an existing directory). Programs may
/// read the build there at once; reads are served as [`Runtime::read`] serves them
/// (fetching at once what is not cached yet) and recorded in the trace. Fails with
/// [`ErrorKind::NotFound`] for a missing directory, [`ErrorKind::Invalid`] for a path that is
/// not one, [`ErrorKind::Io`] when the kernel refuses the mount (no `/dev/fuse`, no
/// `fusermount3` for a user, a directory already mounted over).
pub fn mount(rt: Arc<Runtime>, dir: &Path, opts: &MountOptions) -> Result<Mount> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::new(
                ErrorKind::Invalid,
                format!("{}: not a directory", dir.display()),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("{}: not a directory (create it first)", dir.display()),
            ))
        }
        Err(e) => return Err(Error::io(dir.display(), e)),
    }
    let mut cfg = fuser::Config::default();
    cfg.mount_options = vec![
        MountOption::RO,
        MountOption::FSName(format!("rockit:{}", rt.image().dxf_name())),
        MountOption::Subtype("rockit".into()),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
    ];
    cfg.n_threads = Some(4);
    if opts.allow_other {
        cfg.acl = fuser::SessionACL::All;
    }
    let fs = ImageFs::new(rt, opts.report_errors, opts.direct_io);
    let bg = fuser::spawn_mount(fs, dir, &cfg).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (is FUSE available: /dev/fuse, fusermount3 from the fuse3 package?)"
        } else {
            ""
        };
        Error::new(ErrorKind::Io, format!("mounting on {}: {e}{hint}", dir.display()))
    })?;
    Ok(Mount { bg: Some(bg), dir: dir.to_path_buf() })
}

/// Runs `fusermount3 -u [-z] DIR`, else `umount [-l] DIR`; true when one succeeded. Also
/// what removes a dead mount left by a runtime killed with SIGKILL (`lazy`).
pub fn unmount_dir(dir: &Path, lazy: bool) -> bool {
    let quiet = |mut c: std::process::Command| {
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut f = std::process::Command::new("fusermount3");
    f.arg("-u");
    if lazy {
        f.arg("-z");
    }
    f.arg(dir);
    if quiet(f) {
        return true;
    }
    let mut u = std::process::Command::new("umount");
    if lazy {
        u.arg("-l");
    }
    u.arg(dir);
    quiet(u)
}

impl Mount {
    /// The mounted directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The mount ended by itself (an external unmount such as `fusermount3 -u DIR`).
    pub fn ended(&self) -> bool {
        self.bg.as_ref().is_none_or(|b| b.guard.is_finished())
    }

    /// Unmounts (lazily when files are still open) and waits, up to a few seconds, for the
    /// file system to stop; a connection still held open then ends with the process.
    pub fn unmount(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(bg) = self.bg.take() else { return };
        if !bg.guard.is_finished() && !unmount_dir(&self.dir, false) {
            unmount_dir(&self.dir, true);
        }
        let t = std::time::Instant::now();
        while !bg.guard.is_finished() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if bg.guard.is_finished() {
            let _ = bg.join();
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.stop();
    }
}
