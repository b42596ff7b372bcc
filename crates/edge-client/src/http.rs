//! HTTP: the blocking client, where an image's files are (an origin: a base URL, the CDN
//! token query, the session token for the Edge's own depot), whole-file and range GETs,
//! and the bandwidth cap every download goes through.

use crate::error::{Error, ErrorKind, Result};
use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{StatusCode, Url};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The client every request goes through. `stall` bounds connecting, waiting for an
/// answer's head and each read of a body; a request may carry a total deadline too.
pub(crate) fn client(stall: Duration) -> Result<Client> {
    Client::builder()
        .user_agent(concat!("rockit-edge-client/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(stall)
        .timeout(stall)
        .build()
        .map_err(|e| Error::new(ErrorKind::Invalid, format!("HTTP client: {}", describe(&e))))
}

/// A URL fit for messages: without userinfo, query and fragment (they may carry secrets).
pub(crate) fn shown(u: &Url) -> String {
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// The innermost causes of a reqwest error, without the URL reqwest repeats (also what the
/// `rockit` CLI prints).
pub fn describe(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    if e.is_timeout() {
        parts.push("timed out".to_string());
    } else if e.is_connect() {
        parts.push("cannot connect".to_string());
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let s = c.to_string();
        if !parts.contains(&s) {
            parts.push(s);
        }
        cause = c.source();
    }
    if parts.is_empty() {
        let s = e.to_string();
        parts.push(s.split(" for url (").next().unwrap_or(&s).to_string());
    }
    parts.join(": ")
}

/// An error of a request: a timeout, or a network failure.
pub(crate) fn net_error(what: &str, e: &reqwest::Error) -> Error {
    let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Network };
    Error::new(kind, format!("{what}: {}", describe(e)))
}

/// An I/O error while reading a body: reqwest's timeouts surface as `TimedOut`.
pub(crate) fn body_error(what: &str, e: &std::io::Error) -> Error {
    let kind = if e.kind() == std::io::ErrorKind::TimedOut {
        ErrorKind::Timeout
    } else {
        ErrorKind::Network
    };
    Error::new(kind, format!("{what}: {e}"))
}

/// Where the files of one image are: `<base>/<name>`, with the base's own query and the
/// session's `downloadQuery` on every request, and the session token as a header when the
/// base is the Edge's depot (never sent to anyone else).
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    base: Url,
    query: Option<String>,
    token: Option<String>,
}

impl Origin {
    /// The image directory of a manifest URL (`…/manifest.json`, or the directory itself).
    pub(crate) fn new(
        manifest_url: &str,
        download_query: Option<&str>,
        token: Option<(String, &Url)>,
    ) -> Result<Origin> {
        let mut base = Url::parse(manifest_url).map_err(|e| {
            Error::new(ErrorKind::Invalid, format!("{manifest_url}: not a valid URL ({e})"))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(Error::new(
                ErrorKind::Invalid,
                format!("{}: only http(s) URLs with a host are supported", shown(&base)),
            ));
        }
        let path = base.path().to_string();
        let dir = match path.strip_suffix("manifest.json") {
            Some(d) if d.ends_with('/') => d.to_string(),
            _ if path.ends_with('/') => path,
            _ => format!("{path}/"),
        };
        base.set_path(&dir);
        let mut parts: Vec<String> = Vec::new();
        if let Some(q) = base.query().filter(|q| !q.is_empty()) {
            parts.push(q.to_string());
        }
        if let Some(q) = download_query.map(|q| q.trim_start_matches('?')).filter(|q| !q.is_empty())
        {
            parts.push(q.to_string());
        }
        base.set_query(None);
        base.set_fragment(None);
        // The session token goes only to the server that issued it.
        let token = token.filter(|(_, server)| server.origin() == base.origin()).map(|(t, _)| t);
        Ok(Origin { base, query: (!parts.is_empty()).then(|| parts.join("&")), token })
    }

    /// The URL of one file of the image.
    pub(crate) fn url(&self, name: &str) -> Result<Url> {
        if name.is_empty() || name.contains(['/', '\\', '?', '#']) || name.starts_with('.') {
            return Err(Error::new(ErrorKind::Invalid, format!("unsafe file name {name:?}")));
        }
        let mut u = self.base.clone();
        u.set_path(&format!("{}{name}", self.base.path()));
        u.set_query(self.query.as_deref());
        Ok(u)
    }

    /// The path of the image directory (ends with `/`).
    pub(crate) fn base_path(&self) -> &str {
        self.base.path()
    }

    /// Another directory of the same origin (`path` absolute, ending with `/`), with the
    /// same query and token.
    pub(crate) fn sibling(&self, path: &str) -> Origin {
        let mut base = self.base.clone();
        base.set_path(path);
        Origin { base, query: self.query.clone(), token: self.token.clone() }
    }

    /// A whole file as a reader, its bytes counted as they arrive.
    pub(crate) fn stream<'m>(
        &self,
        client: &Client,
        name: &str,
        meter: &'m Meter,
    ) -> Result<Counted<'m, Response>> {
        let (url, rb) = self.get(client, name)?;
        let what = format!("GET {}", shown(&url));
        meter.requests.fetch_add(1, Ordering::Relaxed);
        let resp = rb.send().map_err(|e| net_error(&what, &e))?;
        let resp = check_status(resp, &what)?;
        Ok(Counted { inner: resp, meter: &meter.bytes })
    }

    /// The image directory, for messages.
    pub(crate) fn shown(&self) -> String {
        shown(&self.base)
    }

    fn get(&self, client: &Client, name: &str) -> Result<(Url, reqwest::blocking::RequestBuilder)> {
        let url = self.url(name)?;
        let mut rb = client.get(url.clone());
        if let Some(t) = &self.token {
            rb = rb.header("x-rockit-session-token", t);
        }
        Ok((url, rb))
    }

    /// A whole small file (the manifest, its signature, the index), at most `limit` bytes.
    pub(crate) fn fetch(
        &self,
        client: &Client,
        name: &str,
        limit: u64,
        meter: &Meter,
    ) -> Result<Vec<u8>> {
        let (url, rb) = self.get(client, name)?;
        let what = format!("GET {}", shown(&url));
        meter.requests.fetch_add(1, Ordering::Relaxed);
        let resp = rb.send().map_err(|e| net_error(&what, &e))?;
        let resp = check_status(resp, &what)?;
        let mut out = Vec::new();
        let n = resp.take(limit + 1).read_to_end(&mut out).map_err(|e| body_error(&what, &e))?;
        meter.bytes.fetch_add(n as u64, Ordering::Relaxed);
        if n as u64 > limit {
            return Err(Error::refused(format!("{what}: larger than {limit} bytes")));
        }
        Ok(out)
    }

    /// Bytes `start .. end` of a file, as a reader. `deadline` bounds the whole request.
    pub(crate) fn range(
        &self,
        client: &Client,
        name: &str,
        start: u64,
        end: u64,
        deadline: Option<Duration>,
        meter: &Meter,
    ) -> Result<Body> {
        let (url, mut rb) = self.get(client, name)?;
        let what = format!("GET {} bytes {start}-{}", shown(&url), end.saturating_sub(1));
        rb = rb.header(RANGE, format!("bytes={start}-{}", end.saturating_sub(1)));
        if let Some(d) = deadline {
            rb = rb.timeout(d.max(Duration::from_millis(1)));
        }
        meter.requests.fetch_add(1, Ordering::Relaxed);
        let resp = rb.send().map_err(|e| net_error(&what, &e))?;
        let resp = check_status(resp, &what)?;
        let mut skip = 0;
        if resp.status() == StatusCode::PARTIAL_CONTENT {
            let cr = resp.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let first = cr
                .strip_prefix("bytes ")
                .and_then(|r| r.split('-').next())
                .and_then(|a| a.parse::<u64>().ok());
            if first != Some(start) {
                return Err(Error::new(
                    ErrorKind::Network,
                    format!("{what}: the origin answered another range ({cr:?})"),
                ));
            }
        } else {
            // An origin that ignores ranges sends the whole file: read up to the start.
            skip = start;
        }
        Ok(Body { inner: resp, skip, what })
    }
}

