//! `rockit push <dir|archive> --app A`: a build import in client-upload mode. A directory or
//! a zip is sent as a tar made on the fly (tarstream.rs, ziptar.rs), with its exact length
//! announced; a tar file is sent as it is, a `.tar.gz` or `.tar.zst` decompressed on the
//! fly. Then the pipeline is followed to its end (follow.rs).

use crate::api::{self, Api, Global};
use crate::fail::Fail;
use crate::follow;
use crate::report::{self, Bar};
use crate::tarstream::{self, LocalError, TarStream, Tree};
use edge_server::util::{now_ms, parse_rfc3339};
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Upload a build and follow its pipeline until it is published.
///
/// A directory is archived on the fly (regular files, directories, symlinks inside the tree;
/// sorted paths) and streamed without a temporary copy. A file may be a tar (sent as it
/// is), a gzip- or zstd-compressed tar (decompressed while it is sent), or a zip (sent as
/// the tar of its entries, Unix modes kept where the zip has them); the format is told from
/// the content, not the name. A broken upload is sent again from the start (3 attempts in
/// all, while the upload URL is valid). Then one line is printed per pipeline task as it
/// ends; a failed task fails the command with its exception.
#[derive(clap::Args)]
pub struct Args {
    /// The game directory, or an archive of it: .tar, .tar.gz, .tar.zst or .zip.
    #[arg(value_name = "DIR|ARCHIVE")]
    pub path: PathBuf,
    /// The app to import into.
    #[arg(long, value_name = "APP")]
    pub app: String,
    /// The build's name (default: the server's "build-<n>").
    #[arg(long, value_name = "NAME")]
    pub build_name: Option<String>,
    /// Return once the upload is complete, without following the pipeline.
    #[arg(long)]
    pub no_wait: bool,
    /// Show the progress bar even when stderr is not a terminal.
    #[arg(long)]
    pub progress: bool,
}

/// Attempts at sending the archive.
const ATTEMPTS: u32 = 3;

/// A compression around a tar.
#[derive(Clone, Copy)]
enum Packing {
    Gzip,
    Zstd,
}

impl Packing {
    fn name(self) -> &'static str {
        match self {
            Packing::Gzip => "gzip",
            Packing::Zstd => "zstd",
        }
    }

    /// The decompressed bytes of `path`; `read` counts the compressed bytes read.
    fn open(self, path: &Path, read: Arc<AtomicU64>) -> Result<Box<dyn Read + Send>, Fail> {
        let f =
            std::fs::File::open(path).map_err(|e| Fail::new(format!("{}: {e}", path.display())))?;
        let f = std::io::BufReader::with_capacity(1 << 16, Counted { inner: f, read });
        Ok(match self {
            Packing::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
            Packing::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(f)
                    .map_err(|e| Fail::new(format!("{}: {e}", path.display())))?,
            ),
        })
    }
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.read.fetch_add(k as u64, Ordering::Relaxed);
        Ok(k)
    }
}

/// What is sent.
enum Source {
    /// A directory or a zip, as the tar of its members.
    Tree(Arc<Tree>),
    /// A tar file, as it is.
    Tar(PathBuf, u64),
    /// A compressed tar, decompressed: the tar's length.
    Packed(PathBuf, Packing, u64),
}

impl Source {
    fn open(path: &Path) -> Result<Source, Fail> {
        let md =
            std::fs::metadata(path).map_err(|e| Fail::new(format!("{}: {e}", path.display())))?;
        if md.is_dir() {
            let tree = tarstream::walk(path)?;
            if tree.files == 0 && tree.len <= 1024 {
                return Err(Fail::new(format!(
                    "{}: empty directory, nothing to push",
                    path.display()
                )));
            }
            return Ok(Source::Tree(Arc::new(tree)));
        }
        let mut f =
            std::fs::File::open(path).map_err(|e| Fail::new(format!("{}: {e}", path.display())))?;
        let mut head = Vec::with_capacity(512);
        (&mut f).take(512).read_to_end(&mut head)?;
        let packing = match edge_engine::ingest::detect(&head) {
            "tar" => return Ok(Source::Tar(path.to_path_buf(), md.len())),
            "zip" => {
                let tree = crate::ziptar::read(path)?;
                if tree.files == 0 {
                    return Err(Fail::new(format!("{}: the zip holds no files, nothing to push", path.display())));
                }
                return Ok(Source::Tree(Arc::new(tree)));
            }
            "gzip" => Packing::Gzip,
            "zstd" => Packing::Zstd,
            kind => {
                return Err(Fail::new(format!(
                    "{}: not a tar, .tar.gz, .tar.zst or zip ({kind}); give the game directory or an archive of it",
                    path.display()
                )))
            }
        };
        Ok(Source::Packed(path.to_path_buf(), packing, tar_length(path, packing)?))
    }

