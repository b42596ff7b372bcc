//! Launcher updates: a cache holding build 1 completely moves to build 2 by the cheaper of
//! the chunks it lacks and the patch the Edge published (`rockit install` on the same cache,
//! through a CDN that logs every request), and the result is build 2 exactly.

use crate::common::*;
use crate::delivery::{upload, wait_group};
use crate::edge_test;
use crate::game::*;
use crate::launcher::{blocking, image_rows, Cdn};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const ROCKIT: &str = env!("CARGO_BIN_EXE_rockit");

/// Build 1: an executable, a config and a 3 MB pack of noise (which no compressor shrinks).
fn build1() -> BTreeMap<String, Vec<u8>> {
    let mut g = BTreeMap::new();
    g.insert("bin/game.exe".into(), noise(21, 300_000));
    g.insert("config/game.ini".into(), b"[video]\nwidth=1280\n".to_vec());
    g.insert("data/big.pak".into(), noise(22, 3_000_000));
    g
}

/// Build 2: one byte of the pack changed every 32 KiB — every chunk of it differs, but the
/// patch is a few hundred bytes.
fn build2() -> BTreeMap<String, Vec<u8>> {
    let mut g = build1();
    let big = g.get_mut("data/big.pak").unwrap();
    for at in (0..big.len()).step_by(32 << 10) {
        big[at] ^= 0x5a;
    }
    g.insert("config/game.ini".into(), b"[video]\nwidth=1920\n".to_vec());
    g
}

/// Build 3: build 2 and a new pack of noise — the patch carries it whole, as the chunks do.
fn build3() -> BTreeMap<String, Vec<u8>> {
    let mut g = build2();
    g.insert("data/new.pak".into(), noise(23, 1_500_000));
    g
}

