//! Progress that tells the truth while a step runs: a real import whose `mkdxf` and `mkpat`
//! take a while, its tasks polled as fast as they answer. `mkdxf` counts the bytes of its
//! packs and names the pack it writes; `mkpat` goes from 0 to 1 once over all the older
//! builds it patches from and names the one it patches from. Orders and counts, never times:
//! the server writes progress at most every `progress_interval_ms` (10 ms here, so a step
//! of a few tenths of a second shows it moving; the default is 500 ms).

use crate::common::*;
use crate::delivery::wait_group;
use crate::edge_test;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Incompressible bytes, eight at a time (the test binary is not optimised, and a build
/// here is 160 MiB).
fn random(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// The packs of build 1: incompressible "assets" (the chunk store keeps them as they are,
/// so ingest is quick, and the image and patch writers have bytes to go through).
fn assets() -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    m.insert("data/world.pak".into(), random(21, 64 << 20));
    m.insert("data/textures.pak".into(), random(22, 64 << 20));
    m.insert("data/audio.pak".into(), random(23, 32 << 20));
    m
}

/// A ustar archive of `files` (regular files 0644, their directories 0755) made in memory:
/// the test writes nothing to disk besides what the server does, since a busy disk delays
/// the database writes it watches.
fn tar_of(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    fn header(path: &str, mode: &str, size: usize, kind: u8) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..path.len()].copy_from_slice(path.as_bytes());
        h[100..107].copy_from_slice(mode.as_bytes());
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[148..156].copy_from_slice(b"        ");
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }
    let mut out = Vec::with_capacity(files.values().map(|d| d.len() + 1024).sum::<usize>());
    let mut dirs = std::collections::BTreeSet::new();
    for (path, data) in files {
        if let Some((dir, _)) = path.rsplit_once('/') {
            if dirs.insert(dir.to_string()) {
                out.extend_from_slice(&header(&format!("{dir}/"), "0000755", 0, b'5'));
            }
        }
        out.extend_from_slice(&header(path, "0000644", data.len(), b'0'));
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Imports `files` as build `name` of app `Big` through an upload URL; the import answer.
async fn import(s: &Srv, tok: &str, name: &str, files: &BTreeMap<String, Vec<u8>>) -> Value {
    let body = json!({"appName": "Big", "buildName": name});
    let imp = s.be(tok, Method::POST, "/be/v1/builds", Some(body)).await.ok().clone();
    let url = imp["uploadUrl"].as_str().unwrap();
    let r = s.http.put(url).body(tar_of(files)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    imp
}

/// Flips a byte every 4 MiB of `f`: edits a patch must diff, scattered through the file.
fn edit(files: &mut BTreeMap<String, Vec<u8>>, f: &str, salt: u8) {
    let data = files.get_mut(f).unwrap();
    for at in (1 << 20..data.len()).step_by(4 << 20) {
        data[at] ^= salt;
    }
}

/// What a task said while it ran: (progress, progressNote) of every answer with status
/// `running`, in the order seen, and the task as it ended.
async fn observe(s: &Srv, tok: &str, name: &str) -> (Vec<(f64, Option<String>)>, Value) {
    let mut seen = Vec::new();
    // Bounded by polls, not by time; each answer takes a few milliseconds.
    for _ in 0..200_000 {
        let t = s.be(tok, Method::GET, &format!("/be/v1/tasks/{name}"), None).await.ok()["task"]
            .clone();
        match t["status"].as_str().unwrap() {
            "submitted" => {}
            "running" => seen.push((
                t["progress"].as_f64().unwrap(),
                t["progressNote"].as_str().map(str::to_string),
            )),
            _ => return (seen, t),
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("task {name} did not end");
}

/// The progress values strictly between 0 and 1, checked to never go back; how many
/// distinct ones there were.
fn moving(what: &str, seen: &[(f64, Option<String>)]) -> usize {
    let inside: Vec<f64> = seen.iter().map(|(p, _)| *p).filter(|p| *p > 0.0 && *p < 1.0).collect();
    assert!(inside.windows(2).all(|w| w[0] <= w[1]), "{what} went back: {seen:?}");
    let mut distinct = inside.clone();
    distinct.dedup();
    distinct.len()
}

/// `pack K of N` of a note `writing image: pack K of N`.
fn pack_of(note: &str) -> Option<(u64, u64)> {
    let rest = note.strip_prefix("writing image: pack ")?;
    let (k, n) = rest.split_once(" of ")?;
    Some((k.parse().ok()?, n.parse().ok()?))
}

/// The two runs of the test below (SQLite, PostgreSQL) go one after the other: each keeps
/// both cores and the disk busy, which would starve the other's database writes.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

edge_test!(mkdxf_and_mkpat_progress_moves_and_says_what_it_does, |b| async move {
    let _alone = ONE_AT_A_TIME.lock().await;
    let s = Srv::start_with(b, |c| {
        c.progress_interval_ms = 10;
        // Packs of 8 MiB: an image of a dozen packs, each named as it is written.
        c.pack_limit_bytes = 8 << 20;
        c.chunk_avg_bytes = 64 << 10;
    })
    .await;
    let (tok, _) = s.org_admin("ProgCo").await;
    s.be(
        &tok,
        Method::POST,
        "/be/v1/apps",
        Some(json!({"name": "Big", "label": "Big", "maxBuilds": 3})),
    )
    .await
    .ok();
    // Builds 2 and 3 each change the executable and edit one pack (made in place, one
    // build in memory at a time).
    let mut files = assets();
    for (name, exe, pack) in [("1", 31, ""), ("2", 32, "data/world.pak")] {
        files.insert("bin/game.exe".into(), random(exe, 1 << 20));
        if !pack.is_empty() {
            edit(&mut files, pack, 1);
        }
        let imp = import(&s, &tok, name, &files).await;
        let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
        assert!(tasks.iter().all(|t| t["status"] == "done"), "{tasks:?}");
    }
    files.insert("bin/game.exe".into(), random(33, 1 << 20));
    edit(&mut files, "data/textures.pak", 2);
    let imp = import(&s, &tok, "3", &files).await;
    drop(files);
    let group = imp["taskGroup"].as_str().unwrap();
    let r = s.be(&tok, Method::GET, &format!("/be/v1/tasks?taskGroup={group}"), None).await;
    let name_of = |kind: &str| {
        r.ok()["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == kind)
            .map(|t| t["taskName"].as_str().unwrap().to_string())
            .unwrap()
    };
    let (dxf_name, pat_name) = (name_of("mkdxf"), name_of("mkpat"));

    // mkdxf: the bytes of the packs written, the pack named.
    let (seen, ended) = observe(&s, &tok, &dxf_name).await;
    assert_eq!(ended["status"], "done", "{ended}");
    assert_eq!((ended["progress"].as_f64(), &ended["progressNote"]), (Some(1.0), &Value::Null));
    let distinct = moving("mkdxf", &seen);
    assert!(distinct >= 3, "mkdxf showed {distinct} values between 0 and 1: {seen:?}");
    let packs: Vec<(u64, u64)> = seen.iter().filter_map(|(_, n)| pack_of(n.as_deref()?)).collect();
    assert!(packs.len() >= 3, "{seen:?}");
    assert!(packs.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 == w[1].1), "{seen:?}");
    assert!(packs.iter().all(|(k, n)| *n >= 10 && (1..=*n).contains(k)), "{seen:?}");
    assert!(packs.last().unwrap().0 > packs[0].0, "the pack named moves: {seen:?}");

    // mkpat: one run from 0 to 1 over both older builds, newest first, each named.
    let (seen, ended) = observe(&s, &tok, &pat_name).await;
    assert_eq!(ended["status"], "done", "{ended}");
    assert_eq!(ended["result"]["patches"].as_array().unwrap().len(), 2, "{ended}");
    assert_eq!(ended["progressNote"], Value::Null);
    let distinct = moving("mkpat", &seen);
    assert!(distinct >= 3, "mkpat showed {distinct} values between 0 and 1: {seen:?}");
    let (first, second) = ("patching from build 2 (1 of 2)", "patching from build 1 (2 of 2)");
    let notes: Vec<&str> = seen.iter().filter_map(|(_, n)| n.as_deref()).collect();
    assert!(notes.iter().all(|n| [first, second].contains(n)), "{notes:?}");
    assert!(notes.contains(&second), "the note names the older build: {notes:?}");
    let at = |note: &'static str| seen.iter().filter(move |(_, n)| n.as_deref() == Some(note));
    let switch = notes.iter().position(|n| *n == second).unwrap();
    assert!(notes[switch..].iter().all(|n| *n == second), "{notes:?}");
    // The first patch is the first half of the run; the second goes on from there.
    assert!(at(first).all(|(p, _)| *p <= 0.5), "{seen:?}");
    assert!(at(second).any(|(p, _)| *p > 0.5 && *p < 1.0), "{seen:?}");
    wait_group(&s, &tok, group).await;
});