fn check_status(resp: Response, what: &str) -> Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let kind =
        if status == StatusCode::NOT_FOUND { ErrorKind::NotFound } else { ErrorKind::Server };
    let mut msg = format!("{what}: HTTP {status}");
    let mut body = Vec::new();
    let _ = resp.take(4096).read_to_end(&mut body);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
        if let (Some(code), Some(m)) = (v["error"].as_str(), v["message"].as_str()) {
            msg = format!("{msg} ({code}: {m})");
        }
    }
    Err(Error::new(kind, msg))
}

/// The body of a range request: read through [`Body::read_exact_paced`].
pub(crate) struct Body {
    inner: Response,
    skip: u64,
    /// The request, for messages.
    pub(crate) what: String,
}

impl Body {
    /// Fills `buf`, paced by the bandwidth cap and counted in `meter`.
    /// Gives up between pieces once `stop` is set. A `background` reader lets foreground
    /// fetches have the cap to themselves: before each piece it waits while one is running.
    pub(crate) fn read_exact_paced(
        &mut self,
        buf: &mut [u8],
        bucket: Option<&Bucket>,
        meter: &Meter,
        stop: &AtomicBool,
        background: bool,
    ) -> Result<()> {
        let give_way = || {
            if let (true, Some(b)) = (background, bucket) {
                b.give_way(stop);
            }
        };
        let piece = if bucket.is_some() { 16 << 10 } else { 256 << 10 };
        let stopped = || Error::new(ErrorKind::Network, "stopped");
        while self.skip > 0 {
            if stop.load(Ordering::Relaxed) {
                return Err(stopped());
            }
            give_way();
            let mut scratch = vec![0u8; piece.min(self.skip as usize)];
            let n = self.read_some(&mut scratch, bucket, meter, background)?;
            self.skip -= n as u64;
        }
        let mut at = 0;
        while at < buf.len() {
            if stop.load(Ordering::Relaxed) {
                return Err(stopped());
            }
            give_way();
            let end = (at + piece).min(buf.len());
            at += self.read_some(&mut buf[at..end], bucket, meter, background)?;
        }
        Ok(())
    }

