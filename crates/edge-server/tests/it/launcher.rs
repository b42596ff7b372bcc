//! The launcher runtime end to end: a published game mounted with the real `rockit mount`
//! (FUSE) and read by programs nobody wrote for this project — `sha256sum`, GNU `tar`,
//! `stat`, `readlink`, a shell script executed from the mount, a Python script that boots
//! like a game — which must see exactly the uploaded bytes, modes and links; the reads come
//! back to the Edge as the session's trace. Then faults on a CDN origin (a small HTTP file
//! server with ranges in front of the `fs` origin's directory): a corrupted byte, an origin
//! that stalls or hangs up, a kill -9 of the runtime and a restart on its cache, and a
//! second runtime on the same cache.

use crate::common::*;
use crate::delivery::{upload, wait_group};
use crate::edge_test;
use crate::game::*;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

const ROCKIT: &str = env!("CARGO_BIN_EXE_rockit");

/// Runs blocking work off the async workers (the server under test shares them).
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// The game: `game_v1` plus a script to execute, an executable mode, a directory with its
/// own mode and an empty one.
fn game_files() -> BTreeMap<String, Vec<u8>> {
    let mut g = game_v1();
    g.insert("bin/start.sh".into(), b"#!/bin/sh\necho \"started $*\"\n".to_vec());
    g.insert("data/maps/deep/map01.bin".into(), noise(11, 90_000));
    g
}

