//! The launcher side: play sessions with the app's client key, `manifestUrl` on a CDN
//! deployment (its download token checked against Akamai's own `akamai-edgeauth` package
//! and Gcore's documented OpenSSL recipe) or in the depot through the Edge (read back with
//! the real `rockit unpack`), client-key rotation, session ends, rate limits, trainings.

use crate::common::*;
use crate::delivery::{upload, wait_group};
use crate::edge_test;
use crate::game::*;
use reqwest::Method;
use serde_json::{json, Value};

/// A request with the launcher's headers.
async fn client(
    s: &Srv,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> Resp {
    s.req(method, path, headers, Some(body)).await
}

/// An org with `deployments` (name → origin fields) and one app on them, build 1 published:
/// (admin token, client key, the build's dxfName, the game directory).
async fn published(
    s: &Srv,
    org: &str,
    deps: &[Value],
    app_deps: &[&str],
    work: &TempDir,
) -> (String, String, String, std::path::PathBuf) {
    let (tok, _) = s.org_admin(org).await;
    for d in deps {
        s.be(&tok, Method::POST, "/be/v1/deployments", Some(d.clone())).await.ok();
    }
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/apps",
            Some(json!({"name": "Game", "label": "Game", "deployments": app_deps})),
        )
        .await;
    let key = r.ok()["app"]["clientKey"].as_str().expect("clientKey for an admin").to_string();
    let (dir, tar) = make_build(&work.0, org, &game_v1());
    let imp = upload(s, &tok, "Game", "1.0", &tar).await;
    let tasks = wait_group(s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    assert!(tasks.iter().all(|t| t["status"] == "done"), "{tasks:?}");
    let app = s.be(&tok, Method::GET, "/be/v1/apps/Game", None).await;
    (tok, key, app.ok()["app"]["dxfName"].as_str().unwrap().to_string(), dir)
}

fn python(script: &str) -> String {
    let out =
        std::process::Command::new("python3").args(["-c", script]).output().expect("python3 runs");
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

edge_test!(sessions_on_a_cdn_with_akamai_tokens, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let work = TempDir::new("client-cdn");
    let cdn = json!({"name": "cdn", "originPrefix": "games", "origin": {"type": "fs", "path": "site"},
                     "publicUrl": "https://cdn.example.com/base/", "downloadAuth": {"type": "akamai", "key": "a1b2c3d4e5f60718", "window": 600}});
    let other = json!({"name": "aaa_first_by_name", "origin": {"type": "fs", "path": "other"}, "publicUrl": "https://never.example.com"});
    let (tok, key, dxf, _) = published(&s, "Studio", &[cdn, other], &["cdn"], &work).await;
    let open = json!({"orgName": "Studio", "appName": "Game"});

    // Client key checks: missing, wrong, or for another app all look alike.
    client(&s, Method::POST, "/client/v1/rte-sessions", &[], open.clone())
        .await
        .err(401, "unauthorized");
    client(
        &s,
        Method::POST,
        "/client/v1/rte-sessions",
        &[("x-rockit-client-key", "ck_wrong")],
        open.clone(),
    )
    .await
    .err(401, "unauthorized");
    let ghost = json!({"orgName": "Studio", "appName": "Ghost"});
    client(&s, Method::POST, "/client/v1/rte-sessions", &[("x-rockit-client-key", &key)], ghost)
        .await
        .err(401, "unauthorized");

    let r = client(
        &s,
        Method::POST,
        "/client/v1/rte-sessions",
        &[("x-rockit-client-key", &key)],
        open.clone(),
    )
    .await;
    let sess = r.ok().clone();
    assert_eq!(sess["expiresIn"], 86400);
    assert_eq!(sess["build"]["buildId"], 1);
    assert_eq!(sess["build"]["dxfName"], dxf.as_str());
    assert_eq!(sess["publicKeyPem"], Value::Null);
    let dir = format!("/base/games/dxf/Studio/Game/0001/{dxf}/");
    assert_eq!(sess["build"]["manifestUrl"], format!("https://cdn.example.com{dir}manifest.json"));
    // The token is what Akamai's reference implementation makes for the same start time.
    let q = sess["downloadQuery"].as_str().unwrap();
    let st: i64 =
        q.strip_prefix("__token__=st=").unwrap().split('~').next().unwrap().parse().unwrap();
    let reference = python(&format!(
        "from akamai.edgeauth import EdgeAuth\nprint(EdgeAuth(key='a1b2c3d4e5f60718', window_seconds=600, start_time={st}, escape_early=False).generate_acl_token('{dir}*'))"
    ));
    assert_eq!(q, format!("__token__={reference}"));
    assert!((st - chrono_now()).abs() < 60);

    // The session token works for its own session only, and never on /be/v1.
    let token = sess["sessionToken"].as_str().unwrap().to_string();
    let id = sess["sessionId"].as_str().unwrap().to_string();
    s.be(&token, Method::GET, "/be/v1/apps", None).await.err(401, "unauthorized");
    s.be(&key, Method::GET, "/be/v1/apps", None).await.err(401, "unauthorized");
    let end = json!({"sessionId": id, "state": "ended", "playSeconds": 120, "stalls": 1, "stallSeconds": 2});
    client(
        &s,
        Method::PATCH,
        "/client/v1/rte-sessions",
        &[("x-rockit-session-token", "rs_nope")],
        end.clone(),
    )
    .await
    .err(401, "unauthorized");
    let r2 = client(
        &s,
        Method::POST,
        "/client/v1/rte-sessions",
        &[("x-rockit-client-key", &key)],
        open.clone(),
    )
    .await;
    let token2 = r2.ok()["sessionToken"].as_str().unwrap().to_string();
    client(
        &s,
        Method::PATCH,
        "/client/v1/rte-sessions",
        &[("x-rockit-session-token", &token2)],
        end.clone(),
    )
    .await
    .err(403, "forbidden");
    client(
        &s,
        Method::PATCH,
        "/client/v1/rte-sessions",
        &[("x-rockit-session-token", &token)],
        json!({"sessionId": id, "state": "open"}),
    )
    .await
    .err(400, "invalid-param");
    let r = client(
        &s,
        Method::PATCH,
        "/client/v1/rte-sessions",
        &[("x-rockit-session-token", &token)],
        end.clone(),
    )
    .await;
    assert_eq!(r.ok()["state"], "ended");
    client(
        &s,
        Method::PATCH,
        "/client/v1/rte-sessions",
        &[("x-rockit-session-token", &token)],
        end,
    )
    .await
    .err(409, "invalid-state");

    // A build that is not published: 404; rotation: the old key stops at once.
    let mut b9 = open.clone();
    b9["buildId"] = json!(9);
    client(&s, Method::POST, "/client/v1/rte-sessions", &[("x-rockit-client-key", &key)], b9)
        .await
        .err(404, "not-found");
    let r = s.be(&tok, Method::POST, "/be/v1/apps/Game/client-key", None).await;
    let new_key = r.ok()["clientKey"].as_str().unwrap().to_string();
    assert!(new_key.starts_with("ck_") && new_key != key);
    client(
        &s,
        Method::POST,
        "/client/v1/rte-sessions",
        &[("x-rockit-client-key", &key)],
        open.clone(),
    )
    .await
    .err(401, "unauthorized");
    client(
        &s,
        Method::POST,
        "/client/v1/rte-sessions",
        &[("x-rockit-client-key", &new_key)],
        open.clone(),
    )
    .await
    .ok();
    let shown = s.be(&tok, Method::GET, "/be/v1/apps/Game", None).await;
    assert_eq!(shown.ok()["app"]["clientKey"], new_key.as_str());
    s.be(&tok, Method::POST, "/be/v1/apps/Nope/client-key", None).await.err(404, "not-found");
    // Rotation needs keys Update.
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/roles",
            Some(json!({"name": "KeyReader", "permissions": {"keys": 2, "apps": 2}})),
        )
        .await;
    r.ok();
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/users",
            Some(json!({"username": "reader_bot", "type": "machine", "label": "r", "roles": ["KeyReader"]})),
        )
        .await;
    let bot = r.ok()["apiKey"].as_str().unwrap().to_string();
    s.be(&bot, Method::POST, "/be/v1/apps/Game/client-key", None).await.err(403, "forbidden");
});

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

