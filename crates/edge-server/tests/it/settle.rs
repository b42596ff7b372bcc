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

edge_test!(settled_chunks_make_the_next_image_smaller, |b| async move {
    let s = Srv::start_with(b, |c| {
        c.allow_private_sources = true;
        c.settle_level = 19;
        // The suite keeps the machine busy: settle whatever the load.
        c.settle_idle_percent = 0;
    })
    .await;
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
    let (dir1, tar1) = make_build(&work.0, "v1", &v1);
    let imp = upload(&s, &tok, "Game", "1", &tar1).await;
    let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(tasks.iter().all(|t| t["status"] == "done"), "{tasks:?}");

    // Each ended task wakes the settling thread: wait until its pass has looked at every
    // chunk and stored some smaller (polls, not a time).
    let mut m = String::new();
    for _ in 0..3000 {
        m = scrape(&s).await;
        if metric(&m, "edge_settle_chunks_total", &[("outcome", "smaller")]) > 0.0
            && metric(&m, "edge_settle_pending_chunks", &[]) == 0.0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let smaller = metric(&m, "edge_settle_chunks_total", &[("outcome", "smaller")]);
    let saved = metric(&m, "edge_settle_saved_bytes_total", &[]) as u64;
    assert!(smaller > 0.0 && saved > 0, "{m}");
    assert_eq!(metric(&m, "edge_settle_chunks_total", &[("outcome", "failed")]), 0.0, "{m}");

    // Build 2 shares every chunk of build 1 and adds a file.
    let mut v2 = v1.clone();
    v2.insert("data/notes.txt".to_string(), prose(3, 100_000));
    let (dir2, tar2) = make_build(&work.0, "v2", &v2);
    let imp = upload(&s, &tok, "Game", "2", &tar2).await;
    let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(tasks.iter().all(|t| t["status"] == "done"), "{tasks:?}");
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
});
