//! The failure paths of the delivery pipeline against real peers: hostile archives made
//! with GNU tar and sent through the upload URL, Edge downloads from a hand-written HTTP
//! server (every `dltar` exit code the contract names), the validation of build imports,
//! task actions and triggers, `maxBuilds` rotation, and a failed S3 publish on moto with
//! its recovery through Retry Task.

use crate::common::*;
use crate::delivery::{upload, wait_group};
use crate::edge_test;
use crate::game::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Runs GNU tar with `args`; true on success.
fn gnu_tar(args: &[&str]) -> bool {
    let out = Command::new("tar").args(args).output().expect("GNU tar runs");
    if !out.status.success() {
        eprintln!("tar {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A small tree of distinct content (`seed` makes it differ from others).
fn small_tree(seed: u64) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    m.insert("bin/app.exe".into(), noise(seed, 40_000));
    m.insert("data/level.dat".into(), text(seed + 100, 30_000));
    m
}

/// Writes `files` under `base/name` and tars it (`cd dir && tar cf out .`): the tar's bytes.
fn small_tar(base: &Path, name: &str, files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let (_, t) = make_build(base, name, files);
    std::fs::read(t).unwrap()
}

/// Creates an app (no deployments: only the depot).
async fn new_app(s: &Srv, tok: &str, name: &str, max_builds: i64) {
    s.be(
        tok,
        Method::POST,
        "/be/v1/apps",
        Some(json!({"name": name, "label": name, "maxBuilds": max_builds})),
    )
    .await
    .ok();
}

async fn get_app(s: &Srv, tok: &str, name: &str) -> Value {
    s.be(tok, Method::GET, &format!("/be/v1/apps/{name}"), None).await.ok()["app"].clone()
}

async fn get_task(s: &Srv, tok: &str, name: &str) -> Value {
    s.be(tok, Method::GET, &format!("/be/v1/tasks/{name}"), None).await.ok()["task"].clone()
}

/// Starts an upload-mode import; returns its answer.
async fn start_upload(s: &Srv, tok: &str, body: Value) -> Value {
    let r = s.be(tok, Method::POST, "/be/v1/builds", Some(body)).await;
    let v = r.ok().clone();
    assert!(
        v["uploadUrl"].as_str().unwrap().starts_with(&format!("{}/be/v1/uploads/", s.base)),
        "{v}"
    );
    v
}

/// PUTs raw bytes to an upload URL (the server reads them all): (status, JSON body or Null).
async fn put_bytes(s: &Srv, url: &str, body: Vec<u8>) -> (u16, Value) {
    let r = s.http.put(url).body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let v = r.json().await.unwrap_or(Value::Null);
    (status, v)
}

/// A PUT written by hand: the head announcing `Content-Length: len` and only `body` (which
/// may be shorter), then the answer. For the answers the server gives before reading the
/// body (400 on a declared length, 404, 409): it closes the connection with the unread
/// body behind, so a client still sending a large body may see a reset instead.
async fn put_head(url: &str, len: usize, body: &[u8]) -> (u16, Value) {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let head = format!("PUT {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-tar\r\nContent-Length: {len}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    stream.flush().await.unwrap();
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let want = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                if want.is_some_and(|w| buf.len() >= end + 4 + w) {
                    break;
                }
            }
            match stream.read(&mut tmp).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer before the body was sent");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn types(tasks: &[Value]) -> Vec<String> {
    tasks
        .iter()
        .map(|t| format!("{}={}", t["type"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect()
}

/// Asserts a finished group failed at step `failed` (0 = dltar): earlier steps done, the
/// failed one `error`, every later one `canceled`, and no build id anywhere.
#[track_caller]
fn assert_failed_at(tasks: &[Value], failed: usize, label: &str) {
    assert_eq!(tasks.len(), 5, "{label}: {tasks:?}");
    let want = ["dltar", "mkraw", "mkdxf", "mkpat", "deploy"];
    for (k, t) in tasks.iter().enumerate() {
        assert_eq!(t["type"], want[k], "{label}: {:?}", types(tasks));
        let status = if k < failed {
            "done"
        } else if k == failed {
            "error"
        } else {
            "canceled"
        };
        assert_eq!(t["status"], status, "{label}: {:?}\n{t}", types(tasks));
        assert_eq!(t["buildId"], Value::Null, "{label}: a failed import uses no build id: {t}");
        if k > failed {
            assert_eq!(t["exception"], Value::Null, "{label}: {t}");
            assert!(t["ended"].is_string(), "{label}: a canceled task has ended: {t}");
        }
    }
}

/// The app is not locked and runs nothing.
#[track_caller]
fn assert_app_usable(app: &Value, label: &str) {
    assert_eq!(app["error"], false, "{label}: {app}");
    assert_eq!(app["errorTask"], Value::Null, "{label}: {app}");
    assert_eq!(app["processing"], false, "{label}: {app}");
    assert_eq!(app["exporting"], false, "{label}: {app}");
}

// ---------------------------------------------------------------------------------------
// 1. Hostile archives through the upload URL
// ---------------------------------------------------------------------------------------

/// One refused archive and the `fileReadFailed` it must produce.
struct Hostile {
    label: &'static str,
    bytes: Vec<u8>,
    filename: String,
    /// Accepted `typeExpected` values (the contract pins one for most cases).
    expected: &'static [&'static str],
    detected: &'static str,
}

/// The offset just after the last entry of a tar (before its end-of-archive blocks).
fn end_of_entries(tar: &[u8]) -> usize {
    let mut off = 0;
    while off + 512 <= tar.len() && tar[off..off + 512].iter().any(|b| *b != 0) {
        let field = std::str::from_utf8(&tar[off + 124..off + 136]).unwrap();
        let size = u64::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
            .unwrap() as usize;
        off += 512 + size.div_ceil(512) * 512;
    }
    off
}

fn hostile_archives(work: &Path) -> Vec<Hostile> {
    let mut out = Vec::new();
    let regular: &[&str] = &["regular file"];
    let relative: &[&str] = &["relative path"];
    let tar_: &[&str] = &["tar"];
    let truncation: &[&str] = &["tar", "regular file"];

    // Absolute path: GNU tar -P keeps the leading '/'.
    let abs_dir = work.join("abs");
    std::fs::create_dir_all(&abs_dir).unwrap();
    let abs_file = abs_dir.join("secret.txt");
    std::fs::write(&abs_file, b"absolute").unwrap();
    let t = work.join("abs.tar");
    assert!(gnu_tar(&["-cPf", p(&t), p(&abs_file)]));
    out.push(Hostile {
        label: "absolute path",
        bytes: std::fs::read(&t).unwrap(),
        filename: p(&abs_file).to_string(),
        expected: relative,
        detected: "absolute path",
    });

    // `..` entries: a leading one and one in the middle, after a good file.
    let dd = work.join("dd");
    std::fs::create_dir_all(dd.join("tree/sub")).unwrap();
    std::fs::write(dd.join("tree/good.txt"), b"good").unwrap();
    std::fs::write(dd.join("evil.txt"), b"evil").unwrap();
    let t = work.join("dotdot.tar");
    assert!(gnu_tar(&["-C", p(&dd.join("tree")), "-cPf", p(&t), "good.txt", "../evil.txt"]));
    out.push(Hostile {
        label: "leading ..",
        bytes: std::fs::read(&t).unwrap(),
        filename: "../evil.txt".into(),
        expected: relative,
        detected: "parent directory reference",
    });
    let t = work.join("dotdot-mid.tar");
    assert!(gnu_tar(&["-C", p(&dd.join("tree")), "-cPf", p(&t), "good.txt", "sub/../../evil.txt"]));
    out.push(Hostile {
        label: "inner ..",
        bytes: std::fs::read(&t).unwrap(),
        filename: "sub/../../evil.txt".into(),
        expected: relative,
        detected: "parent directory reference",
    });

    // `..` in a long name, carried by a PAX header and by a GNU long-name entry.
    let long = format!("{}.txt", "l".repeat(150));
    std::fs::write(dd.join(&long), b"long and evil").unwrap();
    for format in ["posix", "gnu"] {
        let t = work.join(format!("dotdot-{format}.tar"));
        let member = format!("../{long}");
        assert!(gnu_tar(&[
            "-C",
            p(&dd.join("tree")),
            &format!("--format={format}"),
            "-cPf",
            p(&t),
            "good.txt",
            &member
        ]));
        let bytes = std::fs::read(&t).unwrap();
        assert!(
            !bytes.windows(member.len()).take(512).any(|w| w == member.as_bytes()),
            "the long name is not in the first header"
        );
        out.push(Hostile {
            label: if format == "gnu" {
                "long name with .. (GNU)"
            } else {
                "long name with .. (PAX)"
            },
            bytes,
            filename: member,
            expected: relative,
            detected: "parent directory reference",
        });
    }

    // A character device (needs CAP_MKNOD).
    let dev = work.join("dev");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::write(dev.join("a.txt"), b"a").unwrap();
    let mk = Command::new("mknod").arg(dev.join("null")).args(["c", "1", "3"]).output();
    match mk {
        Ok(o) if o.status.success() => {
            let t = work.join("dev.tar");
            assert!(gnu_tar(&["--sort=name", "-cf", p(&t), "-C", p(&dev), "."]));
            out.push(Hostile {
                label: "character device",
                bytes: std::fs::read(&t).unwrap(),
                filename: "null".into(),
                expected: regular,
                detected: "character device",
            });
        }
        Ok(o) => eprintln!(
            "mknod failed ({}): character-device case skipped",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("mknod unavailable ({e}): character-device case skipped"),
    }

    // A fifo.
    let fifo = work.join("fifo");
    std::fs::create_dir_all(fifo.join("run")).unwrap();
    std::fs::write(fifo.join("a.txt"), b"a").unwrap();
    let mk = Command::new("mkfifo").arg(fifo.join("run/pipe")).output();
    match mk {
        Ok(o) if o.status.success() => {
            let t = work.join("fifo.tar");
            assert!(gnu_tar(&["--sort=name", "-cf", p(&t), "-C", p(&fifo), "."]));
            out.push(Hostile {
                label: "fifo",
                bytes: std::fs::read(&t).unwrap(),
                filename: "run/pipe".into(),
                expected: regular,
                detected: "fifo",
            });
        }
        _ => eprintln!("mkfifo failed: fifo case skipped"),
    }

    // A hard link: with names sorted, b.txt is the link entry.
    let hl = work.join("hardlink");
    std::fs::create_dir_all(&hl).unwrap();
    std::fs::write(hl.join("a.txt"), b"shared content").unwrap();
    std::fs::hard_link(hl.join("a.txt"), hl.join("b.txt")).unwrap();
    let t = work.join("hardlink.tar");
    assert!(gnu_tar(&["--sort=name", "-cf", p(&t), "-C", p(&hl), "."]));
    out.push(Hostile {
        label: "hard link",
        bytes: std::fs::read(&t).unwrap(),
        filename: "b.txt".into(),
        expected: regular,
        detected: "hard link",
    });

    // Symlinks leaving the tree: relative and absolute.
    let sl = work.join("symlink");
    std::fs::create_dir_all(sl.join("sub")).unwrap();
    std::fs::write(sl.join("ok.txt"), b"ok").unwrap();
    std::os::unix::fs::symlink("../ok.txt", sl.join("sub/inside")).unwrap();
    std::os::unix::fs::symlink("../../etc/passwd", sl.join("sub/link")).unwrap();
    let t = work.join("symlink.tar");
    assert!(gnu_tar(&["--sort=name", "-cf", p(&t), "-C", p(&sl), "."]));
    out.push(Hostile {
        label: "symlink leaving the tree",
        bytes: std::fs::read(&t).unwrap(),
        filename: "sub/link".into(),
        expected: regular,
        detected: "symbolic link leaving the tree",
    });
    let sa = work.join("symlink-abs");
    std::fs::create_dir_all(&sa).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", sa.join("passwd")).unwrap();
    let t = work.join("symlink-abs.tar");
    assert!(gnu_tar(&["--sort=name", "-cf", p(&t), "-C", p(&sa), "."]));
    out.push(Hostile {
        label: "absolute symlink",
        bytes: std::fs::read(&t).unwrap(),
        filename: "passwd".into(),
        expected: regular,
        detected: "symbolic link leaving the tree",
    });

    // Truncated archives: inside a file's data, exactly after an entry (no end blocks),
    // and inside the first header.
    let tr = work.join("trunc");
    std::fs::create_dir_all(&tr).unwrap();
    std::fs::write(tr.join("big.bin"), noise(77, 200_000)).unwrap();
    let t = work.join("trunc.tar");
    assert!(gnu_tar(&["-cf", p(&t), "-C", p(&tr), "./big.bin"]));
    let full = std::fs::read(&t).unwrap();
    let end = end_of_entries(&full);
    assert_eq!(end, 512 + 200_000usize.div_ceil(512) * 512);
    out.push(Hostile {
        label: "cut inside a file",
        bytes: full[..512 + 100_000].to_vec(),
        filename: "big.bin".into(),
        expected: truncation,
        detected: "truncated",
    });
    out.push(Hostile {
        label: "cut after an entry",
        bytes: full[..end].to_vec(),
        filename: "native-build.tar".into(),
        expected: tar_,
        detected: "truncated",
    });
    out.push(Hostile {
        label: "cut inside the first header",
        bytes: full[..300].to_vec(),
        filename: "native-build.tar".into(),
        expected: tar_,
        detected: "truncated",
    });

    // Not a tar at all.
    let t = work.join("build.tar.gz");
    assert!(gnu_tar(&["-czf", p(&t), "-C", p(&tr), "."]));
    out.push(Hostile {
        label: "gzip",
        bytes: std::fs::read(&t).unwrap(),
        filename: "native-build.tar".into(),
        expected: tar_,
        detected: "gzip",
    });
    out.push(Hostile {
        label: "empty file",
        bytes: Vec::new(),
        filename: "native-build.tar".into(),
        expected: tar_,
        detected: "empty",
    });
    out.push(Hostile {
        label: "text",
        bytes: text(5, 4096),
        filename: "native-build.tar".into(),
        expected: tar_,
        detected: "unknown",
    });
    let z = work.join("build.zip");
    match Command::new("zip").arg("-qr").arg(&z).arg(".").current_dir(&tr).output() {
        Ok(o) if o.status.success() => out.push(Hostile {
            label: "zip",
            bytes: std::fs::read(&z).unwrap(),
            filename: "native-build.tar".into(),
            expected: tar_,
            detected: "zip",
        }),
        _ => eprintln!("zip is not available: zip case skipped"),
    }
    out
}

edge_test!(refused_path_is_shown_without_leading_dot_slash, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let (tok, _) = s.org_admin("DotOrg").await;
    new_app(&s, &tok, "Dot", 5).await;
    let work = TempDir::new("dot");
    std::fs::create_dir_all(work.0.join("tree")).unwrap();
    std::fs::write(work.0.join("tree/good.txt"), b"good").unwrap();
    std::fs::write(work.0.join("evil.txt"), b"evil").unwrap();
    // What `cd tree && tar cPf x.tar . ../evil.txt` style archives hold: './' prefixes.
    let t = work.0.join("dot.tar");
    assert!(gnu_tar(&[
        "-C",
        p(&work.0.join("tree")),
        "-cPf",
        p(&t),
        "./good.txt",
        "./../evil.txt"
    ]));
    let imp = upload(&s, &tok, "Dot", "dot", &t).await;
    let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert_failed_at(&tasks, 1, "./..");
    assert_eq!(tasks[1]["exception"]["fileReadFailed"]["filename"], "../evil.txt", "{}", tasks[1]);
});

edge_test!(hostile_archives_are_refused_by_mkraw, |b| async move {
    hostile_archives_refused(b, true).await;
});

edge_test!(hostile_archives_are_refused_by_mkraw_from_disk, |b| async move {
    hostile_archives_refused(b, false).await;
});

/// Every hostile archive, uploaded, fails `mkraw` with its exact `fileReadFailed`; with
/// `ingest` the verdict was reached while the upload streamed, without it from the archive
/// on disk — the same either way.
async fn hostile_archives_refused(b: Backend, ingest: bool) {
    let s = Srv::start_with(b, |c| {
        c.allow_private_sources = true;
        c.ingest_during_upload = ingest;
    })
    .await;
    let (tok, _) = s.org_admin("HostileOrg").await;
    new_app(&s, &tok, "Target", 5).await;
    let work = TempDir::new("hostile");
    let cases = hostile_archives(&work.0);
    assert!(cases.len() >= 12, "{}", cases.len());
    for (k, c) in cases.iter().enumerate() {
        let path = work.0.join(format!("case-{k}.bin"));
        std::fs::write(&path, &c.bytes).unwrap();
        let imp = upload(&s, &tok, "Target", &format!("hostile-{k}"), &path).await;
        let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
        assert_failed_at(&tasks, 1, c.label);
        assert_eq!(tasks[0]["result"]["sizeBytes"], c.bytes.len(), "{}: {}", c.label, tasks[0]);
        let exc = &tasks[1]["exception"];
        let frf = &exc["fileReadFailed"];
        assert_eq!(exc.as_object().unwrap().len(), 1, "{}: only fileReadFailed: {exc}", c.label);
        assert_eq!(frf.as_object().unwrap().len(), 3, "{}: {exc}", c.label);
        assert_eq!(frf["filename"], c.filename.as_str(), "{}: {exc}", c.label);
        assert!(
            c.expected.contains(&frf["typeExpected"].as_str().unwrap_or("?")),
            "{}: typeExpected {:?}: {exc}",
            c.label,
            c.expected
        );
        assert_eq!(frf["typeDetected"], c.detected, "{}: {exc}", c.label);
        let app = get_app(&s, &tok, "Target").await;
        assert_app_usable(&app, c.label);
        assert_eq!(app["iCurBuild"], Value::Null, "{}: {app}", c.label);
        assert_eq!(app["builds"], json!([]), "{}: {app}", c.label);
    }
    // Nothing was locked or used up: a good import becomes build 1.
    let (_, good) = make_build(&work.0, "good", &small_tree(1));
    let imp = upload(&s, &tok, "Target", "good", &good).await;
    let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(tasks.iter().all(|t| t["status"] == "done" && t["buildId"] == 1), "{tasks:?}");
    let app = get_app(&s, &tok, "Target").await;
    assert_eq!(app["iCurBuild"], 1);
    assert_eq!(app["buildName"], "good");
    assert_app_usable(&app, "after the good import");
    // A failed import's error tasks are listed under status=error, one per hostile case.
    let r = s
        .be(
            &tok,
            Method::GET,
            "/be/v1/tasks?appName=Target&status=error&type=mkraw&limit=100",
            None,
        )
        .await;
    assert_eq!(r.ok()["total"], cases.len());
    assert_eq!(tasks[1]["result"]["ingestedDuringUpload"], ingest, "{}", tasks[1]);
}

// ---------------------------------------------------------------------------------------
// 2. Edge-download mode against a hand-written HTTP/1.1 server
// ---------------------------------------------------------------------------------------

/// One request the peer received: path (without query), Host, lower-cased headers.
#[derive(Clone, Debug)]
struct Seen {
    target: String,
    path: String,
    host: String,
    headers: BTreeMap<String, String>,
}

/// A tiny HTTP/1.1 server: `files` under their paths, plus fixed misbehaving routes.
struct Peer {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Peer {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
    fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen.lock().unwrap().iter().filter(|s| s.path == path).cloned().collect()
    }
    fn all_seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn start_peer(files: BTreeMap<String, Vec<u8>>) -> Peer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let files = Arc::new(files);
    let (seen2, port) = (seen.clone(), addr.port());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (seen, files) = (seen2.clone(), files.clone());
            tokio::spawn(async move {
                let _ = serve_conn(stream, port, &seen, &files).await;
            });
        }
    });
    Peer { port, seen }
}

async fn serve_conn(
    mut stream: tokio::net::TcpStream,
    port: u16,
    seen: &Mutex<Vec<Seen>>,
    files: &BTreeMap<String, Vec<u8>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut tmp).await?;
        if n == 0 || buf.len() > 64 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
        if buf[0] == 0x16 {
            // A TLS ClientHello on this plain-HTTP port: answer as a web server does.
            seen.lock().unwrap().push(Seen {
                target: "TLS".into(),
                path: "TLS".into(),
                host: String::new(),
                headers: BTreeMap::new(),
            });
            stream
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await?;
            return Ok(());
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let target = request_line.split(' ').nth(1).unwrap_or("/").to_string();
    let path = target.split('?').next().unwrap_or("/").to_string();
    let mut headers = BTreeMap::new();
    for l in lines.take_while(|l| !l.is_empty()) {
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let host = headers.get("host").cloned().unwrap_or_default();
    seen.lock().unwrap().push(Seen { target, path: path.clone(), host, headers });
    let plain = |status: &str, extra: &str, body: &[u8]| {
        let mut r = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    };
    match path.as_str() {
        "/loop" => stream.write_all(&plain("302 Found", "Location: /loop\r\n", b"")).await?,
        "/hop" => {
            stream
                .write_all(&plain(
                    "302 Found",
                    &format!("Location: http://localhost:{port}/hopped.tar\r\n"),
                    b"",
                ))
                .await?
        }
        // The connection closes before any answer.
        "/close" => return Ok(()),
        // Headers, a few bytes, then silence.
        "/stall" => {
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n0123456789").await?;
            stream.flush().await?;
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        // Missing at first, there from the second request on.
        "/later.tar"
            if seen.lock().unwrap().iter().filter(|s| s.path == "/later.tar").count() == 1 =>
        {
            stream
                .write_all(&plain("404 Not Found", "Content-Type: text/plain\r\n", b"not yet"))
                .await?
        }
        other => match files.get(other) {
            Some(body) => {
                stream
                    .write_all(&plain("200 OK", "Content-Type: application/x-tar\r\n", body))
                    .await?
            }
            None => {
                stream
                    .write_all(&plain(
                        "404 Not Found",
                        "Content-Type: text/plain\r\n",
                        b"no such file",
                    ))
                    .await?
            }
        },
    }
    stream.flush().await?;
    let _ = stream.shutdown().await;
    Ok(())
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    edge_server::util::hex(&sha2::Sha256::digest(b))
}

/// POSTs a URL-mode import for a fresh app; returns the task group.
async fn url_import(s: &Srv, tok: &str, app: &str, body: Value) -> String {
    new_app(s, tok, app, 5).await;
    let mut body = body;
    body["appName"] = json!(app);
    let r = s.be(tok, Method::POST, "/be/v1/builds", Some(body)).await;
    let v = r.ok().clone();
    assert!(v.get("uploadUrl").is_none(), "URL mode hands out no upload URL: {v}");
    assert!(v["taskName"].as_str().unwrap().len() > 2);
    v["taskGroup"].as_str().unwrap().to_string()
}

/// Asserts a group failed in `dltar` with exactly `failed` as its exception.
async fn assert_download_failed(
    s: &Srv,
    tok: &str,
    app: &str,
    group: &str,
    failed: Value,
) -> Value {
    let tasks = wait_group(s, tok, group).await;
    assert_failed_at(&tasks, 0, app);
    assert_eq!(tasks[0]["exception"], failed, "{app}: {}", tasks[0]);
    assert_eq!(tasks[0]["attempts"], 1, "{app}: {}", tasks[0]);
    assert_app_usable(&get_app(s, tok, app).await, app);
    tasks[0].clone()
}

fn http_failed(status: Value, exit: u8, url: &str) -> Value {
    json!({"httpDownloadFailed": {"httpStatus": status, "exitCode": exit, "url": url}})
}

edge_test!(edge_download_exit_codes, |b| async move {
    let s = Srv::start_with(b, |c| {
        c.allow_private_sources = true;
        c.download_idle_timeout = 2;
        c.upload_max_bytes = 1_000_000;
    })
    .await;
    let (tok, _) = s.org_admin("DlOrg").await;
    let work = TempDir::new("dl");
    let good = small_tar(&work.0, "good", &small_tree(11));
    let auth = small_tar(&work.0, "auth", &small_tree(12));
    let hopped = small_tar(&work.0, "hopped", &small_tree(13));
    let mut files = BTreeMap::new();
    files.insert("/good.tar".to_string(), good.clone());
    files.insert("/auth.tar".to_string(), auth.clone());
    files.insert("/hopped.tar".to_string(), hopped.clone());
    files.insert("/short.tar".to_string(), good[..good.len() / 2].to_vec());
    files.insert("/big.tar".to_string(), noise(14, 1_500_000));
    let later = small_tar(&work.0, "later", &small_tree(15));
    files.insert("/later.tar".to_string(), later.clone());
    let peer = start_peer(files).await;
    let port = peer.port;

    // Every import starts at once (dltar does not wait in the app's line).
    let g_good = url_import(
        &s,
        &tok,
        "DlGood",
        json!({"buildName": "from-url", "size": good.len(), "url": {"href": peer.url("/good.tar?sig=abc123"), "sha256": sha256_hex(&good).to_uppercase()}}),
    )
    .await;
    let g_missing = url_import(&s, &tok, "DlMissing", json!({"url": peer.url("/missing")})).await;
    let g_short =
        url_import(&s, &tok, "DlShort", json!({"url": peer.url("/short.tar"), "size": good.len()}))
            .await;
    let g_sha = url_import(
        &s,
        &tok,
        "DlSha",
        json!({"url": {"href": peer.url("/good.tar"), "sha256": "ab".repeat(32)}}),
    )
    .await;
    let g_loop = url_import(&s, &tok, "DlLoop", json!({"url": peer.url("/loop")})).await;
    let g_close = url_import(&s, &tok, "DlClose", json!({"url": peer.url("/close")})).await;
    let g_stall = url_import(&s, &tok, "DlStall", json!({"url": peer.url("/stall")})).await;
    let g_auth = url_import(
        &s,
        &tok,
        "DlAuth",
        json!({"url": {"href": peer.url("/auth.tar"), "headers": {"Authorization": "Bearer s3cret-token", "X-Build-Token": "tok-42"}}}),
    )
    .await;
    let g_big = url_import(&s, &tok, "DlBig", json!({"url": peer.url("/big.tar")})).await;
    let g_later = url_import(
        &s,
        &tok,
        "DlLater",
        json!({"url": peer.url("/later.tar"), "buildName": "later"}),
    )
    .await;
    let g_userinfo =
        url_import(&s, &tok, "DlUserinfo", json!({"url": format!("http://builder:pa55word@127.0.0.1:{port}/missing?sig=s3cr3t&x=1#frag")}))
            .await;

    // A good download: every step done, the dltar result shows the URL without its query.
    let tasks = wait_group(&s, &tok, &g_good).await;
    assert!(
        tasks.iter().all(|t| t["status"] == "done" && t["buildId"] == 1),
        "{:?}",
        types(&tasks)
    );
    assert_eq!(tasks[0]["result"]["sizeBytes"], good.len());
    assert_eq!(tasks[0]["result"]["sha256"], sha256_hex(&good));
    assert!(!tasks[0].to_string().contains("abc123"), "the query is never shown: {}", tasks[0]);
    let app = get_app(&s, &tok, "DlGood").await;
    assert_eq!(app["iCurBuild"], 1);
    assert_eq!(app["buildName"], "from-url");

    // 404: exit 2 with the status.
    assert_download_failed(
        &s,
        &tok,
        "DlMissing",
        &g_missing,
        http_failed(json!(404), 2, &peer.url("/missing")),
    )
    .await;

    // A complete answer shorter than the size announced: exit 4 with sizeMismatch.
    let mut want = http_failed(json!(200), 4, &peer.url("/short.tar"));
    want["sizeMismatch"] =
        json!({"sizeBytesActual": good.len() / 2, "sizeBytesExpected": good.len()});
    assert_download_failed(&s, &tok, "DlShort", &g_short, want).await;

    // Wrong sha256: exit 4, no sizeMismatch.
    assert_download_failed(
        &s,
        &tok,
        "DlSha",
        &g_sha,
        http_failed(json!(200), 4, &peer.url("/good.tar")),
    )
    .await;

    // A redirect loop: exit 7 after at most 5 redirects (1 request + 5 hops).
    let t = wait_group(&s, &tok, &g_loop).await;
    assert_failed_at(&t, 0, "DlLoop");
    let e = &t[0]["exception"]["httpDownloadFailed"];
    assert_eq!(e["exitCode"], 7, "{e}");
    assert_eq!(e["url"], peer.url("/loop"), "{e}");
    // No final answer came: null (a 3xx of the last hop is tolerated).
    assert!(e["httpStatus"].is_null() || e["httpStatus"] == 302, "{e}");
    assert_eq!(t[0]["exception"].as_object().unwrap().len(), 1, "{}", t[0]["exception"]);
    let hops = peer.seen("/loop").len();
    assert!((2..=6).contains(&hops), "{hops} requests for /loop: redirects are capped at 5");
    assert_app_usable(&get_app(&s, &tok, "DlLoop").await, "DlLoop");

    // The connection closes before any header: exit 1, no HTTP status.
    assert_download_failed(
        &s,
        &tok,
        "DlClose",
        &g_close,
        http_failed(Value::Null, 1, &peer.url("/close")),
    )
    .await;

    // Headers, then nothing for longer than the idle timeout: exit 3.
    let started = std::time::Instant::now();
    let t = assert_download_failed(
        &s,
        &tok,
        "DlStall",
        &g_stall,
        http_failed(json!(200), 3, &peer.url("/stall")),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(30), "the 2 s idle timeout applies");
    assert_eq!(peer.seen("/stall").len(), 1, "{t}");

    // Import headers reach the source.
    let tasks = wait_group(&s, &tok, &g_auth).await;
    assert!(tasks.iter().all(|t| t["status"] == "done"), "{:?}", types(&tasks));
    let seen = peer.seen("/auth.tar");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].headers.get("authorization").map(String::as_str),
        Some("Bearer s3cret-token"),
        "{seen:?}"
    );
    assert_eq!(
        seen[0].headers.get("x-build-token").map(String::as_str),
        Some("tok-42"),
        "{seen:?}"
    );
    assert!(
        !tasks[0].to_string().contains("s3cret-token"),
        "import headers are never shown: {}",
        tasks[0]
    );

    // Userinfo, query and fragment are removed from the URL shown.
    let t = assert_download_failed(
        &s,
        &tok,
        "DlUserinfo",
        &g_userinfo,
        http_failed(json!(404), 2, &format!("http://127.0.0.1:{port}/missing")),
    )
    .await;
    let shown = t.to_string();
    assert!(
        !shown.contains("pa55word") && !shown.contains("s3cr3t") && !shown.contains("builder"),
        "{shown}"
    );
    let seen = peer.seen("/missing");
    assert!(
        seen.iter().any(|r| r.target == "/missing?sig=s3cr3t&x=1"),
        "the source still gets the query: {seen:?}"
    );

    // Over the size limit (1 MB here): exit 5.
    assert_download_failed(
        &s,
        &tok,
        "DlBig",
        &g_big,
        http_failed(json!(200), 5, &peer.url("/big.tar")),
    )
    .await;

    // Retry Task on a failed download: it runs again and its group continues.
    let t = assert_download_failed(
        &s,
        &tok,
        "DlLater",
        &g_later,
        http_failed(json!(404), 2, &peer.url("/later.tar")),
    )
    .await;
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/trigger",
            Some(json!({"type": "retry", "taskName": t["taskName"]})),
        )
        .await;
    assert_eq!(r.ok()["taskName"], t["taskName"]);
    let tasks = wait_group(&s, &tok, &g_later).await;
    assert!(
        tasks.iter().all(|t| t["status"] == "done" && t["buildId"] == 1),
        "{:?} {}",
        types(&tasks),
        tasks[0]
    );
    assert_eq!(tasks[0]["attempts"], 2, "{}", tasks[0]);
    assert_eq!(tasks[0]["exception"], Value::Null, "{}", tasks[0]);
    assert_eq!(tasks[0]["result"]["sizeBytes"], later.len());
    assert!(tasks[1..].iter().all(|t| t["attempts"] == 1), "{tasks:?}");
    assert_eq!(peer.seen("/later.tar").len(), 2);
    let app = get_app(&s, &tok, "DlLater").await;
    assert_eq!(app["iCurBuild"], 1);
    assert_eq!(app["buildName"], "later");

    // Failed downloads used no build id.
    assert_eq!(get_app(&s, &tok, "DlMissing").await["builds"], json!([]));
});

