//! Traces end to end: launchers upload play traces through `/client/v1` with a client key
//! (plain, zstd and gzip), enough of them run `mkseq` by itself, a re-ordered image of the
//! same build is published whose preload — computed here from the published index with
//! formats.md's definition, independently of the server's model — is far below the
//! untrained image's, and the next build's first image is already in trained order.

use crate::common::*;
use crate::delivery::{upload, wait_group};
use crate::edge_test;
use crate::game::*;
use edge_engine::reader::{unpack, DirSource};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A game whose tar order is the worst for its players: big unused data first, the boot
/// files the game reads at once last.
pub(crate) fn game(version: u8) -> BTreeMap<String, Vec<u8>> {
    let mut g = BTreeMap::new();
    g.insert("a_music/tracks.pak".into(), noise(1, 6_000_000));
    g.insert("b_levels/level1.pak".into(), noise(2, 2_000_000));
    g.insert("b_levels/level2.pak".into(), noise(3, 2_000_000));
    let mut exe = noise(4, 700_000);
    exe[0] = version;
    g.insert("z_boot/game.exe".into(), exe);
    g.insert("z_boot/boot.dat".into(), text(5, 300_000));
    g.insert("bin/run.sh".into(), b"#!/bin/sh\nexec ../z_boot/game.exe\n".to_vec());
    g.insert("config/settings.ini".into(), b"[video]\nfullscreen=1\n".to_vec());
    g
}

/// The tree and its tar in name order (`--sort=name`), so the tar order is known.
pub(crate) fn make_sorted(
    base: &Path,
    name: &str,
    files: &BTreeMap<String, Vec<u8>>,
) -> (PathBuf, PathBuf) {
    let dir = base.join(name);
    write_tree(&dir, files);
    let t = base.join(format!("{name}.tar"));
    let st = std::process::Command::new("tar")
        .arg("--sort=name")
        .arg("-cf")
        .arg(&t)
        .arg("-C")
        .arg(&dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    (dir, t)
}

/// A player's session: boot at once, then a level after `level_at` ms.
pub(crate) fn trace(build: u64, level: &str, level_at: u64, jitter: u64) -> Value {
    json!({"format": "rockit-trace", "version": 1, "appName": "Game", "buildId": build,
           "paths": ["z_boot/game.exe", "z_boot/boot.dat", level],
           "events": [[0, 0, 0, 700_000], [50 + jitter, 1, 0, 300_000], [level_at + jitter, 2, 0, 1_500_000]]})
}

/// Start delay S·B (bytes) of `trace` on the image at `dir` at `bytes_per_s`, straight from
/// formats.md: chunks arrive in stream order; an event at t needs its chunks by S + t.
fn preload(dir: &Path, trace: &Value, bytes_per_s: f64) -> u64 {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut ends = Vec::new();
    let mut at = 0u64;
    for row in index["chunks"].as_array().unwrap() {
        at += row[2].as_u64().unwrap();
        ends.push(at);
    }
    let raw: Vec<u64> =
        index["chunks"].as_array().unwrap().iter().map(|r| r[1].as_u64().unwrap()).collect();
    let files: BTreeMap<String, Vec<u64>> = index["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["type"] == "file")
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["chunks"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect(),
            )
        })
        .collect();
    let paths: Vec<&str> =
        trace["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    let mut s = 0f64;
    for e in trace["events"].as_array().unwrap() {
        let (t, p, off, len) = (
            e[0].as_u64().unwrap(),
            e[1].as_u64().unwrap() as usize,
            e[2].as_u64().unwrap(),
            e[3].as_u64().unwrap(),
        );
        let mut pos = 0u64;
        for &c in &files[paths[p]] {
            let (a, b) = (pos, pos + raw[c as usize]);
            if a < off + len && b > off {
                s = s.max(ends[c as usize] as f64 / bytes_per_s - t as f64 / 1000.0);
            }
            pos = b;
        }
    }
    (s * bytes_per_s).round() as u64
}

const B100: f64 = 12_500_000.0;

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Opens a session: (session token, session id).
pub(crate) async fn session(s: &Srv, key: &str) -> (String, String) {
    let r = s
        .req(
            Method::POST,
            "/client/v1/rte-sessions",
            &[("x-rockit-client-key", key)],
            Some(json!({"orgName": "Play", "appName": "Game"})),
        )
        .await;
    let v = r.ok().clone();
    (v["sessionToken"].as_str().unwrap().to_string(), v["sessionId"].as_str().unwrap().to_string())
}

pub(crate) async fn send(s: &Srv, token: &str, body: Vec<u8>, encoding: Option<&str>) -> Resp {
    let mut rb = s
        .http
        .post(format!("{}/client/v1/traces", s.base))
        .header("x-rockit-session-token", token)
        .body(body);
    if let Some(e) = encoding {
        rb = rb.header("content-encoding", e);
    }
    let r = rb.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null);
    Resp { status, headers, body }
}

