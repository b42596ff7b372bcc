//! The runtime: one verified image, a cache directory, a background stream of the packs in
//! stream order, and reads served from the cache (fetching at once what is not there yet).
//!
//! Threads: the caller's threads read (any number at once); one background thread streams
//! the packs. Each chunk is in one state — missing, on disk from an earlier run (not yet
//! re-checked), checking (one thread hashing it from disk), busy (one thread fetching it),
//! ready (verified in this run),
//! or bad (its bytes failed their hash again after a refetch) — under one mutex, with a
//! condition variable for waiters. A reader claims the missing chunks it needs and fetches
//! them itself with range requests (jumping the queue: the background stream pauses while
//! any reader fetches), and waits for chunks another thread is busy with; every wait is
//! bounded by the read deadline. All downloads share the bandwidth cap.

use crate::cache::Cache;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{client, Bucket, Meter, Origin};
use crate::image::Image;
use crate::record::Recorder;
use crate::session::{Session, SessionEnd};
use crate::update::Update;
use edge_engine::reader::{verify_index, verify_manifest, VerifiedManifest};
use edge_engine::seq::Trace;
use edge_engine::Hash;
use reqwest::blocking::Client;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest read served at once; longer reads return this many bytes (as `read(2)` may).
pub const MAX_READ: u64 = 64 << 20;
/// Largest `manifest.json` accepted.
const MAX_MANIFEST: u64 = 16 << 20;
/// Largest `manifest.sig` accepted.
const MAX_SIG: u64 = 64 << 10;

/// How a runtime works.
#[derive(Debug, Clone)]
pub struct Options {
    /// The cache directory (created). One runtime at a time may use it.
    pub cache_dir: PathBuf,
    /// Download cap for all requests together, bytes per second (`None`: no cap).
    pub bandwidth: Option<u64>,
    /// How long a read may wait for the network before it fails (default 30 s).
    pub read_timeout: Duration,
    /// How long one request may stall — connecting, waiting for the answer, between two
    /// pieces of a body — before it is given up and retried (default 20 s).
    pub request_timeout: Duration,
    /// Stream the whole image in the background (default true); without it only what is
    /// read is downloaded.
    pub prefetch: bool,
    /// Record reads in the trace (default true; an installer copying the tree turns it off).
    pub record: bool,
}

impl Options {
    /// The defaults, with this cache directory.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Options {
        Options {
            cache_dir: cache_dir.into(),
            bandwidth: None,
            read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(20),
            prefetch: true,
            record: true,
        }
    }
}

/// Where the image comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// A launcher session: its `manifestUrl`, `downloadQuery` and `publicKeyPem`; the trace
    /// is sent to it at the end.
    Session(Box<Session>),
    /// An image at a URL (its `manifest.json` or its directory; a query is kept on every
    /// request), checked with the organization's public key when one is given. No session:
    /// the trace stays with the caller.
    Url {
        /// The manifest's URL.
        manifest_url: String,
        /// The organization's public key (SPKI or PKCS#1 PEM); the manifest must then be
        /// signed with it.
        public_key_pem: Option<String>,
    },
}

/// A read that is waiting for the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// The file.
    pub path: String,
    /// The read's offset.
    pub offset: u64,
    /// The read's length.
    pub len: u64,
    /// How long it has waited.
    pub waited: Duration,
}

/// Where the runtime stands, for a launcher's UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Stream bytes (stored sizes) of the chunks verified and in the cache.
    pub verified_bytes: u64,
    /// Bytes of the whole stream.
    pub total_bytes: u64,
    /// Chunks verified and in the cache.
    pub verified_chunks: usize,
    /// Chunks of the image.
    pub total_chunks: usize,
    /// Bytes received from the network by this runtime (including anything received
    /// twice).
    pub downloaded_bytes: u64,
    /// Requests made by this runtime.
    pub requests: u64,
    /// Of `downloaded_bytes`, what the background stream received (the rest was fetched by
    /// reads).
    pub streamed_bytes: u64,
    /// Of `requests`, the background stream's.
    pub stream_requests: u64,
    /// The preload the manifest asks for at the bandwidth nearest the cap (0 without
    /// figures).
    pub preload_bytes: u64,
    /// Every chunk of the stream up to the preload is verified: the game can start.
    pub preload_reached: bool,
    /// The read waiting longest for the network, if any.
    pub stall: Option<Stall>,
    /// Reads that had to wait for the network so far.
    pub stalls: u64,
    /// Time they waited, in all.
    pub stall_time: Duration,
    /// Chunks whose bytes failed their hash again after a refetch.
    pub bad_chunks: usize,
    /// The background stream is running.
    pub streaming: bool,
    /// The last download failure, if any.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Missing,
    OnDisk,
    /// One thread is hashing it from disk.
    Checking,
    /// One thread is fetching it from the network.
    Busy,
    /// The stream fetches it next ([`AHEAD`]): a read waits for it as for `Busy`.
    Queued,
    Ready,
    Bad,
}

/// Chunks the stream claims ahead of the one it is receiving (about 1 MiB at the default
/// chunk size): a read of one of them waits for the stream's request, already on its way,
/// instead of opening a request of its own. After a read fetched chunks itself, the stream
/// goes on from the next ones ([`Shared::follow`]): a game reading a file in order then
/// costs one request, not one per chunk, which is what a network's round trips make slow.
const AHEAD: usize = 4;