edge_test!(gcore_tokens_match_the_documented_recipe, |b| async move {
    let s = Srv::start_with(b, |c| c.allow_private_sources = true).await;
    let work = TempDir::new("client-gcore");
    let cdn = json!({"name": "gc", "origin": {"type": "fs", "path": "site"},
                     "publicUrl": "https://gc.example.com", "downloadAuth": {"type": "gcore", "secret": "s3cr3t-key", "window": 900}});
    let (_, key, dxf, _) = published(&s, "GcOrg", &[cdn], &[], &work).await;
    let r = client(
        &s,
        Method::POST,
        "/client/v1/rte-sessions",
        &[("x-rockit-client-key", &key)],
        json!({"orgName": "GcOrg", "appName": "Game"}),
    )
    .await;
    let sess = r.ok().clone();
    let path = format!("/dxf/GcOrg/Game/0001/{dxf}/");
    assert_eq!(sess["build"]["manifestUrl"], format!("https://gc.example.com{path}manifest.json"));
    let q = sess["downloadQuery"].as_str().unwrap();
    let (md5, expires) = q.strip_prefix("md5=").unwrap().split_once("&expires=").unwrap();
    let exp: i64 = expires.parse().unwrap();
    assert!((exp - chrono_now() - 900).abs() < 60);
    // Gcore's OpenSSL script: echo -n "$expires$path $secret" | openssl md5 -binary | openssl base64 | tr +/ -_ | tr -d =
    let sh = format!("printf '%s' '{exp}{path} s3cr3t-key' | openssl md5 -binary | openssl base64 | tr +/ -_ | tr -d =");
    let out = std::process::Command::new("sh").args(["-c", &sh]).output().unwrap();
    assert_eq!(md5, String::from_utf8(out.stdout).unwrap().trim());
});

