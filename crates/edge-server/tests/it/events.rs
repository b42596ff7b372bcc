//! Subscriptions and webhook delivery against real HTTP receivers that verify every JWT
//! with the subscription's secret and the body's SHA-256.

use crate::common::*;
use crate::delivery::{upload, wait_group};
use crate::edge_test;
use crate::game::*;
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a receiver got: verified bodies in arrival order.
#[derive(Default)]
pub(crate) struct Inbox {
    pub(crate) got: Vec<Value>,
    /// Statuses to answer, in order; then 200.
    script: Vec<u16>,
    /// Secret to verify with (base64url), set after subscribing.
    pub(crate) secret: Option<String>,
    pub(crate) bad: Vec<String>,
}

pub(crate) struct Receiver {
    pub(crate) url: String,
    pub(crate) inbox: Arc<Mutex<Inbox>>,
}

fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<Value, String> {
    let jwt = headers
        .get("x-rockit-subscriptions")
        .and_then(|v| v.to_str().ok())
        .ok_or("no JWT header")?;
    let key = edge_server::util::b64url_decode(secret).ok_or("secret not base64url")?;
    let claims = edge_server::crypto::jwt_verify(jwt, &key, edge_server::util::now_ms() / 1000)
        .ok_or("JWT does not verify")?;
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if claims["sha256"] != edge_server::util::hex(&Sha256::digest(body)) {
        return Err("body hash differs".into());
    }
    if claims["jti"] != v["deliveryId"] || claims["iss"] != "rockit-edge" {
        return Err(format!("claims {claims}"));
    }
    if claims["exp"].as_i64() != claims["iat"].as_i64().map(|i| i + 300) {
        return Err("exp is not iat + 300".into());
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return Err("content-type".into());
    }
    if !headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .starts_with("rockit-edge/")
    {
        return Err("user-agent".into());
    }
    Ok(v)
}

pub(crate) async fn receiver() -> Receiver {
    receiver_at("127.0.0.1:0".parse().unwrap(), Arc::default()).await
}

/// A verifying receiver on `addr` delivering into `inbox`.
async fn receiver_at(addr: std::net::SocketAddr, inbox: Arc<Mutex<Inbox>>) -> Receiver {
    let ib = inbox.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let ib = ib.clone();
            async move {
                let mut g = ib.lock().unwrap();
                let secret = g.secret.clone().unwrap_or_default();
                match verify(&secret, &headers, &body) {
                    Ok(v) => g.got.push(v),
                    Err(e) => g.bad.push(e),
                }
                let code = if g.script.is_empty() { 200 } else { g.script.remove(0) };
                StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    Receiver { url: format!("http://{addr}/hook"), inbox }
}

/// A receiver that accepts connections and never answers.
async fn black_hole() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = l.accept().await {
            held.push(sock);
        }
    });
    format!("http://{addr}/hook")
}

pub(crate) async fn subscribe(s: &Srv, tok: &str, name: &str, url: &str, filter: Value) -> String {
    let r = s
        .be(
            tok,
            Method::POST,
            "/be/v1/subscriptions",
            Some(json!({"name": name, "type": "webhook", "url": url, "filter": filter})),
        )
        .await;
    let secret = r.ok()["secret"].as_str().unwrap().to_string();
    assert_eq!(edge_server::util::b64url_decode(&secret).unwrap().len(), 32);
    secret
}

async fn setup(s: &Srv) -> (String, std::path::PathBuf, TempDir) {
    let (tok, _) = s.org_admin("HookCo").await;
    s.be(
        &tok,
        Method::POST,
        "/be/v1/deployments",
        Some(json!({"name": "local", "origin": {"type": "fs", "path": "site"}})),
    )
    .await
    .ok();
    s.be(&tok, Method::POST, "/be/v1/apps", Some(json!({"name": "Game", "label": "Game"})))
        .await
        .ok();
    let work = TempDir::new("hooks");
    let mut files = game_v1();
    files.remove("config/empty.cfg");
    let (_, tar) = make_build(&work.0, "v1", &files);
    (tok, tar, work)
}