    /// Reads what is there (at least a byte), counted in `meter` (and as the stream's when
    /// `background`) and paced by the cap.
    fn read_some(
        &mut self,
        buf: &mut [u8],
        bucket: Option<&Bucket>,
        meter: &Meter,
        background: bool,
    ) -> Result<usize> {
        let n = self.inner.read(buf).map_err(|e| body_error(&self.what, &e))?;
        if n == 0 {
            return Err(Error::new(
                ErrorKind::Network,
                format!("{}: the answer ended early", self.what),
            ));
        }
        meter.bytes.fetch_add(n as u64, Ordering::Relaxed);
        if background {
            meter.stream_bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        if let Some(b) = bucket {
            b.take(n as u64);
        }
        Ok(n)
    }
}

/// Requests made and bytes received; of them, the background stream's.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    pub(crate) requests: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) stream_requests: AtomicU64,
    pub(crate) stream_bytes: AtomicU64,
}

/// A token bucket: downloads together stay under `rate` bytes per second (bursts up to
/// a tenth of a second's worth).
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
    /// Reads fetching their own data now. The background stream's pieces wait while there
    /// are any: a game loading what is not there yet fetches it piece after piece, and a
    /// stream taking its share of the cap alongside would make it wait up to twice as long.
    foreground: AtomicUsize,
    /// When the last foreground fetch ended, in nanoseconds since `epoch`.
    last_end: AtomicU64,
    epoch: Instant,
    /// Reads waiting for chunks the stream (or another read) is bringing: the stream skips
    /// its [`GRACE`] while there are any, since holding the cap back would only make them
    /// wait longer.
    wanted: AtomicUsize,
}

/// How long the background stream keeps giving way after a foreground fetch ends. A game
/// loading what is not there yet reads piece after piece, each read fetching its own
/// chunks; without this pause the stream took a 16 KiB piece of the cap between every two
/// of them (36–45 MB in the benchmark's first play of an untrained image, against 25 MB
/// with it, and the level loaded 0.6–0.9 s later: docs/BENCHMARKS.md, issue 14). A game
/// busy with anything else for longer gives the stream the cap after this long.
pub(crate) const GRACE: Duration = Duration::from_millis(20);

/// A read waiting for chunks on their way ([`Bucket::want`]); dropping it ends it.
pub(crate) struct Wanted<'a>(&'a Bucket);

