//! The S3 depot (admin.md, "Several processes"): an API process and worker processes, each
//! with its own empty data directory, on one database and one bucket of a real S3 protocol
//! server (moto; without its signature checks, see `start_moto_open`). Everything a later step or another process needs
//! travels through the bucket: the uploaded tar, chunks, trees, staged images and patches,
//! the published copy the launchers read, and the purge removes it all.

use crate::common::*;
use crate::delivery::{upload, wait_group};
use crate::edge_test;
use crate::game::*;
use crate::origins::start_moto_open;
use edge_engine::reader::{apply, unpack, DirSource};
use edge_origin::{Origin, OriginOptions};
use edge_server::config::{Config, Role};
use reqwest::Method;
use serde_json::{json, Value};

const BUCKET: &str = "edge-depot";
const PREFIX: &str = "edge/main";

/// Keys under `edge/main/<dir>/` in the bucket.
async fn keys(bucket: &Origin, dir: &str) -> Vec<String> {
    let mut k: Vec<String> = bucket
        .list(&format!("{PREFIX}/{dir}/"))
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    k.sort();
    k
}

edge_test!(s3_depot_shared_by_api_and_worker_processes, |b| async move {
    let moto = start_moto_open().await;
    moto.create_bucket(BUCKET).await;
    let bucket = Origin::new(
        moto.s3_config(&moto.endpoint, BUCKET, true),
        OriginOptions { allow_private: true, ..Default::default() },
    )
    .unwrap();
    let shared = TempDir::new("s3depot");
    let fs_root = shared.0.join("origins");
    let depot = |c: &mut Config| {
        c.depot_s3_endpoint = Some(moto.endpoint.clone());
        c.depot_s3_bucket = Some(BUCKET.into());
        c.depot_s3_region = moto.region.clone();
        c.depot_s3_prefix = PREFIX.into();
        c.depot_s3_access_key_id = Some(moto.access_key_id.clone());
        c.depot_s3_secret_access_key = Some(moto.secret_access_key.clone());
        c.depot_s3_path_style = true;
        c.allow_private_sources = true;
        c.fs_origin_root = Some(fs_root.clone());
    };
    let api = Srv::start_with(b, |c| {
        depot(c);
        c.role = Role::Api;
    })
    .await;
    let db = api.db_url();
    let worker = |c: &mut Config| {
        depot(c);
        c.role = Role::Worker;
        c.database_url = Some(db.clone());
    };
    let mut w1 = Srv::start_with(b, worker).await;
    let r = api.req(Method::GET, "/readyz", &[], None).await;
    assert_eq!(r.ok()["depot"], "ok");

    let (tok, _) = api.org_admin("Studio").await;
    let dep =
        json!({"name": "cdn", "originPrefix": "games", "origin": {"type": "fs", "path": "site"}});
    api.be(&tok, Method::POST, "/be/v1/deployments", Some(dep)).await.ok();
    let r = api
        .be(
            &tok,
            Method::POST,
            "/be/v1/apps",
            Some(json!({"name": "Game", "label": "Game", "maxBuilds": 3})),
        )
        .await;
    let client_key = r.ok()["app"]["clientKey"].as_str().unwrap().to_string();

    // Build 1: uploaded to the API process, built by the worker.
    let work = TempDir::new("s3depot-game");
    let v1 = game_v1();
    let (dir1, tar1) = make_build(&work.0, "v1", &v1);
    let imp = upload(&api, &tok, "Game", "1.0", &tar1).await;
    let tasks = wait_group(&api, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(tasks.iter().all(|t| t["status"] == "done"), "{tasks:?}");
    // An API-only process leaves the ingest to the worker's mkraw.
    assert_eq!(tasks[1]["result"]["ingestedDuringUpload"], false);
    let dxf = api.be(&tok, Method::GET, "/be/v1/apps/Game", None).await.ok()["app"]["dxfName"]
        .as_str()
        .unwrap()
        .to_string();

    // The bucket holds the working data and the published copy; what a step only needed
    // in passing (the tar, the staging area) is gone.
    let manifest_key = format!("{PREFIX}/depot/dxf/Studio/Game/0001/{dxf}/manifest.json");
    let in_bucket =
        bucket.get(&manifest_key).await.unwrap().expect("the published copy is in the bucket");
    assert!(!keys(&bucket, "chunks").await.is_empty());
    assert_eq!(keys(&bucket, "trees").await.len(), 1);
    assert_eq!(keys(&bucket, "uploads").await, Vec::<String>::new());
    assert_eq!(keys(&bucket, "staging").await, Vec::<String>::new());
    // The API process ran no step and keeps no copy; the worker publishes to the bucket.
    assert!(!api.data_dir().join("chunks").exists() && !api.data_dir().join("depot").exists());
    assert!(!w1.data_dir().join("depot").exists());
    let img = fs_root.join(format!("site/games/dxf/Studio/Game/0001/{dxf}"));
    assert_eq!(std::fs::read(img.join("manifest.json")).unwrap(), in_bucket);
    let out1 = work.0.join("out1");
    unpack(&DirSource(img), &out1, None).unwrap();
    assert_eq!(read_tree(&out1), read_tree(&dir1));

    // A launcher reads the depot copy through the API process (ranges too).
    let open = json!({"orgName": "Studio", "appName": "Game"});
    let r = api
        .req(
            Method::POST,
            "/client/v1/rte-sessions",
            &[("x-rockit-client-key", &client_key)],
            Some(open),
        )
        .await;
    let sess = r.ok().clone();
    let token = sess["sessionToken"].as_str().unwrap().to_string();
    let url = sess["build"]["manifestUrl"].as_str().unwrap().to_string();
    let got = api.http.get(&url).header("x-rockit-session-token", &token).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), in_bucket);
    let manifest: Value = serde_json::from_slice(&in_bucket).unwrap();
    let pack = url.replace("manifest.json", manifest["packs"][0]["name"].as_str().unwrap());
    let total = manifest["packs"][0]["sizeBytes"].as_u64().unwrap();
    let r = api
        .http
        .get(&pack)
        .header("x-rockit-session-token", &token)
        .header("range", "bytes=100-163")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], format!("bytes 100-163/{total}").as_str());
    let part = r.bytes().await.unwrap();
    let whole = bucket
        .get(&format!(
            "{PREFIX}/depot/dxf/Studio/Game/0001/{dxf}/{}",
            manifest["packs"][0]["name"].as_str().unwrap()
        ))
        .await;
    assert_eq!(part.to_vec(), whole.unwrap().unwrap()[100..164].to_vec());
    let r = api
        .http
        .get(url.replace("manifest.json", "nope.bin"))
        .header("x-rockit-session-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let base = format!("{}?token={token}", url.trim_end_matches("manifest.json"));
    let out_dl = work.0.join("from-depot");
    let (bin, o2) = (env!("CARGO_BIN_EXE_rockit"), out_dl.clone());
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin).args(["unpack", &base, o2.to_str().unwrap()]).output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(read_tree(&out_dl), read_tree(&dir1));

    // Build 2 on a fresh worker: build 1's tree and chunks come from the bucket for the patch.
    w1.stop().await;
    let w2 = Srv::start_with(b, worker).await;
    let mut v2 = v1.clone();
    v2.get_mut("data/levels.pak").unwrap()[500_000] ^= 0x5a;
    v2.insert("data/dlc.pak".into(), noise(21, 200_000));
    let (dir2, tar2) = make_build(&work.0, "v2", &v2);
    let imp2 = upload(&api, &tok, "Game", "1.1", &tar2).await;
    let tasks2 = wait_group(&api, &tok, imp2["taskGroup"].as_str().unwrap()).await;
    assert!(tasks2.iter().all(|t| t["status"] == "done"), "{tasks2:?}");
    assert!(w2.data_dir().join("chunks").exists(), "the new worker cached the chunks it read");
    let pat = fs_root.join("site/games/pat/Studio/Game/0002/0001");
    let out2 = work.0.join("out2");
    apply(&DirSource(pat), &out1, &out2).unwrap();
    assert_eq!(read_tree(&out2), read_tree(&dir2));
    assert!(bucket
        .head(&format!("{PREFIX}/depot/pat/Studio/Game/0002/0001/patch.json"))
        .await
        .unwrap()
        .is_some());

    // Deleting the app purges its working data and published copy from the bucket.
    let r = api.be(&tok, Method::DELETE, "/be/v1/apps/Game", None).await;
    let purge = r.ok()["taskName"].as_str().unwrap().to_string();
    let t = api.wait_admin_task(&purge).await;
    assert_eq!(t["status"], "done", "{t}");
    for dir in ["chunks", "trees", "staging", "traces", "depot/dxf/Studio", "depot/pat/Studio"] {
        assert_eq!(keys(&bucket, dir).await, Vec::<String>::new(), "{dir}");
    }
});

edge_test!(s3_depot_settings_are_checked, |b| async move {
    let dir = TempDir::new("s3depot-cfg");
    let mut cfg = test_config(b, &dir).await;
    cfg.depot_s3_bucket = Some("b".into());
    let err = cfg.validate().unwrap_err();
    assert!(err.contains("depot_s3_endpoint"), "{err}");
    cfg.depot_s3_endpoint = Some("http://127.0.0.1:1".into());
    cfg.depot_s3_access_key_id = Some("AKIA".into());
    cfg.depot_s3_secret_access_key = Some("s".into());
    cfg.depot_s3_prefix = "../x".into();
    assert!(cfg.validate().unwrap_err().contains("depot_s3_prefix"));
    // A depot that does not answer: the server starts, /readyz says so.
    cfg.depot_s3_prefix = String::new();
    cfg.depot_s3_path_style = true;
    let s = Srv::start_cfg(b, cfg, dir).await;
    let r = s.req(Method::GET, "/readyz", &[], None).await;
    let e = r.err(503, "unavailable");
    assert_eq!(e["details"]["depot"], "unreachable", "{e}");
});