edge_test!(import_headers_are_dropped_on_a_cross_origin_redirect, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let (tok, _) = s.org_admin("HopOrg").await;
    let work = TempDir::new("hop");
    let hopped = small_tar(&work.0, "hopped", &small_tree(21));
    let mut files = BTreeMap::new();
    files.insert("/hopped.tar".to_string(), hopped.clone());
    let peer = start_peer(files).await;
    // 127.0.0.1:<port> redirects to localhost:<port>: another origin (another host).
    let g = url_import(
        &s,
        &tok,
        "DlHop",
        json!({"url": {"href": peer.url("/hop?sig=topsecret"), "headers": {"Authorization": "Bearer hop-secret", "X-Build-Token": "hop-42"}}, "size": hopped.len()}),
    )
    .await;
    let tasks = wait_group(&s, &tok, &g).await;
    assert!(tasks.iter().all(|t| t["status"] == "done"), "{:?} {}", types(&tasks), tasks[0]);
    let first = peer.seen("/hop");
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(
        first[0].headers.get("authorization").map(String::as_str),
        Some("Bearer hop-secret")
    );
    assert_eq!(first[0].headers.get("x-build-token").map(String::as_str), Some("hop-42"));
    let second = peer.seen("/hopped.tar");
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(second[0].host.starts_with("localhost:"), "{second:?}");
    assert_eq!(
        second[0].headers.get("authorization"),
        None,
        "Authorization must not follow a cross-origin redirect: {second:?}"
    );
    assert_eq!(
        second[0].headers.get("x-build-token"),
        None,
        "import headers must not follow a cross-origin redirect: {second:?}"
    );
    let referer = second[0].headers.get("referer").cloned().unwrap_or_default();
    assert!(
        !referer.contains("topsecret"),
        "the source URL's query (a signature) must not reach another origin: {referer}"
    );
});

