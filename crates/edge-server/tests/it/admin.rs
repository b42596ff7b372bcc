//! `/srv/v1` and `/adm/v1`: admin token, ping, versions, hello, initialize, orgs, tasks,
//! maintenance.

use crate::common::*;
use crate::edge_test;
use edge_server::crypto::jwt_sign;
use edge_server::util::b64url;
use reqwest::Method;
use serde_json::json;

edge_test!(admin_token_rules, |b| async move {
    let s = Srv::start(b).await;
    // Header form and Bearer form.
    s.adm(Method::POST, "/srv/v1/ping", None).await.ok();
    let bearer = format!("Bearer {}", s.admin);
    let r = s
        .req(
            Method::POST,
            "/adm/v1/ping",
            &[("authorization", &bearer)],
            Some(json!({"message": "hi"})),
        )
        .await;
    assert_eq!(r.ok()["echo"], "hi");
    assert_eq!(r.body["message"], "pong");
    // Missing, forged, wrong alg, expired: 401.
    s.req(Method::POST, "/srv/v1/ping", &[], None).await.err(401, "unauthorized");
    let forged = jwt_sign(&json!({"username": "x"}), &[8u8; 32]);
    s.req(Method::POST, "/srv/v1/ping", &[("x-rockit-admin-token", &forged)], None)
        .await
        .err(401, "unauthorized");
    let none_alg =
        format!("{}.{}.", b64url(br#"{"alg":"none","typ":"JWT"}"#), b64url(br#"{"username":"x"}"#));
    s.req(Method::POST, "/srv/v1/ping", &[("x-rockit-admin-token", &none_alg)], None)
        .await
        .err(401, "unauthorized");
    let expired = jwt_sign(&json!({"username": "x", "exp": 1000}), &[7u8; 32]);
    s.req(Method::POST, "/srv/v1/ping", &[("x-rockit-admin-token", &expired)], None)
        .await
        .err(401, "unauthorized");
    s.req(Method::POST, "/srv/v1/ping", &[("x-rockit-admin-token", "garbage")], None)
        .await
        .err(401, "unauthorized");
    // An unknown field in the ping body is named.
    let r = s.adm(Method::POST, "/srv/v1/ping", Some(json!({"message": "x", "extra": 1}))).await;
    assert_eq!(r.err(400, "invalid-param")["details"]["field"], "extra");
    // The changelog needs no token.
    let r = s.req(Method::GET, "/srv/v1/changelog", &[], None).await;
    assert_eq!(r.ok()["changelog"][0]["version"], "unreleased");
    assert!(r.body["changelog"][0]["date"].is_null());
    assert!(!r.body["changelog"][0]["changes"].as_array().unwrap().is_empty());
    s.req(Method::GET, "/adm/v1/changelog", &[], None).await.ok();
});

edge_test!(hello_runs_on_the_worker, |b| async move {
    let s = Srv::start(b).await;
    let r = s.adm(Method::GET, "/srv/v1/versions", None).await;
    let v = r.ok()["versions"].clone();
    assert_eq!(v["api"], "v1");
    assert!(v["worker"].is_null(), "no test task ran yet: {v}");
    let r = s
        .adm(
            Method::POST,
            "/srv/v1/hello",
            Some(json!({"message": "hello there", "maintenance": false})),
        )
        .await;
    let name = r.ok()["taskName"].as_str().unwrap().to_string();
    let t = s.wait_admin_task(&name).await;
    assert_eq!(t["status"], "done");
    assert_eq!(t["type"], "hello");
    assert_eq!(t["result"]["message"], "hello there");
    assert_eq!(t["attempts"], 1);
    let r = s.adm(Method::GET, "/adm/v1/versions", None).await;
    assert_eq!(r.ok()["versions"]["worker"], r.body["versions"]["edge"]);
    // With maintenance: a sweep's counts in the result.
    let r = s
        .adm(Method::POST, "/adm/v1/hello", Some(json!({"message": "m", "maintenance": true})))
        .await;
    let t = s.wait_admin_task(r.ok()["taskName"].as_str().unwrap()).await;
    assert!(t["result"]["sweep"]["expiredSessionRows"].is_u64(), "{t}");
    // Both fields are required.
    let r = s.adm(Method::POST, "/srv/v1/hello", Some(json!({"message": "m"}))).await;
    assert_eq!(r.err(400, "invalid-param")["details"]["field"], "maintenance");
    let r = s
        .adm(Method::POST, "/srv/v1/hello", Some(json!({"message": 5, "maintenance": true})))
        .await;
    assert_eq!(r.err(400, "invalid-param")["details"]["field"], "message");
    // The admin task list shows them, newest first.
    let r = s.adm(Method::GET, "/adm/v1/tasks?type=hello", None).await;
    assert_eq!(r.ok()["total"], 2);
    assert_eq!(r.body["tasks"][0]["taskName"], t["taskName"]);
    s.adm(Method::GET, "/adm/v1/tasks/t_nope", None).await.err(404, "not-found");
});

edge_test!(initialize_is_idempotent_and_concurrent_safe, |b| async move {
    let s = Srv::start(b).await;
    let futs: Vec<_> = (0..5).map(|_| s.adm(Method::POST, "/srv/v1/initialize", None)).collect();
    for r in futures_join_all(futs).await {
        assert_eq!(r.ok()["message"], "initialized");
        assert!(r.body["schemaVersion"].as_i64().unwrap() >= 1);
    }
    let r = s.adm(Method::GET, "/adm/v1/orgs", None).await;
    let orgs = r.ok()["orgs"].as_array().unwrap().clone();
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0]["name"], "operator");
    assert_eq!(orgs[0]["operator"], true);
    assert_eq!(orgs[0]["users"], 1);
    // The initial admin password file exists, mode 0600, and logs in.
    let path = s.data_dir().join("initial-admin-password");
    let pw = std::fs::read_to_string(&path).unwrap().trim().to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let l = s.login("admin", &pw, "operator").await;
    assert_eq!(l["permissions"]["orgs"], 15);
    // The operator org cannot be deleted.
    s.adm(Method::DELETE, "/adm/v1/orgs/operator", None).await.err(409, "item-protected");
});

