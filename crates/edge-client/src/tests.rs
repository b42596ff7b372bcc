//! The runtime against real images written by the engine and served over real HTTP by a
//! small range-capable file server that can also stall; tampering with the origin and the
//! cache, restarts, the lock, refusals.

use crate::{ErrorKind, ImageSource, Options, Runtime};
use edge_engine::image::{write_image, ImageMeta};
use edge_engine::ingest::ingest;
use edge_engine::store::ChunkStore;
use edge_engine::{ChunkParams, Params};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) struct Tmp(pub(crate) PathBuf);
impl Tmp {
    pub(crate) fn new(tag: &str) -> Tmp {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "edge-client-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn game() -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    m.insert("bin/game.exe".to_string(), noise(1, 300_000));
    m.insert("data/level1.pak".to_string(), b"castle dragon torch ".repeat(20_000));
    m.insert("data/textures.pak".to_string(), noise(2, 500_000));
    m.insert("config/empty.cfg".to_string(), Vec::new());
    m
}

/// Writes the image of `files` (plus the link `bin/cfg -> ../config`) into `dir`; returns
/// its dxfName.
fn publish(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> String {
    let mut b = tar::Builder::new(Vec::new());
    for (p, d) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(if p.starts_with("bin/") { 0o755 } else { 0o644 });
        h.set_cksum();
        b.append_data(&mut h, format!("./{p}"), &d[..]).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_cksum();
    b.append_link(&mut h, "bin/cfg", "../config").unwrap();
    let tar = b.into_inner().unwrap();
    let params = Params {
        chunk: ChunkParams { min: 4 << 10, avg: 16 << 10, max: 64 << 10 },
        zstd_level: 3,
        pack_limit: 256 << 10,
    };
    let store = ChunkStore::open(&dir.with_extension("store")).unwrap();
    let tree = ingest(&tar[..], &store, &params, &mut |_| {}).unwrap().tree;
    let meta = ImageMeta {
        org_name: "O".into(),
        app_name: "A".into(),
        build_id: 1,
        build_name: "1.0".into(),
        created: "2026-01-01T00:00:00Z".into(),
        traces: 0,
        generation: 0,
        preload: serde_json::json!({"10": 1000, "100": 200_000, "1000": 2_000_000}),
    };
    let s =
        write_image(&tree, &store, &[], &meta, dir, &params, None, &Default::default()).unwrap();
    let _ = std::fs::remove_dir_all(dir.with_extension("store"));
    s.dxf_name
}

/// How the file server behaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Serve,
    /// Accept, read the request, answer nothing.
    Stall,
}

/// One request the server answered: the file, the range asked for, bytes sent.
#[derive(Clone, Debug)]
struct Hit {
    file: String,
    range: Option<(u64, u64)>,
    sent: u64,
}

/// A small HTTP/1.1 file server with single byte ranges.
struct Origin {
    url: String,
    log: Arc<Mutex<Vec<Hit>>>,
    mode: Arc<Mutex<Mode>>,
    stop: Arc<AtomicBool>,
}

impl Origin {
    fn serve(root: &Path) -> Origin {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let (log, mode, stop) = (
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(Mutex::new(Mode::Serve)),
            Arc::new(AtomicBool::new(false)),
        );
        let (root, log2, mode2, stop2) =
            (root.to_path_buf(), log.clone(), mode.clone(), stop.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(c) = c else { continue };
                let (root, log, mode, stop) =
                    (root.clone(), log2.clone(), mode2.clone(), stop2.clone());
                std::thread::spawn(move || {
                    let _ = conn(c, &root, &log, &mode, &stop);
                });
            }
        });
        Origin { url, log, mode, stop }
    }

    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    fn hits(&self) -> Vec<Hit> {
        self.log.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://").trim_end_matches('/'));
    }
}