edge_test!(edge_download_private_address_refused, |b| async move {
    // allow_private_sources is false by default.
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("PrivOrg").await;
    let work = TempDir::new("priv");
    let good = small_tar(&work.0, "good", &small_tree(31));
    let mut files = BTreeMap::new();
    files.insert("/good.tar".to_string(), good);
    let peer = start_peer(files).await;
    let port = peer.port;
    let urls = [
        peer.url("/good.tar"),
        format!("http://localhost:{port}/good.tar"),
        format!("http://[::1]:{port}/good.tar"),
    ];
    for (k, url) in urls.iter().enumerate() {
        let app = format!("Priv{k}");
        let g = url_import(&s, &tok, &app, json!({"url": url})).await;
        assert_download_failed(&s, &tok, &app, &g, http_failed(Value::Null, 8, url)).await;
    }
    assert!(
        peer.all_seen().is_empty(),
        "no request may reach a private address: {:?}",
        peer.all_seen()
    );
});

/// `openssl s_server` with a fresh self-signed certificate on 127.0.0.1, killed when dropped.
struct TlsPeer {
    port: u16,
    child: std::process::Child,
    _dir: TempDir,
}

impl Drop for TlsPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_tls_peer() -> Option<TlsPeer> {
    let dir = TempDir::new("tls");
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            p(&key),
            "-out",
            p(&cert),
        ])
        .output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("openssl cannot make a certificate: TLS case skipped");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            p(&cert),
            "-key",
            p(&key),
            "-www",
            "-quiet",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server starts");
    let peer = TlsPeer { port, child, _dir: dir };
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(peer);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("openssl s_server did not listen on {port}");
}

