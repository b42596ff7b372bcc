//! Transport conventions: envelopes, content types, limits, request ids, lists, auth
//! header combinations, 404/405.

use crate::common::*;
use crate::edge_test;
use reqwest::Method;
use serde_json::{json, Value};

edge_test!(health_and_envelopes, |b| async move {
    let s = Srv::start(b).await;
    assert_eq!(s.req(Method::GET, "/", &[], None).await.ok()["status"], "success");
    s.req(Method::GET, "/healthz", &[], None).await.ok();
    let r = s.req(Method::GET, "/readyz", &[], None).await;
    assert_eq!(r.ok()["database"], "ok");
    // Request ids: the client's when valid, a fresh one otherwise.
    let r = s.req(Method::GET, "/", &[("x-request-id", "abc.DEF:1-2_3")], None).await;
    assert_eq!(r.headers["x-request-id"], "abc.DEF:1-2_3");
    let r = s.req(Method::GET, "/", &[("x-request-id", "bad id with spaces")], None).await;
    assert_ne!(r.headers["x-request-id"], "bad id with spaces");
    assert!(!r.headers["x-request-id"].is_empty());
    // Unknown path 404, wrong method 405, both as envelopes.
    s.req(Method::GET, "/be/v1/nothing", &[], None).await.err(404, "not-found");
    let r = s.req(Method::DELETE, "/be/v1/login", &[], None).await;
    r.err(405, "method-not-allowed");
});

edge_test!(json_body_rules, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("JsonOrg").await;
    let auth = format!("Bearer {tok}");
    let url = format!("{}/be/v1/roles", s.base);
    // Wrong content type: 415.
    let r = s
        .http
        .post(&url)
        .header("authorization", &auth)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "unsupported-media-type");
    // Malformed JSON: 400.
    let r = s
        .http
        .post(&url)
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Wrong type, named.
    let r = s.be(&tok, Method::POST, "/be/v1/roles", Some(json!({"name": 12}))).await;
    assert_eq!(r.err(400, "invalid-param")["details"]["field"], "name");
    // Not an object.
    s.be(&tok, Method::POST, "/be/v1/roles", Some(json!([1, 2]))).await.err(400, "invalid-param");
    // 10 MB body: 413, after authentication. Spoken over a raw socket: the server answers
    // from the declared length without reading the body, which a client still writing
    // would see as a broken pipe.
    let raw = |auth: Option<String>| {
        let base = s.base.clone();
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut sock =
                tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
            let auth = auth.map(|a| format!("authorization: {a}\r\n")).unwrap_or_default();
            let head = format!(
                "POST /be/v1/roles HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\n\r\n{{\"name\":\"",
                10 << 20
            );
            sock.write_all(head.as_bytes()).await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).to_string()
        }
    };
    let answer = raw(Some(auth.clone())).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload-too-large"), "{answer}");
    let answer = raw(None).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "401 comes before 413: {answer}");
    // A body over the limit without a declared length is cut off at the limit. (A client of
    // its own: the server closes this connection, which must not poison the shared pool.)
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(2 << 20));
    let r = reqwest::Client::new()
        .post(&url)
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(vec![
            Ok::<_, std::io::Error>(big.into_bytes()),
        ])))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    // SQL-looking strings are just invalid names.
    let r = s
        .be(&tok, Method::POST, "/be/v1/roles", Some(json!({"name": "x'; DROP TABLE roles;--"})))
        .await;
    r.err(400, "invalid-param");
    let r = s.be(&tok, Method::GET, "/be/v1/roles/x'%20OR%201=1--", None).await;
    r.err(404, "not-found");
    s.be(&tok, Method::GET, "/be/v1/roles", None).await.ok();
});

