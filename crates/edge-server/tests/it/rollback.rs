//! Rolling back: a kept build made current again through the trigger and `rockit apps
//! rollback`, published to every target (a target added since gets the whole image, the
//! others nothing), with the events a publish emits; refusals (current, unknown, rotated
//! away, locked app, permissions); a failed rollback retried; rotation keeps the current
//! build even when it is not the newest.

use crate::cli_publish::Cli;
use crate::common::*;
use crate::delivery::{upload, wait_group};
use crate::edge_test;
use crate::events::{receiver, subscribe};
use crate::game::*;
use edge_engine::reader::{unpack, DirSource};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The app as the API shows it.
async fn app(s: &Srv, tok: &str) -> Value {
    s.be(tok, Method::GET, "/be/v1/apps/Game", None).await.ok()["app"].clone()
}

/// `POST /be/v1/trigger` of a rollback of Game.
async fn rollback(s: &Srv, tok: &str, build: Value) -> Resp {
    s.be(
        tok,
        Method::POST,
        "/be/v1/trigger",
        Some(json!({"type": "rollback", "appName": "Game", "buildId": build})),
    )
    .await
}

/// The task `name`, once it has ended.
async fn ended(s: &Srv, tok: &str, name: &str) -> Value {
    let t =
        s.be(tok, Method::GET, &format!("/be/v1/tasks/{name}"), None).await.ok()["task"].clone();
    wait_group(s, tok, t["taskGroup"].as_str().unwrap()).await.remove(0)
}

/// The files of an image directory (name → bytes).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect()
}

/// Build `n` of the generated game: v1 with one file changed per build.
fn version(n: u8) -> BTreeMap<String, Vec<u8>> {
    let mut v = game_v1();
    v.insert("data/version.txt".into(), format!("build {n}\n").into_bytes());
    v.insert(format!("data/level{n}.pak"), noise(100 + n as u64, 200_000));
    v
}

