//! Crash safety: the server process is killed with SIGKILL in the middle of the pipeline
//! and started again; the import completes exactly once.

use crate::common::*;
use crate::delivery::wait_group;
use crate::edge_test;
use crate::game::*;
use crate::proc::spawn;
use reqwest::Method;
use serde_json::json;

edge_test!(kill_9_mid_pipeline_then_restart, |b| async move {
    let dir = TempDir::new("crash");
    let data = dir.0.join("data");
    let db = crate::proc::child_database(b, &dir).await;
    let p = spawn(&data, db.as_deref());
    // Drive it with a harness-like client pointed at the child.
    let s = Srv::external(&p.base, b);
    let (tok, pw) = s.org_admin("CrashCo").await;
    s.be(
        &tok,
        Method::POST,
        "/be/v1/deployments",
        Some(json!({"name": "local", "origin": {"type": "fs", "path": "site"}})),
    )
    .await
    .ok();
    s.be(&tok, Method::POST, "/be/v1/apps", Some(json!({"name": "Big", "label": "Big"})))
        .await
        .ok();
    let mut files = game_v1();
    for i in 0..12 {
        files.insert(format!("data/chunk{i}.pak"), noise(100 + i, 4_000_000));
    }
    let (tree, tarp) = make_build(&dir.0, "big", &files);
    let r = s
        .be(&tok, Method::POST, "/be/v1/builds", Some(json!({"appName": "Big", "buildName": "b1"})))
        .await;
    let group = r.ok()["taskGroup"].as_str().unwrap().to_string();
    let url = r.body["uploadUrl"].as_str().unwrap().to_string();
    let put = s.http.put(&url).body(std::fs::read(&tarp).unwrap()).send().await.unwrap();
    assert_eq!(put.status(), 200);
    // Kill the process as soon as a task past dltar is running.
    let mut killed_during = String::new();
    for _ in 0..400 {
        let r = s
            .be(&tok, Method::GET, &format!("/be/v1/tasks?taskGroup={group}&status=running"), None)
            .await;
        if let Some(t) = r.ok()["tasks"].as_array().unwrap().first() {
            if t["type"] != "dltar" {
                killed_during = t["type"].as_str().unwrap().to_string();
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop(p);
    assert!(!killed_during.is_empty(), "no pipeline task was seen running");
    // Start again on the same data: the lease expires, the task is taken up again.
    let p2 = spawn(&data, db.as_deref());
    let s2 = Srv::external(&p2.base, b);
    let l = s2.token("CrashCo_admin", &pw, "CrashCo").await;
    let tasks = wait_group(&s2, &l, &group).await;
    assert!(
        tasks.iter().all(|t| t["status"] == "done"),
        "killed during {killed_during}: {tasks:?}"
    );
    let app = s2.be(&l, Method::GET, "/be/v1/apps/Big", None).await.ok()["app"].clone();
    assert_eq!(app["iCurBuild"], 1);
    assert_eq!(app["builds"].as_array().unwrap().len(), 1, "exactly one build");
    let dxf = app["dxfName"].as_str().unwrap();
    let img = data.join(format!("origins/site/dxf/CrashCo/Big/0001/{dxf}"));
    let out = dir.0.join("out");
    edge_engine::reader::unpack(&edge_engine::reader::DirSource(img), &out, None).unwrap();
    assert_eq!(read_tree(&out), read_tree(&tree));
});