edge_test!(admin_orgs_crud, |b| async move {
    let s = Srv::start(b).await;
    s.create_org("Alpha", "alpha_admin").await;
    s.create_org("Beta", "beta_admin").await;
    let r = s.adm(Method::GET, "/adm/v1/orgs?name=alp", None).await;
    assert_eq!(r.ok()["total"], 1);
    assert_eq!(r.body["orgs"][0]["name"], "Alpha");
    let r = s.adm(Method::GET, "/adm/v1/orgs?order[]=-name&limit=2", None).await;
    let names: Vec<_> = r.ok()["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["operator", "Beta"]);
    assert_eq!(r.body["total"], 3);
    let r = s.adm(Method::GET, "/adm/v1/orgs/Alpha", None).await;
    let o = r.ok()["org"].clone();
    assert!(o["rid"].as_str().unwrap().starts_with("ri.multipass..organization."));
    assert_eq!(o["operator"], false);
    assert!(o["keyFingerprint"].is_null());
    assert_eq!(o["users"], 1);
    assert_eq!(o["apps"], 0);
    s.adm(Method::GET, "/adm/v1/orgs/Nope", None).await.err(404, "not-found");
    // Duplicate name: 409.
    let dup = json!({"name": "Alpha", "label": "x", "username": "someone", "email": "a@b.io", "firstname": "A", "surname": "B"});
    s.adm(Method::POST, "/adm/v1/orgs", Some(dup)).await.err(409, "item-exists");
    // The admin user is gone with the org (it belonged to no other).
    let pw = s.create_org("Gamma", "gamma_admin").await;
    let r = s.adm(Method::DELETE, "/adm/v1/orgs/Gamma", None).await;
    assert_eq!(r.ok()["message"], "organization deleted");
    assert!(r.body.get("taskName").is_none());
    let r = s
        .req(
            Method::POST,
            "/be/v1/login",
            &[],
            Some(json!({"username": "gamma_admin", "password": pw})),
        )
        .await;
    r.err(401, "unauthorized");
    s.adm(Method::DELETE, "/adm/v1/orgs/Gamma", None).await.err(404, "not-found");
    // prune=true starts a purge task, visible to the operator.
    let r = s.adm(Method::DELETE, "/adm/v1/orgs/Beta?prune=true", None).await;
    let t = s.wait_admin_task(r.ok()["taskName"].as_str().unwrap()).await;
    assert_eq!(t["type"], "purge");
    assert_eq!(t["status"], "done");
    assert_eq!(t["orgName"], "Beta");
    s.adm(Method::DELETE, "/adm/v1/orgs/Alpha?prune=maybe", None).await.err(400, "invalid-param");
});

edge_test!(maintenance_mode, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("MaintOrg").await;
    let r = s
        .adm(Method::PUT, "/adm/v1/maintenance", Some(json!({"enabled": true, "retryAfter": 120})))
        .await;
    assert_eq!(r.ok()["maintenance"]["enabled"], true);
    // Maintenance comes before authentication.
    let r = s.req(Method::GET, "/be/v1/apps", &[], None).await;
    r.err(503, "maintenance");
    assert_eq!(r.body["retryAfter"], "120");
    assert_eq!(r.headers["retry-after"], "120");
    s.be(&tok, Method::GET, "/be/v1/apps", None).await.err(503, "maintenance");
    // Admin, health and schemas keep working.
    s.adm(Method::POST, "/srv/v1/ping", None).await.ok();
    assert_eq!(s.req(Method::GET, "/healthz", &[], None).await.status, 200);
    let r = s.adm(Method::GET, "/adm/v1/maintenance", None).await;
    assert_eq!(r.ok()["maintenance"]["retryAfter"], 120);
    // hello still runs during maintenance.
    let r = s
        .adm(Method::POST, "/srv/v1/hello", Some(json!({"message": "m", "maintenance": false})))
        .await;
    assert_eq!(s.wait_admin_task(r.ok()["taskName"].as_str().unwrap()).await["status"], "done");
    s.adm(Method::PUT, "/adm/v1/maintenance", Some(json!({"enabled": false}))).await.ok();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    s.be(&tok, Method::GET, "/be/v1/apps", None).await.ok();
});

edge_test!(maintenance_from_config, |b| async move {
    let s = Srv::start_with(b, |c| {
        c.maintenance = true;
        c.maintenance_retry_after = 33;
    })
    .await;
    let r = s.req(Method::POST, "/be/v1/login", &[], Some(json!({}))).await;
    r.err(503, "maintenance");
    assert_eq!(r.body["retryAfter"], "33");
});
