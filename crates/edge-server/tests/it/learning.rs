//! The learning loop on real reads: a scripted "game" (a Python program that boots like one —
//! executable, config, a pause to initialize, then one level's pack) is played with the real
//! `rockit run` (FUSE mount) on a bandwidth-capped link. Its reads become the sessions'
//! traces; with `nTracesReliable` traces in, `mkseq` runs by itself and republishes the build
//! in the learned order; a new capped play of the trained image loads the level sooner than
//! the first play of the untrained one. The test asserts that order, not a time.

use crate::common::*;
use crate::delivery::{upload, wait_group};
use crate::edge_test;
use crate::game::*;
use crate::launcher::{blocking, rockit_run};
use crate::traces::wait_kind;
use reqwest::Method;
use std::collections::BTreeMap;
use std::path::Path;

/// Boots like a game: reads its executable and config, initializes for a while, then reads
/// the level named by its first argument in 64 KiB reads, and writes the seconds since
/// `rockit run` was started (its second argument, a UNIX time) to the file named third.
const GAME: &str = r#"
import sys, time
def read(p):
    with open(p, "rb") as f:
        while f.read(65536):
            pass
read("bin/game.exe")
read("config/boot.cfg")
time.sleep(1.5)
read("data/levels/" + sys.argv[1] + ".pak")
with open(sys.argv[3], "w") as out:
    out.write(str(time.time() - float(sys.argv[2])))
"#;

/// The game's files: a boot set, a movie nobody plays (first in the archive, so an
/// untrained image streams it first), and three levels.
fn files() -> BTreeMap<String, Vec<u8>> {
    let mut g = BTreeMap::new();
    g.insert("bin/game.exe".into(), noise(1, 600_000));
    g.insert("config/boot.cfg".into(), noise(2, 20_000));
    g.insert("data/a_movies/intro.bik".into(), noise(3, 4_000_000));
    for (k, name) in ["level1", "level2", "level3"].iter().enumerate() {
        g.insert(format!("data/levels/{name}.pak"), noise(10 + k as u64, 4_000_000));
    }
    g
}

/// Plays `level` with `rockit run` (a fresh cache each time, so nothing is cached); returns
/// the seconds from start to the level loaded.
async fn play(args: &[String], cache: &Path, level: &str, bandwidth: Option<&str>) -> f64 {
    let mut a: Vec<String> = args.to_vec();
    a.extend(["--cache".to_string(), cache.to_str().unwrap().to_string()]);
    if let Some(b) = bandwidth {
        a.extend(["--bandwidth".to_string(), b.to_string()]);
    }
    let out = cache.with_extension("loaded");
    let (level, out2) = (level.to_string(), out.clone());
    let (code, _, stderr, _) = blocking(move || {
        let start = format!(
            "{:.3}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
        );
        rockit_run(&a, &["python3", "-c", GAME, &level, &start, out2.to_str().unwrap()])
    })
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    std::fs::read_to_string(&out).unwrap().trim().parse().unwrap()
}

edge_test!(mounted_plays_train_an_image_that_loads_sooner, |b| async move {
    let s = Srv::start_with(b, |c| {
        c.allow_private_sources = true;
        c.chunk_avg_bytes = 64 << 10;
        c.pack_limit_bytes = 2 << 20;
    })
    .await;
    let work = TempDir::new("learning");
    let (tok, _) = s.org_admin("Learn").await;
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/apps",
            Some(serde_json::json!({"name": "Game", "label": "Game"})),
        )
        .await;
    let key = r.ok()["app"]["clientKey"].as_str().unwrap().to_string();
    let base = work.0.clone();
    let tarball = blocking(move || {
        let dir = base.join("game");
        write_tree(&dir, &files());
        let t = base.join("game.tar");
        tar(&dir, &t);
        t
    })
    .await;
    let imp = upload(&s, &tok, "Game", "1.0", &tarball).await;
    assert!(wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap())
        .await
        .iter()
        .all(|t| t["status"] == "done"));
    let untrained = s.be(&tok, Method::GET, "/be/v1/apps/Game", None).await.ok()["app"]["dxfName"]
        .as_str()
        .unwrap()
        .to_string();
    s.be(
        &tok,
        Method::PATCH,
        "/be/v1/trainings",
        Some(serde_json::json!({"appName": "Game", "nTracesReliable": 10})),
    )
    .await
    .ok();
    let args: Vec<String> =
        ["--json", "--server", &s.base, "--org", "Learn", "--app", "Game", "--client-key", &key]
            .iter()
            .map(|x| x.to_string())
            .collect();

    // Ten players, their reads traced: the first on a 10 Mbit/s link (the measurement of
    // the untrained image), the others uncapped; one of them plays level 1, the rest level 2.
    // The preload covers the 90th percentile of players, so with ten traces it is made for
    // level 2's players (with three, the one level-1 player would be the percentile).
    let before = play(&args, &work.0.join("c1"), "level2", Some("10Mbit")).await;
    for k in 2..=10 {
        let level = if k == 5 { "level1" } else { "level2" };
        play(&args, &work.0.join(format!("c{k}")), level, None).await;
    }

    // The tenth trace made mkseq run by itself; its deploy republished the build.
    let group = wait_kind(&s, &tok, "mkseq").await;
    assert!(group.iter().all(|t| t["status"] == "done"), "{group:?}");
    let trained = s.be(&tok, Method::GET, "/be/v1/apps/Game", None).await.ok()["app"]["dxfName"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(trained, untrained, "a new image of the same build");
    let tr = s.be(&tok, Method::GET, "/be/v1/trainings/Game", None).await.ok()["training"].clone();
    assert_eq!(tr["nTraces"], 10, "{tr}");

    // The trained image on the same link: the level is there sooner.
    let after = play(&args, &work.0.join("c11"), "level2", Some("10Mbit")).await;
    eprintln!("level 2 loaded after {before:.2} s untrained, {after:.2} s trained (10 Mbit/s)");
    assert!(after < before, "trained {after:.2} s vs untrained {before:.2} s");
});