edge_test!(auth_header_combinations, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("HdrOrg").await;
    let r = s.be(&tok, Method::POST, "/be/v1/apikeys", Some(json!({"label": "mine"}))).await;
    let key = r.ok()["apiKey"].as_str().unwrap().to_string();
    assert_eq!(r.body["key"]["username"], "HdrOrg_admin");
    let bearer = format!("Bearer {tok}");
    // No credentials: 401. Two different: 400. The same value twice: one credential.
    s.req(Method::GET, "/be/v1/apps", &[], None).await.err(401, "unauthorized");
    s.req(
        Method::GET,
        "/be/v1/apps",
        &[("authorization", &bearer), ("x-rockit-beauth-token", &key)],
        None,
    )
    .await
    .err(400, "invalid-param");
    s.req(
        Method::GET,
        "/be/v1/apps",
        &[("authorization", &bearer), ("x-rockit-beauth-token", &tok)],
        None,
    )
    .await
    .ok();
    // The older header takes an access token or a personal API key.
    s.req(Method::GET, "/be/v1/apps", &[("x-rockit-beauth-token", &tok)], None).await.ok();
    s.req(Method::GET, "/be/v1/apps", &[("x-rockit-beauth-token", &key)], None).await.ok();
    // A partial triple: 401.
    s.req(
        Method::GET,
        "/be/v1/apps",
        &[("x-rockit-orgname", "HdrOrg"), ("x-rockit-api-key", &key)],
        None,
    )
    .await
    .err(401, "unauthorized");
    // Forged and garbage tokens: 401.
    s.be("at_forged", Method::GET, "/be/v1/apps", None).await.err(401, "unauthorized");
    s.be("rk_0123456789abcdef_nope", Method::GET, "/be/v1/apps", None)
        .await
        .err(401, "unauthorized");
    let tampered = format!("{}x", &key[..key.len() - 1]);
    s.be(&tampered, Method::GET, "/be/v1/apps", None).await.err(401, "unauthorized");
    // API keys never log in.
    s.req(
        Method::POST,
        "/be/v1/login",
        &[("authorization", &format!("Bearer {key}"))],
        Some(json!({"username": "HdrOrg_admin", "password": "x"})),
    )
    .await
    .err(400, "invalid-param");
    // Revoking the key the request came with.
    s.be(&key, Method::DELETE, "/be/v1/apikeys", None).await.ok();
    s.be(&key, Method::GET, "/be/v1/apps", None).await.err(401, "unauthorized");
});

edge_test!(list_parameters, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("ListOrg").await;
    for n in ["r_c", "r_a", "r_b"] {
        s.be(&tok, Method::POST, "/be/v1/roles", Some(json!({"name": n}))).await.ok();
    }
    let names = |v: &Value| {
        v["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let r = s.be(&tok, Method::GET, "/be/v1/roles", None).await;
    assert_eq!(names(r.ok()), ["Administrators", "r_a", "r_b", "r_c"]);
    assert_eq!(r.body["limit"], 10);
    let r = s.be(&tok, Method::GET, "/be/v1/roles?order[]=-name&offset=1&limit=2", None).await;
    assert_eq!(names(r.ok()), ["r_b", "r_a"]);
    assert_eq!(r.body["total"], 4);
    let r = s.be(&tok, Method::GET, "/be/v1/roles?order[]=[-name]&limit=1", None).await;
    assert_eq!(names(r.ok()), ["r_c"]);
    let r = s.be(&tok, Method::GET, "/be/v1/roles?fields[]=name&limit=1", None).await;
    assert_eq!(r.ok()["roles"][0], json!({"name": "Administrators"}));
    let r = s.be(&tok, Method::GET, "/be/v1/roles/r_a?fields[]=name&fields[]=builtin", None).await;
    assert_eq!(r.ok()["role"], json!({"name": "r_a", "builtin": false}));
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "offset=-1",
        "order[]=nope",
        "fields[]=nope",
        "bogus=1",
    ] {
        s.be(&tok, Method::GET, &format!("/be/v1/roles?{bad}"), None)
            .await
            .err(400, "invalid-param");
    }
});

edge_test!(login_rate_limit, |b| async move {
    let s = Srv::start_with(b, |c| c.login_max_failures_user = 3).await;
    let pw = s.create_org("RateOrg", "erin").await;
    for _ in 0..3 {
        let r = s
            .req(
                Method::POST,
                "/be/v1/login",
                &[],
                Some(json!({"username": "erin", "password": "wrong-password"})),
            )
            .await;
        r.err(401, "unauthorized");
    }
    // Over the limit: 429 with Retry-After, even with the right password.
    let r = s
        .req(Method::POST, "/be/v1/login", &[], Some(json!({"username": "erin", "password": pw})))
        .await;
    r.err(429, "too-many-requests");
    let ra: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(ra > 0 && ra <= 900);
    // Unknown users and wrong passwords answer alike.
    let a = s
        .req(
            Method::POST,
            "/be/v1/login",
            &[],
            Some(json!({"username": "nobody_here", "password": "x"})),
        )
        .await;
    assert_eq!(a.err(401, "unauthorized")["message"], "wrong username or password");
});
