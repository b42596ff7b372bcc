//! What the Edge host keeps to itself: `fs` deployments that cannot reach outside the
//! origin root (nothing created while checking), that tenants cannot share, the embedded
//! database readable by its owner only, and admin tokens that expire.

use crate::common::*;
use crate::edge_test;
use reqwest::Method;
use serde_json::json;

fn fs_deployment(name: &str, path: &str) -> serde_json::Value {
    json!({"name": name, "origin": {"type": "fs", "path": path}})
}

edge_test!(fs_paths_are_checked_before_anything_is_created, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("FsCo").await;
    let root = s.data_dir().join("origins");
    std::fs::create_dir_all(&root).unwrap();
    // A link inside the root pointing out of it: nothing may be created through it.
    let outside = s.dir.0.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
    let r = s
        .be(&tok, Method::POST, "/be/v1/deployments", Some(fs_deployment("esc", "escape/site")))
        .await;
    assert_eq!(r.err(400, "invalid-param")["details"]["field"], "origin.path", "{:?}", r.body);
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/deployments",
            Some(json!({"name": "esc2", "originPrefix": "cdn/v1", "origin": {"type": "fs", "path": "escape"}})),
        )
        .await;
    r.err(400, "invalid-param");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "created outside the root");
    // A dangling link is refused too (creating through it would make its target).
    std::os::unix::fs::symlink(s.dir.0.join("nowhere"), root.join("dangling")).unwrap();
    s.be(&tok, Method::POST, "/be/v1/deployments", Some(fs_deployment("dang", "dangling/x")))
        .await
        .err(400, "invalid-param");
    assert!(!s.dir.0.join("nowhere").exists());
    // A request refused for another reason (permission) leaves no directory behind.
    s.be(
        &tok,
        Method::POST,
        "/be/v1/roles",
        Some(json!({"name": "Viewer", "permissions": {"deployments": 2}})),
    )
    .await
    .ok();
    let body = json!({"username": "vic", "email": "vic@example.com", "firstname": "V", "surname": "W", "roles": ["Viewer"]});
    let pw = s.be(&tok, Method::POST, "/be/v1/users", Some(body)).await.ok()["initialPW"]
        .as_str()
        .unwrap()
        .to_string();
    let vic = s.token("vic", &pw, "FsCo").await;
    s.be(&vic, Method::POST, "/be/v1/deployments", Some(fs_deployment("new", "fresh/dir")))
        .await
        .err(403, "forbidden");
    assert!(!root.join("fresh").exists(), "validation created the directory");
    // Without probing, the directory comes with the first write; with it, at once.
    s.be(
        &tok,
        Method::POST,
        "/be/v1/deployments",
        Some(json!({"name": "ok", "probe": false, "origin": {"type": "fs", "path": "fresh/dir"}})),
    )
    .await
    .ok();
    assert!(!root.join("fresh").exists());
    s.be(&tok, Method::POST, "/be/v1/deployments", Some(fs_deployment("ok2", "probed"))).await.ok();
    assert!(root.join("probed").is_dir());
});

edge_test!(tenants_cannot_share_fs_directories, |b| async move {
    let s = Srv::start(b).await;
    let (a, _) = s.org_admin("OrgA").await;
    let (b_tok, _) = s.org_admin("OrgB").await;
    s.be(&a, Method::POST, "/be/v1/deployments", Some(fs_deployment("site", "shared/site")))
        .await
        .ok();
    // The same directory, one inside it, one around it: refused for another organization.
    for path in [
        "shared/site",
        "shared/site/inner",
        "shared",
        s.data_dir().join("origins/shared/site").to_str().unwrap(),
    ] {
        let r = s
            .be(&b_tok, Method::POST, "/be/v1/deployments", Some(fs_deployment("mine", path)))
            .await;
        let body = r.err(400, "invalid-param");
        assert_eq!(body["details"]["field"], "origin.path", "{path}: {body}");
        assert!(!body.to_string().contains("OrgA"), "the other organization stays unnamed: {body}");
    }
    // A prefix that lands inside the other's directory is the same thing.
    let r = s
        .be(
            &b_tok,
            Method::POST,
            "/be/v1/deployments",
            Some(json!({"name": "pre", "originPrefix": "site", "origin": {"type": "fs", "path": "shared"}})),
        )
        .await;
    r.err(400, "invalid-param");
    // Beside it is fine, and so is the same organization nesting its own.
    s.be(&b_tok, Method::POST, "/be/v1/deployments", Some(fs_deployment("mine", "shared/other")))
        .await
        .ok();
    s.be(&a, Method::POST, "/be/v1/deployments", Some(fs_deployment("nested", "shared/site/v2")))
        .await
        .ok();
    // Moving one's deployment onto the other's directory is refused as well.
    let r = s
        .be(
            &b_tok,
            Method::PATCH,
            "/be/v1/deployments",
            Some(json!({"name": "mine", "origin": {"type": "fs", "path": "shared/site"}})),
        )
        .await;
    r.err(400, "invalid-param");
});

#[tokio::test]
async fn embedded_database_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = Srv::start(Backend::Sqlite).await;
    s.org_admin("ModeCo").await;
    for f in ["edge.db", "edge.db-wal", "edge.db-shm"] {
        let p = s.data_dir().join(f);
        if p.exists() {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f} is {mode:o}");
        }
    }
    assert!(s.data_dir().join("edge.db").exists());
}

/// Runs `rockit-edge admin-token` with the test admin secret; (exit ok, stdout, stderr).
fn admin_token(args: &[&str]) -> (bool, String, String) {
    let dir = TempDir::new("adm");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rockit-edge"))
        .args(["admin-token", "--data-dir"])
        .arg(&dir.0)
        .args(args)
        .env("EDGE_ADMIN_SECRET_B64", edge_server::util::b64(&[7u8; 32]))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&edge_server::util::b64url_decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn admin_tokens_expire() {
    let s = Srv::start(Backend::Sqlite).await;
    // By default a day.
    let (ok, tok, _) = admin_token(&["--username", "op"]);
    assert!(ok);
    let c = claims(&tok);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 86_400);
    s.req(Method::POST, "/srv/v1/ping", &[("x-rockit-admin-token", &tok)], None).await.ok();
    // A chosen lifetime, and the token stops working when it ends.
    let (ok, tok, _) = admin_token(&["--username", "op", "--ttl", "2"]);
    assert!(ok);
    s.req(Method::POST, "/srv/v1/ping", &[("x-rockit-admin-token", &tok)], None).await.ok();
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    s.req(Method::POST, "/srv/v1/ping", &[("x-rockit-admin-token", &tok)], None)
        .await
        .err(401, "unauthorized");
    let (_, tok, _) = admin_token(&["--username", "op", "--ttl", "30d"]);
    let c = claims(&tok);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 30 * 86_400);
    for bad in ["0", "12x", "1.5h", "h"] {
        let (ok, _, err) = admin_token(&["--username", "op", &format!("--ttl={bad}")]);
        assert!(!ok, "--ttl {bad} was taken");
        assert!(err.contains("ttl") || err.contains("duration") || err.contains("unit"), "{err}");
    }
}