    fn len(&self) -> u64 {
        match self {
            Source::Tree(t) => t.len,
            Source::Tar(_, n) | Source::Packed(_, _, n) => *n,
        }
    }

    fn reader(&self, local: LocalError) -> Result<Box<dyn Read + Send>, Fail> {
        Ok(match self {
            Source::Tree(t) => Box::new(TarStream::new(t.clone(), local)),
            Source::Tar(p, _) => Box::new(
                std::fs::File::open(p).map_err(|e| Fail::new(format!("{}: {e}", p.display())))?,
            ),
            Source::Packed(p, k, _) => Box::new(Local {
                inner: k.open(p, Arc::default())?,
                what: p.display().to_string(),
                local,
            }),
        })
    }
}

/// Reads a compressed tar through once, before anything is sent: the decompressed length
/// (announced to the server), and a tar inside (checked from its first block). Damaged
/// data fails here rather than halfway through the upload.
fn tar_length(path: &Path, packing: Packing) -> Result<u64, Fail> {
    let what = path.display();
    let damaged =
        |e: std::io::Error| Fail::new(format!("{what}: damaged {} data ({e})", packing.name()));
    let read = Arc::new(AtomicU64::new(0));
    let mut r = packing.open(path, read.clone())?;
    let mut head = Vec::with_capacity(512);
    (&mut r).take(512).read_to_end(&mut head).map_err(damaged)?;
    let inner = edge_engine::ingest::detect(&head);
    if inner != "tar" {
        return Err(Fail::new(format!(
            "{what}: {} data that is not a tar ({inner}); give a .tar.gz or .tar.zst",
            packing.name()
        )));
    }
    // A progress line on a terminal: the compressed bytes read of the file's size.
    let progress = report::Progress::new();
    let total = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut buf = vec![0u8; 1 << 20];
    let mut len = head.len() as u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => len += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                report::clear_progress();
                return Err(damaged(e));
            }
        }
        progress.tick(read.load(Ordering::Relaxed), total);
    }
    report::clear_progress();
    Ok(len)
}

/// A reader whose failures are the sending side's (damaged data, not the connection).
struct Local {
    inner: Box<dyn Read + Send>,
    what: String,
    local: LocalError,
}

impl Read for Local {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != std::io::ErrorKind::Interrupted {
                *self.local.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("{}: {e}", self.what));
            }
        })
    }
}

/// Bytes per chunk handed to the HTTP client: large, so the per-chunk cost of the client
/// and of the socket writes is small next to the bytes moved.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the reading thread and the connection (bounds memory).
const IN_FLIGHT: usize = 4;

/// Reads `r` into chunks of [`CHUNK`] bytes on a thread of its own and hands them to the
/// returned channel, driving the progress bar; a read error ends the stream with it.
fn chunks(
    mut r: Box<dyn Read + Send>,
    mut bar: Bar,
) -> tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(IN_FLIGHT);
    std::thread::spawn(move || {
        let mut done = 0u64;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut n = 0;
            while n < CHUNK {
                match r.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if n == 0 {
                return;
            }
            buf.truncate(n);
            done += n as u64;
            bar.tick(done);
            if tx.blocking_send(Ok(buf)).is_err() {
                return; // the request ended early
            }
        }
    });
    rx
}