edge_test!(edge_download_tls_failures, |b| async move {
    let s = Srv::start_with(b, |c| {
        c.allow_private_sources = true;
        c.download_idle_timeout = 5;
    })
    .await;
    let (tok, _) = s.org_admin("TlsOrg").await;
    let Some(tls) = start_tls_peer().await else { return };
    // A certificate no trusted authority signed: exit 6, no HTTP answer.
    let url = format!("https://127.0.0.1:{}/build.tar", tls.port);
    let g = url_import(&s, &tok, "TlsSelfSigned", json!({"url": url})).await;
    assert_download_failed(&s, &tok, "TlsSelfSigned", &g, http_failed(Value::Null, 6, &url)).await;
});

edge_test!(edge_download_tls_to_a_plain_http_server, |b| async move {
    let s = Srv::start_with(b, |c| {
        c.allow_private_sources = true;
        c.download_idle_timeout = 5;
    })
    .await;
    let (tok, _) = s.org_admin("TlsOrg").await;
    let peer = start_peer(BTreeMap::new()).await;
    // https:// to a server that speaks plain HTTP: the TLS handshake fails.
    let url = format!("https://127.0.0.1:{}/build.tar", peer.port);
    let g = url_import(&s, &tok, "TlsPlain", json!({"url": url})).await;
    let t = wait_group(&s, &tok, &g).await;
    assert_eq!(peer.seen("TLS").len(), 1, "the peer got a ClientHello: {:?}", peer.all_seen());
    assert_eq!(t[0]["exception"], http_failed(Value::Null, 6, &url), "{}", t[0]);
});

// ---------------------------------------------------------------------------------------
// 3. Validation of imports, task actions and triggers
// ---------------------------------------------------------------------------------------

edge_test!(build_import_validation, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let (tok, _) = s.org_admin("ValOrg").await;
    new_app(&s, &tok, "Val", 5).await;

    // Unknown app.
    let r = s.be(&tok, Method::POST, "/be/v1/builds", Some(json!({"appName": "NoSuchApp"}))).await;
    r.err(404, "not-found");
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/builds",
            Some(json!({"appName": "NoSuchApp", "url": "http://127.0.0.1:1/x.tar"})),
        )
        .await;
    r.err(404, "not-found");

    // Headers the import may not set, in any case.
    for h in ["Host", "content-length", "Transfer-Encoding", "CONNECTION"] {
        let body = json!({"appName": "Val", "url": {"href": "http://127.0.0.1:1/x.tar", "headers": {h: "x"}}});
        let r = s.be(&tok, Method::POST, "/be/v1/builds", Some(body)).await;
        r.err(400, "invalid-param");
    }
    // Bad URLs and URL objects.
    let bad = [
        json!("ftp://example.com/build.tar"),
        json!("file:///etc/passwd"),
        json!("not a url"),
        json!("http://"),
        json!(42),
        json!({"href": "gopher://example.com/x"}),
        json!({"headers": {"Authorization": "x"}}),
        json!({"href": "http://example.com/x.tar", "sha256": "zz"}),
        json!({"href": "http://example.com/x.tar", "sha256": "ab"}),
        json!({"href": "http://example.com/x.tar", "headers": ["Authorization"]}),
        json!({"href": "http://example.com/x.tar", "headers": {"X-Bad": "a\r\nInjected: 1"}}),
        json!({"href": "http://example.com/x.tar", "headers": {"Bad Name": "a"}}),
        json!({"href": "http://example.com/x.tar", "method": "POST"}),
    ];
    for u in bad {
        let r = s
            .be(&tok, Method::POST, "/be/v1/builds", Some(json!({"appName": "Val", "url": u})))
            .await;
        r.err(400, "invalid-param");
    }
    for body in [
        json!({"appName": "Val", "buildName": ""}),
        json!({"appName": "Val", "buildName": "x".repeat(101)}),
        json!({"appName": "Val", "size": -1}),
        json!({"appName": "Val", "color": "red"}),
        json!({"buildName": "no app"}),
    ] {
        s.be(&tok, Method::POST, "/be/v1/builds", Some(body)).await.err(400, "invalid-param");
    }
    // None of those created a task.
    let r = s.be(&tok, Method::GET, "/be/v1/tasks", None).await;
    assert_eq!(r.ok()["total"], 0, "{}", r.body);

    // Build import needs apps Update: a role with apps Read only gets 403 (before 404).
    s.be(
        &tok,
        Method::POST,
        "/be/v1/roles",
        Some(
            json!({"name": "Viewer", "label": "viewers", "permissions": {"apps": 2, "tasks": 31}}),
        ),
    )
    .await
    .ok();
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/users",
            Some(json!({"type": "machine", "username": "viewer_bot", "label": "bot", "roles": ["Viewer"]})),
        )
        .await;
    let viewer = r.ok()["apiKey"].as_str().unwrap().to_string();
    s.be(&viewer, Method::POST, "/be/v1/builds", Some(json!({"appName": "Val"})))
        .await
        .err(403, "forbidden");
    s.be(&viewer, Method::POST, "/be/v1/builds", Some(json!({"appName": "NoSuchApp"})))
        .await
        .err(403, "forbidden");
    s.be(&viewer, Method::GET, "/be/v1/apps/Val", None).await.ok();
    s.be(
        &tok,
        Method::POST,
        "/be/v1/roles",
        Some(json!({"name": "Builder", "label": "builders", "permissions": {"apps": 4}})),
    )
    .await
    .ok();
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/users",
            Some(json!({"type": "machine", "username": "builder_bot", "label": "bot", "roles": ["Builder"]})),
        )
        .await;
    let builder = r.ok()["apiKey"].as_str().unwrap().to_string();
    let imp = start_upload(&s, &builder, json!({"appName": "Val"})).await;
    // The builder may not touch tasks (no tasks permission), but the admin may.
    s.be(
        &builder,
        Method::GET,
        &format!("/be/v1/tasks/{}", imp["taskName"].as_str().unwrap()),
        None,
    )
    .await
    .err(403, "forbidden");
    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/tasks",
            Some(json!({"taskName": imp["taskName"], "expire": true})),
        )
        .await;
    assert_eq!(r.ok()["task"]["status"], "expired");
});