async fn wait_for(inbox: &Arc<Mutex<Inbox>>, n: usize, secs: u64) -> Vec<Value> {
    for _ in 0..secs * 20 {
        if inbox.lock().unwrap().got.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    inbox.lock().unwrap().got.clone()
}

fn fast(c: &mut edge_server::config::Config) {
    c.allow_private_sources = true;
    c.webhook_backoff_ms = vec![100, 200, 300];
}

edge_test!(import_emits_the_documented_sequence, |b| async move {
    let s = Srv::start_with(b, fast).await;
    let (tok, tar, _w) = setup(&s).await;
    let rx = receiver().await;
    let secret = subscribe(&s, &tok, "all", &rx.url, json!({})).await;
    rx.inbox.lock().unwrap().secret = Some(secret);
    let imp = upload(&s, &tok, "Game", "1.0", &tar).await;
    let group = imp["taskGroup"].as_str().unwrap().to_string();
    wait_group(&s, &tok, &group).await;
    let got = wait_for(&rx.inbox, 15, 20).await;
    assert!(rx.inbox.lock().unwrap().bad.is_empty(), "{:?}", rx.inbox.lock().unwrap().bad);
    let seq: Vec<String> = got
        .iter()
        .map(|v| format!("{}:{}", v["type"].as_str().unwrap(), v["event"].as_str().unwrap()))
        .collect();
    let want = [
        "dltar:submit",
        "mkraw:submit",
        "mkdxf:submit",
        "mkpat:submit",
        "deploy:submit",
        "dltar:begin",
        "dltar:end",
        "mkraw:begin",
        "mkraw:end",
        "mkdxf:begin",
        "mkdxf:end",
        "mkpat:begin",
        "mkpat:end",
        "deploy:begin",
        "deploy:end",
    ];
    assert_eq!(seq, want);
    let last = got.last().unwrap();
    assert_eq!(last["orgName"], "HookCo");
    assert_eq!(last["appName"], "Game");
    assert_eq!(last["buildId"], 1);
    assert_eq!(last["taskGroup"], group);
    assert!(last["dxfName"].as_str().unwrap().starts_with("dxf-"));
    assert!(last["exception"].is_null());
    // Stats are kept. The receiver holds the last events before the server has recorded their
    // answers, so the count may lag it briefly.
    let mut r = s.be(&tok, Method::GET, "/be/v1/subscriptions/all", None).await;
    for _ in 0..100 {
        if r.ok()["subscription"]["stats"]["delivered"] == 15 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        r = s.be(&tok, Method::GET, "/be/v1/subscriptions/all", None).await;
    }
    assert_eq!(r.ok()["subscription"]["stats"]["delivered"], 15);
    assert_eq!(r.body["subscription"]["stats"]["lastStatus"], "ok");
    assert!(r.body["subscription"].get("secret").is_none());
});

edge_test!(retries_keep_the_same_delivery_id, |b| async move {
    let s = Srv::start_with(b, fast).await;
    let (tok, tar, _w) = setup(&s).await;
    let rx = receiver().await;
    let secret =
        subscribe(&s, &tok, "flaky", &rx.url, json!({"types": ["dltar"], "events": ["submit"]}))
            .await;
    {
        let mut g = rx.inbox.lock().unwrap();
        g.secret = Some(secret);
        g.script = vec![500, 500];
    }
    upload(&s, &tok, "Game", "1.0", &tar).await;
    let got = wait_for(&rx.inbox, 3, 20).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().all(|v| v["deliveryId"] == got[0]["deliveryId"]
        && v["type"] == "dltar"
        && v["event"] == "submit"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.inbox.lock().unwrap().got.len(), 3, "delivered once more after success");
    let r = s.be(&tok, Method::GET, "/be/v1/subscriptions/flaky", None).await;
    assert_eq!(r.ok()["subscription"]["stats"]["delivered"], 1);
});

edge_test!(dead_receiver_delays_nobody_and_410_disables, |b| async move {
    let s = Srv::start_with(b, fast).await;
    let (tok, tar, _w) = setup(&s).await;
    let hole = black_hole().await;
    subscribe(&s, &tok, "dead", &hole, json!({})).await;
    let rx = receiver().await;
    let secret = subscribe(&s, &tok, "live", &rx.url, json!({"events": ["end"]})).await;
    rx.inbox.lock().unwrap().secret = Some(secret);
    let gone = receiver().await;
    let gsecret = subscribe(&s, &tok, "gone", &gone.url, json!({})).await;
    {
        let mut g = gone.inbox.lock().unwrap();
        g.secret = Some(gsecret);
        g.script = vec![410];
    }
    let start = std::time::Instant::now();
    let imp = upload(&s, &tok, "Game", "1.0", &tar).await;
    wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    let got = wait_for(&rx.inbox, 5, 8).await;
    assert_eq!(got.len(), 5, "the live subscription got every end event");
    assert!(
        start.elapsed() < Duration::from_secs(9),
        "the dead receiver held things up: {:?}",
        start.elapsed()
    );
    let r = s.be(&tok, Method::GET, "/be/v1/subscriptions/gone", None).await;
    assert_eq!(r.ok()["subscription"]["enabled"], false);
    assert_eq!(gone.inbox.lock().unwrap().got.len(), 1);
    // Unsubscribe stops queued deliveries.
    s.be(&tok, Method::DELETE, "/be/v1/subscriptions/dead", None).await.ok();
    s.be(&tok, Method::GET, "/be/v1/subscriptions/dead", None).await.err(404, "not-found");
});

edge_test!(pending_deliveries_survive_a_restart, |b| async move {
    let dir = TempDir::new("restart");
    let mut cfg = test_config(b, &dir).await;
    fast(&mut cfg);
    cfg.webhook_backoff_ms = vec![60_000];
    let mut s = Srv::start_cfg(b, cfg.clone(), dir).await;
    let (tok, tar, _w) = setup(&s).await;
    // The receiver is down: port reserved, nothing listening.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let url = format!("http://{addr}/hook");
    let secret =
        subscribe(&s, &tok, "later", &url, json!({"types": ["dltar"], "events": ["submit"]})).await;
    upload(&s, &tok, "Game", "1.0", &tar).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.stop().await;
    // The receiver comes up on the same port; the server starts again on the same data.
    let inbox: Arc<Mutex<Inbox>> =
        Arc::new(Mutex::new(Inbox { secret: Some(secret), ..Default::default() }));
    receiver_at(addr, inbox.clone()).await;
    let mut cfg2 = cfg.clone();
    cfg2.webhook_backoff_ms = vec![100];
    // Nothing was lost: the delivery waits for its next attempt and arrives after restart.
    let s2 = Srv::start_cfg(b, cfg2, TempDir(s.dir.0.clone())).await;
    std::mem::forget(s);
    // Make the delivery due now instead of in a minute.
    sqlx_due_now(&s2).await;
    let got = wait_for(&inbox, 1, 20).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["type"], "dltar");
});