/// Writes the game under `base/name` with its modes and tars it with GNU tar.
fn make_game(base: &Path, name: &str) -> (PathBuf, PathBuf, BTreeMap<String, Vec<u8>>) {
    let files = game_files();
    let dir = base.join(name);
    write_tree(&dir, &files);
    for (p, m) in [
        ("bin/game.exe", 0o755),
        ("bin/start.sh", 0o755),
        ("config/settings.ini", 0o600),
        ("data/maps", 0o750),
    ] {
        std::fs::set_permissions(dir.join(p), std::fs::Permissions::from_mode(m)).unwrap();
    }
    std::fs::create_dir_all(dir.join("saves")).unwrap();
    std::fs::set_permissions(dir.join("saves"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let t = base.join(format!("{name}.tar"));
    tar(&dir, &t);
    (dir, t, files)
}

/// An app `Game` of `org` published from the game above: (admin token, client key, dxfName,
/// game dir, files).
async fn publish(
    s: &Srv,
    tok: &str,
    deployments: &[&str],
    work: &TempDir,
) -> (String, String, PathBuf, BTreeMap<String, Vec<u8>>) {
    let r = s
        .be(
            tok,
            Method::POST,
            "/be/v1/apps",
            Some(json!({"name": "Game", "label": "Game", "deployments": deployments})),
        )
        .await;
    let key = r.ok()["app"]["clientKey"].as_str().unwrap().to_string();
    let base = work.0.clone();
    let (dir, tarball, files) = blocking(move || make_game(&base, "game")).await;
    let imp = upload(s, tok, "Game", "1.0.0", &tarball).await;
    let tasks = wait_group(s, tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(tasks.iter().all(|t| t["status"] == "done"), "{tasks:?}");
    let app = s.be(tok, Method::GET, "/be/v1/apps/Game", None).await;
    (key, app.ok()["app"]["dxfName"].as_str().unwrap().to_string(), dir, files)
}

/// A `rockit mount` child process; dropping it kills it and detaches its mount.
struct Mount {
    child: Option<Child>,
    dir: PathBuf,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
    /// The line printed when mounted (`--json`).
    info: Value,
}

/// How a `rockit` process ended.
#[derive(Debug)]
struct Ended {
    code: Option<i32>,
    stdout: Vec<String>,
    stderr: String,
}

fn unmount(dir: &Path) {
    let ok = Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let _ = Command::new("umount").arg("-l").arg(dir).stderr(Stdio::null()).status();
    }
}

/// Whether `dir` is a mount point now.
fn mounted(dir: &Path) -> bool {
    let canon = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(canon.to_str().unwrap()))
}

impl Mount {
    /// Starts `rockit mount --json <args> <dir>` and waits for its "mounted" line; a process
    /// that ends first gives its end.
    fn start(args: &[String], dir: &Path) -> Result<Mount, Ended> {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new(ROCKIT)
            .arg("mount")
            .arg("--json")
            .args(args)
            .arg(dir)
            .env_remove("ROCKIT_SERVER")
            .env("HOME", dir.parent().unwrap())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rockit runs");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (err, e2) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = e2.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        });
        let mut m =
            Mount { child: Some(child), dir: dir.to_path_buf(), lines, stderr, info: Value::Null };
        match m.lines.recv_timeout(Duration::from_secs(120)) {
            Ok(l) => {
                m.info = serde_json::from_str(&l).unwrap_or_else(|_| panic!("a JSON line: {l}"));
                assert!(mounted(dir), "{} is mounted after {l}", dir.display());
                Ok(m)
            }
            Err(_) => Err(m.wait_end()),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn wait_end(&mut self) -> Ended {
        let mut child = self.child.take().unwrap();
        let mut code = None;
        for _ in 0..6000 {
            if let Some(st) = child.try_wait().unwrap() {
                code = st.code();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if code.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut stdout = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            stdout.push(l);
        }
        std::thread::sleep(Duration::from_millis(50));
        Ended { code, stdout, stderr: self.stderr.lock().unwrap().clone() }
    }

    /// SIGTERM, as a service manager stops it; returns how it ended.
    fn stop(mut self) -> Ended {
        let st = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status().unwrap();
        assert!(st.success());
        let end = self.wait_end();
        assert!(!mounted(&self.dir), "{} still mounted: {end:?}", self.dir.display());
        end
    }

    /// kill -9: the runtime dies mid-flight; its dead mount is detached.
    fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        unmount(&self.dir);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        unmount(&self.dir);
    }
}

/// `sh -c <cmd>` in `dir`, bounded by coreutils' `timeout` so that nothing can hang.
fn sh(dir: &Path, cmd: &str) -> Output {
    Command::new("timeout")
        .args(["120", "sh", "-c", cmd])
        .current_dir(dir)
        .output()
        .expect("sh runs")
}

/// Python `script` in `dir`, bounded the same way.
fn python(dir: &Path, script: &str) -> Output {
    Command::new("timeout")
        .args(["120", "python3", "-c", script])
        .current_dir(dir)
        .output()
        .expect("python3 runs")
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}: {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Every entry under `dir` without following links: path → (kind, mode, size, link target).
fn listing(dir: &Path) -> BTreeMap<String, (char, u32, u64, String)> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, (char, u32, u64, String)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().to_str().unwrap().to_string();
            let ft = m.file_type();
            if ft.is_symlink() {
                out.insert(
                    rel,
                    ('l', 0, 0, std::fs::read_link(&p).unwrap().to_str().unwrap().to_string()),
                );
            } else if ft.is_dir() {
                out.insert(rel, ('d', m.mode() & 0o7777, 0, String::new()));
                walk(base, &p, out);
            } else {
                out.insert(rel, ('f', m.mode() & 0o7777, m.len(), String::new()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// The stored trace of the session that sent `trace_id`.
fn stored_trace(data: &Path, trace_id: &str) -> edge_engine::seq::Trace {
    for app in std::fs::read_dir(data.join("traces")).unwrap() {
        let p = app.unwrap().path().join(format!("{trace_id}.json.zst"));
        if p.is_file() {
            let json = zstd::stream::decode_all(std::fs::File::open(&p).unwrap()).unwrap();
            return edge_engine::seq::parse_trace(&json).unwrap();
        }
    }
    panic!("trace {trace_id} is not stored under {}", data.join("traces").display());
}

/// Byte ranges as a sorted union of half-open intervals.
fn union(mut r: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    r.sort();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (a, b) in r {
        match out.last_mut() {
            Some(l) if a <= l.1 => l.1 = l.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// What a game does at boot: the executable's headers and code, its settings through a
/// link, a level's header, index and a section, its textures memory-mapped. Prints each read
/// as `[path, offset, length, sha256, how]`.
const BOOT: &str = r#"
import hashlib, json, mmap, os
out = []
def pread(path, off, n):
    fd = os.open(path, os.O_RDONLY)
    try:
        b = os.pread(fd, n, off)
    finally:
        os.close(fd)
    out.append([path, off, len(b), hashlib.sha256(b).hexdigest(), "pread"])
pread("bin/game.exe", 0, 4096)
pread("bin/game.exe", 65536, 200000)
with open("bin/settings", "rb", buffering=0) as f:
    b = f.read()
out.append(["bin/settings", 0, len(b), hashlib.sha256(b).hexdigest(), "read"])
size = os.stat("data/levels.pak").st_size
pread("data/levels.pak", 0, 512)
pread("data/levels.pak", size - 1024, 1024)
pread("data/levels.pak", 1000000, 300000)
with open("data/textures.pak", "rb") as f:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    b = m[409600:413696]
    m.close()
out.append(["data/textures.pak", 409600, len(b), hashlib.sha256(b).hexdigest(), "mmap"])
print(json.dumps(out))
"#;

edge_test!(mounted_games_read_by_real_programs_and_traced, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let work = TempDir::new("launcher");
    // An organization with an RSA key: its images are signed, sessions carry publicKeyPem.
    let w = work.0.clone();
    blocking(move || {
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-C", "", "-f", "org"])
            .current_dir(&w)
            .status();
        assert!(st.unwrap().success());
    })
    .await;
    let pem_b64 = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(work.0.join("org")).unwrap());
    let body = json!({"name": "Studio", "label": "Studio", "username": "boss", "email": "b@example.com", "firstname": "B", "surname": "S", "orgPrivPemB64": pem_b64});
    let r = s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await;
    let tok = s.token("boss", r.ok()["adminPW"].as_str().unwrap(), "Studio").await;
    let (key, dxf, game, files) = publish(&s, &tok, &[], &work).await;
    let cache = work.0.join("cache");
    let args = |trace_out: &str| -> Vec<String> {
        [
            "--server",
            &s.base,
            "--org",
            "Studio",
            "--app",
            "Game",
            "--client-key",
            &key,
            "--cache",
            cache.to_str().unwrap(),
            "--trace-out",
            trace_out,
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };

    // Session 1: the whole tree, read by stat, sha256sum, tar, a script run from the mount.
    let (a, mnt) = (args(work.0.join("trace1.json").to_str().unwrap()), work.0.join("mnt"));
    let m = blocking(move || Mount::start(&a, &mnt).unwrap()).await;
    assert_eq!(m.info["dxfName"], dxf.as_str());
    assert_eq!(m.info["buildId"], 1);
    let session1 = m.info["sessionId"].as_str().unwrap().to_string();
    let (mnt, g2, f2) = (m.dir.clone(), game.clone(), files.clone());
    let out = work.0.join("untarred");
    blocking(move || {
        // The tree exactly: every path, kind, mode, size and link target.
        assert_eq!(listing(&mnt), listing(&g2));
        let st = ok(&sh(&mnt, "stat -c '%F|%a|%s' bin/game.exe config/settings.ini bin/settings saves data/maps config/empty.cfg"));
        assert_eq!(
            st.lines().collect::<Vec<_>>(),
            [
                "regular file|755|700000",
                "regular file|600|19",
                "symbolic link|777|22",
                "directory|700|0",
                "directory|750|0",
                "regular empty file|644|0"
            ]
        );
        assert_eq!(ok(&sh(&mnt, "readlink bin/settings")).trim(), "../config/settings.ini");
        // sha256sum over every file, in an order of our choosing (largest first).
        let mut order: Vec<&String> = f2.keys().collect();
        order.sort_by_key(|p| std::cmp::Reverse(f2[*p].len()));
        let names: Vec<&str> = order.iter().map(|p| p.as_str()).collect();
        let sums = ok(&sh(&mnt, &format!("sha256sum {}", names.join(" "))));
        let want: Vec<String> = order.iter().map(|p| format!("{}  {p}", sha(&f2[*p]))).collect();
        assert_eq!(sums.lines().collect::<Vec<_>>(), want);
        // GNU tar of the mount, unpacked elsewhere: the same tree, bytes and modes.
        std::fs::create_dir_all(&out).unwrap();
        ok(&sh(&mnt, &format!("tar cf - . | tar xpf - -C {}", out.display())));
        assert_eq!(read_tree(&out), read_tree(&g2));
        assert_eq!(listing(&out), listing(&g2));
        // A program executed from the mount.
        assert_eq!(ok(&sh(&mnt, "./bin/start.sh from-the-mount")), "started from-the-mount\n");
        // Writing is refused.
        let w = sh(&mnt, "echo x > config/new.ini");
        assert!(!w.status.success() && String::from_utf8_lossy(&w.stderr).contains("Read-only file system"), "{w:?}");
    })
    .await;
    let end = blocking(move || m.stop()).await;
    assert_eq!(end.code, Some(0), "{end:?}");
    let sum1: Value = serde_json::from_str(end.stdout.last().unwrap()).unwrap();
    assert_eq!(sum1["sessionId"], session1.as_str());
    assert_eq!(sum1["verifiedBytes"], sum1["totalBytes"], "everything was read: {sum1}");
    let trace1 = stored_trace(&s.data_dir(), sum1["traceId"].as_str().unwrap());
    // What sha256sum and tar read: every byte of every file, nothing beyond.
    assert_eq!(trace1.app_name, "Game");
    assert_eq!(trace1.build_id, 1);
    assert_eq!(trace1.dxf_name.as_deref(), Some(dxf.as_str()));
    assert_eq!(
        trace1.paths.iter().collect::<BTreeSet<_>>(),
        files.iter().filter(|(_, d)| !d.is_empty()).map(|(p, _)| p).collect()
    );
    for (i, p) in trace1.paths.iter().enumerate() {
        let got = union(
            trace1
                .events
                .iter()
                .filter(|e| e[1] == i as u64)
                .map(|e| (e[2], e[2] + e[3]))
                .collect(),
        );
        assert_eq!(got, [(0, files[p].len() as u64)], "{p}");
    }
    let local1 =
        edge_engine::seq::parse_trace(&std::fs::read(work.0.join("trace1.json")).unwrap()).unwrap();
    assert_eq!(local1, trace1, "the trace sent is the trace recorded");

    // Sessions 2 and 3, on the same cache: a game's boot, through the page cache (the
    // default) and with --direct-io. With direct I/O its reads are the trace, exactly;
    // through the page cache the trace covers them and reaches beyond them only by the
    // kernel's read-ahead.
    let mut sums = vec![sum1.clone()];
    for (n, direct) in [(2, false), (3, true)] {
        let mut a = args(work.0.join(format!("trace{n}.json")).to_str().unwrap());
        if direct {
            a.push("--direct-io".into());
        }
        let mnt = work.0.join(format!("mnt{n}"));
        let m = blocking(move || Mount::start(&a, &mnt).unwrap()).await;
        let mnt = m.dir.clone();
        let reads: Vec<Value> =
            blocking(move || serde_json::from_str(&ok(&python(&mnt, BOOT))).unwrap()).await;
        let end = blocking(move || m.stop()).await;
        assert_eq!(end.code, Some(0), "{end:?}");
        let sum: Value = serde_json::from_str(end.stdout.last().unwrap()).unwrap();
        assert_eq!(sum["downloadedBytes"], 0, "all in the cache: {sum}");
        assert_eq!(sum["stalls"], 0);
        let target = |p: &str| {
            if p == "bin/settings" {
                "config/settings.ini".to_string()
            } else {
                p.to_string()
            }
        };
        for r in &reads {
            let (p, off, len) = (
                target(r[0].as_str().unwrap()),
                r[1].as_u64().unwrap() as usize,
                r[2].as_u64().unwrap() as usize,
            );
            assert_eq!(r[3].as_str().unwrap(), sha(&files[&p][off..off + len]), "{r}");
        }
        let trace = stored_trace(&s.data_dir(), sum["traceId"].as_str().unwrap());
        assert_eq!(
            trace,
            edge_engine::seq::parse_trace(
                &std::fs::read(work.0.join(format!("trace{n}.json"))).unwrap()
            )
            .unwrap()
        );
        assert_eq!(
            trace.paths,
            ["bin/game.exe", "config/settings.ini", "data/levels.pak", "data/textures.pak"]
        );
        // How far the kernel reads ahead of a program: at most twice its window.
        let ahead = 2 * edge_client::fs::READ_AHEAD as u64;
        for (i, p) in trace.paths.iter().enumerate() {
            let got = union(
                trace
                    .events
                    .iter()
                    .filter(|e| e[1] == i as u64)
                    .map(|e| (e[2], e[2] + e[3]))
                    .collect(),
            );
            let mine = union(
                reads
                    .iter()
                    .filter(|r| target(r[0].as_str().unwrap()) == *p)
                    .map(|r| {
                        (r[1].as_u64().unwrap(), r[1].as_u64().unwrap() + r[2].as_u64().unwrap())
                    })
                    .collect(),
            );
            let size = files[p].len() as u64;
            assert!(got.iter().all(|g| g.1 <= size), "{p}: nothing beyond the file: {got:?}");
            // Every read is covered.
            assert!(
                mine.iter().all(|m| got.iter().any(|g| g.0 <= m.0 && m.1 <= g.1)),
                "{p}: {got:?} covers {mine:?}"
            );
            if p == "data/textures.pak" {
                // A mapping is read by pages and the kernel's read-around, in either mode:
                // the page is covered (above), nothing beyond the file.
            } else if direct {
                assert_eq!(got, mine, "{p}: with direct I/O the trace holds exactly what was read");
            } else {
                // Through the page cache: what was read, from its first page on, and what the
                // kernel read ahead after it.
                let allowed =
                    union(mine.iter().map(|m| (m.0 / 4096 * 4096, m.1 + ahead + 4096)).collect());
                assert!(
                    got.iter().all(|g| allowed.iter().any(|a| a.0 <= g.0 && g.1 <= a.1)),
                    "{p}: {got:?} reaches beyond {mine:?} only by read-ahead"
                );
            }
        }
        // Events are in time order from the game's start (its first read).
        assert_eq!(trace.events[0][0], 0);
        assert!(trace.events.windows(2).all(|w| w[0][0] <= w[1][0]));
        sums.push(sum);
    }

    // The sessions were closed with their numbers; the app counts three traces.
    let db = edge_server::db::Db::connect(&s.db_url()).await.unwrap();
    for sum in &sums {
        let row = sqlx::query("SELECT state, play_seconds, stalls, stall_seconds, trace_id FROM rte_sessions WHERE id = $1")
            .bind(sum["sessionId"].as_str().unwrap())
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(edge_server::db::s(&row, "state"), "ended");
        assert_eq!(edge_server::db::i(&row, "stalls"), sum["stalls"].as_i64().unwrap());
        assert_eq!(
            edge_server::db::i(&row, "stall_seconds"),
            sum["stallSeconds"].as_i64().unwrap()
        );
        assert_eq!(edge_server::db::i(&row, "play_seconds"), sum["playSeconds"].as_i64().unwrap());
        assert_eq!(edge_server::db::s(&row, "trace_id"), sum["traceId"].as_str().unwrap());
    }
    let t = s.be(&tok, Method::GET, "/be/v1/trainings/Game", None).await;
    assert_eq!(t.ok()["training"]["nTraces"], 3);
});

/// How the CDN in front of the origin behaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Serve,
    /// Takes requests and never answers.
    Stall,
    /// Hangs up on every request.
    HangUp,
}

/// One request the CDN answered: the file, the range asked for, bytes sent.
#[derive(Clone, Debug)]
pub(crate) struct Hit {
    pub(crate) file: String,
    pub(crate) range: Option<(u64, u64)>,
    pub(crate) sent: u64,
}

/// A CDN: an HTTP/1.1 file server with single byte ranges over a directory.
pub(crate) struct Cdn {
    pub(crate) url: String,
    log: Arc<Mutex<Vec<Hit>>>,
    mode: Arc<Mutex<Mode>>,
    stop: Arc<AtomicBool>,
}

impl Cdn {
    pub(crate) fn serve(root: &Path) -> Cdn {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
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
                    let _ = Cdn::conn(c, &root, &log, &mode, &stop);
                });
            }
        });
        Cdn { url, log, mode, stop }
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
            loop {
                let m = *mode.lock().unwrap();
                match m {
                    Mode::Serve => break,
                    Mode::HangUp => return Ok(()),
                    Mode::Stall if stop.load(Ordering::Relaxed) => return Ok(()),
                    Mode::Stall => std::thread::sleep(Duration::from_millis(20)),
                }
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

    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    pub(crate) fn take_hits(&self) -> Vec<Hit> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Drop for Cdn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.set(Mode::HangUp);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

/// The image's chunk rows `(hash, pack file, offset, stored)` and each file's chunk numbers.
pub(crate) type Rows = Vec<(String, String, u64, u64)>;
pub(crate) fn image_rows(img: &Path) -> (Rows, BTreeMap<String, Vec<usize>>) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(img.join("index.json")).unwrap()).unwrap();
    let rows = index["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                format!("pack-{:04}.bin", r[4].as_u64().unwrap()),
                r[5].as_u64().unwrap(),
                r[2].as_u64().unwrap(),
            )
        })
        .collect();
    let files = index["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["type"] == "file")
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["chunks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_u64().unwrap() as usize)
                    .collect(),
            )
        })
        .collect();
    (rows, files)
}

/// The chunks of the cache directory (their hashes).
fn cached(cache: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Ok(dirs) = std::fs::read_dir(cache.join("chunks")) {
        for d in dirs {
            for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
                out.insert(f.unwrap().file_name().to_str().unwrap().to_string());
            }
        }
    }
    out
}