edge_test!(uploads_limits_expiry_and_task_actions, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let (tok, _) = s.org_admin("UpOrg").await;
    new_app(&s, &tok, "Up", 5).await;
    let work = TempDir::new("up");

    // Three uploads wait; they block nothing and do not count as processing.
    let mut waiting = Vec::new();
    for k in 0..3 {
        let imp =
            start_upload(&s, &tok, json!({"appName": "Up", "buildName": format!("waiting-{k}")}))
                .await;
        let exp = edge_server::util::parse_rfc3339(imp["uploadExpires"].as_str().unwrap()).unwrap();
        let in_a_day = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64)
            + 86_400_000;
        assert!((exp - in_a_day).abs() < 120_000, "default expiry 24 h: {imp}");
        waiting.push(imp);
    }
    let t = get_task(&s, &tok, waiting[0]["taskName"].as_str().unwrap()).await;
    assert_eq!(t["status"], "submitted");
    assert_eq!(t["type"], "dltar");
    assert_eq!(t["taskGroup"], waiting[0]["taskGroup"]);

    // A fourth import uploads and runs through although three wait before it.
    let (_, tar1) = make_build(&work.0, "v1", &game_v1());
    let done_imp = upload(&s, &tok, "Up", "1.0", &tar1).await;
    let done_tasks = wait_group(&s, &tok, done_imp["taskGroup"].as_str().unwrap()).await;
    assert!(
        done_tasks.iter().all(|t| t["status"] == "done" && t["buildId"] == 1),
        "{:?}",
        types(&done_tasks)
    );
    // A completed upload URL is gone.
    let tar1_len = std::fs::metadata(&tar1).unwrap().len() as usize;
    let (st, body) = put_head(done_imp["uploadUrl"].as_str().unwrap(), tar1_len, &[]).await;
    assert_eq!(st, 404, "{body}");
    assert_eq!(body["error"], "not-found");
    let (st, _) = put_bytes(&s, done_imp["uploadUrl"].as_str().unwrap(), b"again".to_vec()).await;
    assert_eq!(st, 404);

    // Acknowledge mkraw's empty-file warning; a task without warning cannot be acknowledged.
    let mkraw = &done_tasks[1];
    assert_eq!(mkraw["warning"]["code"], "empty-file", "{mkraw}");
    assert_eq!(mkraw["warning"]["acknowledged"], false, "{mkraw}");
    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/tasks",
            Some(json!({"taskName": mkraw["taskName"], "acknowledge": true})),
        )
        .await;
    assert_eq!(r.ok()["task"]["warning"]["acknowledged"], true, "{}", r.body);
    assert_eq!(r.body["task"]["warning"]["code"], "empty-file");
    assert_eq!(
        get_task(&s, &tok, mkraw["taskName"].as_str().unwrap()).await["warning"]["acknowledged"],
        true
    );
    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/tasks",
            Some(json!({"taskName": done_tasks[0]["taskName"], "acknowledge": true})),
        )
        .await;
    r.err(409, "invalid-state");
    s.be(
        &tok,
        Method::PATCH,
        "/be/v1/tasks",
        Some(json!({"taskName": "t_nope", "acknowledge": true})),
    )
    .await
    .err(404, "not-found");
    s.be(&tok, Method::PATCH, "/be/v1/tasks", Some(json!({"taskName": mkraw["taskName"]})))
        .await
        .err(400, "invalid-param");

    // Four waiting uploads are the most; a fifth is refused.
    waiting.push(start_upload(&s, &tok, json!({"appName": "Up"})).await);
    let r = s.be(&tok, Method::POST, "/be/v1/builds", Some(json!({"appName": "Up"}))).await;
    r.err(409, "invalid-state");

    // Expire a waiting upload by hand: expired (exit 9), the rest canceled, URL gone.
    let w0 = waiting.remove(0);
    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/tasks",
            Some(json!({"taskName": w0["taskName"], "expire": true})),
        )
        .await;
    let t = r.ok()["task"].clone();
    assert_eq!(t["status"], "expired", "{t}");
    assert_eq!(
        t["exception"],
        json!({"httpDownloadFailed": {"httpStatus": null, "exitCode": 9, "url": null}}),
        "{t}"
    );
    assert!(t["ended"].is_string(), "{t}");
    let g = wait_group(&s, &tok, w0["taskGroup"].as_str().unwrap()).await;
    assert_eq!(g[0]["status"], "expired");
    assert!(
        g[1..].iter().all(|t| t["status"] == "canceled" && t["buildId"].is_null()),
        "{:?}",
        types(&g)
    );
    let (st, _) = put_head(w0["uploadUrl"].as_str().unwrap(), tar1_len, &[]).await;
    assert_eq!(st, 404, "an expired upload URL is gone");
    let (st, _) = put_bytes(&s, w0["uploadUrl"].as_str().unwrap(), b"late".to_vec()).await;
    assert_eq!(st, 404, "an expired upload URL is gone");
    // … which frees a slot.
    waiting.push(start_upload(&s, &tok, json!({"appName": "Up"})).await);
    s.be(&tok, Method::POST, "/be/v1/builds", Some(json!({"appName": "Up"})))
        .await
        .err(409, "invalid-state");

    // Expire fits only a waiting dltar: not the expired one again, not a done dltar, not a
    // waiting upload's queued mkraw.
    for name in
        [&w0["taskName"], &done_tasks[0]["taskName"], &done_tasks[4]["taskName"], &g[1]["taskName"]]
    {
        let r = s
            .be(
                &tok,
                Method::PATCH,
                "/be/v1/tasks",
                Some(json!({"taskName": name, "expire": true})),
            )
            .await;
        r.err(409, "invalid-state");
    }
    let w1_group = wait_group_any(&s, &tok, waiting[0]["taskGroup"].as_str().unwrap()).await;
    let mkraw_waiting = w1_group.iter().find(|t| t["type"] == "mkraw").unwrap();
    assert_eq!(mkraw_waiting["status"], "submitted");
    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/tasks",
            Some(json!({"taskName": mkraw_waiting["taskName"], "expire": true})),
        )
        .await;
    r.err(409, "invalid-state");

    // Retry fits only a task in error: not done, expired or canceled ones.
    for name in [
        &done_tasks[0]["taskName"],
        &done_tasks[4]["taskName"],
        &w0["taskName"],
        &g[1]["taskName"],
        &mkraw_waiting["taskName"],
    ] {
        let r = s
            .be(
                &tok,
                Method::POST,
                "/be/v1/trigger",
                Some(json!({"type": "retry", "taskName": name})),
            )
            .await;
        r.err(409, "invalid-state");
    }
    s.be(
        &tok,
        Method::POST,
        "/be/v1/trigger",
        Some(json!({"type": "retry", "taskName": "t_nope"})),
    )
    .await
    .err(404, "not-found");
    // The expired group stayed as it was.
    let g2 = wait_group(&s, &tok, w0["taskGroup"].as_str().unwrap()).await;
    assert_eq!(types(&g2), types(&g));

    // A waiting upload can still be used.
    let (_, tar2) = make_build(&work.0, "v2", &small_tree(41));
    let (st, body) =
        put_bytes(&s, waiting[0]["uploadUrl"].as_str().unwrap(), std::fs::read(&tar2).unwrap())
            .await;
    assert_eq!(st, 200, "{body}");
    let g = wait_group(&s, &tok, waiting[0]["taskGroup"].as_str().unwrap()).await;
    assert!(g.iter().all(|t| t["status"] == "done" && t["buildId"] == 2), "{:?}", types(&g));
    assert_eq!(get_app(&s, &tok, "Up").await["iCurBuild"], 2);
});

edge_test!(waiting_upload_is_not_processing, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("WaitOrg").await;
    new_app(&s, &tok, "Idle", 5).await;
    let imp = start_upload(&s, &tok, json!({"appName": "Idle"})).await;
    // Only the dltar waits (for its upload); nothing is queued or running.
    let app = get_app(&s, &tok, "Idle").await;
    assert_eq!(app["processing"], false, "an unused upload URL is not a running pipeline: {app}");
    let t = s
        .be(&tok, Method::GET, &format!("/be/v1/tasks/{}", imp["taskName"].as_str().unwrap()), None)
        .await;
    assert_eq!(t.ok()["task"]["waitingForUpload"], true);
    let g = wait_group_any(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(
        g[1..].iter().all(|t| t.get("waitingForUpload").is_none()),
        "only dltar tasks carry it: {g:?}"
    );
    // So the app can be deleted without force; the waiting import goes with it.
    let r = s.be(&tok, Method::DELETE, "/be/v1/apps/Idle", None).await;
    r.ok();
    let (st, _) = put_bytes(&s, imp["uploadUrl"].as_str().unwrap(), b"x".to_vec()).await;
    assert_eq!(st, 404);
});

/// Every task of a group, whatever their state (step order).
async fn wait_group_any(s: &Srv, tok: &str, group: &str) -> Vec<Value> {
    let r = s
        .be(
            tok,
            Method::GET,
            &format!("/be/v1/tasks?taskGroup={group}&order[]=created&limit=20"),
            None,
        )
        .await;
    let mut ts = r.ok()["tasks"].as_array().unwrap().clone();
    let order = ["dltar", "mkraw", "mkdxf", "mkpat", "deploy"];
    ts.sort_by_key(|t| order.iter().position(|o| *o == t["type"]).unwrap_or(9));
    ts
}

