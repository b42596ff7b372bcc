//! `rockit mount`: a published image as a read-only FUSE file system, served while it
//! streams by the launcher runtime (`edge-client`): the build's tree exactly (paths, sizes,
//! modes, symbolic links, directories), every byte verified, every read recorded; on exit
//! the trace goes to the Edge and the session is closed. Also the pieces `rockit run`
//! builds on: opening a runtime from the flags, mounting, unmounting, reporting.

use crate::api::{Api, Global};
use crate::fail::Fail;
use crate::report;
use edge_client::{ImageSource, Kind, Options, Runtime, Session, SessionRequest, Summary};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEntry, ReplyOpen, ReplyStatfs, Request,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the image comes from and how the runtime works: the flags `mount` and `run` share.
#[derive(clap::Args, Clone, Debug)]
pub struct LaunchArgs {
    /// The organization (default: $ROCKIT_ORG, else the profile's).
    #[arg(long)]
    pub org: Option<String>,
    /// The app to play: a launcher session is opened with its client key.
    #[arg(long)]
    pub app: Option<String>,
    /// The app's client key (default: $ROCKIT_CLIENT_KEY, else read from the app with your
    /// login, which needs keys Read).
    #[arg(long, value_name = "KEY")]
    pub client_key: Option<String>,
    /// Play this build instead of the current one.
    #[arg(long, value_name = "ID")]
    pub build_id: Option<u64>,
    /// The cache directory (default: $XDG_CACHE_HOME/rockit/<org>/<app>, else
    /// ~/.cache/rockit/…). One runtime at a time may use it.
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Download cap, such as 100Mbit, 8Mbit/s, 2MB, 500KiB (default: none).
    #[arg(long, value_name = "RATE")]
    pub bandwidth: Option<String>,
    /// Seconds a read may wait for the network before it fails with EIO.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
    /// Download only what is read (no background stream of the whole image).
    #[arg(long)]
    pub no_prefetch: bool,
    /// The organization's RSA public key in PEM, for an image given by URL (a session
    /// brings its own): the manifest must then carry a signature that verifies with it.
    #[arg(long, value_name = "PEM_FILE")]
    pub public_key: Option<PathBuf>,
}