fn conn(
    c: TcpStream,
    root: &Path,
    log: &Mutex<Vec<Hit>>,
    mode: &Mutex<Mode>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut r = BufReader::new(c.try_clone()?);
    let mut w = c;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut range = None;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 {
                return Ok(());
            }
            if h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                let (a, b) = v.trim().split_once('-').unwrap();
                range = Some((a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()));
            }
        }
        while *mode.lock().unwrap() == Mode::Stall {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let target = line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("")
            .trim_start_matches('/')
            .to_string();
        let file = root.join(&target);
        if target.contains("..") || !file.is_file() {
            log.lock().unwrap().push(Hit { file: target, range, sent: 0 });
            write!(w, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
            continue;
        }
        let mut f = std::fs::File::open(&file)?;
        let len = f.metadata()?.len();
        let (status, start, end) = match range {
            Some((a, b)) => ("206 Partial Content", a, b.min(len - 1)),
            None => ("200 OK", 0, len.saturating_sub(1)),
        };
        let n = if len == 0 { 0 } else { end - start + 1 };
        write!(w, "HTTP/1.1 {status}\r\nContent-Length: {n}\r\n")?;
        if range.is_some() {
            write!(w, "Content-Range: bytes {start}-{end}/{len}\r\n")?;
        }
        write!(w, "\r\n")?;
        // Logged before the body goes out: the client may act on it at once.
        log.lock().unwrap().push(Hit { file: target, range, sent: n });
        f.seek(SeekFrom::Start(start))?;
        std::io::copy(&mut f.take(n), &mut w)?;
    }
}

fn opts(cache: &Path, prefetch: bool) -> Options {
    let mut o = Options::new(cache);
    o.prefetch = prefetch;
    o.read_timeout = Duration::from_secs(20);
    o.request_timeout = Duration::from_secs(10);
    o
}

fn url(o: &Origin, dxf: &str) -> ImageSource {
    ImageSource::Url { manifest_url: format!("{}{dxf}/manifest.json", o.url), public_key_pem: None }
}

/// The image's index as JSON.
fn index(site: &Path, dxf: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(site.join(dxf).join("index.json")).unwrap()).unwrap()
}