/// Moves every pending delivery's next attempt to now, through the admin-visible database.
async fn sqlx_due_now(s: &Srv) {
    let db = edge_server::db::Db::connect(&s.db_url()).await.unwrap();
    sqlx::query("UPDATE deliveries SET next_at = 0 WHERE status = 'pending'")
        .execute(db.pool())
        .await
        .unwrap();
}

edge_test!(subscriptions_api_rules, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("SubCo").await;
    // Private targets are refused unless the instance allows them.
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/subscriptions",
            Some(json!({"name": "x1", "type": "webhook", "url": "http://127.0.0.1:9/h"})),
        )
        .await;
    r.err(400, "invalid-param");
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/subscriptions",
            Some(json!({"name": "x1", "type": "webhook", "url": "ftp://example.com/h"})),
        )
        .await;
    r.err(400, "invalid-param");
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/subscriptions",
            Some(json!({"name": "x1", "type": "webhook", "url": "https://93.184.216.34/h", "filter": {"types": ["nope"]}})),
        )
        .await;
    assert_eq!(r.err(400, "invalid-param")["details"]["field"], "filter.types");
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/subscriptions",
            Some(json!({"name": "s1", "type": "slack", "slackChannel": "#builds", "slackToken": "xoxb-1"})),
        )
        .await;
    assert_eq!(r.ok()["subscription"]["slackChannel"], "#builds");
    assert!(r.body["subscription"].get("slackToken").is_none());
    s.be(
        &tok,
        Method::POST,
        "/be/v1/subscriptions",
        Some(json!({"name": "s1", "type": "slack", "slackChannel": "#b", "slackToken": "x"})),
    )
    .await
    .err(409, "item-exists");
    s.be(
        &tok,
        Method::POST,
        "/be/v1/subscriptions",
        Some(json!({"name": "s0", "type": "webhook", "url": "https://93.184.216.34/h"})),
    )
    .await
    .ok();
    let r = s.be(&tok, Method::GET, "/be/v1/subscriptions?order[]=-name", None).await;
    assert_eq!(r.ok()["subscriptions"][0]["name"], "s1");
    assert_eq!(r.body["total"], 2);
    // Schemas need no authentication.
    let r = s.req(Method::GET, "/be/v1/schemas/webhook-request-body", &[], None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["$schema"], "https://json-schema.org/draft/2020-12/schema");
    let r = s.req(Method::GET, "/be/v1/schemas/import-url", &[], None).await;
    assert!(r.body["oneOf"].is_array());
    // Another org sees none of them.
    let (tok2, _) = s.org_admin("OtherCo").await;
    s.be(&tok2, Method::GET, "/be/v1/subscriptions/s1", None).await.err(404, "not-found");
    s.be(&tok2, Method::DELETE, "/be/v1/subscriptions/s1", None).await.err(404, "not-found");
});