edge_test!(a_kept_build_becomes_current_again_on_every_target, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let (tok, pw) = s.org_admin("RollCo").await;
    let site = |n: &str| s.data_dir().join("origins").join(n);
    let deployment = |n: &str| json!({"name": n, "origin": {"type": "fs", "path": n}});
    s.be(&tok, Method::POST, "/be/v1/deployments", Some(deployment("site_a"))).await.ok();
    s.be(
        &tok,
        Method::POST,
        "/be/v1/apps",
        Some(json!({"name": "Game", "label": "Game", "maxBuilds": 3})),
    )
    .await
    .ok();
    let hook = receiver().await;
    let secret = subscribe(&s, &tok, "deploys", &hook.url, json!({"types": ["deploy"]})).await;
    hook.inbox.lock().unwrap().secret = Some(secret);
    let work = TempDir::new("rollback");
    let mut trees: BTreeMap<u8, PathBuf> = BTreeMap::new();
    for n in 1..=3u8 {
        let (dir, tar) = make_build(&work.0, &format!("v{n}"), &version(n));
        let imp = upload(&s, &tok, "Game", &format!("1.0.{n}"), &tar).await;
        let ts = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
        assert!(ts.iter().all(|t| t["status"] == "done"), "{ts:?}");
        trees.insert(n, dir);
    }
    let before = app(&s, &tok).await;
    assert_eq!(before["iCurBuild"], 3);
    let dxf2 = before["builds"][1]["dxfName"].as_str().unwrap().to_string();
    assert_eq!(before["builds"][1]["buildId"], 2);

    // Refusals: the current build, a build that never was, a malformed body, a caller
    // who may run tasks but not change apps.
    rollback(&s, &tok, json!(3)).await.err(409, "invalid-state");
    rollback(&s, &tok, json!(9)).await.err(404, "not-found");
    rollback(&s, &tok, json!(0)).await.err(400, "invalid-param");
    rollback(&s, &tok, json!("2")).await.err(400, "invalid-param");
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/trigger",
            Some(json!({"type": "rollback", "appName": "Game"})),
        )
        .await;
    r.err(400, "invalid-param");
    let (runner, _) =
        crate::identity::member(&s, &tok, "RollCo", "runner", json!({"tasks": 18, "apps": 2}))
            .await;
    let r = rollback(&s, &runner, json!(2)).await;
    assert!(r.err(403, "forbidden")["message"].as_str().unwrap().contains("apps"), "{:?}", r.body);
    // Another organization's admin does not see the app at all.
    let (stranger, _) = s.org_admin("OtherCo").await;
    rollback(&s, &stranger, json!(2)).await.err(404, "not-found");
    assert_eq!(app(&s, &tok).await["iCurBuild"], 3, "nothing changed");

    // A second deployment, added after the builds were published; its directory is broken
    // (a file where the origin's directory should be): the rollback's publish fails there.
    s.be(&tok, Method::POST, "/be/v1/deployments", Some(deployment("site_b"))).await.ok();
    let _ = std::fs::remove_dir_all(site("site_b"));
    std::fs::write(site("site_b"), b"not a directory").unwrap();
    let task = rollback(&s, &tok, json!(2)).await.ok()["taskName"].as_str().unwrap().to_string();
    let t = ended(&s, &tok, &task).await;
    assert_eq!((t["type"].as_str(), t["status"].as_str()), (Some("deploy"), Some("error")), "{t}");
    assert_eq!(t["buildId"], 2);
    assert_eq!(t["exception"]["deployment"]["name"], "site_b", "{t}");
    let locked = app(&s, &tok).await;
    assert_eq!((locked["iCurBuild"].as_i64(), locked["error"].as_bool()), (Some(3), Some(true)));
    // Locked: another rollback is refused until the failed publish is fixed.
    rollback(&s, &tok, json!(1)).await.err(409, "app-locked");
    // Fixed; the retry of the rollback's publish runs although its build is older.
    std::fs::remove_file(site("site_b")).unwrap();
    s.be(&tok, Method::POST, "/be/v1/trigger", Some(json!({"type": "retry", "taskName": task})))
        .await
        .ok();
    let t = ended(&s, &tok, &task).await;
    assert_eq!(t["status"], "done", "{t}");
    assert_eq!(t["attempts"], 2);
    let now = app(&s, &tok).await;
    assert_eq!(
        (now["iCurBuild"].as_i64(), now["buildName"].as_str(), now["dxfName"].as_str()),
        (Some(2), Some("1.0.2"), Some(dxf2.as_str())),
        "{now}"
    );
    assert_eq!(now["error"], false);
    assert_eq!(now["patches"], json!([]), "a rollback makes no patches");
    let kept: Vec<i64> =
        now["builds"].as_array().unwrap().iter().map(|b| b["buildId"].as_i64().unwrap()).collect();
    assert_eq!(kept, vec![1, 2, 3]);
    // site_b got the whole image, the same bytes as site_a; nothing was sent to site_a or
    // the depot, which had it.
    let rel = format!("dxf/RollCo/Game/0002/{dxf2}");
    let (a, bb) = (files(&site("site_a").join(&rel)), files(&site("site_b").join(&rel)));
    assert_eq!(a, bb);
    assert_eq!(t["result"]["objectsSent"], a.len(), "{t}");
    assert_eq!(t["result"]["objectsAlreadyThere"], 2 * a.len(), "{t}");
    let out = work.0.join("unpacked");
    unpack(&DirSource(site("site_b").join(&rel)), &out, None).unwrap();
    assert_eq!(read_tree(&out), read_tree(&trees[&2]));
    // Launchers get build 2 now.
    let key = now["clientKey"].as_str().unwrap();
    let r = s
        .req(
            Method::POST,
            "/client/v1/rte-sessions",
            &[("x-rockit-client-key", key)],
            Some(json!({"orgName": "RollCo", "appName": "Game"})),
        )
        .await;
    assert_eq!(r.ok()["build"]["buildId"], 2);
    assert_eq!(r.ok()["build"]["dxfName"], dxf2.as_str());

    // The CLI: roll forward to 3. site_b, added after build 3 was published, gets it.
    let cli = Cli::new();
    cli.login(&s, "RollCo_admin", &pw, &[]).await.ok();
    let r = cli.run(&["apps", "rollback", "Game", "--to", "3"]).await;
    let text = r.ok();
    let dxf3 = before["dxfName"].as_str().unwrap();
    let n3 = files(&site("site_a").join(format!("dxf/RollCo/Game/0003/{dxf3}"))).len();
    assert!(text.contains("rolling Game back to build 3"), "{text}");
    let summary = format!(
        "Game: build 3 \"1.0.3\" ({dxf3}) is current again; {n3} object(s) sent, {} already on the targets",
        2 * n3
    );
    assert!(text.contains(&summary), "{text}");
    assert_eq!(app(&s, &tok).await["iCurBuild"], 3);
    let r = cli.run(&["apps", "rollback", "Game", "--to", "3"]).await;
    assert!(crate::cli_publish::failed_line(&r).contains("already the current build"), "{r:?}");

    // Every rollback publish told the subscribers as a publish does: submit, begin, end
    // (and error for the failed attempt, submit again for its retry), with its build.
    let mut events = Vec::new();
    for _ in 0..100 {
        events = hook.inbox.lock().unwrap().got.clone();
        if events.iter().filter(|e| e["event"] == "end").count() >= 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(hook.inbox.lock().unwrap().bad.is_empty());
    let of_task: Vec<(String, i64)> = events
        .iter()
        .filter(|e| e["taskName"] == task.as_str())
        .map(|e| (e["event"].as_str().unwrap().to_string(), e["buildId"].as_i64().unwrap()))
        .collect();
    let want: Vec<(String, i64)> = ["submit", "begin", "error", "submit", "begin", "end"]
        .iter()
        .map(|e| (e.to_string(), 2))
        .collect();
    assert_eq!(of_task, want, "{events:?}");
    let ends: Vec<i64> = events
        .iter()
        .filter(|e| e["event"] == "end")
        .map(|e| e["buildId"].as_i64().unwrap())
        .collect();
    assert_eq!(ends, vec![1, 2, 3, 2, 3], "{events:?}");

    // Back to 2, then a new import: build 4 is current, and with maxBuilds 3 build 1 is
    // rotated away; rolling back to it is refused naming the kept builds.
    // Every target holds build 2 by now: nothing is sent again.
    let t = rollback(&s, &tok, json!(2)).await.ok()["taskName"].as_str().unwrap().to_string();
    let t = ended(&s, &tok, &t).await;
    assert_eq!(t["status"], "done", "{t}");
    assert_eq!(
        (t["result"]["objectsSent"].as_u64(), t["result"]["objectsAlreadyThere"].as_u64()),
        (Some(0), Some(3 * a.len() as u64)),
        "{t}"
    );
    let (_, tar4) = make_build(&work.0, "v4", &version(4));
    let imp = upload(&s, &tok, "Game", "1.0.4", &tar4).await;
    let ts = wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(ts.iter().all(|t| t["status"] == "done"), "{ts:?}");
    let mkpat = ts.iter().find(|t| t["type"] == "mkpat").unwrap();
    assert_eq!(app(&s, &tok).await["iCurBuild"], 4, "{mkpat}");
    let r = rollback(&s, &tok, json!(1)).await;
    let msg = r.err(409, "invalid-state")["message"].as_str().unwrap().to_string();
    assert!(msg.contains("rotated away") && msg.contains("2, 3, 4"), "{msg}");

    // Rotation keeps the current build even when it is not the newest: back to 2, then
    // maxBuilds 1 keeps build 2 alone.
    let t = rollback(&s, &tok, json!(2)).await.ok()["taskName"].as_str().unwrap().to_string();
    assert_eq!(ended(&s, &tok, &t).await["status"], "done");
    s.be(&tok, Method::PATCH, "/be/v1/apps", Some(json!({"name": "Game", "maxBuilds": 1})))
        .await
        .ok();
    let a = app(&s, &tok).await;
    assert_eq!(a["iCurBuild"], 2);
    let kept: Vec<i64> =
        a["builds"].as_array().unwrap().iter().map(|b| b["buildId"].as_i64().unwrap()).collect();
    assert_eq!(kept, vec![2], "{a}");
});