edge_test!(depot_serves_images_to_sessions, |b| async move {
    let s = Srv::start_with(b, |c| {
        c.allow_private_sources = true;
        c.session_rate_per_minute = 6;
    })
    .await;
    let work = TempDir::new("client-depot");
    let (tok, key, dxf, dir) = published(&s, "Indie", &[], &[], &work).await;
    let open = json!({"orgName": "Indie", "appName": "Game"});
    let r = client(
        &s,
        Method::POST,
        "/client/v1/rte-sessions",
        &[("x-rockit-client-key", &key)],
        open.clone(),
    )
    .await;
    let sess = r.ok().clone();
    let url = sess["build"]["manifestUrl"].as_str().unwrap().to_string();
    assert_eq!(url, format!("{}/client/v1/depot/Indie/Game/0001/{dxf}/manifest.json", s.base));
    assert!(sess.get("downloadQuery").is_none());
    let token = sess["sessionToken"].as_str().unwrap().to_string();
    let on_disk =
        std::fs::read(s.data_dir().join(format!("depot/dxf/Indie/Game/0001/{dxf}/manifest.json")))
            .unwrap();
    let got = s.http.get(&url).header("x-rockit-session-token", &token).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), on_disk);
    assert_eq!(s.http.get(&url).send().await.unwrap().status(), 401);
    // Ranges, as a launcher resumes or seeks.
    let manifest: Value = serde_json::from_slice(&on_disk).unwrap();
    let pack_name = manifest["packs"][0]["name"].as_str().unwrap().to_string();
    let pack = url.replace("manifest.json", &pack_name);
    let r = s
        .http
        .get(&pack)
        .header("x-rockit-session-token", &token)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let total = manifest["packs"][0]["sizeBytes"].as_u64().unwrap();
    assert_eq!(r.headers()["content-range"], format!("bytes 10-19/{total}").as_str());
    assert_eq!(r.bytes().await.unwrap().len(), 10);
    let r = s
        .http
        .get(&pack)
        .header("x-rockit-session-token", &token)
        .header("range", format!("bytes={total}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    let r = s
        .http
        .get(url.replace("manifest.json", "..%2Fx"))
        .header("x-rockit-session-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The real `rockit unpack` reads the image from the depot URL with the token as query.
    let base = format!("{}?token={token}", url.trim_end_matches("manifest.json"));
    let out = work.0.join("unpacked");
    let (bin, o2, b2) = (env!("CARGO_BIN_EXE_rockit"), out.clone(), base.clone());
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin).args(["unpack", &b2, o2.to_str().unwrap()]).output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(read_tree(&out), read_tree(&dir));
    // Another org's session cannot read this org's files.
    let (_, key2, _, _) = published(&s, "Rival", &[], &[], &work).await;
    let r = client(
        &s,
        Method::POST,
        "/client/v1/rte-sessions",
        &[("x-rockit-client-key", &key2)],
        json!({"orgName": "Rival", "appName": "Game"}),
    )
    .await;
    let rival = r.ok()["sessionToken"].as_str().unwrap().to_string();
    assert_eq!(
        s.http.get(&url).header("x-rockit-session-token", &rival).send().await.unwrap().status(),
        403
    );
    assert!(!tok.is_empty());
    // Session openings per address are limited (6 a minute here; 2 used above).
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(
            client(
                &s,
                Method::POST,
                "/client/v1/rte-sessions",
                &[("x-rockit-client-key", &key)],
                open.clone(),
            )
            .await
            .status
            .as_u16(),
        );
    }
    assert_eq!(codes, [200, 200, 200, 200, 429]);
    let r = client(
        &s,
        Method::POST,
        "/client/v1/rte-sessions",
        &[("x-rockit-client-key", &key)],
        open.clone(),
    )
    .await;
    r.err(429, "too-many-requests");
    assert!(r.headers.get("retry-after").is_some());

    // A session whose token has expired is refused, and the maintenance sweep removes it.
    let db = edge_server::db::Db::connect(&s.db_url()).await.unwrap();
    let id = sess["sessionId"].as_str().unwrap();
    sqlx::query("UPDATE rte_sessions SET expires = 1 WHERE id = $1")
        .bind(id)
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(
        s.http.get(&url).header("x-rockit-session-token", &token).send().await.unwrap().status(),
        401
    );
    let r = s
        .adm(Method::POST, "/adm/v1/hello", Some(json!({"message": "sweep", "maintenance": true})))
        .await;
    let t = s.wait_admin_task(r.ok()["taskName"].as_str().unwrap()).await;
    assert_eq!(t["result"]["sweep"]["launcherSessionRows"], 1, "{t}");
    let left = sqlx::query("SELECT COUNT(*) AS n FROM rte_sessions WHERE id = $1")
        .bind(id)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(edge_server::db::i(&left, "n"), 0);
});