struct Table {
    st: Vec<St>,
    /// Hash mismatches seen per chunk.
    failures: HashMap<usize, u32>,
    ready: usize,
    ready_stored: u64,
    /// Chunks `0..prefix` are all ready.
    prefix: usize,
    bad: usize,
    /// Foreground fetches in flight: the background stream waits for them.
    fg: usize,
    streaming: bool,
    /// Where the stream goes on: the first chunk a read queued for it.
    follow: Option<usize>,
    last_error: Option<String>,
}

#[derive(Default)]
struct Stalls {
    count: u64,
    total: Duration,
    open: HashMap<u64, (usize, u64, u64, Instant)>,
    next: u64,
    /// Time during which at least one read waited for the network (the union of the
    /// stalls, where `total` is their sum), up to the last moment none was open.
    waited: Duration,
    /// While a stall is open: where the current stretch of waiting began.
    since: Option<Instant>,
    /// When the last stretch of waiting ended.
    last_end: Option<Instant>,
}

impl Stalls {
    /// Time spent waiting for the network up to `at` (stretches where several reads waited
    /// at once count once).
    fn waited_at(&self, at: Instant) -> Duration {
        self.waited + self.since.map(|s| at.saturating_duration_since(s)).unwrap_or_default()
    }

    /// A read of `len` bytes at `offset` of `file`, begun at `t0`, waits for the network.
    fn begin(&mut self, file: usize, offset: u64, len: u64, t0: Instant) -> u64 {
        self.next += 1;
        if self.open.is_empty() {
            // A read begun during the last stretch of waiting adds only what follows it.
            self.since = Some(self.last_end.map_or(t0, |e| e.max(t0)));
        }
        self.open.insert(self.next, (file, offset, len, t0));
        self.next
    }

    /// The stall `id` ended at `now`.
    fn end(&mut self, id: u64, now: Instant) {
        if let Some((_, _, _, t0)) = self.open.remove(&id) {
            self.count += 1;
            self.total += now.saturating_duration_since(t0);
        }
        if self.open.is_empty() {
            if let Some(since) = self.since.take() {
                self.waited += now.saturating_duration_since(since);
                self.last_end = Some(now);
            }
        }
    }
}

struct Shared {
    image: Image,
    cache: Cache,
    origin: Origin,
    http: Client,
    opts: Options,
    bucket: Option<Bucket>,
    meter: Meter,
    table: Mutex<Table>,
    cv: Condvar,
    stop: AtomicBool,
    recorder: Mutex<Recorder>,
    stalls: Mutex<Stalls>,
    /// The game's start (set by the launcher, else by the first read), and the time spent
    /// waiting for the network before it: trace times count from here.
    clock: Mutex<Option<(Instant, Duration)>>,
    preload: u64,
    app_name: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running launcher runtime for one image.
pub struct Runtime {
    shared: Arc<Shared>,
    streamer: Mutex<Option<JoinHandle<()>>>,
    session: Option<Session>,
    update: Option<Update>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("image", &self.shared.image.dxf_name())
            .field("cache", &self.shared.cache.root())
            .finish()
    }
}

/// Fetches and checks the manifest (from the cache when a session names the image and a
/// kept copy still verifies), the index it pins, and the file table.
fn load_image(
    cache: &Cache,
    origin: &Origin,
    http: &Client,
    pem: Option<&str>,
    session: Option<&Session>,
    meter: &Meter,
) -> Result<Image> {
    let refused = |e: std::io::Error| {
        Error::refused(format!("the image at {} is refused: {e}", origin.shown()))
    };
    let kept = session.and_then(|s| {
        let bytes = cache.meta(&s.dxf_name, "manifest.json")?;
        let sig = cache.meta(&s.dxf_name, "manifest.sig");
        verify_manifest(&bytes, sig.as_deref(), pem).ok().map(|m| (m, sig))
    });
    let (manifest, sig): (VerifiedManifest, Option<Vec<u8>>) = match kept {
        Some(k) => k,
        None => {
            let bytes = origin.fetch(http, "manifest.json", MAX_MANIFEST, meter)?;
            let sig = match pem {
                Some(_) => Some(origin.fetch(http, "manifest.sig", MAX_SIG, meter).map_err(|e| {
                    if e.kind() == ErrorKind::NotFound {
                        Error::refused(format!(
                            "the image at {} is refused: it has no manifest.sig but the organization has a key",
                            origin.shown()
                        ))
                    } else {
                        e
                    }
                })?),
                None => None,
            };
            (verify_manifest(&bytes, sig.as_deref(), pem).map_err(refused)?, sig)
        }
    };
    if let Some(s) = session {
        let m = &manifest;
        if m.dxf_name != s.dxf_name
            || m.build_id != s.build_id
            || m.app_name != s.app_name
            || m.org_name != s.org_name
        {
            return Err(Error::refused(format!(
                "the image at {} is {} build {} ({}) of {}, but the session plays {} build {} ({}) of {}",
                origin.shown(),
                m.app_name,
                m.build_id,
                m.dxf_name,
                m.org_name,
                s.app_name,
                s.build_id,
                s.dxf_name,
                s.org_name
            )));
        }
    }
    let (iname, isize, ihash) = manifest.index.clone();
    let index_bytes = match cache.meta(&manifest.dxf_name, &iname).filter(|b| b.len() as u64 == isize && Hash::of(b) == ihash) {
        Some(b) => b,
        None => origin.fetch(http, &iname, isize, meter).map_err(|e| match e.kind() {
            ErrorKind::Refused => Error::refused(format!(
                "the image at {} is refused: {iname} does not match its hash (it is larger than pinned)",
                origin.shown()
            )),
            _ => e,
        })?,
    };
    let index = verify_index(&manifest, &index_bytes).map_err(refused)?;
    let image = Image::new(manifest, index)?;
    let dxf = image.dxf_name().to_string();
    if !dxf.is_empty() && !dxf.contains(['/', '\\']) && !dxf.starts_with('.') {
        if let Some(sig) = &sig {
            cache.put_meta(&dxf, "manifest.sig", sig)?;
        }
        cache.put_meta(&dxf, &iname, &index_bytes)?;
        cache.put_meta(&dxf, "manifest.json", &image.manifest().bytes)?;
    }
    Ok(image)
}