/// The chunks a pack request covered (any byte of them).
fn chunks_of(hit: &Hit, rows: &Rows) -> Vec<usize> {
    let Some((a, b)) = hit.range else {
        return (0..rows.len()).filter(|&i| hit.file.ends_with(&rows[i].1)).collect();
    };
    (0..rows.len())
        .filter(|&i| hit.file.ends_with(&rows[i].1) && rows[i].2 <= b && a < rows[i].2 + rows[i].3)
        .collect()
}

/// Replaces a file's content (a new file renamed over it: the origin may share its inode
/// with the depot through a hard link).
fn rewrite(p: &Path, bytes: &[u8]) {
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, p).unwrap();
}

edge_test!(faults_on_the_origin_never_give_wrong_bytes_or_hangs, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let work = TempDir::new("launcher-faults");
    let (tok, _) = s.org_admin("Indie").await;
    let cdn = Cdn::serve(&s.data_dir().join("origins/site"));
    let dep =
        json!({"name": "cdn", "origin": {"type": "fs", "path": "site"}, "publicUrl": cdn.url});
    s.be(&tok, Method::POST, "/be/v1/deployments", Some(dep)).await.ok();
    let (key, dxf, _game, files) = publish(&s, &tok, &["cdn"], &work).await;
    let img = s.data_dir().join(format!("origins/site/dxf/Indie/Game/0001/{dxf}"));
    let (rows, file_chunks) = image_rows(&img);
    let base = |cache: &Path, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "--server",
            &s.base,
            "--org",
            "Indie",
            "--app",
            "Game",
            "--client-key",
            &key,
            "--cache",
            cache.to_str().unwrap(),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    };

    // 1. Only what is read is downloaded; a kill -9 keeps it; the restart fetches the rest
    //    and nothing it had verified; a second runtime on the cache is refused meanwhile.
    let cache = work.0.join("cache");
    let (a, mnt) = (base(&cache, &["--no-prefetch"]), work.0.join("m1"));
    let m = blocking(move || Mount::start(&a, &mnt).unwrap()).await;
    let mnt = m.dir.clone();
    let exe_sum = blocking(move || ok(&sh(&mnt, "sha256sum bin/game.exe"))).await;
    assert_eq!(exe_sum, format!("{}  bin/game.exe\n", sha(&files["bin/game.exe"])));
    blocking(move || m.kill9()).await;
    let kept = cached(&cache);
    let exe_chunks: BTreeSet<String> =
        file_chunks["bin/game.exe"].iter().map(|&c| rows[c].0.clone()).collect();
    assert_eq!(kept, exe_chunks, "exactly the executable's chunks were fetched and kept");
    let first_run = cdn.take_hits();
    assert!(first_run.iter().any(|h| h.file.ends_with("manifest.json")), "{first_run:?}");
    let (a, mnt) = (base(&cache, &["--bandwidth", "400Mbit"]), work.0.join("m2"));
    let m = blocking(move || Mount::start(&a, &mnt).unwrap()).await;
    let (a, mnt3) = (base(&cache, &[]), work.0.join("m3"));
    let refused = blocking(move || {
        Mount::start(&a, &mnt3).err().expect("a second runtime on the cache is refused")
    })
    .await;
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains("is in use by another rockit runtime")
            && refused.stderr.contains(&format!("pid {}", m.pid())),
        "{refused:?}"
    );
    assert!(!mounted(&work.0.join("m3")));
    let (mnt, f2) = (m.dir.clone(), files.clone());
    blocking(move || {
        let mut names: Vec<&String> = f2.keys().collect();
        names.reverse();
        let sums = ok(&sh(
            &mnt,
            &format!(
                "sha256sum {}",
                names.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" ")
            ),
        ));
        let want: Vec<String> = names.iter().map(|p| format!("{}  {p}", sha(&f2[*p]))).collect();
        assert_eq!(sums.lines().collect::<Vec<_>>(), want);
    })
    .await;
    let end = blocking(move || m.stop()).await;
    assert_eq!(end.code, Some(0), "{end:?}");
    let restart = cdn.take_hits();
    assert!(
        restart.iter().all(|h| h.file.ends_with(".bin")),
        "the manifest and index came from the cache: {restart:?}"
    );
    for h in &restart {
        for c in chunks_of(h, &rows) {
            assert!(
                !kept.contains(&rows[c].0),
                "chunk {c} was verified before the restart but fetched again by {h:?}"
            );
        }
    }
    assert_eq!(cached(&cache).len(), rows.len(), "everything is cached now");
    let missing: u64 = rows.iter().filter(|r| !kept.contains(&r.0)).map(|r| r.3).sum();
    assert!(restart.iter().map(|h| h.sent).sum::<u64>() >= missing, "the rest came from the CDN");

    // 2. A corrupted byte on the origin: refetched, then refused with EIO; never served.
    let tex = file_chunks["data/textures.pak"][1];
    let pack = img.join(&rows[tex].1);
    let good = std::fs::read(&pack).unwrap();
    let mut bad = good.clone();
    bad[(rows[tex].2 + 100) as usize] ^= 0x20;
    rewrite(&pack, &bad);
    let cache2 = work.0.join("cache2");
    let (a, mnt) = (base(&cache2, &["--no-prefetch", "--timeout", "5"]), work.0.join("m4"));
    let m = blocking(move || Mount::start(&a, &mnt).unwrap()).await;
    let (mnt, f2) = (m.dir.clone(), files.clone());
    blocking(move || {
        let o = sh(&mnt, "sha256sum data/textures.pak");
        assert!(
            !o.status.success()
                && String::from_utf8_lossy(&o.stderr).contains("Input/output error"),
            "{o:?}"
        );
        assert_eq!(
            ok(&sh(&mnt, "sha256sum data/levels.pak")),
            format!("{}  data/levels.pak\n", sha(&f2["data/levels.pak"]))
        );
    })
    .await;
    // Fetched, then fetched once more, for each read that reached the runtime: through the
    // page cache the kernel tries a failed read again (the read-ahead, then the page), so
    // there are several (edge-client's own test counts exactly two per read).
    let fetched = cdn.take_hits().iter().filter(|h| chunks_of(h, &rows).contains(&tex)).count();
    assert!(fetched >= 2, "fetched, then fetched once more: {fetched}");
    assert!(!cached(&cache2).contains(&rows[tex].0), "a chunk that failed its hash is never kept");
    // The origin repaired: the same read works (the chunk is fetched again).
    rewrite(&pack, &good);
    let (mnt, f2) = (m.dir.clone(), files.clone());
    let sum = blocking(move || ok(&sh(&mnt, "sha256sum data/textures.pak"))).await;
    assert_eq!(sum, format!("{}  data/textures.pak\n", sha(&f2["data/textures.pak"])));

    // 3. The origin stalls (takes requests, never answers), then hangs up on every request:
    //    reads fail with EIO after the timeout instead of hanging, and work again after.
    let probe = r#"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    print(len(os.pread(fd, 65536, 0)))