pub fn run(g: &Global, a: Args) -> Result<(), Fail> {
    let mut api = Api::open(g)?;
    let src = Source::open(&a.path)?;
    let len = src.len();
    let mut body = json!({"appName": a.app, "size": len});
    if let Some(n) = &a.build_name {
        body["buildName"] = json!(n);
    }
    let imp = api.post("/be/v1/builds", &body)?;
    let url = imp["uploadUrl"]
        .as_str()
        .ok_or_else(|| Fail::new("the server gave no uploadUrl"))?
        .to_string();
    let group = imp["taskGroup"].as_str().unwrap_or_default().to_string();
    let task = imp["taskName"].as_str().unwrap_or_default().to_string();
    let expires = imp["uploadExpires"].as_str().and_then(parse_rfc3339).unwrap_or(i64::MAX);
    let t0 = Instant::now();
    let sent = upload(&api, &src, &url, expires, a.progress)?;
    let took = t0.elapsed();
    if !g.json {
        println!(
            "uploaded {} in {:.1} s ({}); import {group}, task {task}",
            report::bytes(sent),
            took.as_secs_f64(),
            report::rate(sent, took)
        );
    }
    let mut out =
        json!({"appName": a.app, "taskName": task, "taskGroup": group, "sizeBytes": sent});
    if a.no_wait {
        if g.json {
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        return Ok(());
    }
    let tasks = follow::follow(&mut api, Some(&group), &task, g.json)?;
    if g.json {
        out["tasks"] = Value::Array(tasks);
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    println!("{}", summary(&a.app, &tasks));
    Ok(())
}

/// The last line after a pipeline ended well.
pub fn summary(app: &str, tasks: &[Value]) -> String {
    let identical = tasks.iter().any(|t| t["warning"]["code"] == "identical-build");
    let deploy = tasks.iter().find(|t| t["type"] == "deploy");
    match deploy {
        Some(d) if d["status"] == "done" => format!(
            "published {app} build {} \"{}\" ({})",
            d["buildId"],
            d["buildName"].as_str().unwrap_or(""),
            d["result"]["dxfName"].as_str().unwrap_or("?")
        ),
        _ if identical => {
            format!("{app}: identical to the current build, nothing new was published")
        }
        _ => format!("{app}: pipeline ended"),
    }
}

/// PUTs the archive to the upload URL; sends it again from the start when the connection
/// breaks (while the URL is valid). Answers the bytes the server stored.
///
/// The upload runs on the async client (one current-thread runtime) with the body streamed
/// from a reading thread in large chunks: the blocking client's body reads of 8 KiB cost
/// more CPU than the server's whole receive path on a small machine.
fn upload(
    api: &Api,
    src: &Source,
    url: &str,
    expires_ms: i64,
    force_bar: bool,
) -> Result<u64, Fail> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = reqwest::Client::builder()
        .user_agent(concat!("rockit/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Fail::new(format!("HTTP client: {}", crate::http::describe(&e))))?;
    let len = src.len();
    let mut attempt = 1;
    loop {
        let local = LocalError::default();
        let mut rx = chunks(src.reader(local.clone())?, Bar::new(len, force_bar));
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let req = client
            .put(url)
            .header("content-type", "application/x-tar")
            .header("content-length", len)
            .body(reqwest::Body::wrap_stream(stream));
        let res = rt.block_on(async {
            let resp = req.send().await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        });
        report::clear_progress();
        let retry_reason = match res {
            Ok((status, body)) => {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                match api::envelope_of(status, &v, &api.server) {
                    Ok(v) => return Ok(v["sizeBytes"].as_u64().unwrap_or(len)),
                    // A broken attempt may still hold the URL for a moment.
                    Err(e) if status == reqwest::StatusCode::CONFLICT && attempt > 1 => {
                        e.to_string()
                    }
                    Err(e) => return Err(Fail::new(format!("upload refused: {e}"))),
                }
            }
            Err(e) => {
                if let Some(msg) = local.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    return Err(Fail::new(msg));
                }
                let f = api.net(&e);
                if e.is_connect() && attempt == 1 {
                    return Err(f);
                }
                f.to_string()
            }
        };
        if attempt >= ATTEMPTS || now_ms() + 1000 >= expires_ms {
            return Err(Fail::new(format!(
                "upload failed after {attempt} attempt(s): {retry_reason}"
            )));
        }
        eprintln!("rockit: upload interrupted ({retry_reason}); sending it again from the start");
        std::thread::sleep(Duration::from_secs(u64::from(attempt)));
        attempt += 1;
    }
}
