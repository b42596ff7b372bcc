//! The documented identity flow, end to end.

use crate::common::*;
use crate::edge_test;
use reqwest::Method;
use serde_json::json;

edge_test!(documented_flow, |b| async move {
    let s = Srv::start(b).await;
    // The operator creates an organization.
    let pw = s.create_org("ExampleOrg", "alice").await;
    assert!(pw.len() >= 16);

    // Its admin logs in, two steps.
    let r = s
        .req(Method::POST, "/be/v1/login", &[], Some(json!({"username": "alice", "password": pw})))
        .await;
    let step1 = r.ok();
    assert_eq!(step1["orgs"], json!([{"name": "ExampleOrg", "label": "ExampleOrg label"}]));
    assert_eq!(step1["expiresIn"], 900);
    let sel = step1["orgSelectionToken"].as_str().unwrap().to_string();
    let r = s
        .req(
            Method::POST,
            "/be/v1/login",
            &[],
            Some(json!({"orgSelectionToken": sel, "orgName": "ExampleOrg"})),
        )
        .await;
    let step2 = r.ok().clone();
    assert_eq!(step2["username"], "alice");
    assert_eq!(step2["orgName"], "ExampleOrg");
    assert_eq!(step2["permissions"]["apps"], 15);
    assert_eq!(step2["permissions"]["tasks"], 31);
    assert!(step2["permissions"].get("orgs").is_none(), "an ordinary org has no orgs key");
    let access = step2["accessToken"].as_str().unwrap().to_string();

    // A role and a machine user holding it.
    let r = s
        .be(
            &access,
            Method::POST,
            "/be/v1/roles",
            Some(json!({"name": "CI", "label": "pipelines", "permissions": {"apps": 6, "tasks": 18}})),
        )
        .await;
    let role = r.ok()["role"].clone();
    assert_eq!(role["permissions"]["apps"], 6);
    assert_eq!(role["permissions"]["roles"], 0);
    assert_eq!(role["builtin"], false);
    let r = s
        .be(
            &access,
            Method::POST,
            "/be/v1/users",
            Some(json!({"type": "machine", "username": "ci_bot", "label": "CI bot", "roles": ["CI"]})),
        )
        .await;
    let body = r.ok().clone();
    assert_eq!(body["user"]["type"], "machine");
    assert_eq!(body["user"]["roles"], json!(["CI"]));
    let key = body["apiKey"].as_str().unwrap().to_string();
    assert!(key.starts_with("rk_"));

    // The machine user works with the header triple …
    let triple = [
        ("x-rockit-orgname", "ExampleOrg"),
        ("x-rockit-username", "ci_bot"),
        ("x-rockit-api-key", key.as_str()),
    ];
    let r = s.req(Method::GET, "/be/v1/apps", &triple, None).await;
    assert_eq!(r.ok()["apps"], json!([]));
    assert_eq!(r.body["total"], 0);
    // … and as a Bearer API key; and it lacks what its role does not grant.
    let r = s.be(&key, Method::GET, "/be/v1/apps", None).await;
    r.ok();
    let r = s.be(&key, Method::GET, "/be/v1/roles", None).await;
    r.err(403, "forbidden");
    // The triple must match the key's user and org.
    let wrong = [
        ("x-rockit-orgname", "ExampleOrg"),
        ("x-rockit-username", "alice"),
        ("x-rockit-api-key", key.as_str()),
    ];
    s.req(Method::GET, "/be/v1/apps", &wrong, None).await.err(401, "unauthorized");

    // Logout kills the session at once.
    s.be(&access, Method::GET, "/be/v1/org", None).await.ok();
    let r = s.be(&access, Method::POST, "/be/v1/logout", None).await;
    assert_eq!(r.ok()["message"], "logged out");
    s.be(&access, Method::GET, "/be/v1/org", None).await.err(401, "unauthorized");
    let refresh = step2["refreshToken"].as_str().unwrap();
    s.be(refresh, Method::POST, "/be/v1/refresh", None).await.err(401, "unauthorized");
});