except OSError as e:
    print("errno", e.errno)
"#;
    for (mode, path) in [(Mode::Stall, "bin/game.exe"), (Mode::HangUp, "data/maps/deep/map01.bin")]
    {
        cdn.set(mode);
        let (mnt, p) = (m.dir.clone(), path.to_string());
        let o = blocking(move || {
            Command::new("timeout")
                .args(["120", "python3", "-c", probe, &p])
                .current_dir(&mnt)
                .output()
                .unwrap()
        })
        .await;
        assert_eq!(ok(&o).trim(), "errno 5", "{mode:?}");
        cdn.set(Mode::Serve);
        let (mnt, p) = (m.dir.clone(), path.to_string());
        let o = blocking(move || {
            Command::new("timeout")
                .args(["120", "python3", "-c", probe, &p])
                .current_dir(&mnt)
                .output()
                .unwrap()
        })
        .await;
        assert_eq!(ok(&o).trim(), "65536", "{mode:?}: works again");
    }
    let end = blocking(move || m.stop()).await;
    assert_eq!(end.code, Some(0), "{end:?}");
    assert!(end.stderr.contains("does not match its hash"), "the failures were reported: {end:?}");
    let sum: Value = serde_json::from_str(end.stdout.last().unwrap()).unwrap();
    // Reads that waited for the network: textures (twice), levels, and the four probes.
    assert!(sum["stalls"].as_u64().unwrap() >= 7, "{sum}");

    // 4. An image by URL, without a session: served the same; the trace stays local. With
    //    a public key, an unsigned image is refused before anything is mounted.
    let manifest_url = format!("{}/dxf/Indie/Game/0001/{dxf}/manifest.json", cdn.url);
    let local = work.0.join("by-url.json");
    let a: Vec<String> = [
        manifest_url.as_str(),
        "--cache",
        work.0.join("cache3").to_str().unwrap(),
        "--trace-out",
        local.to_str().unwrap(),
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    let m = blocking(move || Mount::start(&a, &work_dir(&a, "m5")).unwrap()).await;
    assert_eq!(m.info["sessionId"], Value::Null);
    let (mnt, f2) = (m.dir.clone(), files.clone());
    let sum = blocking(move || ok(&sh(&mnt, "sha256sum data/maps/deep/map01.bin"))).await;
    assert_eq!(
        sum,
        format!("{}  data/maps/deep/map01.bin\n", sha(&f2["data/maps/deep/map01.bin"]))
    );
    let end = blocking(move || m.stop()).await;
    assert_eq!(end.code, Some(0), "{end:?}");
    let sum: Value = serde_json::from_str(end.stdout.last().unwrap()).unwrap();
    assert_eq!((sum["sessionId"].clone(), sum["traceId"].clone()), (Value::Null, Value::Null));
    let t = edge_engine::seq::parse_trace(&std::fs::read(&local).unwrap()).unwrap();
    assert_eq!(t.paths, ["data/maps/deep/map01.bin"]);
    assert_eq!(t.events[0][0], 0);
    assert_eq!(union(t.events.iter().map(|e| (e[2], e[2] + e[3])).collect()), [(0, 90_000)]);
    let w = work.0.clone();
    let refused = blocking(move || {
        let st = Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-out", "k.pem"])
            .current_dir(&w)
            .status()
            .unwrap();
        assert!(st.success());
        let st = Command::new("openssl")
            .args(["pkey", "-in", "k.pem", "-pubout", "-out", "k.pub"])
            .current_dir(&w)
            .status()
            .unwrap();
        assert!(st.success());
        let a = vec![
            manifest_url,
            "--public-key".into(),
            w.join("k.pub").to_str().unwrap().into(),
            "--cache".into(),
            w.join("cache4").to_str().unwrap().into(),
        ];
        Mount::start(&a, &w.join("m6")).err().expect("refused")
    })
    .await;
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused.stderr.starts_with("rockit: the image at ")
            && refused.stderr.contains("has no manifest.sig"),
        "{refused:?}"
    );
    assert!(!mounted(&work.0.join("m6")));
    // Every session was closed but the one whose runtime was killed: the refused second
    // runtime closed its own at once.
    let db = edge_server::db::Db::connect(&s.db_url()).await.unwrap();
    let rows = sqlx::query("SELECT state FROM rte_sessions").fetch_all(db.pool()).await.unwrap();
    let states: Vec<String> = rows.iter().map(|r| edge_server::db::s(r, "state")).collect();
    assert_eq!(
        (states.len(), states.iter().filter(|s| *s == "open").count()),
        (4, 1),
        "{states:?}"
    );
});

