//! Settling: once an import is published, the server compresses the app's stored chunks
//! again at `settle_level` while the machine has time, and the next image carries the
//! smaller chunks. The published image stays as it was, and both unpack byte for byte.

use crate::common::*;
use crate::delivery::{upload, wait_group};
use crate::edge_test;
use crate::game::{make_build, noise, read_tree};
use crate::ops::{metric, scrape};
use edge_engine::reader::{unpack, DirSource};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Text with some variety (words and numbers drawn at random): level 3 leaves room that
/// level 19 takes.
fn prose(seed: u64, n: usize) -> Vec<u8> {
    let words =
        ["castle ", "dragon ", "sword ", "river ", "forest ", "potion ", "shield ", "moat "];
    let mut x = seed.wrapping_mul(6364136223846793005) | 1;
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[(x % 8) as usize].as_bytes());
        out.extend_from_slice(format!("{} ", (x >> 20) % 5000).as_bytes());
    }
    out.truncate(n);
    out
}

/// The published image of build `id`: its directory on the `fs` origin and its index's
/// chunk rows as hash → (stored size, compressed).
fn image(s: &Srv, app: &Value, id: u64) -> (PathBuf, HashMap<String, (u64, bool)>) {
    let b = app["builds"].as_array().unwrap().iter().find(|b| b["buildId"] == id).unwrap();
    let dir = s.data_dir().join(format!(
        "origins/site/cdn/dxf/Settlers/Game/{id:04}/{}",
        b["dxfName"].as_str().unwrap()
    ));
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let rows = index["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), (r[2].as_u64().unwrap(), r[3] == 1)))
        .collect();
    (dir, rows)
}

fn pack_bytes(dir: &Path) -> u64 {
    let m: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    m["packs"].as_array().unwrap().iter().map(|p| p["sizeBytes"].as_u64().unwrap()).sum()
}

/// The chunk files in the server's stores.
fn stored_chunks(s: &Srv) -> usize {
    let mut n = 0;
    for app in std::fs::read_dir(s.data_dir().join("chunks")).unwrap().flatten() {
        for d in std::fs::read_dir(app.path()).unwrap().flatten().filter(|d| d.path().is_dir()) {
            n += std::fs::read_dir(d.path())
                .unwrap()
                .flatten()
                .filter(|f| !f.file_name().to_string_lossy().starts_with('.'))
                .count();
        }
    }
    n
}

/// Waits until the settling thread has looked at `n` chunks in all (its three outcomes)
/// and its pass is over; the metrics then.
async fn settled(s: &Srv, n: usize) -> String {
    for _ in 0..3000 {
        let m = scrape(s).await;
        let seen = metric(&m, "edge_settle_chunks_total", &[]) as usize;
        assert!(seen <= n, "{seen} chunks settled, of {n}: {m}");
        if seen == n && metric(&m, "edge_settle_pending_chunks", &[]) == 0.0 {
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("settling did not get to {n} chunks");
}

/// Makes build `name` of `files` under `work`, imports it into app `Game` and waits until
/// it is published; the build's directory.
async fn publish(
    s: &Srv,
    tok: &str,
    work: &Path,
    name: &str,
    files: &BTreeMap<String, Vec<u8>>,
) -> PathBuf {
    let (dir, tar) = make_build(work, name, files);
    let imp = upload(s, tok, "Game", name, &tar).await;
    let tasks = wait_group(s, tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(tasks.iter().all(|t| t["status"] == "done"), "{tasks:?}");
    dir
}

edge_test!(settled_chunks_make_the_next_image_smaller, |b| async move {
    let dir = TempDir::new("settle-srv");
    let mut cfg = test_config(b, &dir).await;
    cfg.allow_private_sources = true;
    cfg.settle_level = 19;
    // The suite keeps the machine busy: settle whatever the load.
    cfg.settle_idle_percent = 0;
    let mut s = Srv::start_cfg(b, cfg.clone(), dir).await;
    let (tok, _) = s.org_admin("Settlers").await;
    let dep =
        json!({"name": "local", "originPrefix": "cdn", "origin": {"type": "fs", "path": "site"}});
    s.be(&tok, Method::POST, "/be/v1/deployments", Some(dep)).await.ok();
    let app = json!({"name": "Game", "label": "Game", "maxBuilds": 3});
    s.be(&tok, Method::POST, "/be/v1/apps", Some(app)).await.ok();
    let work = TempDir::new("settle");
    let mut v1 = BTreeMap::new();
    v1.insert("data/script.txt".to_string(), prose(1, 3 << 20));
    v1.insert("bin/game.exe".to_string(), noise(2, 600_000));
    let dir1 = publish(&s, &tok, &work.0, "1", &v1).await;

    // The publish wakes the settling thread: wait until it has looked at every chunk.
    let m = settled(&s, stored_chunks(&s)).await;
    let smaller = metric(&m, "edge_settle_chunks_total", &[("outcome", "smaller")]);
    let saved = metric(&m, "edge_settle_saved_bytes_total", &[]) as u64;
    assert!(smaller > 0.0 && saved > 0, "{m}");
    assert_eq!(metric(&m, "edge_settle_chunks_total", &[("outcome", "failed")]), 0.0, "{m}");

    // Build 2 shares every chunk of build 1 and adds a file.
    let mut v2 = v1.clone();
    v2.insert("data/notes.txt".to_string(), prose(3, 100_000));
    let dir2 = publish(&s, &tok, &work.0, "2", &v2).await;
    let app = s.be(&tok, Method::GET, "/be/v1/apps/Game", None).await.ok()["app"].clone();
    let (img1, rows1) = image(&s, &app, 1);
    let (img2, rows2) = image(&s, &app, 2);
    // The shared chunks are exactly the saved bytes smaller in the new image, and no
    // chunk grew; the raw ones (the executable) are as they were.
    let mut shrunk = 0;
    for (h, (stored1, z1)) in &rows1 {
        let (stored2, z2) = rows2[h];
        assert!(stored2 <= *stored1, "chunk {h} grew: {stored1} → {stored2}");
        assert_eq!(z1, &z2, "chunk {h}");
        shrunk += stored1 - stored2;
    }
    assert_eq!(shrunk, saved, "the new image's shared chunks");
    assert!(pack_bytes(&img2) < pack_bytes(&img1) + 100_000 - saved / 2);
    // Both images unpack byte for byte: build 1's was published before settling and is
    // untouched; build 2's index names the settled chunks' sizes.
    for (img, dir, tag) in [(&img1, &dir1, "u1"), (&img2, &dir2, "u2")] {
        let out = work.0.join(tag);
        unpack(&DirSource(img.clone()), &out, None).unwrap();
        assert_eq!(read_tree(&out), read_tree(dir));
    }

    // A restart goes on where settling stopped: once build 2's new chunks are settled,
    // the next process looks only at build 3's.
    let before = stored_chunks(&s);
    settled(&s, before).await;
    s.stop().await;
    let s2 = Srv::start_cfg(b, cfg, TempDir(s.dir.0.clone())).await;
    std::mem::forget(s);
    let mut v3 = v2.clone();
    v3.insert("data/more.txt".to_string(), prose(4, 200_000));
    publish(&s2, &tok, &work.0, "3", &v3).await;
    let new = stored_chunks(&s2) - before;
    assert!(new >= 1);
    let m = settled(&s2, new).await;
    assert_eq!(metric(&m, "edge_settle_chunks_total", &[]) as usize, new, "{m}");
});