/// Waits for the app's newest task of `kind` to end, then for its group.
pub(crate) async fn wait_kind(s: &Srv, tok: &str, kind: &str) -> Vec<Value> {
    for _ in 0..300 {
        let r =
            s.be(tok, Method::GET, &format!("/be/v1/tasks?type={kind}&appName=Game"), None).await;
        if let Some(t) = r.ok()["tasks"].as_array().unwrap().first() {
            return wait_group(s, tok, t["taskGroup"].as_str().unwrap()).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no {kind} task appeared");
}

/// `rockit play <dir> --trace <file> --stream --json`, parsed.
async fn rockit_play(dir: &Path, trace: &Path) -> Value {
    let args: Vec<String> =
        ["play", dir.to_str().unwrap(), "--trace", trace.to_str().unwrap(), "--stream", "--json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_rockit")).args(&args).output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn image_dir(s: &Srv, build: u32, dxf: &str) -> PathBuf {
    s.data_dir().join(format!("origins/site/dxf/Play/Game/{build:04}/{dxf}"))
}

edge_test!(traces_train_the_image_and_carry_over, |b| async move {
    let s = Srv::start_with(b, |c| {
        c.allow_private_sources = true;
        c.chunk_avg_bytes = 64 << 10;
        c.pack_limit_bytes = 4 << 20;
    })
    .await;
    let (tok, _) = s.org_admin("Play").await;
    s.be(
        &tok,
        Method::POST,
        "/be/v1/deployments",
        Some(json!({"name": "local", "origin": {"type": "fs", "path": "site"}, "publicUrl": "https://cdn.example.com"})),
    )
    .await
    .ok();
    let r = s
        .be(&tok, Method::POST, "/be/v1/apps", Some(json!({"name": "Game", "label": "Game"})))
        .await;
    let key = r.ok()["app"]["clientKey"].as_str().unwrap().to_string();
    let work = TempDir::new("traces");
    let (dir1, tar1) = make_sorted(&work.0, "v1", &game(1));
    let imp = upload(&s, &tok, "Game", "1.0", &tar1).await;
    assert!(wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap())
        .await
        .iter()
        .all(|t| t["status"] == "done"));
    let dxf1 = s.be(&tok, Method::GET, "/be/v1/apps/Game", None).await.ok()["app"]["dxfName"]
        .as_str()
        .unwrap()
        .to_string();
    let m1: Value = serde_json::from_slice(
        &std::fs::read(image_dir(&s, 1, &dxf1).join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(m1["preload"], Value::Null, "no traces yet");
    s.be(
        &tok,
        Method::PATCH,
        "/be/v1/trainings",
        Some(json!({"appName": "Game", "nTracesReliable": 3})),
    )
    .await
    .ok();
    s.be(&tok, Method::POST, "/be/v1/trigger", Some(json!({"type": "traces", "appName": "Game"})))
        .await
        .err(409, "invalid-state");

    // Refusals first: nothing is stored by any of them.
    let (t0, _) = session(&s, &key).await;
    send(&s, &t0, b"{not json".to_vec(), None).await.err(400, "invalid-param");
    send(&s, &t0, serde_json::to_vec(&trace(7, "b_levels/level1.pak", 20_000, 0)).unwrap(), None)
        .await
        .err(400, "invalid-param");
    let mut bad = trace(1, "b_levels/level1.pak", 20_000, 0);
    bad["events"][0][1] = json!(9);
    send(&s, &t0, serde_json::to_vec(&bad).unwrap(), None).await.err(400, "invalid-param");
    send(&s, &t0, b"garbage".to_vec(), Some("zstd")).await.err(400, "invalid-param");
    send(&s, &t0, b"{}".to_vec(), Some("br")).await.err(415, "unsupported-media-type");
    send(&s, &t0, vec![b' '; 17 << 20], None).await.err(413, "payload-too-large");
    let bomb = zstd(&vec![b' '; 300 << 20]);
    assert!(bomb.len() < 16 << 20);
    send(&s, &t0, bomb, Some("zstd")).await.err(413, "payload-too-large");
    send(&s, "rs_unknown", b"{}".to_vec(), None).await.err(401, "unauthorized");
    let tr = s.be(&tok, Method::GET, "/be/v1/trainings/Game", None).await;
    assert_eq!(tr.ok()["training"]["nTraces"], 0);

    // Three players (plain, zstd, gzip), each once per session.
    let plays = [
        ("b_levels/level1.pak", 20_000, 0u64),
        ("b_levels/level2.pak", 30_000, 7),
        ("b_levels/level1.pak", 25_000, 13),
    ];
    for (k, (level, at, jitter)) in plays.iter().enumerate() {
        let (token, _) = session(&s, &key).await;
        let doc = serde_json::to_vec(&trace(1, level, *at, *jitter)).unwrap();
        let r = match k {
            0 => send(&s, &token, doc.clone(), None).await,
            1 => send(&s, &token, zstd(&doc), Some("zstd")).await,
            _ => send(&s, &token, gzip(&doc), Some("gzip")).await,
        };
        assert!(r.ok()["traceId"].as_str().unwrap().starts_with("tr"));
        send(&s, &token, doc, None).await.err(409, "item-exists");
    }
    // The third made mkseq run by itself; its deploy republishes build 1.
    let group = wait_kind(&s, &tok, "mkseq").await;
    assert!(group.iter().all(|t| t["status"] == "done"), "{group:?}");
    assert_eq!(group.len(), 2);
    let app = s.be(&tok, Method::GET, "/be/v1/apps/Game", None).await.ok()["app"].clone();
    assert_eq!(app["iCurBuild"], 1);
    let dxf2 = app["dxfName"].as_str().unwrap().to_string();
    assert_ne!(dxf2, dxf1, "a new image of the same build");
    let d2 = image_dir(&s, 1, &dxf2);
    let m2: Value =
        serde_json::from_slice(&std::fs::read(d2.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m2["sequence"], json!({"traces": 3, "generation": 1}));
    let p100 = m2["preload"]["100"].as_u64().expect("preload figures");
    // A held-out player: preload far below the untrained image's.
    let held_out = trace(1, "b_levels/level2.pak", 22_000, 3);
    let (before, after) =
        (preload(&image_dir(&s, 1, &dxf1), &held_out, B100), preload(&d2, &held_out, B100));
    assert!(after * 5 < before, "trained {after} vs untrained {before}");
    // `rockit play` (the launcher simulator) says the same of both images.
    let held_file = work.0.join("held_out.json");
    std::fs::write(&held_file, serde_json::to_vec(&held_out).unwrap()).unwrap();
    for (dir, want) in [(image_dir(&s, 1, &dxf1), before), (image_dir(&s, 1, &dxf2), after)] {
        let run = rockit_play(&dir, &held_file).await;
        assert!(run["preloadBytes"].as_u64().unwrap().abs_diff(want) <= 1, "{run} vs {want}");
        assert_eq!(run["verifiedBytes"], run["totalBytes"]);
    }
    assert!(after <= 1_100_000, "boot data first: {after}");
    assert!(p100 <= 1_100_000, "{p100}");
    // Same bytes, new order: unpacking still gives the build exactly.
    let out = work.0.join("out");
    unpack(&DirSource(d2.clone()), &out, None).unwrap();
    assert_eq!(read_tree(&out), read_tree(&dir1));
    let tr = s.be(&tok, Method::GET, "/be/v1/trainings/Game", None).await.ok()["training"].clone();
    assert_eq!(
        (
            tr["nTraces"].as_i64(),
            tr["nTracesSinceSequence"].as_i64(),
            tr["sequenceGeneration"].as_i64()
        ),
        (Some(3), Some(0), Some(1))
    );
    assert_eq!(tr["preload"]["100"], p100);
    assert!(tr["acceleration100"].as_f64().unwrap() > 5.0, "{tr}");
    assert!(tr["lastSequence"].is_string());
    // The session answer now points at the trained image.
    let r = s
        .req(
            Method::POST,
            "/client/v1/rte-sessions",
            &[("x-rockit-client-key", &key)],
            Some(json!({"orgName": "Play", "appName": "Game"})),
        )
        .await;
    assert_eq!(r.ok()["build"]["dxfName"], dxf2.as_str());

    // Processing again finds nothing better: a warning, and nothing is republished.
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/trigger",
            Some(json!({"type": "traces", "appName": "Game"})),
        )
        .await;
    let name = r.ok()["taskName"].as_str().unwrap().to_string();
    let t =
        s.be(&tok, Method::GET, &format!("/be/v1/tasks/{name}"), None).await.ok()["task"].clone();
    let g = wait_group(&s, &tok, t["taskGroup"].as_str().unwrap()).await;
    assert_eq!(g[0]["warning"]["code"], "no-improvement", "{g:?}");
    assert_eq!(g[1]["status"], "canceled");
    assert_eq!(
        s.be(&tok, Method::GET, "/be/v1/apps/Game", None).await.ok()["app"]["dxfName"],
        dxf2.as_str()
    );

    // Build 2: its first image is already trained (traces carried over by path).
    let (_, tar2) = make_sorted(&work.0, "v2", &game(2));
    let imp = upload(&s, &tok, "Game", "2.0", &tar2).await;
    let g = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(g.iter().all(|t| t["status"] == "done"), "{g:?}");
    assert_eq!(g[2]["result"]["traces"], 3);
    let dxf3 = s.be(&tok, Method::GET, "/be/v1/apps/Game", None).await.ok()["app"]["dxfName"]
        .as_str()
        .unwrap()
        .to_string();
    let d3 = image_dir(&s, 2, &dxf3);
    let m3: Value =
        serde_json::from_slice(&std::fs::read(d3.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m3["sequence"]["traces"], 3);
    assert!(m3["preload"]["100"].as_u64().unwrap() <= 1_100_000);
    let held_out2 = trace(2, "b_levels/level1.pak", 21_000, 5);
    assert!(preload(&d3, &held_out2, B100) <= 1_100_000);
});

// ---- trace bombs and the intake bound (issue 13 item 7) ----

/// The start of a plausible trace of app `Game` build 1, inside its `events` array.
const BOMB_HEAD: &[u8] = br#"{"format":"rockit-trace","version":1,"appName":"Game","buildId":1,"paths":["z_boot/game.exe"],"events":["#;

/// zstd at `level` of `head`, then `unit` repeated until at least `total` bytes, then
/// `tail`, compressed as it streams (the decoded document is never built here either).
fn zstd_bomb(level: i32, head: &[u8], unit: &[u8], total: usize, tail: &[u8]) -> Vec<u8> {
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), level).unwrap();
    write_bomb(&mut e, head, unit, total, tail);
    e.finish().unwrap()
}

fn gzip_bomb(head: &[u8], unit: &[u8], total: usize, tail: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    write_bomb(&mut e, head, unit, total, tail);
    e.finish().unwrap()
}

fn write_bomb(w: &mut impl Write, head: &[u8], unit: &[u8], total: usize, tail: &[u8]) {
    w.write_all(head).unwrap();
    let block = unit.repeat((1 << 20) / unit.len() + 1);
    let mut n = head.len();
    while n < total {
        w.write_all(&block).unwrap();
        n += block.len();
    }
    w.write_all(tail).unwrap();
}

/// A valid trace of `Game` build 1 with `n_paths` paths (`p/<i>`, padded to `path_len`
/// bytes) and `n_events` events, as JSON.
fn big_trace(n_paths: usize, path_len: usize, n_events: usize) -> Vec<u8> {
    let mut s = Vec::with_capacity(n_paths * (path_len + 3) + n_events * 12 + 256);
    s.extend_from_slice(
        br#"{"format":"rockit-trace","version":1,"appName":"Game","buildId":1,"paths":["#,
    );
    for i in 0..n_paths {
        if i > 0 {
            s.push(b',');
        }
        let p = format!("p/{i}");
        s.push(b'"');
        s.extend_from_slice(p.as_bytes());
        s.resize(s.len() + path_len.saturating_sub(p.len()), b'x');
        s.push(b'"');
    }
    s.extend_from_slice(br#"],"events":["#);
    for i in 0..n_events {
        if i > 0 {
            s.push(b',');
        }
        s.extend_from_slice(format!("[{},{},0,1]", i / 1000, i % n_paths.max(1)).as_bytes());
    }
    s.extend_from_slice(b"]}");
    s
}

/// An org `Play` with app `Game` whose build 1 is published, no automatic `mkseq`:
/// (access token, client key).
async fn published_game(s: &Srv) -> (String, String) {
    let (tok, _) = s.org_admin("Play").await;
    s.be(
        &tok,
        Method::POST,
        "/be/v1/deployments",
        Some(json!({"name": "local", "origin": {"type": "fs", "path": "site"}})),
    )
    .await
    .ok();
    let r = s
        .be(&tok, Method::POST, "/be/v1/apps", Some(json!({"name": "Game", "label": "Game"})))
        .await;
    let key = r.ok()["app"]["clientKey"].as_str().unwrap().to_string();
    let work = TempDir::new("bomb-game");
    let mut files = BTreeMap::new();
    files.insert("z_boot/game.exe".to_string(), noise(4, 60_000));
    files.insert("config/settings.ini".to_string(), b"[video]\n".to_vec());
    files.insert("bin/run.sh".to_string(), b"#!/bin/sh\n".to_vec());
    let (_, tar) = make_sorted(&work.0, "v1", &files);
    let imp = upload(s, &tok, "Game", "1.0", &tar).await;
    let g = wait_group(s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(g.iter().all(|t| t["status"] == "done"), "{g:?}");
    s.be(
        &tok,
        Method::PATCH,
        "/be/v1/trainings",
        Some(json!({"appName": "Game", "nTracesReliable": 100000})),
    )
    .await
    .ok();
    (tok, key)
}

/// Sends every body from its own session, all at once: the answers in order.
async fn send_all(s: &Srv, key: &str, bodies: &[(Vec<u8>, Option<&str>)]) -> Vec<Resp> {
    let mut tokens = Vec::new();
    for _ in bodies {
        tokens.push(session(s, key).await.0);
    }
    futures_join_all(
        bodies.iter().zip(&tokens).map(|((b, enc), t)| send(s, t, b.clone(), *enc)).collect(),
    )
    .await
}

/// Scrapes `/metrics` with the admin token; the value of sample `series` (exact text up
/// to the value), 0 when absent.
async fn metric(s: &Srv, series: &str) -> f64 {
    let r = s
        .http
        .get(format!("{}/metrics", s.base))
        .header("x-rockit-admin-token", &s.admin)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map_or(0.0, |v| v.parse().unwrap())
}

async fn n_traces(s: &Srv, tok: &str) -> i64 {
    s.be(tok, Method::GET, "/be/v1/trainings/Game", None).await.ok()["training"]["nTraces"]
        .as_i64()
        .unwrap()
}

/// Files below `dir` (0 when it is missing).
fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|rd| rd.count()).unwrap_or(0)
}

edge_test!(trace_bomb_storm_keeps_memory_bounded, |b| async move {
    let dir = TempDir::new("bombs");
    let data = dir.0.join("data");
    let db = crate::proc::child_database(b, &dir).await;
    // A real server process with the default intake settings, so its memory can be read.
    let p = crate::proc::spawn_env(&data, db.as_deref(), &[("EDGE_SESSION_RATE_PER_MINUTE", "0")]);
    let s = Srv::external(&p.base, b);
    let (tok, key) = published_game(&s).await;
    let start_kib = p.peak_rss_kib();

    // Each decodes past 256 MiB (a few KB to a few hundred KB as sent): 413.
    let over = 300 << 20;
    let spaces = zstd_bomb(19, BOMB_HEAD, b"                ", over, b"]}");
    let events = zstd_bomb(19, BOMB_HEAD, b"[0,0,0,1],", over, b"[0,0,0,1]]}");
    let spaces_gz = gzip_bomb(BOMB_HEAD, b"                ", over, b"]}");
    assert!(
        spaces.len() < 64 << 10 && events.len() < 64 << 10 && spaces_gz.len() < 1 << 20,
        "{} {} {}",
        spaces.len(),
        events.len(),
        spaces_gz.len()
    );
    // Each stays under 256 MiB decoded but breaks a limit on what is parsed: 400.
    let doc_head = br#"{"format":"rockit-trace","version":1,"appName":"Game","buildId":1,"paths":["a"],"events":[],"x":"#;
    let too_many_events = zstd_bomb(19, BOMB_HEAD, b"[0,0,0,1],", 3_000_000 * 10, b"[0,0,0,1]]}");
    let long_string =
        zstd_bomb(19, &[&doc_head[..], b"\""].concat(), b"abcdefgh", 200 << 20, b"\"}");
    let deep = zstd_bomb(19, doc_head, b"[[[[[[[[", 100 << 20, b"");
    let many_paths = zstd(&big_trace(1_000_001, 0, 1));
    let path_text = zstd(&big_trace(16_400, 4096, 1));
    let ultra_window = {
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
        e.window_log(27).unwrap();
        e.write_all(&serde_json::to_vec(&trace(1, "b_levels/level1.pak", 20_000, 0)).unwrap())
            .unwrap();
        e.finish().unwrap()
    };

    // First sixteen zstd bombs at once, then the other kinds at once (two waves keep the
    // last in line well inside the 30 s a trace may wait for its turn on a busy machine).
    let first: Vec<(Vec<u8>, Option<&str>, u16, &str)> = (0..16)
        .map(|k| {
            (
                if k % 2 == 0 { spaces.clone() } else { events.clone() },
                Some("zstd"),
                413,
                "at most 256 MiB decoded",
            )
        })
        .collect();
    let second: Vec<(Vec<u8>, Option<&str>, u16, &str)> = vec![
        (spaces_gz.clone(), Some("gzip"), 413, "at most 256 MiB decoded"),
        (spaces_gz, Some("gzip"), 413, "at most 256 MiB decoded"),
        (too_many_events, Some("zstd"), 400, "more than 2000000 events"),
        (long_string, Some("zstd"), 400, "a string longer than 1048576 bytes"),
        (deep, Some("zstd"), 400, "nested deeper than 64 levels"),
        (many_paths, Some("zstd"), 400, "more than 1000000 paths"),
        (path_text, Some("zstd"), 400, "more than 64 MiB"),
        (ultra_window, Some("zstd"), 400, "window over 8 MiB"),
    ];
    for (wave, storm) in [first, second].iter().enumerate() {
        let bodies: Vec<(Vec<u8>, Option<&str>)> =
            storm.iter().map(|(b, e, _, _)| (b.clone(), *e)).collect();
        let t0 = std::time::Instant::now();
        let answers = send_all(&s, &key, &bodies).await;
        let took = t0.elapsed();
        for ((_, enc, status, words), r) in storm.iter().zip(&answers) {
            let code = if *status == 413 { "payload-too-large" } else { "invalid-param" };
            let m = r.err(*status, code)["message"].as_str().unwrap().to_string();
            assert!(m.contains(words), "{enc:?}: {m}");
        }
        let peak = p.peak_rss_kib();
        eprintln!(
            "trace bombs, wave {wave}: {} at once in {took:?}; peak RSS {} MiB (before {} MiB)",
            storm.len(),
            peak >> 10,
            start_kib >> 10
        );
        assert!(peak < 512 << 10, "peak RSS {} MiB", peak >> 10);
    }
    assert_eq!(n_traces(&s, &tok).await, 0, "nothing stored");

    // Valid traces that fill the parsed structure, at once: the largest the limits let
    // through (1,000,000 paths, 2,000,000 events; about 175 MiB parsed) and 2,000,000 small
    // events. Both taken, memory still bounded.
    let biggest = [zstd(&big_trace(1_000_000, 60, 2_000_000)), zstd(&big_trace(1, 10, 2_000_000))];
    let answers = send_all(
        &s,
        &key,
        &[(biggest[0].clone(), Some("zstd")), (biggest[1].clone(), Some("zstd"))],
    )
    .await;
    for r in &answers {
        assert!(r.ok()["traceId"].as_str().unwrap().starts_with("tr"));
    }
    let peak = p.peak_rss_kib();
    eprintln!("two large valid traces at once: peak RSS {} MiB", peak >> 10);
    assert!(peak < 512 << 10, "peak RSS {} MiB", peak >> 10);

    // Healthy afterwards: an ordinary trace is taken at once, and no spool file is left.
    let (t, _) = session(&s, &key).await;
    let doc = serde_json::to_vec(&trace(1, "b_levels/level1.pak", 20_000, 0)).unwrap();
    assert!(send(&s, &t, zstd(&doc), Some("zstd")).await.ok()["traceId"].is_string());
    assert_eq!(n_traces(&s, &tok).await, 3);
    assert_eq!(files_in(&data.join("tmp")), 0);
});

edge_test!(trace_intake_queues_a_burst, |b| async move {
    // One permit: twenty traces at once queue for it, none is refused.
    let s = Srv::start_with(b, |c| {
        c.allow_private_sources = true;
        c.session_rate_per_minute = 0;
        c.trace_intake_concurrency = 1;
    })
    .await;
    let (tok, key) = published_game(&s).await;
    let small = serde_json::to_vec(&trace(1, "b_levels/level1.pak", 20_000, 0)).unwrap();
    // About 10 MB as sent: spooled to a file, and long enough to parse that the others wait.
    let large = big_trace(50, 20, 900_000);
    assert!(large.len() > 8 << 20 && large.len() < 16 << 20, "{}", large.len());
    let mut bodies = Vec::new();
    for k in 0..20 {
        bodies.push(match k % 4 {
            0 => (small.clone(), None),
            1 => (zstd(&small), Some("zstd")),
            2 => (gzip(&small), Some("gzip")),
            _ => (large.clone(), None),
        });
    }
    let answers = send_all(&s, &key, &bodies).await;
    for r in &answers {
        assert!(r.ok()["traceId"].as_str().unwrap().starts_with("tr"));
    }
    assert_eq!(n_traces(&s, &tok).await, 20);
    assert!(
        metric(&s, "edge_trace_intake_waits_total").await >= 1.0,
        "nobody waited for the permit"
    );
    assert_eq!(metric(&s, "edge_trace_intake_waiting").await, 0.0);
    assert_eq!(metric(&s, "edge_traces_refused_total{reason=\"busy\"}").await, 0.0);
    assert_eq!(files_in(&s.data_dir().join("tmp")), 0, "spool files are gone");
    // Refusals are counted by reason.
    let (t, _) = session(&s, &key).await;
    send(&s, &t, b"{not json".to_vec(), None).await.err(400, "invalid-param");
    send(&s, &t, zstd(&vec![b' '; 300 << 20]), Some("zstd")).await.err(413, "payload-too-large");
    assert_eq!(metric(&s, "edge_traces_refused_total{reason=\"invalid\"}").await, 1.0);
    assert_eq!(metric(&s, "edge_traces_refused_total{reason=\"too_large\"}").await, 1.0);
});

#[test]
fn trace_intake_concurrency_setting() {
    let vars = |v: &str| vec![("EDGE_TRACE_INTAKE_CONCURRENCY".to_string(), v.to_string())];
    assert_eq!(edge_server::config::Config::default().trace_intake_concurrency, 2);
    let c = edge_server::config::Config::load(None, vars("5")).unwrap();
    assert_eq!(c.trace_intake_concurrency, 5);
    let c = edge_server::config::Config::load(None, vars("0")).unwrap();
    assert!(c.validate().unwrap_err().contains("trace_intake_concurrency must be at least 1"));
    assert!(edge_server::config::Config::load(None, vars("two")).is_err());
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config.example.toml"))
            .unwrap();
    assert!(example.contains("\ntrace_intake_concurrency = 2\n"));
}