impl Runtime {
    /// Opens the image: locks the cache, fetches and verifies the manifest (the signature
    /// when the organization has a key), the index against the manifest's pin, and the file
    /// table against the safe-tree rules; an image failing any is refused
    /// ([`ErrorKind::Refused`]) before anything is served. Then notes which chunks the cache
    /// already holds and starts the background stream (unless `prefetch` is off).
    pub fn open(source: ImageSource, opts: Options) -> Result<Runtime> {
        let cache = Cache::open(&opts.cache_dir)?;
        let http = client(opts.request_timeout)?;
        let meter = Meter::default();
        let (origin, pem, session, app_name) = match source {
            ImageSource::Session(s) => {
                let s = *s;
                let origin = Origin::new(
                    &s.manifest_url,
                    s.download_query.as_deref(),
                    Some((s.token().to_string(), s.server())),
                )?;
                let (pem, app) = (s.public_key_pem.clone(), s.app_name.clone());
                (origin, pem, Some(s), Some(app))
            }
            ImageSource::Url { manifest_url, public_key_pem } => {
                (Origin::new(&manifest_url, None, None)?, public_key_pem, None, None)
            }
        };
        let image = load_image(&cache, &origin, &http, pem.as_deref(), session.as_ref(), &meter)?;
        // Before anything streams: an older build held completely may be patched forward.
        let update = crate::update::update(&cache, &origin, &http, &image, pem.as_deref(), &meter);
        let st: Vec<St> = image
            .chunks()
            .iter()
            .map(|c| if cache.has(&c.hash, c.raw) { St::OnDisk } else { St::Missing })
            .collect();
        let preload = image.preload_bytes(opts.bandwidth);
        let app_name = app_name.unwrap_or_else(|| image.manifest().app_name.clone());
        let shared = Arc::new(Shared {
            table: Mutex::new(Table {
                st,
                failures: HashMap::new(),
                ready: 0,
                ready_stored: 0,
                prefix: 0,
                bad: 0,
                fg: 0,
                streaming: opts.prefetch,
                follow: None,
                last_error: None,
            }),
            image,
            cache,
            origin,
            http,
            bucket: opts.bandwidth.map(Bucket::new),
            opts,
            meter,
            cv: Condvar::new(),
            stop: AtomicBool::new(false),
            recorder: Mutex::new(Recorder::default()),
            stalls: Mutex::new(Stalls::default()),
            clock: Mutex::new(None),
            preload,
            app_name,
        });
        let streamer = if shared.opts.prefetch {
            let sh = shared.clone();
            Some(
                std::thread::Builder::new()
                    .name("rockit-stream".into())
                    .spawn(move || sh.stream())
                    .map_err(|e| Error::io("starting the stream thread", e))?,
            )
        } else {
            None
        };
        Ok(Runtime { shared, streamer: Mutex::new(streamer), session, update })
    }

    /// How the cache was brought from an older build to this one, when it held one.
    pub fn update(&self) -> Option<&Update> {
        self.update.as_ref()
    }

    /// The image.
    pub fn image(&self) -> &Image {
        &self.shared.image
    }