edge_test!(refresh_rotation_and_reuse, |b| async move {
    let s = Srv::start(b).await;
    let pw = s.create_org("RotOrg", "bob").await;
    let l = s.login("bob", &pw, "RotOrg").await;
    let r1 = l["refreshToken"].as_str().unwrap().to_string();
    let a1 = l["accessToken"].as_str().unwrap().to_string();
    // Rotation: a new pair; the old refresh token no longer works.
    let n = s.be(&r1, Method::POST, "/be/v1/refresh", None).await;
    let n = n.ok().clone();
    let r2 = n["refreshToken"].as_str().unwrap().to_string();
    let a2 = n["accessToken"].as_str().unwrap().to_string();
    assert_ne!(r1, r2);
    assert_eq!(n["permissions"]["apps"], 15);
    // Within 10 s of its rotation the old token gets 401 without revoking the session.
    s.be(&r1, Method::POST, "/be/v1/refresh", None).await.err(401, "unauthorized");
    s.be(&a2, Method::GET, "/be/v1/org", None).await.ok();
    // The body form works too; the older API gives an access token without rotating.
    let r = s.req(Method::POST, "/be/v1/auth", &[("x-rockit-besession-token", &r2)], None).await;
    let auth_tok = r.ok()["authToken"].as_str().unwrap().to_string();
    s.req(Method::GET, "/be/v1/org", &[("x-rockit-beauth-token", &auth_tok)], None).await.ok();
    let n3 = s.req(Method::POST, "/be/v1/refresh", &[], Some(json!({"refreshToken": r2}))).await;
    let r3 = n3.ok()["refreshToken"].as_str().unwrap().to_string();
    s.be(&r3, Method::GET, "/be/v1/org", None).await.err(401, "unauthorized");
    // a1 still valid until expiry (rotation does not end access tokens).
    s.be(&a1, Method::GET, "/be/v1/org", None).await.ok();
    // logout all ends everything.
    let r = s.be(&a1, Method::POST, "/be/v1/logout", Some(json!({"all": true}))).await;
    r.ok();
    s.be(&a2, Method::GET, "/be/v1/org", None).await.err(401, "unauthorized");
    s.be(&r3, Method::POST, "/be/v1/refresh", None).await.err(401, "unauthorized");
});

edge_test!(refresh_reuse_revokes_session, |b| async move {
    let s = Srv::start_with(b, |c| c.refresh_grace_seconds = 0).await;
    let pw = s.create_org("ReuseOrg", "carol").await;
    let l = s.login("carol", &pw, "ReuseOrg").await;
    let r1 = l["refreshToken"].as_str().unwrap().to_string();
    let n = s.be(&r1, Method::POST, "/be/v1/refresh", None).await;
    let a2 = n.ok()["accessToken"].as_str().unwrap().to_string();
    let r2 = n.body["refreshToken"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Reuse of the rotated token: theft assumed, the whole session ends.
    s.be(&r1, Method::POST, "/be/v1/refresh", None).await.err(401, "unauthorized");
    s.be(&a2, Method::GET, "/be/v1/org", None).await.err(401, "unauthorized");
    s.be(&r2, Method::POST, "/be/v1/refresh", None).await.err(401, "unauthorized");
    // A fresh login still works.
    s.login("carol", &pw, "ReuseOrg").await;
});

edge_test!(concurrent_refresh_exactly_one_wins, |b| async move {
    let s = Srv::start(b).await;
    let pw = s.create_org("RaceOrg", "dave").await;
    let l = s.login("dave", &pw, "RaceOrg").await;
    let r1 = l["refreshToken"].as_str().unwrap().to_string();
    let futs: Vec<_> = (0..6).map(|_| s.be(&r1, Method::POST, "/be/v1/refresh", None)).collect();
    let results = futures_join_all(futs).await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 1, "{:?}", results.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(results.iter().all(|r| r.status == 200 || r.status == 401));
});