/// Mount a published image as a read-only file system while it streams.
///
/// With --app (and --server, --org, --client-key, or their defaults) a launcher session is
/// opened and the app's current build is mounted; with a manifest URL, that image. Reads
/// are served from the cache as soon as their chunks are verified; data not there yet is
/// fetched at once. Every read is recorded; on Ctrl-C or SIGTERM (or an external
/// `fusermount3 -u DIR`) the directory is unmounted, the trace is sent and the session
/// closed. Prints one line when mounted and one when done (JSON lines with --json).
#[derive(clap::Args)]
pub struct Args {
    /// `MANIFEST_URL DIR`, or `DIR` with --app.
    #[arg(value_name = "MANIFEST_URL|DIR", num_args = 1..=2, required = true)]
    pub pos: Vec<String>,
    #[command(flatten)]
    pub launch: LaunchArgs,
    /// Let other users (and root) see the file system (needs user_allow_other in
    /// /etc/fuse.conf for non-root users).
    #[arg(long)]
    pub allow_other: bool,
    /// Show progress on stderr even when it is not a terminal.
    #[arg(long)]
    pub progress: bool,
    /// Also write the recorded trace (rockit-trace JSON) to this file at exit.
    #[arg(long, value_name = "FILE")]
    pub trace_out: Option<PathBuf>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// The cache directory's default root: `$XDG_CACHE_HOME/rockit` or `~/.cache/rockit`.
fn cache_root() -> Result<PathBuf, Fail> {
    if let Some(x) = env("XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Ok(x.join("rockit"));
    }
    let home = env("HOME")
        .ok_or_else(|| Fail::new("no cache directory: give --cache DIR (HOME is not set)"))?;
    Ok(PathBuf::from(home).join(".cache").join("rockit"))
}

/// A name fit for a directory: other characters become `_`.
fn dir_name(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
        .collect()
}

/// Opens the runtime the flags describe: a session for `--app`, else the image at `url`.
pub fn open_runtime(
    g: &Global,
    a: &LaunchArgs,
    url: Option<&str>,
    record: bool,
) -> Result<Runtime, Fail> {
    let bandwidth = match &a.bandwidth {
        Some(b) => Some(edge_client::parse_bandwidth(b).ok_or_else(|| {
            Fail::new(format!("--bandwidth {b:?}: give a rate such as 100Mbit or 2MB"))
        })?),
        None => None,
    };
    if a.timeout == 0 {
        return Err(Fail::new("--timeout must be at least 1 second"));
    }
    let (source, default_cache) = match (url, &a.app) {
        (Some(_), Some(_)) => return Err(Fail::new("give either a manifest URL or --app, not both")),
        (Some(u), None) => {
            if !crate::source::is_url(u) {
                return Err(Fail::new(format!("{u}: give the image's http(s) manifest URL, or --app to open a session")));
            }
            let pem = a.public_key.as_deref().map(crate::key::load_public).transpose()?;
            let dir = u.split('?').next().unwrap_or(u).trim_end_matches("manifest.json").trim_end_matches('/');
            let tag = edge_engine::Hash::of(dir.as_bytes()).hex();
            (ImageSource::Url { manifest_url: u.to_string(), public_key_pem: pem }, PathBuf::from("url").join(&tag[..16]))
        }
        (None, Some(app)) => {
            if a.public_key.is_some() {
                return Err(Fail::new("--public-key is for an image given by URL: a session brings the organization's key"));
            }
            let session = open_session(g, a, app)?;
            let cache = PathBuf::from(dir_name(&session.org_name)).join(dir_name(app));
            (ImageSource::Session(Box::new(session)), cache)
        }
        (None, None) => {
            return Err(Fail::new("give the image's manifest URL, or --app (with --server, --org, --client-key) to open a session"))
        }
    };
    let cache = match &a.cache {
        Some(c) => c.clone(),
        None => cache_root()?.join(default_cache),
    };
    let mut o = Options::new(cache);
    o.bandwidth = bandwidth;
    o.read_timeout = Duration::from_secs(a.timeout);
    o.request_timeout = Duration::from_secs(a.timeout.clamp(1, 20));
    o.prefetch = !a.no_prefetch;
    o.record = record;
    let session = match &source {
        ImageSource::Session(s) => Some(s.clone()),
        ImageSource::Url { .. } => None,
    };
    let rt = Runtime::open(source, o).map_err(|e| {
        // Nothing was played: the session ends at once.
        if let Some(s) = session {
            let _ = s.close(edge_client::SessionEnd::default());
        }
        Fail::new(e)
    })?;
    // How a cache holding an older build moved to this one (stderr: stdout is the game's).
    if let Some(u) = rt.update() {
        if g.json {
            eprintln!("{}", serde_json::json!({"update": u.to_json()}));
        } else {
            eprintln!("rockit: {}", u.describe());
        }
    }
    Ok(rt)
}

/// Opens a launcher session for `app` with the client key from the flags, the environment
/// or (with a login that may read keys) the app itself.
fn open_session(g: &Global, a: &LaunchArgs, app: &str) -> Result<Session, Fail> {
    let mut api = Api::open(g)?;
    let org = a
        .org
        .clone()
        .or_else(|| env("ROCKIT_ORG"))
        .or_else(|| api.profile.org.clone())
        .ok_or_else(|| Fail::new("no organization: give --org or log in"))?;
    let key = match a.client_key.clone().or_else(|| env("ROCKIT_CLIENT_KEY")) {
        Some(k) => k,
        None => {
            let v = api.get(&format!("/be/v1/apps/{app}"), &[])?;
            v["app"]["clientKey"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| Fail::new("the app's client key is not shown to you (keys Read needed): give --client-key"))?
        }
    };
    let req = SessionRequest {
        server: api.server.clone(),
        org,
        app: app.to_string(),
        client_key: key,
        build_id: a.build_id,
    };
    Session::open(&req, Duration::from_secs(30)).map_err(Fail::new)
}

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
pub struct ImageFs {
    rt: Arc<Runtime>,
    /// Inode `n` is `nodes[n - 1]`; the root is inode 1.
    nodes: Vec<Node>,
    mtime: SystemTime,
    uid: u32,
    gid: u32,
}

/// Attributes never change: the kernel may keep them.
const TTL: Duration = Duration::from_secs(3600);
/// What `stat` reports as the preferred I/O size (stdio and Python buffer with it).
const BLKSIZE: u32 = 128 << 10;

impl ImageFs {
    /// The tree of the runtime's image.
    pub fn new(rt: Arc<Runtime>) -> ImageFs {
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
        let mtime = time::OffsetDateTime::parse(
            &rt.image().manifest().created,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
        .unwrap_or(UNIX_EPOCH);
        let me = std::fs::metadata("/proc/self").ok();
        let (uid, gid) = me.map(|m| (m.uid(), m.gid())).unwrap_or((0, 0));
        ImageFs { rt, nodes, mtime, uid, gid }
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

fn errno(e: &edge_client::Error) -> Errno {
    Errno::from_i32(e.errno())
}

impl Filesystem for ImageFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Shared read-only mappings of direct-I/O files (a game mapping its data), where the
        // kernel allows it (Linux 6.6+); elsewhere private mappings still work.
        let _ = config.add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP);
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
            // Direct I/O: every read the program makes reaches the runtime (and the trace),
            // not a guess of the kernel's read-ahead.
            Some(FileType::RegularFile) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
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
        let serve =
            move |rt: &Runtime, reply: ReplyData| match rt.read(entry, offset, u64::from(size)) {
                Ok(data) => reply.data(&data),
                Err(e) => {
                    eprintln!("rockit: read {} at {offset}: {e}", rt.image().entries()[entry].path);
                    reply.error(errno(&e))
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

/// A mounted image.
pub struct Mounted {
    bg: Option<fuser::BackgroundSession>,
    dir: PathBuf,
}

/// Mounts the runtime's image on `dir` (an existing directory).
pub fn mount(rt: Arc<Runtime>, dir: &Path, allow_other: bool) -> Result<Mounted, Fail> {
    if !dir.is_dir() {
        return Err(Fail::new(format!("{}: not a directory (create it first)", dir.display())));
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
    if allow_other {
        cfg.acl = fuser::SessionACL::All;
    }
    let bg = fuser::spawn_mount(ImageFs::new(rt), dir, &cfg).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (is FUSE available: /dev/fuse, fusermount3 from the fuse3 package?)"
        } else {
            ""
        };
        Fail::new(format!("mounting on {}: {e}{hint}", dir.display()))
    })?;
    Ok(Mounted { bg: Some(bg), dir: dir.to_path_buf() })
}

/// Runs `fusermount3 -u [-z] DIR`, else `umount [-l] DIR`; true when one succeeded.
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

impl Mounted {
    /// The mount ended by itself (an external unmount).
    pub fn ended(&self) -> bool {
        self.bg.as_ref().is_none_or(|b| b.guard.is_finished())
    }

    /// Unmounts (lazily when files are still open) and waits, up to a few seconds, for the
    /// file system to stop; a connection still held open then ends with the process.
    pub fn unmount(mut self) {
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

/// Blocks until Ctrl-C, SIGTERM or SIGHUP, or until `done()` says to stop; calls `tick`
/// every 200 ms meanwhile. True when a signal ended the wait.
pub fn wait(mut done: impl FnMut() -> bool, mut tick: impl FnMut()) -> Result<bool, Fail> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail::new(format!("signals: {e}")))?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| Fail::new(format!("signals: {e}")))?;
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| Fail::new(format!("signals: {e}")))?;
        let mut hup =
            signal(SignalKind::hangup()).map_err(|e| Fail::new(format!("signals: {e}")))?;
        if done() {
            return Ok(false);
        }
        loop {
            tokio::select! {
                _ = term.recv() => return Ok(true),
                _ = int.recv() => return Ok(true),
                _ = hup.recv() => return Ok(true),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if done() {
                        return Ok(false);
                    }
                    tick();
                }
            }
        }
    })
}