/// A local stand-in for the Slack Web API: checks the bot token, records the messages and
/// answers as Slack does (`{"ok": true}` or an error code).
async fn slack_api(answer: &'static str) -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/api/chat.postMessage",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let g = g.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                g.lock().unwrap().push((auth, v));
                let reply = if answer == "ok" {
                    json!({"ok": true})
                } else {
                    json!({"ok": false, "error": answer})
                };
                axum::Json(reply)
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/api"), got)
}

edge_test!(slack_messages_and_fatal_errors, |b| async move {
    let (base, got) = slack_api("ok").await;
    let (bad_base, bad_got) = slack_api("invalid_auth").await;
    let _ = bad_base;
    let s = Srv::start_with(b, |c| {
        fast(c);
        c.slack_api_base = base.clone();
    })
    .await;
    let (tok, tar, _w) = setup(&s).await;
    let r = s.be(&tok, Method::POST, "/be/v1/subscriptions", Some(json!({"name": "chat", "type": "slack", "slackChannel": "#builds", "slackToken": "xoxb-test-1", "filter": {"types": ["deploy"], "events": ["end"]}}))).await;
    r.ok();
    upload(&s, &tok, "Game", "2.0", &tar).await;
    for _ in 0..200 {
        if !got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let msgs = got.lock().unwrap().clone();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].0, "Bearer xoxb-test-1");
    assert_eq!(msgs[0].1["channel"], "#builds");
    let text = msgs[0].1["text"].as_str().unwrap();
    assert!(text.contains("Game") && text.contains("deploy end"), "{text}");
    let r = s.be(&tok, Method::GET, "/be/v1/subscriptions/chat", None).await;
    assert_eq!(r.ok()["subscription"]["stats"]["delivered"], 1);
    assert!(bad_got.lock().unwrap().is_empty());
});

edge_test!(slack_invalid_auth_disables, |b| async move {
    let (base, got) = slack_api("invalid_auth").await;
    let s = Srv::start_with(b, |c| {
        fast(c);
        c.slack_api_base = base.clone();
    })
    .await;
    let (tok, tar, _w) = setup(&s).await;
    s.be(
        &tok,
        Method::POST,
        "/be/v1/subscriptions",
        Some(json!({"name": "chat", "type": "slack", "slackChannel": "#b", "slackToken": "xoxb-revoked"})),
    )
    .await
    .ok();
    upload(&s, &tok, "Game", "2.0", &tar).await;
    let mut disabled = false;
    for _ in 0..200 {
        let r = s.be(&tok, Method::GET, "/be/v1/subscriptions/chat", None).await;
        if r.ok()["subscription"]["enabled"] == false {
            disabled = true;
            assert!(r.body["subscription"]["stats"]["lastError"]
                .as_str()
                .unwrap()
                .contains("invalid_auth"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(disabled);
    assert_eq!(got.lock().unwrap().len(), 1, "no further messages after invalid_auth");
});
