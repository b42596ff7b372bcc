//! `rockit mount`: a published image as a read-only FUSE file system, served while it
//! streams by the launcher runtime (`edge-client`, whose `fs` module is the file system):
//! the build's tree exactly (paths, sizes, modes, symbolic links, directories), every byte
//! verified, every read recorded; on exit the trace goes to the Edge and the session is
//! closed. Also the pieces `rockit run` builds on: opening a runtime from the flags,
//! mounting, waiting for signals, reporting.

use crate::api::{Api, Global};
use crate::fail::Fail;
use crate::report;
use edge_client::fs::{Mount, MountOptions};
use edge_client::{ImageSource, Options, Runtime, Session, SessionRequest, Summary};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    /// Open files with direct I/O instead of through the page cache: the trace then holds
    /// exactly the programs' reads (without the kernel's read-ahead), but reads in small
    /// pieces are slower.
    #[arg(long)]
    pub direct_io: bool,
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

/// Mounts the runtime's image on `dir` (an existing directory), read-only; failed reads are
/// reported on stderr.
pub fn mount(
    rt: Arc<Runtime>,
    dir: &Path,
    allow_other: bool,
    direct_io: bool,
) -> Result<Mount, Fail> {
    let opts = MountOptions { allow_other, report_errors: true, direct_io };
    edge_client::fs::mount(rt, dir, &opts).map_err(Fail::new)
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
        "downloadedBytes": s.downloaded_bytes, "requests": s.requests,
        "streamedBytes": s.streamed_bytes, "streamRequests": s.stream_requests, "verifiedBytes": s.verified_bytes, "totalBytes": s.total_bytes,
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
    let mounted = mount(rt.clone(), &dir, a.allow_other, a.direct_io)?;
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