impl Drop for Wanted<'_> {
    fn drop(&mut self) {
        self.0.wanted.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A foreground fetch in flight ([`Bucket::hold`]); dropping it ends it.
pub(crate) struct Held<'a>(&'a Bucket);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let b = self.0;
        // Never 0, which means "no fetch yet".
        b.last_end.store((b.epoch.elapsed().as_nanos() as u64).max(1), Ordering::SeqCst);
        b.foreground.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Bucket {
    pub(crate) fn new(bytes_per_s: u64) -> Bucket {
        let rate = bytes_per_s.max(1) as f64;
        let burst = (rate / 10.0).max(16.0 * 1024.0);
        Bucket {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
            foreground: AtomicUsize::new(0),
            last_end: AtomicU64::new(0),
            epoch: Instant::now(),
            wanted: AtomicUsize::new(0),
        }
    }

    /// Marks a read waiting for chunks on their way until the guard is dropped.
    pub(crate) fn want(&self) -> Wanted<'_> {
        self.wanted.fetch_add(1, Ordering::SeqCst);
        Wanted(self)
    }

    /// Marks a foreground fetch until the guard is dropped.
    pub(crate) fn hold(&self) -> Held<'_> {
        self.foreground.fetch_add(1, Ordering::SeqCst);
        Held(self)
    }

    /// Waits while any foreground fetch is in flight or one ended less than [`GRACE`] ago
    /// and no read waits for what is on its way (or until `stop`).
    fn give_way(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            if self.foreground.load(Ordering::SeqCst) == 0 {
                if self.wanted.load(Ordering::SeqCst) > 0 {
                    return;
                }
                let ended = self.last_end.load(Ordering::SeqCst);
                let now = self.epoch.elapsed().as_nanos() as u64;
                if ended == 0 || now.saturating_sub(ended) >= GRACE.as_nanos() as u64 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Accounts for `n` bytes received, sleeping as long as the cap requires.
    pub(crate) fn take(&self, n: u64) {
        let wait = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.rate).min(self.burst)
                - n as f64;
            s.1 = now;
            if s.0 < 0.0 {
                Duration::from_secs_f64(-s.0 / self.rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

/// A reader that adds what it reads to a byte count.
pub(crate) struct Counted<'a, R> {
    inner: R,
    meter: &'a AtomicU64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_urls_keep_queries_and_send_the_token_only_home() {
        let server = Url::parse("http://127.0.0.1:8080").unwrap();
        let o = Origin::new(
            "http://127.0.0.1:8080/client/v1/depot/O/A/0001/dxf-1/manifest.json",
            None,
            Some(("rs_x".into(), &server)),
        )
        .unwrap();
        assert_eq!(
            o.url("pack-0001.bin").unwrap().as_str(),
            "http://127.0.0.1:8080/client/v1/depot/O/A/0001/dxf-1/pack-0001.bin"
        );
        assert_eq!(o.token.as_deref(), Some("rs_x"));
        let o = Origin::new(
            "https://cdn.example.com/g/dxf-1/manifest.json?a=1",
            Some("__token__=st=1~exp=2"),
            Some(("rs_x".into(), &server)),
        )
        .unwrap();
        assert_eq!(
            o.url("index.json").unwrap().as_str(),
            "https://cdn.example.com/g/dxf-1/index.json?a=1&__token__=st=1~exp=2"
        );
        assert_eq!(o.token, None, "the session token never leaves the Edge");
        let o = Origin::new("http://h/img", None, None).unwrap();
        assert_eq!(o.url("manifest.json").unwrap().as_str(), "http://h/img/manifest.json");
        assert!(o.url("../x").is_err() && o.url(".hidden").is_err() && o.url("a?b").is_err());
        assert!(Origin::new("ftp://h/x", None, None).is_err());
    }

    #[test]
    fn bucket_paces_to_its_rate() {
        // 1 MB/s: after the burst, 300 KB more take at least 0.2 s.
        let b = Bucket::new(1_000_000);
        let t = Instant::now();
        b.take(100_000);
        for _ in 0..30 {
            b.take(10_000);
        }
        assert!(t.elapsed() >= Duration::from_millis(200), "{:?}", t.elapsed());
    }

    #[test]
    fn the_stream_gives_way_while_a_read_fetches() {
        let b = Bucket::new(1_000_000);
        let (ended, never, stop) =
            (AtomicBool::new(false), AtomicBool::new(false), AtomicBool::new(true));
        std::thread::scope(|s| {
            let held = b.hold();
            s.spawn(|| {
                let held = held;
                std::thread::sleep(Duration::from_millis(50));
                ended.store(true, Ordering::SeqCst);
                drop(held);
            });
            b.give_way(&never);
            assert!(ended.load(Ordering::SeqCst), "the stream waited for the read's fetch");
        });
        // And for the grace after one, in case the game reads on at once.
        drop(b.hold());
        let t = Instant::now();
        b.give_way(&never);
        assert!(t.elapsed() >= GRACE * 9 / 10, "{:?}", t.elapsed());
        // Nothing to wait for once the grace is over; a stopping stream never waits.
        b.give_way(&never);
        let _held = b.hold();
        b.give_way(&stop);
    }
}