edge_test!(trainings_api, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("Trainer").await;
    s.be(&tok, Method::POST, "/be/v1/apps", Some(json!({"name": "Alpha", "label": "a"})))
        .await
        .ok();
    s.be(&tok, Method::POST, "/be/v1/apps", Some(json!({"name": "Beta", "label": "b"}))).await.ok();
    let r = s.be(&tok, Method::GET, "/be/v1/trainings", None).await;
    let list = r.ok()["trainings"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0],
        json!({"appName": "Alpha", "nTraces": 0, "nTracesSinceSequence": 0, "nTracesReliable": 12, "sequenceGeneration": 0,
               "preload": null, "lastSequence": null, "acceleration100": null})
    );
    for bad in [
        json!({"appName": "Alpha", "nTracesReliable": 0}),
        json!({"appName": "Alpha", "nTracesReliable": 100_001}),
        json!({"appName": "Alpha"}),
    ] {
        s.be(&tok, Method::PATCH, "/be/v1/trainings", Some(bad)).await.err(400, "invalid-param");
    }
    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/trainings",
            Some(json!({"appName": "Beta", "nTracesReliable": 30})),
        )
        .await;
    assert_eq!(r.ok()["training"]["nTracesReliable"], 30);
    let r = s.be(&tok, Method::GET, "/be/v1/trainings/Beta", None).await;
    assert_eq!(r.ok()["training"]["nTracesReliable"], 30);
    s.be(&tok, Method::GET, "/be/v1/trainings/Nope", None).await.err(404, "not-found");
    s.be(
        &tok,
        Method::PATCH,
        "/be/v1/trainings",
        Some(json!({"appName": "Nope", "nTracesReliable": 3})),
    )
    .await
    .err(404, "not-found");
    // Another org sees only its own; permission bits apply.
    let (other, _) = s.org_admin("Elsewhere").await;
    assert!(s.be(&other, Method::GET, "/be/v1/trainings", None).await.ok()["trainings"]
        .as_array()
        .unwrap()
        .is_empty());
    s.be(&other, Method::GET, "/be/v1/trainings/Beta", None).await.err(404, "not-found");
    s.be(
        &tok,
        Method::POST,
        "/be/v1/roles",
        Some(json!({"name": "TR", "permissions": {"trainings": 2}})),
    )
    .await
    .ok();
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/users",
            Some(json!({"username": "tr_bot", "type": "machine", "label": "t", "roles": ["TR"]})),
        )
        .await;
    let bot = r.ok()["apiKey"].as_str().unwrap().to_string();
    s.be(&bot, Method::GET, "/be/v1/trainings/Beta", None).await.ok();
    s.be(
        &bot,
        Method::PATCH,
        "/be/v1/trainings",
        Some(json!({"appName": "Beta", "nTracesReliable": 3})),
    )
    .await
    .err(403, "forbidden");
});