/// A one-line status for stderr.
pub fn status_line(rt: &Runtime) -> String {
    let p = rt.progress();
    let pct = if p.total_bytes > 0 {
        p.verified_bytes as f64 * 100.0 / p.total_bytes as f64
    } else {
        100.0
    };
    let mut s = format!(
        "verified {} of {} ({pct:.0} %)",
        report::bytes(p.verified_bytes),
        report::bytes(p.total_bytes)
    );
    s.push_str(if p.preload_reached { ", preload ready" } else { ", preloading" });
    if let Some(st) = &p.stall {
        s.push_str(&format!(", waiting for {} ({:.1} s)", st.path, st.waited.as_secs_f64()));
    }
    if p.bad_chunks > 0 {
        s.push_str(&format!(", {} bad chunk(s)", p.bad_chunks));
    }
    s
}

/// Progress on stderr (a terminal, or when asked), at most every 200 ms.
pub struct StatusLine {
    on: bool,
    tty: bool,
    last: String,
}

impl StatusLine {
    /// Shown when stderr is a terminal or `forced`.
    pub fn new(forced: bool) -> StatusLine {
        let tty = std::io::stderr().is_terminal();
        StatusLine { on: tty || forced, tty, last: String::new() }
    }

    /// Shows the runtime's status when it changed.
    pub fn tick(&mut self, rt: &Runtime) {
        if !self.on {
            return;
        }
        let s = status_line(rt);
        if s == self.last {
            return;
        }
        let mut e = std::io::stderr();
        if self.tty {
            let _ = write!(e, "\r\x1b[K{s}");
        } else {
            let _ = writeln!(e, "{s}");
        }
        let _ = e.flush();
        self.last = s;
    }