edge_test!(upload_size_checks_and_concurrent_put, |b| async move {
    // The archive-on-disk path (no ingest along the upload), whose `.part` file shows a PUT
    // in progress; the ingest path is checked by `delivery` and `hostile_uploads_*`.
    let s = Srv::start_with(b, |c| {
        c.allow_private_sources = true;
        c.upload_max_bytes = 200_000;
        c.ingest_during_upload = false;
    })
    .await;
    let (tok, _) = s.org_admin("SizeOrg").await;
    new_app(&s, &tok, "Sized", 5).await;
    let work = TempDir::new("size");
    let tar = small_tar(&work.0, "v1", &small_tree(51));
    let n = tar.len();
    let imp = start_upload(&s, &tok, json!({"appName": "Sized", "size": n})).await;
    let url = imp["uploadUrl"].as_str().unwrap().to_string();
    let group = imp["taskGroup"].as_str().unwrap().to_string();
    let part = s.data_dir().join("uploads").join(format!("{group}.part"));

    // Declared lengths that differ from `size`: 400, nothing kept.
    for len in [n - 1, n + 1, 0] {
        let (st, v) = put_head(&url, len, &[]).await;
        assert_eq!(st, 400, "{v}");
        assert_eq!(v["error"], "invalid-param", "{v}");
    }
    // Over the size limit (200 kB here): 413, at import and at upload.
    let (st, v) = put_head(&url, 300_000, &[]).await;
    assert_eq!(st, 413, "{v}");
    assert_eq!(v["error"], "payload-too-large", "{v}");
    let r = s
        .be(&tok, Method::POST, "/be/v1/builds", Some(json!({"appName": "Sized", "size": 300_000})))
        .await;
    r.err(413, "payload-too-large");
    let other = start_upload(&s, &tok, json!({"appName": "Sized"})).await;
    let (st, v) = put_head(other["uploadUrl"].as_str().unwrap(), 300_000, &[]).await;
    assert_eq!(st, 413, "{v}");
    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/tasks",
            Some(json!({"taskName": other["taskName"], "expire": true})),
        )
        .await;
    assert_eq!(r.ok()["task"]["status"], "expired");
    // A PUT while another runs for the same URL: 409. The first is held open mid-body.
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    let first = s.http.put(&url).body(reqwest::Body::wrap_stream(stream)).send();
    let first = tokio::spawn(first);
    tx.send(tar[..1000].to_vec()).await.unwrap();
    let mut receiving = false;
    for _ in 0..250 {
        if part.exists() {
            receiving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(receiving, "the first PUT did not start receiving ({})", part.display());
    let (st, v) = put_head(&url, n, &[]).await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["error"], "invalid-state", "{v}");
    tx.send(tar[1000..].to_vec()).await.unwrap();
    drop(tx);
    let r = first.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, json!({"status": "success", "sizeBytes": n}));

    // Completed: the URL is gone, the build goes through.
    let (st, v) = put_head(&url, n, &[]).await;
    assert_eq!(st, 404, "{v}");
    let tasks = wait_group(&s, &tok, &group).await;
    assert!(
        tasks.iter().all(|t| t["status"] == "done" && t["buildId"] == 1),
        "{:?}",
        types(&tasks)
    );
    assert_eq!(tasks[0]["result"]["sizeBytes"], n);
    let (st, _) = put_bytes(&s, &url, b"x".to_vec()).await;
    assert_eq!(st, 404);

    // A streamed (chunked) body of the wrong length: refused after it arrived, nothing
    // kept, and the upload may be sent again from the start.
    let tar2 = small_tar(&work.0, "v2", &small_tree(52));
    let n2 = tar2.len();
    let imp2 = start_upload(&s, &tok, json!({"appName": "Sized", "size": n2})).await;
    let url2 = imp2["uploadUrl"].as_str().unwrap().to_string();
    let part2 =
        s.data_dir().join("uploads").join(format!("{}.part", imp2["taskGroup"].as_str().unwrap()));
    let (st, v) = put_stream(&s, &url2, tar2[..n2 - 10].to_vec()).await.unwrap();
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"], "invalid-param", "{v}");
    for _ in 0..100 {
        if !part2.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!part2.exists(), "a refused upload keeps nothing");
    assert_eq!(get_task(&s, &tok, imp2["taskName"].as_str().unwrap()).await["status"], "submitted");
    // (Sent again at once it may meet a stale 409: see refused_upload_can_be_sent_again_at_once.)
    let mut last = None;
    for _ in 0..100 {
        match put_stream(&s, &url2, tar2.clone()).await {
            Ok((200, v)) => {
                last = Some(v);
                break;
            }
            other => last = Some(json!(format!("{other:?}"))),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last, Some(json!({"status": "success", "sizeBytes": n2})));
    let tasks = wait_group(&s, &tok, imp2["taskGroup"].as_str().unwrap()).await;
    assert!(
        tasks.iter().all(|t| t["status"] == "done" && t["buildId"] == 2),
        "{:?}",
        types(&tasks)
    );
});

/// PUTs `body` as one chunk of a chunked (streamed) request: (status, JSON body).
async fn put_stream(s: &Srv, url: &str, body: Vec<u8>) -> Result<(u16, Value), reqwest::Error> {
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(body)]);
    let r = s.http.put(url).body(reqwest::Body::wrap_stream(stream)).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

edge_test!(refused_upload_can_be_sent_again_at_once, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("AgainOrg").await;
    new_app(&s, &tok, "Again", 5).await;
    let imp = start_upload(&s, &tok, json!({"appName": "Again", "size": 100})).await;
    let url = imp["uploadUrl"].as_str().unwrap().to_string();
    // Each streamed body is 50 bytes short: each must be refused with 400, none with
    // 409 (no other PUT runs: the previous one was answered).
    let mut codes = Vec::new();
    for _ in 0..10 {
        codes.push(put_stream(&s, &url, vec![1u8; 50]).await.unwrap().0);
    }
    assert_eq!(codes, vec![400; 10]);
    let (st, v) = put_stream(&s, &url, vec![1u8; 100]).await.unwrap();
    assert_eq!(st, 200, "{v}");
});

edge_test!(early_upload_answers_reach_the_client, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("EarlyOrg").await;
    new_app(&s, &tok, "Early", 5).await;
    let imp = start_upload(&s, &tok, json!({"appName": "Early", "size": 10})).await;
    let url = imp["uploadUrl"].as_str().unwrap().to_string();
    // An ordinary client sends the whole body; it must still get the 400, every time.
    let mut lost = Vec::new();
    for _ in 0..10 {
        match s.http.put(&url).body(vec![0u8; 75_000]).send().await {
            Ok(r) => assert_eq!(r.status(), 400),
            Err(e) => lost.push(format!("{e:?}")),
        }
    }
    assert!(lost.is_empty(), "{} of 10 answers lost: {:?}", lost.len(), lost.first());
});

edge_test!(task_list_filters_and_tenancy, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let (tok, _) = s.org_admin("ListOrg").await;
    let (other, _) = s.org_admin("OtherOrg").await;
    new_app(&s, &tok, "FilterAlpha", 5).await;
    new_app(&s, &tok, "FilterBeta", 5).await;
    new_app(&s, &other, "FilterAlpha", 5).await;
    let work = TempDir::new("list");

    // Alpha: a good import; then, after a marked instant, Beta: a gzip that mkraw refuses.
    let (_, good) = make_build(&work.0, "alpha", &small_tree(61));
    let a = upload(&s, &tok, "FilterAlpha", "a1", &good).await;
    let ga = a["taskGroup"].as_str().unwrap().to_string();
    let ta = wait_group(&s, &tok, &ga).await;
    assert!(ta.iter().all(|t| t["status"] == "done"), "{:?}", types(&ta));
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mark = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let gz = work.0.join("beta.tar.gz");
    assert!(gnu_tar(&["-czf", p(&gz), "-C", p(&work.0.join("alpha")), "."]));
    let bimp = upload(&s, &tok, "FilterBeta", "b1", &gz).await;
    let gb = bimp["taskGroup"].as_str().unwrap().to_string();
    let tb = wait_group(&s, &tok, &gb).await;
    assert_failed_at(&tb, 1, "gzip");
    // The other org has a task too.
    let o = start_upload(&s, &other, json!({"appName": "FilterAlpha"})).await;

    let list = |q: String| {
        let s = &s;
        let tok = tok.clone();
        async move {
            let r = s.be(&tok, Method::GET, &format!("/be/v1/tasks?limit=100&{q}"), None).await;
            let v = r.ok().clone();
            let names: Vec<String> = v["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["taskName"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(v["total"], names.len(), "{v}");
            (names, v)
        }
    };
    let names_of = |ts: &[Value]| -> Vec<String> {
        let mut v: Vec<String> =
            ts.iter().map(|t| t["taskName"].as_str().unwrap().to_string()).collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let all: Vec<Value> = ta.iter().chain(tb.iter()).cloned().collect();

    let (n, v) = list(String::new()).await;
    assert_eq!(sorted(n), names_of(&all), "only the caller's org: {v}");
    // Default order: newest first.
    let created: Vec<String> = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["created"].as_str().unwrap().to_string())
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{created:?}");
    let (n, _) = list(format!("taskGroup={ga}")).await;
    assert_eq!(sorted(n), names_of(&ta));
    let (n, _) = list("status=error".into()).await;
    assert_eq!(n, vec![tb[1]["taskName"].as_str().unwrap().to_string()]);
    let (n, _) = list("status=canceled".into()).await;
    assert_eq!(sorted(n), names_of(&tb[2..]));
    let (n, _) = list("type=mkraw".into()).await;
    assert_eq!(sorted(n), names_of(&[ta[1].clone(), tb[1].clone()]));
    let (n, _) = list("type=deploy&status=done".into()).await;
    assert_eq!(n, vec![ta[4]["taskName"].as_str().unwrap().to_string()]);
    // appName is a partial, case-insensitive match.
    let (n, _) = list("appName=alph".into()).await;
    assert_eq!(sorted(n), names_of(&ta));
    let (n, _) = list("appName=FILTER".into()).await;
    assert_eq!(sorted(n), names_of(&all));
    let (n, _) = list("appName=Gamma".into()).await;
    assert!(n.is_empty());
    let enc = |t: &str| form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>();
    let (n, _) = list(format!("createdAfter={}", enc(&mark))).await;
    assert_eq!(sorted(n), names_of(&tb), "created after the mark: Beta only");
    let (n, _) = list(format!("createdBefore={}", enc(&mark))).await;
    assert_eq!(sorted(n), names_of(&ta), "created before the mark: Alpha only");
    let (n, _) =
        list(format!("createdAfter=2000-01-01T00:00:00Z&createdBefore={}&type=dltar", enc(&mark)))
            .await;
    assert_eq!(n, vec![ta[0]["taskName"].as_str().unwrap().to_string()]);
    let (n, _) = list("createdAfter=2100-01-01T00:00:00Z".into()).await;
    assert!(n.is_empty());
    for bad in [
        "status=finished",
        "createdAfter=yesterday",
        "createdBefore=2026-13-01T00:00:00Z",
        "limit=0",
        "color=red",
    ] {
        s.be(&tok, Method::GET, &format!("/be/v1/tasks?{bad}"), None)
            .await
            .err(400, "invalid-param");
    }

    // Another org's task is 404 everywhere; its tasks are not listed.
    let foreign = o["taskName"].as_str().unwrap();
    s.be(&tok, Method::GET, &format!("/be/v1/tasks/{foreign}"), None).await.err(404, "not-found");
    s.be(&tok, Method::PATCH, "/be/v1/tasks", Some(json!({"taskName": foreign, "expire": true})))
        .await
        .err(404, "not-found");
    s.be(
        &tok,
        Method::PATCH,
        "/be/v1/tasks",
        Some(json!({"taskName": foreign, "acknowledge": true})),
    )
    .await
    .err(404, "not-found");
    s.be(&tok, Method::POST, "/be/v1/trigger", Some(json!({"type": "retry", "taskName": foreign})))
        .await
        .err(404, "not-found");
    let (n, _) = list(format!("taskGroup={}", o["taskGroup"].as_str().unwrap())).await;
    assert!(n.is_empty());
    // … and still waiting for its owner.
    assert_eq!(get_task(&s, &other, foreign).await["status"], "submitted");
    let r = s.be(&other, Method::GET, "/be/v1/tasks?appName=Filter", None).await;
    assert_eq!(r.ok()["total"], 5, "{}", r.body);
});