/// The directory `name` beside the cache named in `args` (after `--cache`).
fn work_dir(args: &[String], name: &str) -> PathBuf {
    let cache = &args[args.iter().position(|a| a == "--cache").unwrap() + 1];
    Path::new(cache).parent().unwrap().join(name)
}

/// `rockit run … -- <command…>` to its end: (exit code, stdout, stderr).
pub(crate) fn rockit_run(args: &[String], command: &[&str]) -> (Option<i32>, String, String, u32) {
    let child = Command::new(ROCKIT)
        .arg("run")
        .args(args)
        .arg("--")
        .args(command)
        .env_remove("ROCKIT_SERVER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rockit runs");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        pid,
    )
}

edge_test!(run_plays_a_command_and_install_writes_the_tree, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let work = TempDir::new("launcher-run");
    let (tok, _) = s.org_admin("Runner").await;
    let (key, _dxf, game, files) = publish(&s, &tok, &[], &work).await;
    let args: Vec<String> = [
        "--json",
        "--server",
        &s.base,
        "--org",
        "Runner",
        "--app",
        "Game",
        "--client-key",
        &key,
        "--cache",
    ]
    .iter()
    .map(|x| x.to_string())
    .chain([work.0.join("cache").to_str().unwrap().to_string()])
    .collect();
    let a = args.clone();
    let (code, stdout, stderr, pid) = blocking(move || {
        rockit_run(&a, &["sh", "-c", "test \"$ROCKIT_GAME_DIR\" = \"$(pwd)\" && sha256sum bin/game.exe && ./bin/start.sh ok && exit 7"])
    })
    .await;
    assert_eq!(code, Some(7), "the game's status passes through: {stderr}");
    assert_eq!(stdout, format!("{}  bin/game.exe\nstarted ok\n", sha(&files["bin/game.exe"])));
    let sum: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(sum["exitCode"], 7);
    let dir = std::env::temp_dir().join(format!("rockit-run-{pid}"));
    assert!(!dir.exists() && !mounted(&dir), "the play directory is gone");
    let trace = stored_trace(&s.data_dir(), sum["traceId"].as_str().unwrap());
    let exe =
        trace.paths.iter().position(|p| p == "bin/game.exe").expect("the game's reads are traced");
    let got = union(
        trace.events.iter().filter(|e| e[1] == exe as u64).map(|e| (e[2], e[2] + e[3])).collect(),
    );
    assert_eq!(got, [(0, 700_000)]);
    assert!(trace.paths.contains(&"bin/start.sh".to_string()));
    let db = edge_server::db::Db::connect(&s.db_url()).await.unwrap();
    let row = sqlx::query("SELECT state FROM rte_sessions WHERE id = $1")
        .bind(sum["sessionId"].as_str().unwrap())
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(edge_server::db::s(&row, "state"), "ended");
    // A game killed by a signal: 128 + the signal, as a shell says.
    let a = args.clone();
    let (code, _, stderr, _) = blocking(move || rockit_run(&a, &["sh", "-c", "kill -9 $$"])).await;
    assert_eq!(code, Some(137), "{stderr}");
    // A command that cannot start: one failure line, exit 1.
    let a = args.clone();
    let (code, _, stderr, _) = blocking(move || rockit_run(&a, &["./bin/nope"])).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.lines().last().unwrap().starts_with("rockit: cannot run ./bin/nope"),
        "{stderr}"
    );

    // `rockit install`: the plain tree, exactly; a second install from the same cache
    // downloads nothing; a directory that is not empty is refused.
    let cache = work.0.join("install-cache");
    let install = move |dir: PathBuf| -> (Option<i32>, String, String) {
        let mut a: Vec<String> = args[..args.len() - 1].to_vec();
        a.push(cache.to_str().unwrap().to_string());
        let o = Command::new(ROCKIT)
            .arg("install")
            .args(&a)
            .arg(&dir)
            .env_remove("ROCKIT_SERVER")
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (i1, i2, game2) = (work.0.join("installed"), work.0.join("installed2"), game.clone());
    let inst = install.clone();
    let (first, second, again) =
        blocking(move || (inst(i1.clone()), inst(i2.clone()), inst(i1))).await;
    assert_eq!(first.0, Some(0), "{first:?}");
    let v1: Value = serde_json::from_str(first.1.trim()).unwrap();
    assert_eq!(
        (v1["files"].as_u64(), v1["sizeBytes"].as_u64()),
        (Some(files.len() as u64), Some(files.values().map(|d| d.len() as u64).sum()))
    );
    assert!(v1["downloadedBytes"].as_u64().unwrap() > 0);
    assert_eq!(read_tree(&work.0.join("installed")), read_tree(&game2));
    assert_eq!(listing(&work.0.join("installed")), listing(&game2));
    assert_eq!(second.0, Some(0), "{second:?}");
    let v2: Value = serde_json::from_str(second.1.trim()).unwrap();
    assert_eq!(v2["downloadedBytes"], 0, "all from the cache: {v2}");
    assert_eq!(listing(&work.0.join("installed2")), listing(&game2));
    assert_eq!(again.0, Some(1));
    assert!(again.2.contains("exists and is not empty"), "{again:?}");
    assert_eq!(
        read_tree(&work.0.join("installed")),
        read_tree(&game2),
        "a refused install leaves the tree alone"
    );
});
