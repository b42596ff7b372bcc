//! The `rockit` CLI end to end: the real binary against what a real server published to an
//! `fs` origin, read from the directory and over HTTP (a small static file server below),
//! with and without the organization's signature; tampering, refusals, and patches.

use crate::common::*;
use crate::delivery::{upload, wait_group};
use crate::edge_test;
use crate::game::*;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What one run of the binary gave.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    #[track_caller]
    pub(crate) fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "{self:?}");
        assert!(self.stderr.is_empty(), "{self:?}");
        &self.stdout
    }
    /// Asserts a failure reported as exactly one `rockit: …` line; returns that line.
    #[track_caller]
    pub(crate) fn failed(&self) -> &str {
        assert_eq!(self.code, 1, "{self:?}");
        assert!(self.stdout.is_empty(), "{self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "{self:?}");
        assert!(self.stderr.starts_with("rockit: "), "{self:?}");
        self.stderr.trim_end()
    }
}

/// Runs `rockit <args>` (off the async workers: the server under test keeps running).
async fn rockit(args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_rockit")).args(&args).output()
    })
    .await
    .unwrap()
    .expect("rockit runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub(crate) fn ps(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A static file server over HTTP/1.1 (keep-alive, `GET` only; anything else 404), on a
/// thread of its own; it remembers every request target it was asked for.
struct Static {
    base: String,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Static {
    fn serve(root: &Path) -> Static {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (log, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (root, log2, stop2) = (root.to_path_buf(), log.clone(), stop.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(c) = c else { continue };
                let (root, log) = (root.clone(), log2.clone());
                std::thread::spawn(move || {
                    let _ = Static::conn(c, &root, &log);
                });
            }
        });
        Static { base: format!("http://{addr}"), addr, log, stop }
    }

    fn conn(c: TcpStream, root: &Path, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
        let mut r = BufReader::new(c.try_clone()?);
        let mut w = c;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            loop {
                let mut h = String::new();
                if r.read_line(&mut h)? == 0 {
                    return Ok(());
                }
                if h.trim().is_empty() {
                    break;
                }
            }
            let mut parts = line.split_whitespace();
            let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            log.lock().unwrap().push(target.to_string());
            let path = target.split('?').next().unwrap_or("");
            let file = Some(root.join(path.trim_start_matches('/')))
                .filter(|f| method == "GET" && !path.contains("..") && f.is_file());
            match file {
                Some(f) => {
                    let mut fh = std::fs::File::open(f)?;
                    let len = fh.metadata()?.len();
                    write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\n\r\n")?;
                    std::io::copy(&mut fh, &mut w)?;
                }
                None => w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nContent-Type: text/plain\r\n\r\nnot found\n")?,
            }
            w.flush()?;
        }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Static {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Runs a tool in `dir`, asserting success.
fn tool(dir: &Path, prog: &str, args: &[&str]) {
    let out = std::process::Command::new(prog)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{prog} runs: {e}"));
    assert!(out.status.success(), "{prog} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A fresh 2048-bit RSA key `name` (PKCS#1 PEM, as `ssh-keygen -m PEM` writes it) and its
/// SPKI public key `name.pub.pem`.
fn rsa_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    tool(
        dir,
        "ssh-keygen",
        &["-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-C", "", "-f", name],
    );
    let public = format!("{name}.pub.pem");
    tool(dir, "openssl", &["pkey", "-in", name, "-pubout", "-out", &public]);
    (dir.join(name), dir.join(public))
}

/// Copies a flat directory (an image or a patch).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Flips one byte of a file.
fn flip(file: &Path, at: u64) {
    let mut b = std::fs::read(file).unwrap();
    b[at as usize] ^= 0x5a;
    std::fs::write(file, b).unwrap();
}

/// The second build: a rename, an edit, a new file (as in delivery.rs).
fn game_v2(v1: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    let mut v2 = v1.clone();
    let exe = v2.remove("bin/game.exe").unwrap();
    v2.insert("bin/game-renamed.exe".into(), exe);
    v2.get_mut("data/levels.pak").unwrap()[1_000_000] ^= 0x55;
    v2.insert("data/dlc.pak".into(), noise(9, 300_000));
    v2
}

/// Publishes a build and waits for its pipeline; returns the app afterwards.
async fn publish(s: &Srv, tok: &str, app: &str, name: &str, tar: &Path) -> Value {
    let imp = upload(s, tok, app, name, tar).await;
    let tasks = wait_group(s, tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(tasks.iter().all(|t| t["status"] == "done"), "{tasks:?}");
    s.be(tok, Method::GET, &format!("/be/v1/apps/{app}"), None).await.ok()["app"].clone()
}

/// An fs deployment `site` under prefix `cdn` and an app; returns the origin's root.
async fn setup(s: &Srv, tok: &str, app: &str) -> PathBuf {
    let r = s
        .be(
            tok,
            Method::POST,
            "/be/v1/deployments",
            Some(json!({"name": "site", "originPrefix": "cdn", "origin": {"type": "fs", "path": "site"}})),
        )
        .await;
    r.ok();
    s.be(
        tok,
        Method::POST,
        "/be/v1/apps",
        Some(json!({"name": app, "label": app, "maxBuilds": 3})),
    )
    .await
    .ok();
    s.data_dir().join("origins/site")
}

#[test]
fn cli_help() {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_rockit")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("unpack") && text.contains("apply"), "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rockit"))
        .args(["unpack", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("--public-key"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rockit"))
        .args(["unpack", "only-one-arg"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

edge_test!(cli_unpack_and_apply, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let (tok, _) = s.org_admin("CliCo").await;
    let origin = setup(&s, &tok, "Game").await;
    let work = TempDir::new("cli");
    let w = work.0.as_path();
    let v1 = game_v1();
    let (dir1, tar1) = make_build(w, "v1", &v1);
    let app = publish(&s, &tok, "Game", "1.0.0", &tar1).await;
    let dxf = app["dxfName"].as_str().unwrap().to_string();
    let img = origin.join(format!("cdn/dxf/CliCo/Game/0001/{dxf}"));
    assert!(!img.join("manifest.sig").exists(), "an org without a key signs nothing");

    // From the directory: the tree byte for byte, modes and the symlink included.
    let out1 = w.join("out1");
    let run = rockit(&["unpack", ps(&img), ps(&out1)]).await;
    let text = run.ok();
    assert!(text.starts_with(&format!("unpacked Game build 1 \"1.0.0\" ({dxf}) into ")), "{text}");
    assert!(text.contains("5 files") && text.contains("signature not checked"), "{text}");
    assert_eq!(read_tree(&out1), read_tree(&dir1));

    // A non-empty output directory is refused and left alone.
    let line = rockit(&["unpack", ps(&img), ps(&out1)]).await.failed().to_string();
    assert!(line.contains("exists and is not empty") && line.contains(ps(&out1)), "{line}");
    assert_eq!(read_tree(&out1), read_tree(&dir1));
    // An empty one is fine.
    let empty = w.join("empty");
    std::fs::create_dir(&empty).unwrap();
    rockit(&["unpack", ps(&img), ps(&empty)]).await.ok();
    assert_eq!(read_tree(&empty), read_tree(&dir1));
    // A missing image directory, or a patch where an image is expected.
    let line = rockit(&["unpack", ps(&w.join("nowhere")), ps(&w.join("o-missing"))])
        .await
        .failed()
        .to_string();
    assert!(line.contains("does not exist") && line.contains("nowhere"), "{line}");
    assert!(!w.join("o-missing").exists());

    // Over HTTP, with a CDN token in the query that every request must carry.
    let http = Static::serve(&origin);
    let url = format!("{}/cdn/dxf/CliCo/Game/0001/{dxf}", http.base);
    let out2 = w.join("out2");
    let text = rockit(&["unpack", &format!("{url}/?token=abc"), ps(&out2)]).await.ok().to_string();
    assert!(text.contains("5 files"), "{text}");
    assert_eq!(read_tree(&out2), read_tree(&dir1));
    let reqs = http.requests();
    let base_path = format!("/cdn/dxf/CliCo/Game/0001/{dxf}");
    assert_eq!(
        reqs,
        vec![
            format!("{base_path}/manifest.json?token=abc"),
            format!("{base_path}/index.json?token=abc"),
            format!("{base_path}/pack-0001.bin?token=abc")
        ]
    );
    // Without a trailing slash.
    let out3 = w.join("out3");
    rockit(&["unpack", &url, ps(&out3)]).await.ok();
    assert_eq!(read_tree(&out3), read_tree(&dir1));
    // HTTP 404: one clear line, nothing left behind.
    let gone = format!("{}/cdn/dxf/CliCo/Game/0009/{dxf}", http.base);
    let line = rockit(&["unpack", &gone, ps(&w.join("o404"))]).await.failed().to_string();
    assert!(
        line.contains("HTTP 404") && line.contains("/0009/") && line.contains("manifest.json"),
        "{line}"
    );
    assert!(!w.join("o404").exists());

    // A key asked for but no signature published.
    let (_, public) = rsa_key(w, "stray");
    let line = rockit(&["unpack", "--public-key", ps(&public), ps(&img), ps(&w.join("o-nosig"))])
        .await
        .failed()
        .to_string();
    assert!(line.contains("manifest.sig"), "{line}");
    assert!(!w.join("o-nosig").exists());

    // Tampering: one byte of an incompressible (raw-stored) chunk in a pack → the chunk's
    // hash is named; from the directory and over HTTP alike.
    let index: Value =
        serde_json::from_slice(&std::fs::read(img.join("index.json")).unwrap()).unwrap();
    let rows = index["chunks"].as_array().unwrap();
    let raw_row = rows.iter().find(|r| r[3] == 0).expect("a raw chunk");
    let bad = w.join("bad");
    copy_dir(&img, &bad);
    let pack = bad.join(format!("pack-{:04}.bin", raw_row[4].as_u64().unwrap()));
    flip(&pack, raw_row[5].as_u64().unwrap() + raw_row[2].as_u64().unwrap() / 2);
    let hash = raw_row[0].as_str().unwrap();
    let line = rockit(&["unpack", ps(&bad), ps(&w.join("o-bad"))]).await.failed().to_string();
    assert!(line.contains(hash) && line.contains("does not match its hash"), "{line}");
    assert!(!w.join("o-bad").exists(), "a failed unpack leaves nothing behind");
    let bad_http = Static::serve(w);
    let line = rockit(&["unpack", &format!("{}/bad", bad_http.base), ps(&w.join("o-bad2"))])
        .await
        .failed()
        .to_string();
    assert!(line.contains(hash), "{line}");
    // A tampered compressed chunk: zstd may notice before the hash does; the chunk is named.
    let z_row = rows.iter().find(|r| r[3] == 1).expect("a compressed chunk");
    let badz = w.join("badz");
    copy_dir(&img, &badz);
    flip(
        &badz.join(format!("pack-{:04}.bin", z_row[4].as_u64().unwrap())),
        z_row[5].as_u64().unwrap() + z_row[2].as_u64().unwrap() / 2,
    );
    let line = rockit(&["unpack", ps(&badz), ps(&w.join("o-badz"))]).await.failed().to_string();
    assert!(line.contains(z_row[0].as_str().unwrap()), "{line}");
    assert!(!w.join("o-badz").exists());
    // A tampered index.
    let badi = w.join("badi");
    copy_dir(&img, &badi);
    flip(&badi.join("index.json"), 10);
    let line = rockit(&["unpack", ps(&badi), ps(&w.join("o-badi"))]).await.failed().to_string();
    assert!(line.contains("index.json does not match its hash"), "{line}");

    // Build 2 and its patch from build 1: applied onto the unpacked build 1.
    let v2 = game_v2(&v1);
    let (dir2, tar2) = make_build(w, "v2", &v2);
    let app = publish(&s, &tok, "Game", "1.0.1", &tar2).await;
    assert_eq!(app["iCurBuild"], 2);
    let pat = origin.join("cdn/pat/CliCo/Game/0002/0001");
    let out4 = w.join("out4");
    let text = rockit(&["apply", ps(&pat), ps(&out1), ps(&out4)]).await.ok().to_string();
    assert!(text.starts_with("applied Game patch 1 -> 2 onto "), "{text}");
    assert!(text.contains("6 files"), "{text}");
    assert_eq!(read_tree(&out4), read_tree(&dir2));
    assert_eq!(read_tree(&out1), read_tree(&dir1), "the older tree is only read");
    // Over HTTP.
    let out5 = w.join("out5");
    rockit(&[
        "apply",
        &format!("{}/cdn/pat/CliCo/Game/0002/0001/", http.base),
        ps(&out1),
        ps(&out5),
    ])
    .await
    .ok();
    assert_eq!(read_tree(&out5), read_tree(&dir2));
    // The image of build 2 unpacks to the same tree.
    let dxf2 = app["dxfName"].as_str().unwrap();
    let out6 = w.join("out6");
    rockit(&["unpack", ps(&origin.join(format!("cdn/dxf/CliCo/Game/0002/{dxf2}"))), ps(&out6)])
        .await
        .ok();
    assert_eq!(read_tree(&out6), read_tree(&dir2));

    // A tampered patch: the damaged pack is named, nothing is left behind.
    let pm: Value =
        serde_json::from_slice(&std::fs::read(pat.join("patch.json")).unwrap()).unwrap();
    assert_eq!(pm["version"], 2);
    assert!(pm["deltaChunks"].as_u64().unwrap() >= 1, "the edit travels as a delta: {pm}");
    let pack = &pm["packs"][0];
    let (name, size) = (pack["name"].as_str().unwrap(), pack["sizeBytes"].as_u64().unwrap());
    for (k, at) in [8, size / 2, size - 1].into_iter().enumerate() {
        let badp = w.join(format!("badp{k}"));
        copy_dir(&pat, &badp);
        flip(&badp.join(name), at);
        let o = w.join(format!("o-badp{k}"));
        let line = rockit(&["apply", ps(&badp), ps(&out1), ps(&o)]).await.failed().to_string();
        assert!(line.contains(name), "byte {at}: {line}");
        assert!(!o.exists());
    }

    // An older tree that differs from build 1 → refused: a changed byte, an extra file.
    let from_bad = w.join("from-bad");
    make_build(w, "from-bad", &v1);
    flip(&from_bad.join("data/textures.pak"), 4242);
    let line = rockit(&["apply", ps(&pat), ps(&from_bad), ps(&w.join("o-apply-bad"))])
        .await
        .failed()
        .to_string();
    assert!(line.contains("differs from build 1"), "{line}");
    assert!(!w.join("o-apply-bad").exists());
    flip(&from_bad.join("data/textures.pak"), 4242);
    std::fs::write(from_bad.join("saves.dat"), b"x").unwrap();
    let line = rockit(&["apply", ps(&pat), ps(&from_bad), ps(&w.join("o-apply-bad"))])
        .await
        .failed()
        .to_string();
    assert!(
        line.contains("is not build 1") && line.contains("7 files and links, the build has 6"),
        "{line}"
    );
    assert!(!w.join("o-apply-bad").exists());
    // Wrong arguments: an image given as the patch, a missing older tree, a non-empty out.
    let line =
        rockit(&["apply", ps(&img), ps(&out1), ps(&w.join("o-x"))]).await.failed().to_string();
    assert!(line.contains("not a patch") && line.contains("holds a DxF image"), "{line}");
    let line = rockit(&["apply", ps(&pat), ps(&w.join("nowhere")), ps(&w.join("o-x"))])
        .await
        .failed()
        .to_string();
    assert!(line.contains("does not exist"), "{line}");
    let line = rockit(&["apply", ps(&pat), ps(&out1), ps(&out4)]).await.failed().to_string();
    assert!(line.contains("not empty"), "{line}");
    assert_eq!(read_tree(&out4), read_tree(&dir2));
    // A patch that is not there.
    let line = rockit(&[
        "apply",
        &format!("{}/cdn/pat/CliCo/Game/0003/0001", http.base),
        ps(&out1),
        ps(&w.join("o-x")),
    ])
    .await
    .failed()
    .to_string();
    assert!(line.contains("HTTP 404") && line.contains("patch.json"), "{line}");
    assert!(!w.join("o-x").exists());
});

edge_test!(cli_signed_image, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let work = TempDir::new("cli-sig");
    let w = work.0.as_path();
    let (private, public) = rsa_key(w, "org");
    let body = json!({"name": "SignCo", "label": "Signing Co", "username": "sign_admin", "email": "sign_admin@example.com",
                      "firstname": "Ada", "surname": "Admin",
                      "orgPrivPemB64": base64::engine::general_purpose::STANDARD.encode(std::fs::read(&private).unwrap())});
    let pw = s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await.ok()["adminPW"]
        .as_str()
        .unwrap()
        .to_string();
    let tok = s.token("sign_admin", &pw, "SignCo").await;
    let org = s.adm(Method::GET, "/adm/v1/orgs/SignCo", None).await.ok()["org"].clone();
    let org_pem = w.join("signco.pem");
    std::fs::write(&org_pem, org["publicKeyPem"].as_str().unwrap()).unwrap();
    assert_eq!(
        std::fs::read_to_string(&org_pem).unwrap().trim(),
        std::fs::read_to_string(&public).unwrap().trim()
    );

    let origin = setup(&s, &tok, "Signed").await;
    let v1 = game_v1();
    let (dir1, tar1) = make_build(w, "v1", &v1);
    let app = publish(&s, &tok, "Signed", "1.0", &tar1).await;
    let img =
        origin.join(format!("cdn/dxf/SignCo/Signed/0001/{}", app["dxfName"].as_str().unwrap()));
    assert!(img.join("manifest.sig").is_file());

    // The org's key verifies, from the directory and over HTTP.
    let out = w.join("out");
    let text = rockit(&["unpack", "--public-key", ps(&org_pem), ps(&img), ps(&out)])
        .await
        .ok()
        .to_string();
    assert!(text.contains("signature verified"), "{text}");
    assert_eq!(read_tree(&out), read_tree(&dir1));
    let http = Static::serve(&origin);
    let url = format!("{}/{}", http.base, img.strip_prefix(&origin).unwrap().to_str().unwrap());
    let out2 = w.join("out2");
    rockit(&["unpack", "--public-key", ps(&org_pem), &url, ps(&out2)]).await.ok();
    assert_eq!(read_tree(&out2), read_tree(&dir1));
    assert!(http.requests().iter().any(|r| r.ends_with("/manifest.sig")));
    // The same key as PKCS#1 (`BEGIN RSA PUBLIC KEY`).
    tool(w, "openssl", &["rsa", "-in", "org", "-RSAPublicKey_out", "-out", "org.rsapub.pem"]);
    rockit(&[
        "unpack",
        "--public-key",
        ps(&w.join("org.rsapub.pem")),
        ps(&img),
        ps(&w.join("out3")),
    ])
    .await
    .ok();

    // Another key fails, and leaves nothing behind.
    let (_, other) = rsa_key(w, "other");
    let line = rockit(&["unpack", "--public-key", ps(&other), ps(&img), ps(&w.join("o-other"))])
        .await
        .failed()
        .to_string();
    assert!(line.contains("signature does not verify"), "{line}");
    assert!(!w.join("o-other").exists());
    let line = rockit(&["unpack", "--public-key", ps(&other), &url, ps(&w.join("o-other"))])
        .await
        .failed()
        .to_string();
    assert!(line.contains("signature does not verify"), "{line}");
    // A manifest changed after signing fails with the right key.
    let edited = w.join("edited");
    copy_dir(&img, &edited);
    let m = std::fs::read_to_string(edited.join("manifest.json")).unwrap();
    let m2 = m.replace("\"buildName\": \"1.0\"", "\"buildName\": \"1.1\"");
    assert_ne!(m, m2);
    std::fs::write(edited.join("manifest.json"), m2).unwrap();
    let r = rockit(&["unpack", ps(&edited), ps(&w.join("o-edited0"))]).await;
    assert!(r.ok().contains("\"1.1\""), "unsigned checks pass: the manifest pins data, not itself");
    let line =
        rockit(&["unpack", "--public-key", ps(&org_pem), ps(&edited), ps(&w.join("o-edited"))])
            .await
            .failed()
            .to_string();
    assert!(line.contains("signature does not verify"), "{line}");
    // A file that is not a public key.
    let line = rockit(&["unpack", "--public-key", ps(&tar1), ps(&img), ps(&w.join("o-k"))])
        .await
        .failed()
        .to_string();
    assert!(line.contains("not an RSA public key"), "{line}");
});