/// Refuses a gzip in mkraw, then retries the mkraw task: (tasks before, tasks after).
async fn refuse_then_retry(s: &Srv, tok: &str) -> (Vec<Value>, Vec<Value>) {
    new_app(s, tok, "Again", 5).await;
    let work = TempDir::new("again");
    let gz = work.0.join("x.tar.gz");
    std::fs::write(work.0.join("a.txt"), b"a").unwrap();
    assert!(gnu_tar(&["-czf", p(&gz), "-C", p(&work.0), "a.txt"]));
    let imp = upload(s, tok, "Again", "gz", &gz).await;
    let g = imp["taskGroup"].as_str().unwrap();
    let t = wait_group(s, tok, g).await;
    assert_failed_at(&t, 1, "gzip");
    let r = s
        .be(
            tok,
            Method::POST,
            "/be/v1/trigger",
            Some(json!({"type": "retry", "taskName": t[1]["taskName"]})),
        )
        .await;
    assert_eq!(r.ok()["taskName"], t[1]["taskName"]);
    let t2 = wait_group(s, tok, g).await;
    (t, t2)
}

edge_test!(retry_of_a_refused_archive_fails_again, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let (tok, _) = s.org_admin("AgainOrg").await;
    let (_, t2) = refuse_then_retry(&s, &tok).await;
    // It ran again, failed again, and its group was canceled again.
    assert_failed_at(&t2, 1, "gzip retried");
    assert_eq!(t2[1]["attempts"], 2, "{}", t2[1]);
    assert_eq!(t2[0]["attempts"], 1, "{}", t2[0]);
    let app = get_app(&s, &tok, "Again").await;
    assert_app_usable(&app, "after the retry");
    assert_eq!(app["builds"], json!([]));
});

edge_test!(retry_of_a_refused_archive_gives_the_same_verdict, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let (tok, _) = s.org_admin("AgainOrg").await;
    let (t, t2) = refuse_then_retry(&s, &tok).await;
    assert_eq!(t2[1]["exception"], t[1]["exception"], "the same archive gets the same verdict");
});

edge_test!(retry_of_an_older_build_is_refused, |b| async move {
    let moto = crate::origins::start_moto().await;
    moto.create_bucket("older-cdn").await;
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let (tok, _) = s.org_admin("OldOrg").await;
    let origin = |secret: &str| {
        json!({"type": "s3", "endpoint": moto.endpoint, "region": moto.region, "bucket": "older-cdn",
               "accessKeyId": moto.access_key_id, "secretAccessKey": secret, "pathStyle": true})
    };
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/deployments",
            Some(json!({"name": "cdn", "origin": origin("wrong"), "probe": false})),
        )
        .await;
    r.ok();
    s.be(
        &tok,
        Method::POST,
        "/be/v1/apps",
        Some(json!({"name": "Older", "label": "older", "deployments": ["cdn"]})),
    )
    .await
    .ok();
    // Two imports, both accepted before the first publish fails; both publishes fail.
    let work = TempDir::new("older");
    let one = start_upload(&s, &tok, json!({"appName": "Older", "buildName": "one"})).await;
    let two = start_upload(&s, &tok, json!({"appName": "Older", "buildName": "two"})).await;
    for (imp, seed) in [(&one, 91), (&two, 92)] {
        let (st, v) = put_bytes(
            &s,
            imp["uploadUrl"].as_str().unwrap(),
            small_tar(&work.0, &format!("b{seed}"), &small_tree(seed)),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    let t1 = wait_group(&s, &tok, one["taskGroup"].as_str().unwrap()).await;
    let t2 = wait_group(&s, &tok, two["taskGroup"].as_str().unwrap()).await;
    assert_eq!(
        types(&t1),
        ["dltar=done", "mkraw=done", "mkdxf=done", "mkpat=done", "deploy=error"]
    );
    assert_eq!(
        types(&t2),
        ["dltar=done", "mkraw=done", "mkdxf=done", "mkpat=done", "deploy=error"]
    );
    assert_eq!(t1[4]["buildId"], 1);
    assert_eq!(t2[4]["buildId"], 2);
    let app = get_app(&s, &tok, "Older").await;
    assert_eq!(app["error"], true);
    assert_eq!(app["errorTask"], t2[4]["taskName"], "the last failed publish: {app}");
    // Fix, retry the newer build: it becomes current.
    s.be(
        &tok,
        Method::PATCH,
        "/be/v1/deployments",
        Some(json!({"name": "cdn", "origin": origin(&moto.secret_access_key)})),
    )
    .await
    .ok();
    s.be(
        &tok,
        Method::POST,
        "/be/v1/trigger",
        Some(json!({"type": "retry", "taskName": t2[4]["taskName"]})),
    )
    .await
    .ok();
    let t2 = wait_group(&s, &tok, two["taskGroup"].as_str().unwrap()).await;
    assert!(t2.iter().all(|t| t["status"] == "done"), "{:?}", types(&t2));
    let app = get_app(&s, &tok, "Older").await;
    assert_eq!(app["iCurBuild"], 2, "{app}");
    assert_eq!(app["error"], false, "{app}");
    // Build 1 is older than the current one: it cannot become current again.
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/trigger",
            Some(json!({"type": "retry", "taskName": t1[4]["taskName"]})),
        )
        .await;
    r.err(409, "invalid-state");
    assert_eq!(get_task(&s, &tok, t1[4]["taskName"].as_str().unwrap()).await["status"], "error");
    assert_eq!(get_app(&s, &tok, "Older").await["iCurBuild"], 2);
});

// ---------------------------------------------------------------------------------------
// 4. maxBuilds rotation
// ---------------------------------------------------------------------------------------

edge_test!(max_builds_rotation, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let (tok, _) = s.org_admin("RotOrg").await;
    new_app(&s, &tok, "Rot", 2).await;
    let work = TempDir::new("rot");
    let mut dxf = Vec::new();
    for k in 1..=3u64 {
        let mut tree = small_tree(70);
        tree.insert(format!("data/extra-{k}.dat"), noise(70 + k, 20_000));
        let (_, tar) = make_build(&work.0, &format!("v{k}"), &tree);
        let imp = upload(&s, &tok, "Rot", &format!("r{k}"), &tar).await;
        let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
        assert!(
            tasks.iter().all(|t| t["status"] == "done" && t["buildId"] == k),
            "{:?}",
            types(&tasks)
        );
        dxf.push(tasks[2]["result"]["dxfName"].as_str().unwrap().to_string());
    }
    let app = get_app(&s, &tok, "Rot").await;
    assert_eq!(app["iCurBuild"], 3);
    assert_eq!(app["dxfName"], dxf[2]);
    let ids: Vec<_> =
        app["builds"].as_array().unwrap().iter().map(|b| b["buildId"].clone()).collect();
    assert_eq!(ids, vec![json!(2), json!(3)], "{app}");
    assert_eq!(app["builds"][0]["buildName"], "r2");
    assert_eq!(app["builds"][1]["dxfName"], dxf[2]);
    let patches = app["patches"].as_array().unwrap();
    assert_eq!(patches.len(), 1, "{app}");
    assert_eq!(patches[0]["fromBuildId"], 2);
    assert_eq!(patches[0]["toBuildId"], 3);
    assert!(patches[0]["sizeBytes"].as_u64().unwrap() > 0);
    let sum: u64 = app["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["sizeBytes"].as_u64().unwrap())
        .sum::<u64>()
        + patches[0]["sizeBytes"].as_u64().unwrap();
    assert_eq!(app["sizeBytes"], sum, "{app}");

    // Lowering maxBuilds rotates at once.
    let r = s
        .be(&tok, Method::PATCH, "/be/v1/apps", Some(json!({"name": "Rot", "maxBuilds": 1})))
        .await;
    let app = r.ok()["app"].clone();
    assert_eq!(app["maxBuilds"], 1);
    assert_eq!(app["builds"].as_array().unwrap().len(), 1, "{app}");
    assert_eq!(app["builds"][0]["buildId"], 3);
    assert_eq!(app["patches"], json!([]), "{app}");
    let app = get_app(&s, &tok, "Rot").await;
    assert_eq!(app["iCurBuild"], 3);
    assert_eq!(app["builds"].as_array().unwrap().len(), 1, "{app}");
    assert_eq!(app["patches"], json!([]));
    // Raising it again brings nothing back.
    let r = s
        .be(&tok, Method::PATCH, "/be/v1/apps", Some(json!({"name": "Rot", "maxBuilds": 5})))
        .await;
    assert_eq!(r.ok()["app"]["builds"].as_array().unwrap().len(), 1);
    s.be(&tok, Method::PATCH, "/be/v1/apps", Some(json!({"name": "Rot", "maxBuilds": 0})))
        .await
        .err(400, "invalid-param");
});