/// Waits (bounded) until the background stream has verified everything.
fn wait_complete(rt: &Runtime) {
    for _ in 0..3000 {
        let p = rt.progress();
        if p.verified_chunks == p.total_chunks {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the stream did not complete: {:?}", rt.progress());
}

#[test]
fn reads_serve_the_exact_bytes_and_are_traced() {
    let t = Tmp::new("reads");
    let site = t.0.join("site");
    let files = game();
    let dxf = publish(&site.join("img"), &files);
    std::fs::rename(site.join("img"), site.join(&dxf)).unwrap();
    let o = Origin::serve(&site);
    let rt = Runtime::open(url(&o, &dxf), opts(&t.0.join("cache"), false)).unwrap();
    // The tree as published: paths, kinds, modes, sizes, the link.
    let img = rt.image();
    assert_eq!(img.dxf_name(), dxf);
    let link = &img.entries()[img.lookup("bin/cfg").unwrap()];
    assert_eq!((link.kind, link.target.as_deref()), (crate::Kind::Symlink, Some("../config")));
    let exe = &img.entries()[img.lookup("bin/game.exe").unwrap()];
    assert_eq!((exe.mode, exe.size), (0o755, 300_000));
    assert!(
        o.hits().iter().all(|h| !h.file.ends_with(".bin")),
        "nothing streamed without prefetch"
    );
    let tex_file = img.lookup("data/textures.pak").unwrap();
    assert!(!rt.ready(tex_file, 12_345, 70_000));
    // Reads at awkward places: across chunk boundaries, at the end, beyond it.
    let tex = &files["data/textures.pak"];
    for (off, len) in [(0u64, 1u64), (12_345, 70_000), (499_990, 100), (500_000, 10), (0, 500_000)]
    {
        let got = rt.read_path("data/textures.pak", off, len).unwrap();
        let (a, b) = ((off as usize).min(tex.len()), ((off + len) as usize).min(tex.len()));
        assert_eq!(got, tex[a..b], "at {off}+{len}");
    }
    assert!(
        rt.ready(tex_file, 12_345, 70_000) && rt.ready(tex_file, 0, 500_000),
        "read once, served from the cache"
    );
    assert_eq!(
        rt.read_path("data/level1.pak", 1000, 20).unwrap(),
        &files["data/level1.pak"][1000..1020]
    );
    assert!(rt.read_path("config/empty.cfg", 0, 10).unwrap().is_empty());
    assert_eq!(rt.read_path("nope", 0, 1).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(rt.read_path("bin/cfg", 0, 1).unwrap_err().kind(), ErrorKind::Invalid);
    // Only the chunks read were downloaded: every pack request lies inside textures/level1.
    let idx = index(&site, &dxf);
    let mut read_chunks = std::collections::HashSet::new();
    for f in idx["files"].as_array().unwrap() {
        if f["path"] == "data/textures.pak" || f["path"] == "data/level1.pak" {
            read_chunks.extend(f["chunks"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()));
        }
    }
    let rows = idx["chunks"].as_array().unwrap();
    for h in o.hits().iter().filter(|h| h.file.ends_with(".bin")) {
        let (a, b) = h.range.expect("packs are read with ranges");
        let pack: u64 =
            h.file.rsplit("pack-").next().unwrap().trim_end_matches(".bin").parse().unwrap();
        for (i, r) in rows.iter().enumerate() {
            let (off, stored) = (r[5].as_u64().unwrap(), r[2].as_u64().unwrap());
            if r[4].as_u64().unwrap() == pack && off <= b && a < off + stored {
                assert!(read_chunks.contains(&(i as u64)), "chunk {i} was fetched but never read");
            }
        }
    }
    // The trace: the reads, merged where they continue each other.
    let tr = rt.trace();
    assert_eq!(tr.paths, ["data/textures.pak", "data/level1.pak"]);
    assert_eq!(tr.events[0][0], 0, "times count from the first read");
    assert_eq!(tr.app_name, "A");
    assert_eq!(tr.build_id, 1);
    let tex_events: Vec<[u64; 2]> =
        tr.events.iter().filter(|e| e[1] == 0).map(|e| [e[2], e[3]]).collect();
    assert!(tex_events.contains(&[12_345, 70_000]), "{tex_events:?}");
    assert!(tr.events.iter().any(|e| e[1] == 1 && e[2] == 1000 && e[3] == 20));
    tr.validate().unwrap();
    // Load order: empty files first, then by where each file's first chunk is in the stream.
    let order: Vec<&str> =
        img.load_order().iter().map(|&i| img.entries()[i].path.as_str()).collect();
    let first = |p: &str| img.entries()[img.lookup(p).unwrap()].chunks.first().copied();
    assert_eq!(order[0], "config/empty.cfg");
    assert!(order[1..].windows(2).all(|w| first(w[0]) < first(w[1])), "{order:?}");
    assert_eq!(order.len(), 4);
    let p = rt.progress();
    assert!(p.stalls >= 1 && p.verified_chunks > 0 && p.verified_chunks < p.total_chunks, "{p:?}");
    // Every byte and request was the reads' (and the manifest's and index's), none the stream's.
    let hits = o.hits();
    assert_eq!(p.downloaded_bytes, hits.iter().map(|h| h.sent).sum::<u64>(), "{p:?}");
    assert_eq!(p.requests, hits.len() as u64);
    assert_eq!((p.streamed_bytes, p.stream_requests), (0, 0));
    let s = rt.finish();
    assert_eq!(s.session_end().stalls, s.stalls);
}

#[test]
fn the_background_stream_fetches_everything_once_in_stream_order() {
    let t = Tmp::new("stream");
    let site = t.0.join("site");
    let files = game();
    let dxf = publish(&site.join("img"), &files);
    std::fs::rename(site.join("img"), site.join(&dxf)).unwrap();
    let o = Origin::serve(&site);
    let mut op = opts(&t.0.join("cache"), true);
    op.bandwidth = Some(4_000_000);
    let rt = Runtime::open(url(&o, &dxf), op).unwrap();
    assert!(rt.wait_preload(Duration::from_secs(30)));
    wait_complete(&rt);
    for (p, d) in &files {
        assert_eq!(&rt.read_path(p, 0, d.len() as u64 + 5).unwrap(), d, "{p}");
    }
    let p = rt.progress();
    assert_eq!(p.verified_bytes, p.total_bytes);
    assert!(p.preload_reached);
    // Each pack byte was sent once, packs in order.
    let packs: Vec<Hit> = o.hits().into_iter().filter(|h| h.file.ends_with(".bin")).collect();
    let sent: u64 = packs.iter().map(|h| h.sent).sum();
    assert_eq!(sent, p.total_bytes, "{packs:?}");
    // All of it came with the stream: nothing was read before it was complete.
    assert_eq!((p.streamed_bytes, p.stream_requests), (sent, packs.len() as u64), "{p:?}");
    let names: Vec<&str> = packs.iter().map(|h| h.file.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    // Every chunk is in the cache under its hash.
    let idx = index(&site, &dxf);
    for r in idx["chunks"].as_array().unwrap() {
        let h = r[0].as_str().unwrap();
        assert!(t.0.join("cache/chunks").join(&h[..2]).join(h).is_file());
    }
    rt.finish();
}

#[test]
fn a_second_runtime_on_the_cache_is_refused_until_the_first_finishes() {
    let t = Tmp::new("lock");
    let site = t.0.join("site");
    let dxf = publish(&site.join("img"), &game());
    std::fs::rename(site.join("img"), site.join(&dxf)).unwrap();
    let o = Origin::serve(&site);
    let cache = t.0.join("cache");
    let first = Runtime::open(url(&o, &dxf), opts(&cache, false)).unwrap();
    let e = Runtime::open(url(&o, &dxf), opts(&cache, false)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Locked);
    assert!(e.to_string().contains(&format!("pid {}", std::process::id())), "{e}");
    first.finish();
    Runtime::open(url(&o, &dxf), opts(&cache, false)).unwrap().finish();
}

#[test]
fn a_restart_reuses_what_was_verified_and_rechecks_it() {
    let t = Tmp::new("restart");
    let site = t.0.join("site");
    let files = game();
    let dxf = publish(&site.join("img"), &files);
    std::fs::rename(site.join("img"), site.join(&dxf)).unwrap();
    let o = Origin::serve(&site);
    let cache = t.0.join("cache");
    let rt = Runtime::open(url(&o, &dxf), opts(&cache, false)).unwrap();
    rt.read_path("bin/game.exe", 0, 300_000).unwrap();
    drop(rt); // as a crash would: no finish
              // Damage one cached chunk of game.exe (a power loss that kept the name, say) and
              // leave a half-written chunk in tmp/.
    let idx = index(&site, &dxf);
    let exe = idx["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "bin/game.exe")
        .unwrap()
        .clone();
    let rows = idx["chunks"].as_array().unwrap();
    let damaged = exe["chunks"][1].as_u64().unwrap() as usize;
    let h = rows[damaged][0].as_str().unwrap();
    let p = cache.join("chunks").join(&h[..2]).join(h);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    std::fs::write(cache.join("tmp/partial"), b"half").unwrap();
    o.clear();
    let rt = Runtime::open(url(&o, &dxf), opts(&cache, false)).unwrap();
    assert!(!cache.join("tmp/partial").exists());
    assert_eq!(rt.read_path("bin/game.exe", 0, 300_000).unwrap(), files["bin/game.exe"]);
    // Exactly the damaged chunk was fetched again; the index came from the cache.
    let hits = o.hits();
    let packs: Vec<&Hit> = hits.iter().filter(|h| h.file.ends_with(".bin")).collect();
    assert_eq!(packs.len(), 1, "{hits:?}");
    let (off, stored) = (rows[damaged][5].as_u64().unwrap(), rows[damaged][2].as_u64().unwrap());
    assert_eq!(packs[0].range, Some((off, off + stored - 1)));
    assert!(!hits.iter().any(|h| h.file.ends_with("index.json")), "{hits:?}");
    rt.finish();
}

#[test]
fn corrupt_origin_bytes_are_refetched_then_refused_never_served() {
    let t = Tmp::new("corrupt");
    let site = t.0.join("site");
    let files = game();
    let dxf = publish(&site.join("img"), &files);
    std::fs::rename(site.join("img"), site.join(&dxf)).unwrap();
    let idx = index(&site, &dxf);
    let rows = idx["chunks"].as_array().unwrap();
    let tex = idx["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "data/textures.pak")
        .unwrap()
        .clone();
    let bad = tex["chunks"][2].as_u64().unwrap() as usize;
    let (pack, off) = (rows[bad][4].as_u64().unwrap(), rows[bad][5].as_u64().unwrap());
    let pack_file = site.join(&dxf).join(format!("pack-{pack:04}.bin"));
    let mut bytes = std::fs::read(&pack_file).unwrap();
    bytes[off as usize + 7] ^= 0x01;
    std::fs::write(&pack_file, bytes).unwrap();
    let o = Origin::serve(&site);
    let cache = t.0.join("cache");
    let rt = Runtime::open(url(&o, &dxf), opts(&cache, false)).unwrap();
    let e = rt.read_path("data/textures.pak", 0, 500_000).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert_eq!(e.errno(), 5);
    assert!(
        e.to_string().contains(rows[bad][0].as_str().unwrap()) && e.to_string().contains("refetch"),
        "{e}"
    );
    // Fetched twice, never stored.
    let pack_name = format!("pack-{pack:04}.bin");
    let asked = o
        .hits()
        .iter()
        .filter(|h| {
            h.file.ends_with(&pack_name) && h.range.is_some_and(|r| r.0 <= off && off <= r.1)
        })
        .count();
    assert_eq!(asked, 2);
    let h = rows[bad][0].as_str().unwrap();
    assert!(!cache.join("chunks").join(&h[..2]).join(h).exists());
    // Reads that avoid the chunk work; the stream (once started) leaves it alone.
    assert_eq!(rt.read_path("bin/game.exe", 0, 300_000).unwrap(), files["bin/game.exe"]);
    assert_eq!(rt.progress().bad_chunks, 1);
    rt.finish();
    let rt = Runtime::open(url(&o, &dxf), opts(&cache, true)).unwrap();
    for _ in 0..3000 {
        let p = rt.progress();
        if !p.streaming {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let p = rt.progress();
    assert_eq!(
        (p.streaming, p.verified_chunks, p.bad_chunks),
        (false, p.total_chunks - 1, 1),
        "{p:?}"
    );
    assert!(p.last_error.unwrap_or_default().contains("does not match its hash"));
    assert_eq!(
        rt.read_path("data/textures.pak", 0, 100).unwrap(),
        files["data/textures.pak"][..100]
    );
    assert_eq!(
        rt.read_path("data/textures.pak", 0, 500_000).unwrap_err().kind(),
        ErrorKind::Corrupt
    );
    rt.finish();
}

#[test]
fn a_stalled_origin_fails_reads_after_the_deadline_then_recovers() {
    let t = Tmp::new("stall");
    let site = t.0.join("site");
    let files = game();
    let dxf = publish(&site.join("img"), &files);
    std::fs::rename(site.join("img"), site.join(&dxf)).unwrap();
    let o = Origin::serve(&site);
    let mut op = opts(&t.0.join("cache"), false);
    op.read_timeout = Duration::from_secs(3);
    op.request_timeout = Duration::from_secs(1);
    let rt = Arc::new(Runtime::open(url(&o, &dxf), op).unwrap());
    o.set(Mode::Stall);
    let (tx, rx) = std::sync::mpsc::channel();
    let rt2 = rt.clone();
    std::thread::spawn(move || {
        let _ = tx.send(rt2.read_path("data/level1.pak", 0, 4096));
    });
    // The read must come back on its own (the guard only keeps a broken build from hanging).
    let e = rx.recv_timeout(Duration::from_secs(60)).expect("the read returns").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(e.errno(), 5);
    assert_eq!(rt.progress().stall, None);
    o.set(Mode::Serve);
    assert_eq!(rt.read_path("data/level1.pak", 0, 4096).unwrap(), files["data/level1.pak"][..4096]);
    let p = rt.progress();
    assert_eq!(p.stalls, 2, "both reads waited for the network: {p:?}");
}

#[test]
fn trace_times_leave_out_the_waits_for_the_network() {
    let t = Tmp::new("clock");
    let site = t.0.join("site");
    let files = game();
    let dxf = publish(&site.join("img"), &files);
    std::fs::rename(site.join("img"), site.join(&dxf)).unwrap();
    let o = Origin::serve(&site);
    let rt = Arc::new(Runtime::open(url(&o, &dxf), opts(&t.0.join("cache"), false)).unwrap());
    // The game's first read waits 1.5 s for a stalled origin; its next reads follow at once.
    o.set(Mode::Stall);
    let rt2 = rt.clone();
    let first = std::thread::spawn(move || rt2.read_path("data/level1.pak", 0, 4096));
    std::thread::sleep(Duration::from_millis(1500));
    o.set(Mode::Serve);
    assert_eq!(first.join().unwrap().unwrap(), files["data/level1.pak"][..4096]);
    assert_eq!(rt.read_path("bin/game.exe", 0, 100).unwrap(), files["bin/game.exe"][..100]);
    assert_eq!(
        rt.read_path("data/textures.pak", 0, 100).unwrap(),
        files["data/textures.pak"][..100]
    );
    let tr = rt.trace();
    assert_eq!(tr.paths, ["data/level1.pak", "bin/game.exe", "data/textures.pak"]);
    // A play that never waited would have made the later reads right after the first: the
    // trace says so, while the play itself lasted the wait and more.
    assert_eq!(tr.events[0][0], 0);
    assert!(tr.events[1][0] < 1000 && tr.events[2][0] < 1000, "{:?}", tr.events);
    let s = rt.finish();
    assert!(s.play_time >= Duration::from_millis(1500), "{:?}", s.play_time);
    assert!(s.stall_time >= Duration::from_millis(1500), "{:?}", s.stall_time);
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn images_failing_a_check_are_refused_before_anything_is_served() {
    let t = Tmp::new("refuse");
    let site = t.0.join("site");
    let dxf = publish(&site.join("img"), &game());
    let img = site.join("img");
    // Signed with one key (by OpenSSL); verified with it, with another, and unsigned.
    for k in ["org", "other"] {
        openssl(
            &t.0,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &format!("{k}.key"),
            ],
        );
        openssl(
            &t.0,
            &["pkey", "-in", &format!("{k}.key"), "-pubout", "-out", &format!("{k}.pub")],
        );
    }
    let man = img.join("manifest.json");
    openssl(
        &t.0,
        &[
            "dgst",
            "-sha256",
            "-sign",
            "org.key",
            "-out",
            img.join("manifest.sig").to_str().unwrap(),
            man.to_str().unwrap(),
        ],
    );
    let o = Origin::serve(&site);
    let pem = |k: &str| std::fs::read_to_string(t.0.join(format!("{k}.pub"))).unwrap();
    let src = |pem: Option<String>| ImageSource::Url {
        manifest_url: format!("{}img/", o.url),
        public_key_pem: pem,
    };
    let cache = t.0.join("cache");
    let rt = Runtime::open(src(Some(pem("org"))), opts(&cache, false)).unwrap();
    assert!(rt.image().manifest().signed);
    assert_eq!(rt.image().dxf_name(), dxf);
    rt.finish();
    let fresh = std::sync::atomic::AtomicU32::new(0);
    let refused = |pem: Option<String>| {
        // A cache of its own each time: a kept index that matches the pin would be used.
        let cache = t.0.join(format!("cache-{}", fresh.fetch_add(1, Ordering::Relaxed)));
        let e = Runtime::open(src(pem), opts(&cache, false)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
        e.to_string()
    };
    assert!(refused(Some(pem("other"))).contains("signature does not verify"));
    let sig = std::fs::read(img.join("manifest.sig")).unwrap();
    std::fs::remove_file(img.join("manifest.sig")).unwrap();
    assert!(refused(Some(pem("org"))).contains("no manifest.sig"));
    std::fs::write(img.join("manifest.sig"), sig).unwrap();
    // The index changed after signing: its pin fails.
    let index_path = img.join("index.json");
    let good_index = std::fs::read(&index_path).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&good_index).unwrap();
    v["files"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"path": "up", "type": "symlink", "mode": 511, "target": "../.."}));
    let evil = serde_json::to_vec(&v).unwrap();
    std::fs::write(&index_path, &evil).unwrap();
    assert!(refused(Some(pem("org"))).contains("index.json does not match its hash"));
    // Re-pinned (and so unsigned): the file table itself is refused, naming the entry.
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&man).unwrap()).unwrap();
    m["index"]["blake3"] = serde_json::json!(edge_engine::Hash::of(&evil).hex());
    m["index"]["sizeBytes"] = serde_json::json!(evil.len());
    std::fs::write(&man, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let e = refused(None);
    assert!(e.contains("up: symbolic link leaving the tree"), "{e}");
    // Nothing was ever fetched from a pack.
    assert!(o.hits().iter().all(|h| !h.file.ends_with(".bin")));
}

#[test]
fn concurrent_readers_and_the_stream_share_chunks_without_double_work() {
    let t = Tmp::new("concurrent");
    let site = t.0.join("site");
    let files = Arc::new(game());
    let dxf = publish(&site.join("img"), &files);
    std::fs::rename(site.join("img"), site.join(&dxf)).unwrap();
    let o = Origin::serve(&site);
    let mut op = opts(&t.0.join("cache"), true);
    op.bandwidth = Some(2_000_000);
    let rt = Arc::new(Runtime::open(url(&o, &dxf), op).unwrap());
    let paths = ["bin/game.exe", "data/level1.pak", "data/textures.pak"];
    let threads: Vec<_> = (0..8u64)
        .map(|k| {
            let (rt, files) = (rt.clone(), files.clone());
            std::thread::spawn(move || {
                let mut x = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                for _ in 0..25 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let p = paths[(x % 3) as usize];
                    let d = &files[p];
                    let off = (x >> 8) % d.len() as u64;
                    let len = (x >> 40) % 200_000 + 1;
                    let got = rt.read_path(p, off, len).unwrap();
                    let end = (off + len).min(d.len() as u64) as usize;
                    assert_eq!(got, d[off as usize..end], "{p} at {off}+{len}");
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    wait_complete(&rt);
    // Every chunk verified and cached once; nothing bad; the pack bytes asked for cover
    // the stream (a chunk may be asked for twice only when a reader and the stream raced
    // for it: the stream gives way then).
    let p = rt.progress();
    assert_eq!((p.verified_bytes, p.bad_chunks), (p.total_bytes, 0), "{p:?}");
    let asked: u64 = o.hits().iter().filter(|h| h.file.ends_with(".bin")).map(|h| h.sent).sum();
    assert!(asked >= p.total_bytes, "{asked} < {}", p.total_bytes);
    rt.finish();
}

#[test]
fn a_file_read_in_order_comes_with_the_stream_not_a_request_per_chunk() {
    let t = Tmp::new("follow");
    let site = t.0.join("site");
    let mut files = game();
    // Last in the stream's order: the stream starts far from it.
    files.insert("zz/big.pak".to_string(), noise(3, 600_000));
    let dxf = publish(&site.join("img"), &files);
    std::fs::rename(site.join("img"), site.join(&dxf)).unwrap();
    let o = Origin::serve(&site);
    let mut op = opts(&t.0.join("cache"), true);
    op.bandwidth = Some(3_000_000);
    let rt = Runtime::open(url(&o, &dxf), op).unwrap();
    let big = &files["zz/big.pak"];
    let img = rt.image();
    let chunks = img.entries()[img.lookup("zz/big.pak").unwrap()].chunks.len();
    assert!(chunks >= 20, "{chunks} chunks");
    // The game reads the file in 16 KiB pieces, one after the other.
    for off in (0..big.len()).step_by(16 << 10) {
        let got = rt.read_path("zz/big.pak", off as u64, 16 << 10).unwrap();
        assert_eq!(got, big[off..(off + (16 << 10)).min(big.len())], "at {off}");
    }
    // The first read fetched its chunk itself; the stream followed it and the later reads
    // waited for the stream's requests instead of opening one per chunk.
    let p = rt.progress();
    let packs = o.hits().iter().filter(|h| h.file.ends_with(".bin")).count() as u64;
    let by_reads = packs - p.stream_requests;
    assert!(by_reads <= 3, "{by_reads} requests by reads for {chunks} chunks: {p:?}");
    wait_complete(&rt);
    let p = rt.progress();
    assert_eq!((p.verified_bytes, p.bad_chunks), (p.total_bytes, 0), "{p:?}");
    rt.finish();
}