    /// The session, when the image came from one.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &std::path::Path {
        self.shared.cache.root()
    }

    /// Reads up to `len` bytes at `offset` of file number `file` (an index into
    /// [`Image::entries`]); fewer only at the end of the file (or beyond [`MAX_READ`]).
    /// Served from the cache; chunks not there yet are fetched at once. Every byte served
    /// was verified against its hash. The read is recorded in the trace. Fails — never
    /// with wrong data — when the network does not deliver within the read deadline
    /// ([`ErrorKind::Timeout`], [`ErrorKind::Network`]) or the origin's bytes fail their
    /// hash again after a refetch ([`ErrorKind::Corrupt`]).
    pub fn read(&self, file: usize, offset: u64, len: u64) -> Result<Vec<u8>> {
        let sh = &self.shared;
        let t0 = Instant::now();
        let e = sh.image.file(file)?;
        let end = offset.saturating_add(len.min(MAX_READ)).min(e.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        if sh.opts.record {
            let (origin, waited0) =
                *lock(&sh.clock).get_or_insert_with(|| (t0, lock(&sh.stalls).waited_at(t0)));
            // The game's own time: waiting for the network does not count, so the trace says
            // when a play that never stalled would have made this read — the times the
            // preload model (docs/SEQUENCE.md) takes a trace to have. With the waits left
            // in, the first plays of an image (which stall the most) would teach a preload
            // too small for the game's real pace.
            let waited = lock(&sh.stalls).waited_at(t0).saturating_sub(waited0);
            let ms = t0.saturating_duration_since(origin).saturating_sub(waited);
            lock(&sh.recorder).record(file, &e.path, offset, end - offset, ms.as_millis() as u64);
        }
        let parts = sh.image.chunks_under(file, offset, end - offset);
        let mut needed: Vec<usize> = parts.iter().map(|p| p.1).collect();
        needed.sort_unstable();
        needed.dedup();
        sh.ensure(&needed, file, offset, end - offset, t0)?;
        let mut out = vec![0u8; (end - offset) as usize];
        for (_, c, start) in parts {
            let row = &sh.image.chunks()[c];
            let (a, b) = (offset.max(start), end.min(start + row.raw));
            sh.cache.read_at(
                &row.hash,
                a - start,
                &mut out[(a - offset) as usize..(b - offset) as usize],
            )?;
        }
        Ok(out)
    }

    /// Whether a read of `len` bytes at `offset` of file `file` would be served from
    /// verified cache without waiting (a file system serves those inline and gives reads
    /// that must wait for the network a thread of their own).
    pub fn ready(&self, file: usize, offset: u64, len: u64) -> bool {
        let sh = &self.shared;
        let t = lock(&sh.table);
        sh.image.file(file).is_ok()
            && sh
                .image
                .chunks_under(file, offset, len.min(MAX_READ))
                .iter()
                .all(|p| t.st[p.1] == St::Ready)
    }

    /// Marks the game's start (a launcher calls it as it starts the game): trace times
    /// count from here, and so does the play time. Without it the first read is the start.
    /// Only the first mark counts.
    pub fn start_clock(&self) {
        let sh = &self.shared;
        lock(&sh.clock).get_or_insert_with(|| {
            let now = Instant::now();
            (now, lock(&sh.stalls).waited_at(now))
        });
    }

    /// [`Runtime::read`] by path (normal form: `data/level1.pak`).
    pub fn read_path(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let f = self.shared.image.lookup(path).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, format!("{path}: no such file in the image"))
        })?;
        self.read(f, offset, len)
    }

    /// Where the runtime stands.
    pub fn progress(&self) -> Progress {
        self.shared.progress()
    }

    /// Waits until the preload is verified (or everything, for an image without preload
    /// figures … which needs none), at most `timeout`; true when it is.
    pub fn wait_preload(&self, timeout: Duration) -> bool {
        let sh = &self.shared;
        let deadline = Instant::now() + timeout;
        let mut t = lock(&sh.table);
        loop {
            if sh.preload_reached(&t) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || (!t.streaming && sh.opts.prefetch) {
                return sh.preload_reached(&t);
            }
            t = sh.cv.wait_timeout(t, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// The trace recorded so far.
    pub fn trace(&self) -> Trace {
        self.shared.trace()
    }

    /// The end of play: stops the background stream, releases the cache's lock and gives
    /// what the session is reported with ([`Summary::report`]). Call it once, when the game
    /// is done; reads still work afterwards (a file system may still be winding down) but
    /// the cache is no longer held for this runtime alone.
    pub fn finish(&self) -> Summary {
        let sh = &self.shared;
        sh.stop.store(true, Ordering::SeqCst);
        sh.cv.notify_all();
        if let Some(h) = lock(&self.streamer).take() {
            // A stream thread stuck in a stalled request is left to end by itself.
            let t = Instant::now();
            while !h.is_finished() && t.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
        sh.cache.unlock();
        let p = sh.progress();
        let dropped = lock(&sh.recorder).dropped;
        Summary {
            trace: sh.trace(),
            play_time: lock(&sh.clock).map(|c| c.0.elapsed()).unwrap_or_default(),
            stalls: p.stalls,
            stall_time: p.stall_time,
            downloaded_bytes: p.downloaded_bytes,
            requests: p.requests,
            streamed_bytes: p.streamed_bytes,
            stream_requests: p.stream_requests,
            verified_bytes: p.verified_bytes,
            total_bytes: p.total_bytes,
            dropped_events: dropped,
            session: self.session.clone(),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.cv.notify_all();
    }
}

/// What a finished runtime leaves: the trace and the numbers the session is closed with.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The recorded trace.
    pub trace: Trace,
    /// Time from the game's start ([`Runtime::start_clock`], else the first read) to
    /// finishing; zero when nothing was read.
    pub play_time: Duration,
    /// Reads that waited for the network.
    pub stalls: u64,
    /// Time they waited.
    pub stall_time: Duration,
    /// Bytes received.
    pub downloaded_bytes: u64,
    /// Requests made.
    pub requests: u64,
    /// Of `downloaded_bytes`, what the background stream received.
    pub streamed_bytes: u64,
    /// Of `requests`, the background stream's.
    pub stream_requests: u64,
    /// Stream bytes verified and cached when it finished.
    pub verified_bytes: u64,
    /// Bytes of the whole stream.
    pub total_bytes: u64,
    /// Reads not recorded because the trace reached its event limit.
    pub dropped_events: u64,
    /// The session, when there is one.
    pub session: Option<Session>,
}

impl Summary {
    /// The numbers the session is closed with (times rounded up to whole seconds).
    pub fn session_end(&self) -> SessionEnd {
        let up = |d: Duration| d.as_millis().div_ceil(1000) as u64;
        SessionEnd {
            play_seconds: up(self.play_time),
            stalls: self.stalls,
            stall_seconds: up(self.stall_time),
        }
    }

    /// Sends the trace (when it has events) and closes the session; returns the trace's
    /// id. Without a session, nothing to do.
    pub fn report(&self) -> Result<Option<String>> {
        let Some(s) = &self.session else { return Ok(None) };
        let sent = if self.trace.events.is_empty() {
            Ok(None)
        } else {
            s.send_trace(&self.trace).map(Some)
        };
        let closed = s.close(self.session_end());
        let id = sent?;
        closed?;
        Ok(id)
    }
}

impl Shared {
    fn trace(&self) -> Trace {
        lock(&self.recorder).trace(
            &self.app_name,
            self.image.manifest().build_id,
            self.image.dxf_name(),
        )
    }

    fn preload_reached(&self, t: &Table) -> bool {
        let n = t.st.len();
        t.prefix == n
            || (t.prefix > 0 && self.image.stream_end(t.prefix - 1) >= self.preload)
            || self.preload == 0
    }

    fn progress(&self) -> Progress {
        let (verified_bytes, verified_chunks, bad, streaming, last_error, reached) = {
            let t = lock(&self.table);
            (
                t.ready_stored,
                t.ready,
                t.bad,
                t.streaming,
                t.last_error.clone(),
                self.preload_reached(&t),
            )
        };
        let s = lock(&self.stalls);
        let now = Instant::now();
        let stall = s.open.values().min_by_key(|v| v.3).map(|&(f, offset, len, at)| Stall {
            path: self.image.entries()[f].path.clone(),
            offset,
            len,
            waited: now.duration_since(at),
        });
        Progress {
            verified_bytes,
            total_bytes: self.image.stream_bytes(),
            verified_chunks,
            total_chunks: self.image.chunks().len(),
            downloaded_bytes: self.meter.bytes.load(Ordering::Relaxed),
            requests: self.meter.requests.load(Ordering::Relaxed),
            streamed_bytes: self.meter.stream_bytes.load(Ordering::Relaxed),
            stream_requests: self.meter.stream_requests.load(Ordering::Relaxed),
            preload_bytes: self.preload,
            preload_reached: reached,
            stall,
            stalls: s.count,
            stall_time: s.total,
            bad_chunks: bad,
            streaming,
            last_error,
        }
    }

    /// Moves chunk `c` to `to`, keeping the counters.
    fn set(&self, t: &mut Table, c: usize, to: St) {
        let from = t.st[c];
        if from == to {
            return;
        }
        let stored = self.image.chunks()[c].stored;
        match from {
            St::Ready => {
                t.ready -= 1;
                t.ready_stored -= stored;
                t.prefix = t.prefix.min(c);
            }
            St::Bad => t.bad -= 1,
            _ => {}
        }
        t.st[c] = to;
        match to {
            St::Ready => {
                t.ready += 1;
                t.ready_stored += stored;
                while t.prefix < t.st.len() && t.st[t.prefix] == St::Ready {
                    t.prefix += 1;
                }
            }
            St::Bad => t.bad += 1,
            _ => {}
        }
    }

    fn describe_chunk(&self, c: usize) -> String {
        let row = &self.image.chunks()[c];
        let pack = &self.image.manifest().packs[row.pack - 1].name;
        format!("chunk {} ({pack} at offset {})", row.hash.hex(), row.off)
    }

    /// Decodes and checks the stored bytes of chunk `c` (claimed by the caller); on
    /// success stores it and marks it ready. `Ok(false)`: the bytes do not match its hash;
    /// the mismatch is counted and the chunk stays claimed.
    fn accept(&self, c: usize, stored: &[u8]) -> Result<bool> {
        let row = &self.image.chunks()[c];
        let raw = if row.z {
            zstd::bulk::decompress(stored, row.raw as usize).ok()
        } else {
            Some(stored.to_vec())
        };
        match raw.filter(|r| r.len() as u64 == row.raw && Hash::of(r) == row.hash) {
            Some(raw) => {
                let put = self.cache.put(&row.hash, &raw);
                let mut t = lock(&self.table);
                self.set(&mut t, c, if put.is_ok() { St::Ready } else { St::Missing });
                drop(t);
                self.cv.notify_all();
                put.map(|_| true)
            }
            None => {
                let mut t = lock(&self.table);
                *t.failures.entry(c).or_insert(0) += 1;
                t.last_error = Some(format!("{} does not match its hash", self.describe_chunk(c)));
                Ok(false)
            }
        }
    }

    /// After a mismatch by the stream: missing again, or bad after the second.
    fn mismatched(&self, c: usize) {
        let mut t = lock(&self.table);
        let to = if t.failures.get(&c).copied().unwrap_or(0) >= 2 { St::Bad } else { St::Missing };
        self.set(&mut t, c, to);
        drop(t);
        self.cv.notify_all();
    }

    /// Checks a chunk found on disk (claimed by the caller): ready, or `false` (still
    /// claimed) when it is gone or damaged.
    fn verify_local(&self, c: usize) -> Result<bool> {
        let row = &self.image.chunks()[c];
        let ok = self.cache.load_verified(&row.hash, row.raw)?.is_some();
        if ok {
            let mut t = lock(&self.table);
            self.set(&mut t, c, St::Ready);
            drop(t);
            self.cv.notify_all();
        }
        Ok(ok)
    }

    fn release(&self, chunks: &[usize]) {
        let mut t = lock(&self.table);
        for &c in chunks {
            if matches!(t.st[c], St::Busy | St::Checking) {
                self.set(&mut t, c, St::Missing);
            }
        }
        drop(t);
        self.cv.notify_all();
    }

    /// Makes every chunk of `needed` ready before `t0 + read_timeout`.
    fn ensure(
        &self,
        needed: &[usize],
        file: usize,
        offset: u64,
        len: u64,
        t0: Instant,
    ) -> Result<()> {
        let deadline = t0 + self.opts.read_timeout;
        let mut stall: Option<u64> = None;
        let res = (|| -> Result<()> {
            loop {
                let (mut mine, mut local, mut wait) = (Vec::new(), Vec::new(), false);
                {
                    let mut t = lock(&self.table);
                    for &c in needed {
                        match t.st[c] {
                            St::Ready => {}
                            St::OnDisk => {
                                self.set(&mut t, c, St::Checking);
                                local.push(c);
                            }
                            St::Missing | St::Bad => {
                                self.set(&mut t, c, St::Busy);
                                mine.push(c);
                            }
                            St::Busy | St::Checking | St::Queued => wait = true,
                        }
                    }
                }
                for (i, &c) in local.iter().enumerate() {
                    match self.verify_local(c) {
                        Ok(true) => {}
                        Ok(false) => {
                            let mut t = lock(&self.table);
                            self.set(&mut t, c, St::Busy);
                            mine.push(c);
                        }
                        Err(e) => {
                            self.release(&local[i..]);
                            self.release(&mine);
                            return Err(e);
                        }
                    }
                }
                if !mine.is_empty() {
                    stall.get_or_insert_with(|| self.stall_begin(file, offset, len, t0));
                    lock(&self.table).fg += 1;
                    // With a cap, the stream also gives way within its chunk (see `Bucket`).
                    let held = self.bucket.as_ref().map(Bucket::hold);
                    let r = self.fetch(&mut mine, deadline);
                    drop(held);
                    lock(&self.table).fg -= 1;
                    self.cv.notify_all();
                    r?;
                    self.follow(&mine);
                    continue;
                }
                if !wait {
                    return Ok(());
                }
                // Under a cap, the stream does not hold back while a read waits for it.
                let _want = self.bucket.as_ref().map(Bucket::want);
                let mut t = lock(&self.table);
                while needed
                    .iter()
                    .any(|&c| matches!(t.st[c], St::Busy | St::Checking | St::Queued))
                {
                    // Waiting for the network is a stall; for another thread's check of the
                    // disk, not.
                    if stall.is_none()
                        && needed.iter().any(|&c| matches!(t.st[c], St::Busy | St::Queued))
                    {
                        stall = Some(self.stall_begin(file, offset, len, t0));
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(Error::new(
                            ErrorKind::Timeout,
                            format!(
                                "{}: the data did not arrive within {:?}",
                                self.image.entries()[file].path,
                                self.opts.read_timeout
                            ),
                        ));
                    }
                    t = self
                        .cv
                        .wait_timeout(t, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        })();
        if let Some(id) = stall {
            self.stall_end(id);
        }
        res
    }

    /// After a read fetched `mine` itself: the stream goes on from the chunk after the
    /// last of them, which is queued for it with up to [`AHEAD`] − 1 more that follow it in
    /// the same pack (only while the stream runs).
    fn follow(&self, mine: &[usize]) {
        let Some(&last) = mine.iter().max() else { return };
        let rows = self.image.chunks();
        let mut t = lock(&self.table);
        if !t.streaming {
            return;
        }
        let next = last + 1;
        let mut k = next;
        while k < rows.len()
            && k < next + AHEAD
            && rows[k].pack == rows[last].pack
            && t.st[k] == St::Missing
        {
            self.set(&mut t, k, St::Queued);
            k += 1;
        }
        if k > next {
            t.follow = Some(next);
            drop(t);
            self.cv.notify_all();
        }
    }

    /// Gives the chunks of `from..to` queued for the stream back to the readers (missing),
    /// except those of the run a read queued last (`t.follow`), which the stream goes to.
    fn unqueue(&self, t: &mut Table, from: usize, to: usize) {
        let keep = t.follow.map_or(0..0, |h| h..h + AHEAD);
        for k in from..to.min(t.st.len()) {
            if t.st[k] == St::Queued && !keep.contains(&k) {
                self.set(t, k, St::Missing);
            }
        }
    }

    fn stall_begin(&self, file: usize, offset: u64, len: u64, t0: Instant) -> u64 {
        lock(&self.stalls).begin(file, offset, len, t0)
    }

    fn stall_end(&self, id: u64) {
        lock(&self.stalls).end(id, Instant::now());
    }

    /// Fetches the claimed chunks `mine` (range requests for runs of chunks that lie back to
    /// back in a pack), retrying failed requests until `deadline`. On return every chunk of
    /// `mine` is ready, or — on an error — released (missing) or bad.
    fn fetch(&self, mine: &mut [usize], deadline: Instant) -> Result<()> {
        mine.sort_unstable();
        let rows = self.image.chunks();
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for &c in mine.iter() {
            match runs.last_mut() {
                Some(r) if r.1 + 1 == c && rows[c].pack == rows[r.1].pack => r.1 = c,
                _ => runs.push((c, c)),
            }
        }
        let mut backoff = Duration::from_millis(100);
        for &(first, last) in &runs {
            let mut at = first;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let err = if left.is_zero() {
                    Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "{}: no answer from the origin within {:?}",
                            self.describe_chunk(at),
                            self.opts.read_timeout
                        ),
                    )
                } else {
                    match self.fetch_run(at, last, left) {
                        Ok(()) => break,
                        Err((next, e)) => {
                            at = next;
                            let left = deadline.saturating_duration_since(Instant::now());
                            match e.kind() {
                                ErrorKind::Corrupt | ErrorKind::Io | ErrorKind::NotFound => e,
                                _ if left.is_zero() => Error::new(
                                    ErrorKind::Timeout,
                                    format!(
                                        "no answer from the origin within {:?} ({e})",
                                        self.opts.read_timeout
                                    ),
                                ),
                                _ => {
                                    lock(&self.table).last_error = Some(e.to_string());
                                    std::thread::sleep(backoff.min(left));
                                    backoff = (backoff * 2).min(Duration::from_secs(2));
                                    continue;
                                }
                            }
                        }
                    }
                };
                // Everything still claimed from here on goes back (chunks before `at` are ready).
                self.release(&mine[mine.partition_point(|&x| x < at)..]);
                lock(&self.table).last_error = Some(err.to_string());
                return Err(err);
            }
        }
        Ok(())
    }

    /// One range request for chunks `first..=last` (claimed, back to back in one pack);
    /// a chunk whose bytes fail their hash is fetched once more on its own. On failure:
    /// the chunk it stopped at, and why.
    fn fetch_run(&self, first: usize, last: usize, left: Duration) -> Result<(), (usize, Error)> {
        let rows = self.image.chunks();
        let pack = &self.image.manifest().packs[rows[first].pack - 1].name;
        let never = AtomicBool::new(false);
        let mut body = self
            .origin
            .range(
                &self.http,
                pack,
                rows[first].off,
                rows[last].off + rows[last].stored,
                Some(left),
                &self.meter,
            )
            .map_err(|e| (first, e))?;
        for (c, row) in rows.iter().enumerate().take(last + 1).skip(first) {
            let mut buf = vec![0u8; row.stored as usize];
            body.read_exact_paced(&mut buf, self.bucket.as_ref(), &self.meter, &never, false)
                .map_err(|e| (c, e))?;
            if self.accept(c, &buf).map_err(|e| (c, e))? {
                continue;
            }
            // Refetch it alone, once.
            let mut again = self
                .origin
                .range(&self.http, pack, row.off, row.off + row.stored, Some(left), &self.meter)
                .map_err(|e| (c, e))?;
            again
                .read_exact_paced(&mut buf, self.bucket.as_ref(), &self.meter, &never, false)
                .map_err(|e| (c, e))?;
            if !self.accept(c, &buf).map_err(|e| (c, e))? {
                let mut t = lock(&self.table);
                self.set(&mut t, c, St::Bad);
                drop(t);
                self.cv.notify_all();
                return Err((
                    c,
                    Error::new(
                        ErrorKind::Corrupt,
                        format!(
                            "{} does not match its hash, also after a refetch",
                            self.describe_chunk(c)
                        ),
                    ),
                ));
            }
        }
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps up to `d`, waking early on stop.
    fn nap(&self, d: Duration) {
        let t = lock(&self.table);
        let _ = self.cv.wait_timeout_while(t, d, |_| !self.stopped());
    }

    /// The background stream: every chunk in stream order, checked from disk when it is
    /// there, else downloaded in runs; repeated until nothing is missing (chunks that went
    /// bad are left to readers).
    fn stream(&self) {
        let n = self.image.chunks().len();
        let mut i = 0;
        let mut backoff = Duration::from_millis(200);
        while !self.stopped() {
            let mut t = lock(&self.table);
            if let Some(h) = t.follow.take() {
                i = h;
            }
            while i < n && !matches!(t.st[i], St::Missing | St::OnDisk | St::Queued) {
                i += 1;
            }
            if i == n {
                if t.st.iter().any(|s| matches!(s, St::Missing | St::OnDisk | St::Queued)) {
                    i = 0;
                    continue;
                }
                if !t.st.iter().any(|s| matches!(s, St::Busy | St::Checking)) {
                    break;
                }
                // A reader is fetching: its chunks may come back missing.
                let _ = self.cv.wait_timeout(t, Duration::from_millis(200));
                i = 0;
                continue;
            }
            if t.st[i] == St::OnDisk {
                self.set(&mut t, i, St::Checking);
                drop(t);
                match self.verify_local(i) {
                    Ok(true) => {}
                    Ok(false) => self.release(&[i]),
                    Err(e) => {
                        self.release(&[i]);
                        lock(&self.table).last_error = Some(e.to_string());
                        self.nap(backoff);
                    }
                }
                continue;
            }
            let rows = self.image.chunks();
            let mut j = i + 1;
            while j < n
                && rows[j].pack == rows[i].pack
                && matches!(t.st[j], St::Missing | St::Queued)
            {
                j += 1;
            }
            drop(t);
            match self.download(i, j) {
                Ok(next) => {
                    if next > i {
                        backoff = Duration::from_millis(200);
                    }
                    i = next;
                }
                Err(e) => {
                    if !self.stopped() {
                        lock(&self.table).last_error = Some(e.to_string());
                        self.nap(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
        let mut t = lock(&self.table);
        t.follow = None;
        self.unqueue(&mut t, 0, n);
        t.streaming = false;
        drop(t);
        self.cv.notify_all();
    }

    /// Downloads chunks `i..j` (back to back in one pack) with one range request, claiming
    /// each as it comes and queuing the next [`AHEAD`] − 1; gives way to readers' fetches
    /// between chunks. Returns where to go on: `j`, the first chunk someone else took
    /// meanwhile, or where a read asked the stream to follow it.
    fn download(&self, i: usize, j: usize) -> Result<usize> {
        let r = self.download_run(i, j);
        if let Err((at, _)) = &r {
            let mut t = lock(&self.table);
            self.unqueue(&mut t, *at, j);
            drop(t);
            self.cv.notify_all();
        }
        r.map_err(|e| e.1)
    }

    /// [`Shared::download`]; on failure also where it stopped.
    fn download_run(&self, i: usize, j: usize) -> Result<usize, (usize, Error)> {
        let rows = self.image.chunks();
        let pack = &self.image.manifest().packs[rows[i].pack - 1].name;
        // Reads of the first chunks wait for this request from now on, not for its answer.
        self.queue(&mut lock(&self.table), i, j);
        self.meter.stream_requests.fetch_add(1, Ordering::Relaxed);
        let mut body = self
            .origin
            .range(
                &self.http,
                pack,
                rows[i].off,
                rows[j - 1].off + rows[j - 1].stored,
                None,
                &self.meter,
            )
            .map_err(|e| (i, e))?;
        for (c, row) in rows.iter().enumerate().take(j).skip(i) {
            {
                let mut t = lock(&self.table);
                while t.fg > 0 && !self.stopped() {
                    t = self
                        .cv
                        .wait_timeout(t, Duration::from_millis(100))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                // Stopped, taken by a read, or a read asked to be followed elsewhere.
                let elsewhere = t.follow.is_some_and(|h| h != c);
                if self.stopped() || elsewhere || !matches!(t.st[c], St::Missing | St::Queued) {
                    self.unqueue(&mut t, c, j);
                    drop(t);
                    self.cv.notify_all();
                    return Ok(c);
                }
                if t.follow == Some(c) {
                    // Where this run goes anyway.
                    t.follow = None;
                }
                self.set(&mut t, c, St::Busy);
                self.queue(&mut t, c + 1, j);
            }
            let mut buf = vec![0u8; row.stored as usize];
            if let Err(e) =
                body.read_exact_paced(&mut buf, self.bucket.as_ref(), &self.meter, &self.stop, true)
            {
                self.release(&[c]);
                return Err((c + 1, e));
            }
            match self.accept(c, &buf) {
                Ok(true) => {}
                Ok(false) => {
                    self.mismatched(c);
                    let e = Error::new(
                        ErrorKind::Corrupt,
                        format!("{} does not match its hash", self.describe_chunk(c)),
                    );
                    return Err((c + 1, e));
                }
                Err(e) => return Err((c + 1, e)),
            }
        }
        Ok(j)
    }

    /// Queues for the stream the missing chunks among the first [`AHEAD`] of `from..to`,
    /// up to the first that is not missing.
    fn queue(&self, t: &mut Table, from: usize, to: usize) {
        for k in from..to.min(from + AHEAD) {
            match t.st[k] {
                St::Missing => self.set(t, k, St::Queued),
                St::Queued => {}
                _ => break,
            }
        }
    }
}

#[cfg(test)]
mod stall_clock {
    use super::Stalls;
    use std::time::{Duration, Instant};

    #[test]
    fn overlapping_stalls_count_once_in_the_time_waited() {
        let ms = |n| Duration::from_millis(n);
        let t = Instant::now();
        let mut s = Stalls::default();
        // Two readers wait, overlapping, from 100 to 500 ms: 400 ms of waiting, 600 ms of
        // stalls summed.
        let a = s.begin(0, 0, 10, t + ms(100));
        let b = s.begin(1, 0, 10, t + ms(150));
        assert_eq!(s.waited_at(t + ms(300)), ms(200), "open stalls count up to now");
        s.end(a, t + ms(350));
        s.end(b, t + ms(500));
        assert_eq!(s.waited_at(t + ms(550)), ms(400));
        // A read begun at 450 ms, inside the last stretch, adds only what followed it.
        let c = s.begin(2, 0, 10, t + ms(450));
        s.end(c, t + ms(700));
        assert_eq!(s.waited_at(t + ms(800)), ms(600));
        assert_eq!((s.count, s.total), (3, ms(250 + 350 + 250)));
        assert!(s.open.is_empty() && s.since.is_none());
    }
}