// ---------------------------------------------------------------------------------------
// 5. A failed S3 publish and its recovery (moto)
// ---------------------------------------------------------------------------------------

/// A signed path-style GET on moto: (status, body).
async fn moto_get(moto: &crate::origins::Moto, bucket: &str, key: &str) -> (u16, Vec<u8>) {
    let r = moto.signed("GET", &format!("/{bucket}/{key}")).await;
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

edge_test!(failed_s3_publish_locks_the_app_until_retried, |b| async move {
    let moto = crate::origins::start_moto().await;
    moto.create_bucket("edge-cdn").await;
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let (tok, _) = s.org_admin("S3Org").await;
    let origin = |secret: &str| {
        json!({"type": "s3", "endpoint": moto.endpoint, "region": moto.region, "bucket": "edge-cdn",
               "accessKeyId": moto.access_key_id, "secretAccessKey": secret, "pathStyle": true})
    };
    // With the probe, the wrong secret is refused at once.
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/deployments",
            Some(json!({"name": "cdn", "originPrefix": "rk", "origin": origin("wrong-secret")})),
        )
        .await;
    let body = r.err(400, "invalid-param");
    assert!(body["details"]["probe"].is_string(), "{body}");
    assert!(!body.to_string().contains("wrong-secret"));
    // Without it, the deployment is stored and the publish fails later.
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/deployments",
            Some(json!({"name": "cdn", "originPrefix": "rk", "origin": origin("wrong-secret"), "probe": false})),
        )
        .await;
    assert_eq!(r.ok()["deployment"]["origin"]["secretAccessKey"], "********");
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/apps",
            Some(json!({"name": "S3Game", "label": "S3 game", "deployments": ["cdn"]})),
        )
        .await;
    r.ok();

    let work = TempDir::new("s3");
    let (_, tar) = make_build(&work.0, "v1", &small_tree(81));
    let imp = upload(&s, &tok, "S3Game", "1.0", &tar).await;
    let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert_eq!(
        types(&tasks),
        ["dltar=done", "mkraw=done", "mkdxf=done", "mkpat=done", "deploy=error"],
        "{tasks:?}"
    );
    let deploy = tasks[4].clone();
    let deploy_name = deploy["taskName"].as_str().unwrap().to_string();
    assert_eq!(deploy["buildId"], 1, "the build passed mkraw: it has its id");
    assert_eq!(deploy["attempts"], 1);
    let exc = &deploy["exception"];
    assert!(exc["error"]["code"].is_string() && exc["error"]["message"].is_string(), "{exc}");
    assert_eq!(exc["deployment"], json!({"name": "cdn"}), "{exc}");
    assert!(!exc.to_string().contains("wrong-secret"), "no secret in the exception: {exc}");

    let app = get_app(&s, &tok, "S3Game").await;
    assert_eq!(app["error"], true, "{app}");
    assert_eq!(app["errorTask"], deploy_name, "{app}");
    assert_eq!(
        app["iCurBuild"],
        Value::Null,
        "only a successful publish makes the build current: {app}"
    );
    assert_eq!(app["processing"], false, "{app}");
    let r = s.be(&tok, Method::GET, "/be/v1/deployments/cdn", None).await;
    let dep = r.ok()["deployment"].clone();
    assert_eq!(dep["status"], "error", "{dep}");
    assert!(dep["message"].is_string() && !dep["message"].as_str().unwrap().is_empty(), "{dep}");
    let r = s.be(&tok, Method::GET, "/be/v1/deployments?error=true", None).await;
    assert_eq!(r.ok()["total"], 1);
    let r = s.be(&tok, Method::GET, "/be/v1/apps?error=true", None).await;
    assert_eq!(r.ok()["apps"][0]["name"], "S3Game");
    // No manifest reached the bucket.
    let dxf = tasks[2]["result"]["dxfName"].as_str().unwrap().to_string();
    let manifest_key = format!("rk/dxf/S3Org/S3Game/0001/{dxf}/manifest.json");
    assert_eq!(moto_get(&moto, "edge-cdn", &manifest_key).await.0, 404);

    // Locked: no new import, no traces trigger.
    let r = s.be(&tok, Method::POST, "/be/v1/builds", Some(json!({"appName": "S3Game"}))).await;
    r.err(409, "app-locked");
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/builds",
            Some(json!({"appName": "S3Game", "url": "http://127.0.0.1:1/x.tar"})),
        )
        .await;
    r.err(409, "app-locked");
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/trigger",
            Some(json!({"type": "traces", "appName": "S3Game"})),
        )
        .await;
    r.err(409, "app-locked");

    // Fixing the deployment (probed now) retries nothing by itself.
    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/deployments",
            Some(json!({"name": "cdn", "origin": origin(&moto.secret_access_key)})),
        )
        .await;
    r.ok();
    assert_eq!(get_task(&s, &tok, &deploy_name).await["status"], "error");
    assert_eq!(get_app(&s, &tok, "S3Game").await["error"], true);

    // Retry Task: the deploy runs again and the build becomes current.
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/trigger",
            Some(json!({"type": "retry", "taskName": deploy_name})),
        )
        .await;
    assert_eq!(r.ok()["taskName"], deploy_name.as_str());
    let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(tasks.iter().all(|t| t["status"] == "done"), "{:?} {}", types(&tasks), tasks[4]);
    assert_eq!(tasks[4]["attempts"], 2, "{}", tasks[4]);
    assert_eq!(tasks[4]["exception"], Value::Null);
    assert_eq!(tasks[3]["attempts"], 1, "earlier steps do not run again");
    let app = get_app(&s, &tok, "S3Game").await;
    assert_eq!(app["error"], false, "{app}");
    assert_eq!(app["errorTask"], Value::Null, "{app}");
    assert_eq!(app["iCurBuild"], 1, "{app}");
    assert_eq!(app["dxfName"], dxf.as_str());
    let r = s.be(&tok, Method::GET, "/be/v1/deployments/cdn", None).await;
    assert_eq!(r.ok()["deployment"]["status"], "ok", "{}", r.body);
    // A retry of a task that is done now: 409.
    s.be(
        &tok,
        Method::POST,
        "/be/v1/trigger",
        Some(json!({"type": "retry", "taskName": deploy_name})),
    )
    .await
    .err(409, "invalid-state");

    // The image is in the bucket: the manifest and every object it pins.
    let (st, body) = moto_get(&moto, "edge-cdn", &manifest_key).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let manifest: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(manifest["format"], "rockit-dxf");
    assert_eq!(manifest["orgName"], "S3Org");
    assert_eq!(manifest["appName"], "S3Game");
    assert_eq!(manifest["buildId"], 1);
    assert_eq!(manifest["dxfName"], dxf.as_str());
    let mut pinned: Vec<(String, u64)> = manifest["packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["sizeBytes"].as_u64().unwrap()))
        .collect();
    pinned.push((
        manifest["index"]["name"].as_str().unwrap().to_string(),
        manifest["index"]["sizeBytes"].as_u64().unwrap(),
    ));
    assert!(pinned.len() >= 2, "{manifest}");
    for (name, size) in pinned {
        let (st, body) =
            moto_get(&moto, "edge-cdn", &format!("rk/dxf/S3Org/S3Game/0001/{dxf}/{name}")).await;
        assert_eq!(st, 200, "{name}");
        assert_eq!(body.len() as u64, size, "{name}");
    }
    // The app is usable again: a new build goes through to the same bucket.
    let (_, tar2) = make_build(&work.0, "v2", &small_tree(82));
    let imp = upload(&s, &tok, "S3Game", "1.1", &tar2).await;
    let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(
        tasks.iter().all(|t| t["status"] == "done" && t["buildId"] == 2),
        "{:?}",
        types(&tasks)
    );
    let (st, _) = moto_get(&moto, "edge-cdn", "rk/pat/S3Org/S3Game/0002/0001/patch.json").await;
    assert_eq!(st, 200);
});

edge_test!(unresolvable_fs_deployment_fails_publish_naming_it, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("FsOrg").await;
    s.be(
        &tok,
        Method::POST,
        "/be/v1/deployments",
        Some(json!({"name": "local", "origin": {"type": "fs", "path": "site"}})),
    )
    .await
    .ok();
    s.be(&tok, Method::POST, "/be/v1/apps", Some(json!({"name": "Game", "label": "Game"})))
        .await
        .ok();
    // The origin directory becomes a file: the path cannot be resolved at publish time.
    let site = s.data_dir().join("origins/site");
    let _ = std::fs::remove_dir_all(&site);
    std::fs::write(&site, b"not a directory").unwrap();
    let work = TempDir::new("fs-broken");
    let (_, tar) = make_build(&work.0, "v1", &game_v1());
    let imp = upload(&s, &tok, "Game", "1", &tar).await;
    let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    let deploy = tasks.iter().find(|t| t["type"] == "deploy").unwrap();
    assert_eq!(deploy["status"], "error", "{tasks:?}");
    assert_eq!(deploy["exception"]["error"]["code"], "publish-failed");
    assert_eq!(deploy["exception"]["deployment"]["name"], "local");
    let app = s.be(&tok, Method::GET, "/be/v1/apps/Game", None).await.ok()["app"].clone();
    assert_eq!((app["error"].as_bool(), app["iCurBuild"].is_null()), (Some(true), true));
    assert_eq!(
        s.be(&tok, Method::GET, "/be/v1/deployments/local", None).await.ok()["deployment"]
            ["status"],
        "error"
    );
    // Fixed on disk, a retry publishes.
    std::fs::remove_file(&site).unwrap();
    s.be(
        &tok,
        Method::POST,
        "/be/v1/trigger",
        Some(json!({"type": "retry", "taskName": deploy["taskName"]})),
    )
    .await
    .ok();
    let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(tasks.iter().all(|t| t["status"] == "done"), "{tasks:?}");
    assert_eq!(s.be(&tok, Method::GET, "/be/v1/apps/Game", None).await.ok()["app"]["iCurBuild"], 1);
});
