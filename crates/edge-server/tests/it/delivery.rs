//! The delivery pipeline end to end: upload a GNU tar of a generated game, publish it to
//! an `fs` origin, unpack it back byte for byte; a second build and its patch.

use crate::common::*;
use crate::edge_test;
use crate::game::*;
use edge_engine::reader::{apply, unpack, DirSource};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;

/// Polls until every task of a group has ended; returns the tasks (step order).
pub async fn wait_group(s: &Srv, tok: &str, group: &str) -> Vec<Value> {
    for _ in 0..600 {
        let r = s
            .be(
                tok,
                Method::GET,
                &format!("/be/v1/tasks?taskGroup={group}&order[]=created&limit=20"),
                None,
            )
            .await;
        let ts = r.ok()["tasks"].as_array().unwrap().clone();
        if !ts.is_empty()
            && ts.iter().all(|t| !["submitted", "running"].contains(&t["status"].as_str().unwrap()))
        {
            let mut ts = ts;
            let order = ["dltar", "mkraw", "mkdxf", "mkseq", "mkpat", "deploy"];
            ts.sort_by_key(|t| order.iter().position(|o| *o == t["type"]).unwrap_or(9));
            return ts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("group {group} did not finish");
}

/// Uploads a tar through a fresh import; returns the import answer.
pub async fn upload(s: &Srv, tok: &str, app: &str, build_name: &str, tar: &Path) -> Value {
    let r = s
        .be(
            tok,
            Method::POST,
            "/be/v1/builds",
            Some(json!({"appName": app, "buildName": build_name})),
        )
        .await;
    let imp = r.ok().clone();
    let url = imp["uploadUrl"].as_str().unwrap();
    assert!(url.starts_with(&s.base), "{url}");
    let body = std::fs::read(tar).unwrap();
    let r = s.http.put(url).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["sizeBytes"], body.len());
    imp
}

edge_test!(upload_publish_unpack_patch_apply, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let (tok, _) = s.org_admin("GameCo").await;
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/deployments",
            Some(json!({"name": "local", "originPrefix": "cdn/v1", "origin": {"type": "fs", "path": "site"}})),
        )
        .await;
    assert_eq!(r.ok()["deployment"]["origin"]["type"], "fs");
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/apps",
            Some(json!({"name": "MyGame", "label": "My Game", "maxBuilds": 3})),
        )
        .await;
    r.ok();
    let work = TempDir::new("game");
    let v1 = game_v1();
    let (dir1, tar1) = make_build(&work.0, "v1", &v1);
    let imp = upload(&s, &tok, "MyGame", "1.0.0", &tar1).await;
    let tasks = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    let statuses: Vec<_> = tasks
        .iter()
        .map(|t| {
            (t["type"].as_str().unwrap().to_string(), t["status"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(tasks.iter().all(|t| t["status"] == "done"), "{statuses:?} {tasks:?}");
    assert_eq!(tasks[1]["warning"]["code"], "empty-file");
    // This process runs workers: the upload was ingested as it streamed in.
    assert_eq!(tasks[1]["result"]["ingestedDuringUpload"], true, "{}", tasks[1]);
    assert_eq!(tasks[1]["result"]["fileCount"], 5);
    assert!(tasks.iter().all(|t| t["buildId"] == 1));
    let app = s.be(&tok, Method::GET, "/be/v1/apps/MyGame", None).await.ok()["app"].clone();
    assert_eq!(app["iCurBuild"], 1);
    assert_eq!(app["buildName"], "1.0.0");
    assert_eq!(app["processing"], false);
    assert_eq!(app["error"], false);
    let dxf = app["dxfName"].as_str().unwrap().to_string();
    assert!(dxf.starts_with("dxf-") && dxf.len() == 20);
    assert_eq!(app["builds"].as_array().unwrap().len(), 1);
    // The exact layout on the origin and in the depot.
    let origin_root = s.data_dir().join("origins/site");
    let img = origin_root.join(format!("cdn/v1/dxf/GameCo/MyGame/0001/{dxf}"));
    assert!(img.join("manifest.json").is_file(), "{}", img.display());
    let depot_img = s.data_dir().join(format!("depot/dxf/GameCo/MyGame/0001/{dxf}"));
    assert!(depot_img.join("manifest.json").is_file());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(img.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "rockit-dxf");
    assert_eq!(manifest["buildId"], 1);
    assert_eq!(manifest["fileCount"], 5);
    assert_eq!(manifest["sizeBytes"], v1.values().map(|v| v.len()).sum::<usize>());
    // Unpack reproduces the tree byte for byte (modes and the symlink included).
    let out1 = work.0.join("out1");
    unpack(&DirSource(img.clone()), &out1, None).unwrap();
    assert_eq!(read_tree(&out1), read_tree(&dir1));

    // Build 2: a rename, an edit, a new file → a patch from build 1.
    let mut v2 = v1.clone();
    let exe = v2.remove("bin/game.exe").unwrap();
    v2.insert("bin/game-renamed.exe".into(), exe);
    v2.get_mut("data/levels.pak").unwrap()[1_000_000] ^= 0x55;
    v2.insert("data/dlc.pak".into(), noise(9, 300_000));
    let (dir2, tar2) = make_build(&work.0, "v2", &v2);
    let imp2 = upload(&s, &tok, "MyGame", "1.0.1", &tar2).await;
    let tasks2 = wait_group(&s, &tok, imp2["taskGroup"].as_str().unwrap()).await;
    assert!(tasks2.iter().all(|t| t["status"] == "done"), "{tasks2:?}");
    let app = s.be(&tok, Method::GET, "/be/v1/apps/MyGame", None).await.ok()["app"].clone();
    assert_eq!(app["iCurBuild"], 2);
    assert_eq!(
        app["patches"],
        json!([{"fromBuildId": 1, "toBuildId": 2, "sizeBytes": app["patches"][0]["sizeBytes"]}])
    );
    let patch_size = app["patches"][0]["sizeBytes"].as_u64().unwrap();
    assert!(
        patch_size < 400_000,
        "patch {patch_size} bytes should carry little more than the new file"
    );
    let pat = origin_root.join("cdn/v1/pat/GameCo/MyGame/0002/0001");
    assert!(pat.join("patch.json").is_file());
    let out2 = work.0.join("out2");
    apply(&DirSource(pat), &out1, &out2).unwrap();
    assert_eq!(read_tree(&out2), read_tree(&dir2));

    // An identical build: mkraw warns, the rest is canceled, no build id is used.
    let imp3 = upload(&s, &tok, "MyGame", "again", &tar2).await;
    let t3 = wait_group(&s, &tok, imp3["taskGroup"].as_str().unwrap()).await;
    assert_eq!(t3[1]["warning"]["code"], "identical-build");
    assert_eq!(t3[1]["status"], "done");
    assert!(
        t3[2..]
            .iter()
            .all(|t| t["status"] == "canceled" && t["result"]["reason"] == "identical-build"),
        "{t3:?}"
    );
    let app = s.be(&tok, Method::GET, "/be/v1/apps/MyGame", None).await.ok()["app"].clone();
    assert_eq!(app["iCurBuild"], 2);
});