/// `rockit install --json … <dir>` on `cache`: its JSON line.
fn install(args: &[String], cache: &Path, dir: &Path) -> Value {
    let o = Command::new(ROCKIT)
        .arg("install")
        .args(args)
        .args(["--cache", cache.to_str().unwrap()])
        .arg(dir)
        .env_remove("ROCKIT_SERVER")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Total size of the files of a directory.
fn dir_bytes(d: &Path) -> u64 {
    std::fs::read_dir(d).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

edge_test!(a_cached_build_moves_to_the_next_by_the_cheaper_of_patch_and_chunks, |b| async move {
    let s = Srv::start_with(b, |c| {
        c.allow_private_sources = true;
        c.chunk_avg_bytes = 64 << 10;
    })
    .await;
    let work = TempDir::new("updates");
    let (tok, _) = s.org_admin("Upd").await;
    let site = s.data_dir().join("origins/site");
    let cdn = Cdn::serve(&site);
    let dep =
        json!({"name": "cdn", "origin": {"type": "fs", "path": "site"}, "publicUrl": cdn.url});
    s.be(&tok, Method::POST, "/be/v1/deployments", Some(dep)).await.ok();
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/apps",
            Some(json!({"name": "Game", "label": "Game", "deployments": ["cdn"], "maxBuilds": 4})),
        )
        .await;
    let key = r.ok()["app"]["clientKey"].as_str().unwrap().to_string();
    let args: Vec<String> =
        ["--json", "--server", &s.base, "--org", "Upd", "--app", "Game", "--client-key", &key]
            .iter()
            .map(|x| x.to_string())
            .collect();
    let cache = work.0.join("cache");
    let publish = async |n: u32, files: BTreeMap<String, Vec<u8>>| -> (PathBuf, String) {
        let base = work.0.clone();
        let (dir, tarball) = blocking(move || {
            let dir = base.join(format!("v{n}"));
            write_tree(&dir, &files);
            let t = base.join(format!("v{n}.tar"));
            tar(&dir, &t);
            (dir, t)
        })
        .await;
        let imp = upload(&s, &tok, "Game", &format!("{n}.0"), &tarball).await;
        let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
        assert!(tasks.iter().all(|t| t["status"] == "done"), "{tasks:?}");
        let dxf = s.be(&tok, Method::GET, "/be/v1/apps/Game", None).await.ok()["app"]["dxfName"]
            .as_str()
            .unwrap()
            .to_string();
        (dir, dxf)
    };

    // Build 1, installed: the cache holds it completely.
    let (v1, _) = publish(1, build1()).await;
    let (a, c, out) = (args.clone(), cache.clone(), work.0.join("i1"));
    let first = blocking(move || install(&a, &c, &out)).await;
    assert_eq!(read_tree(&work.0.join("i1")), read_tree(&v1));
    assert!(first["downloadedBytes"].as_u64().unwrap() > 3_000_000, "{first}");
    cdn.take_hits();

    // Build 2: the patch is far smaller than the chunks the cache lacks.
    let (v2, dxf2) = publish(2, build2()).await;
    let img2 = site.join(format!("dxf/Upd/Game/0002/{dxf2}"));
    let pat21 = site.join("pat/Upd/Game/0002/0001");
    let (rows, file_chunks) = image_rows(&img2);
    let missing: u64 = file_chunks["data/big.pak"].iter().map(|&c| rows[c].3).sum::<u64>();
    let (patch, meta2) = (dir_bytes(&pat21), dir_bytes(&img2) - dir_pack_bytes(&img2));
    assert!(patch * 20 < missing, "the pair is one a patch wins: patch {patch}, chunks {missing}");
    let (a, c, out) = (args.clone(), cache.clone(), work.0.join("i2"));
    let second = blocking(move || install(&a, &c, &out)).await;
    assert_eq!(read_tree(&work.0.join("i2")), read_tree(&v2), "build 2 exactly");
    assert_eq!(second["update"]["method"], "patch", "{second}");
    assert_eq!(second["update"]["fromBuild"], 1);
    let got = second["downloadedBytes"].as_u64().unwrap();
    assert!(
        got <= patch + meta2,
        "downloaded {got}: more than the patch {patch} and the image's metadata {meta2}"
    );
    let hits = cdn.take_hits();
    assert!(hits.iter().any(|h| h.file.starts_with("pat/Upd/Game/0002/0001/")), "{hits:?}");
    assert!(
        !hits.iter().any(|h| h.file.contains("/pack-") && h.file.starts_with("dxf/")),
        "no image pack was read: {hits:?}"
    );

    // Build 3: a new file of noise costs the same either way; whichever is chosen, no more
    // is downloaded than the cheaper of the two.
    let (v3, dxf3) = publish(3, build3()).await;
    let img3 = site.join(format!("dxf/Upd/Game/0003/{dxf3}"));
    let (rows3, files3) = image_rows(&img3);
    let cached: HashSet<&String> = rows.iter().map(|r| &r.0).collect();
    let mut seen = HashSet::new();
    let missing3: u64 = files3
        .values()
        .flatten()
        .filter(|&&c| !cached.contains(&rows3[c].0) && seen.insert(rows3[c].0.clone()))
        .map(|&c| rows3[c].3)
        .sum();
    let patch3 = dir_bytes(&site.join("pat/Upd/Game/0003/0002"));
    // The patch's patch.json is fetched to weigh it, whichever wins.
    let meta3 = dir_bytes(&img3) - dir_pack_bytes(&img3)
        + std::fs::metadata(site.join("pat/Upd/Game/0003/0002/patch.json")).unwrap().len();
    let (a, c, out) = (args.clone(), cache.clone(), work.0.join("i3"));
    let third = blocking(move || install(&a, &c, &out)).await;
    assert_eq!(read_tree(&work.0.join("i3")), read_tree(&v3), "build 3 exactly");
    assert_eq!(third["update"]["fromBuild"], 2, "{third}");
    let got = third["downloadedBytes"].as_u64().unwrap();
    assert!(
        got <= missing3.min(patch3) + meta3,
        "downloaded {got}; chunks {missing3}, patch {patch3}: {third}"
    );
});

/// Bytes of an image's packs.
fn dir_pack_bytes(d: &Path) -> u64 {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("pack-"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}