    /// Clears a terminal line.
    pub fn clear(&self) {
        if self.on && self.tty && !self.last.is_empty() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// Ends the runtime and reports to the session: the summary and the trace's id.
pub fn finish(rt: &Runtime) -> Result<(Summary, Option<String>), Fail> {
    let summary = rt.finish();
    let id = summary.report().map_err(|e| Fail::new(format!("reporting the session: {e}")))?;
    Ok((summary, id))
}

/// The summary as JSON (`--json`).
pub fn summary_json(s: &Summary, trace_id: &Option<String>) -> serde_json::Value {
    let end = s.session_end();
    json!({
        "sessionId": s.session.as_ref().map(|x| x.id.clone()), "traceId": trace_id,
        "events": s.trace.events.len(), "paths": s.trace.paths.len(), "droppedEvents": s.dropped_events,
        "playSeconds": end.play_seconds, "stalls": s.stalls, "stallSeconds": end.stall_seconds,
        "downloadedBytes": s.downloaded_bytes, "requests": s.requests, "verifiedBytes": s.verified_bytes, "totalBytes": s.total_bytes,
    })
}

/// `MANIFEST_URL DIR`, or `DIR` with `--app`: (the URL, the directory).
pub fn split_pos<'a>(
    pos: &'a [String],
    a: &LaunchArgs,
) -> Result<(Option<&'a str>, PathBuf), Fail> {
    match (pos, &a.app) {
        ([d], Some(_)) => Ok((None, PathBuf::from(d))),
        ([u, d], None) => Ok((Some(u.as_str()), PathBuf::from(d))),
        ([_], None) => Err(Fail::new(
            "give the image's manifest URL and the directory, or --app and the directory",
        )),
        _ => Err(Fail::new("with --app give only the directory")),
    }
}

/// `rockit mount`.
pub fn run(g: &Global, a: Args) -> Result<(), Fail> {
    let (url, dir) = split_pos(&a.pos, &a.launch)?;
    if !dir.is_dir() {
        return Err(Fail::new(format!("{}: not a directory (create it first)", dir.display())));
    }
    let rt = Arc::new(open_runtime(g, &a.launch, url, true)?);
    let m = rt.image().manifest();
    let session_id = rt.session().map(|s| s.id.clone());
    let mounted = mount(rt.clone(), &dir, a.allow_other)?;
    if g.json {
        let v = json!({"mounted": dir.display().to_string(), "appName": m.app_name, "buildId": m.build_id, "buildName": m.build_name,
                       "dxfName": m.dxf_name, "sessionId": session_id, "cache": rt.cache_dir().display().to_string()});
        println!("{v}");
    } else {
        println!(
            "mounted {} build {} \"{}\" ({}) on {}",
            m.app_name,
            m.build_id,
            m.build_name,
            m.dxf_name,
            dir.display()
        );
    }
    let _ = std::io::stdout().flush();
    let mut status = StatusLine::new(a.progress);
    let waited = wait(|| mounted.ended(), || status.tick(&rt));
    status.clear();
    mounted.unmount();
    waited?;
    if let Some(p) = &a.trace_out {
        std::fs::write(p, rt.trace().to_json())
            .map_err(|e| Fail::new(format!("{}: {e}", p.display())))?;
    }
    let (s, id) = finish(&rt)?;
    if g.json {
        let mut v = summary_json(&s, &id);
        v["unmounted"] = json!(dir.display().to_string());
        println!("{v}");
    } else {
        let end = s.session_end();
        let mut line = format!(
            "unmounted {} after {} s: {} events on {} files, {} stalls ({} s), downloaded {} in {} requests",
            dir.display(),
            end.play_seconds,
            s.trace.events.len(),
            s.trace.paths.len(),
            s.stalls,
            end.stall_seconds,
            report::bytes(s.downloaded_bytes),
            s.requests
        );
        if let Some(id) = &id {
            line.push_str(&format!("; trace {id} sent"));
        }
        if let Some(sess) = &s.session {
            line.push_str(&format!("; session {} closed", sess.id));
        }
        println!("{line}");
    }
    Ok(())
}
