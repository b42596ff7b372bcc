//! The Foundry-compatible organizations API (`/api/v2/admin/...`): Foundry's wire format
//! and errors over the Edge's organizations, with the admin token and with operator
//! access tokens.

use crate::common::*;
use crate::edge_test;
use crate::orgs::{operator_token, person};
use reqwest::Method;
use serde_json::{json, Value};

const ORGS: &str = "/api/v2/admin/organizations";
const CREATE: &str = "/api/v2/admin/organizations?preview=true";
const ENROLLMENT: &str = "/api/v2/admin/enrollments/getCurrent?preview=true";

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
            }
        })
}

/// Asserts a Foundry error; returns its `parameters`.
#[track_caller]
fn ferr(r: &Resp, status: u16, code: &str, name: &str) -> Value {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.body);
    assert_eq!(r.body["errorCode"], code, "body: {}", r.body);
    assert_eq!(r.body["errorName"], name, "body: {}", r.body);
    assert!(
        is_uuid(r.body["errorInstanceId"].as_str().unwrap_or("")),
        "errorInstanceId: {}",
        r.body
    );
    assert!(r.body["parameters"].is_object(), "parameters: {}", r.body);
    assert!(r.body.get("status").is_none(), "not the ROCKIT envelope: {}", r.body);
    r.body["parameters"].clone()
}

/// A request with a raw (possibly malformed) JSON body.
async fn raw(s: &Srv, tok: &str, method: Method, path: &str, body: &str) -> Resp {
    let r = s
        .http
        .request(method, format!("{}{}", s.base, path))
        .header("authorization", format!("Bearer {tok}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    Resp { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

/// The instance's enrollment rid.
async fn enrollment(s: &Srv) -> String {
    let r = s.be(&s.admin, Method::GET, ENROLLMENT, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["rid"].as_str().unwrap().to_string()
}

/// The Edge org whose label is `label`.
async fn edge_org(s: &Srv, label: &str) -> Value {
    let r = s.adm(Method::GET, "/adm/v1/orgs?limit=1000", None).await;
    let found: Vec<Value> = r.ok()["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["label"] == label)
        .cloned()
        .collect();
    assert_eq!(found.len(), 1, "one org labelled {label:?}: {found:?}");
    found[0].clone()
}

/// Creates a Foundry org; returns the `Organization`.
async fn fcreate(s: &Srv, tok: &str, name: &str, admins: &[&str]) -> Value {
    let enr = enrollment(s).await;
    let r = s
        .be(
            tok,
            Method::POST,
            CREATE,
            Some(json!({"administrators": admins, "enrollmentRid": enr, "name": name})),
        )
        .await;
    assert_eq!(r.status, 200, "create {name:?}: {}", r.body);
    r.body
}

/// An operator user holding only the given `orgs` bits (0: none): its access token.
async fn operator_user(s: &Srv, op: &str, username: &str, orgs_bits: u8) -> String {
    let role = format!("Role_{username}");
    let r = s
        .be(
            op,
            Method::POST,
            "/be/v1/roles",
            Some(json!({"name": role, "permissions": {"orgs": orgs_bits, "apps": 2}})),
        )
        .await;
    r.ok();
    let (_, pw) = person(s, op, username, &[&role]).await;
    s.token(username, &pw, "operator").await
}

edge_test!(foundry_auth_and_error_envelope, |b| async move {
    let s = Srv::start(b).await;
    let (people, _) = s.org_admin("People").await;
    let (p1, _) = person(&s, &people, "fd_p1", &[]).await;
    let o = fcreate(&s, &s.admin, "Auth Org", &[&p1]).await;
    let rid = o["rid"].as_str().unwrap().to_string();
    let ra =
        json!({"roleAssignments": [{"roleId": "organization:administrator", "principalId": p1}]});
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            CREATE.to_string(),
            Some(json!({"administrators": [p1], "enrollmentRid": "x", "name": "N"})),
        ),
        (Method::GET, format!("{ORGS}/{rid}"), None),
        (Method::PUT, format!("{ORGS}/{rid}"), Some(json!({"name": "N"}))),
        (Method::GET, format!("{ORGS}/{rid}/listAvailableRoles"), None),
        (Method::GET, format!("{ORGS}/{rid}/roleAssignments"), None),
        (Method::POST, format!("{ORGS}/{rid}/roleAssignments/add"), Some(ra.clone())),
        (Method::POST, format!("{ORGS}/{rid}/roleAssignments/remove"), Some(ra.clone())),
        (Method::GET, ENROLLMENT.to_string(), None),
    ];
    let forged = edge_server::crypto::jwt_sign(&json!({"username": "x"}), &[8u8; 32]);
    let pw = std::fs::read_to_string(s.data_dir().join("initial-admin-password"))
        .unwrap()
        .trim()
        .to_string();
    let gone = s.token("admin", &pw, "operator").await;
    s.be(&gone, Method::POST, "/be/v1/logout", None).await.ok();
    let mut ids = Vec::new();
    for (m, path, body) in &calls {
        // No token at all.
        let r = s.req(m.clone(), path, &[], body.clone()).await;
        assert_eq!(ferr(&r, 401, "UNAUTHORIZED", "Default:Unauthorized"), json!({}), "{m} {path}");
        ids.push(r.body["errorInstanceId"].as_str().unwrap().to_string());
        // Garbage, a forged admin token, a logged-out session, another scheme.
        for tok in ["garbage", forged.as_str(), gone.as_str(), "rk_nope_nope"] {
            ferr(
                &s.be(tok, m.clone(), path, body.clone()).await,
                401,
                "UNAUTHORIZED",
                "Default:Unauthorized",
            );
        }
        let basic = format!("Basic {}", s.admin);
        ferr(
            &s.req(m.clone(), path, &[("authorization", &basic)], body.clone()).await,
            401,
            "UNAUTHORIZED",
            "Default:Unauthorized",
        );
    }
    // Every error instance is fresh.
    let mut uniq = ids.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), ids.len());
    // Nothing changed: the org is as it was.
    let r = s.be(&s.admin, Method::GET, &format!("{ORGS}/{rid}"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, o);

    // A valid token of a tenant (not the operator org): 403, the endpoint's error.
    let r = s
        .be(
            &people,
            Method::POST,
            CREATE,
            Some(
                json!({"administrators": [p1], "enrollmentRid": enrollment(&s).await, "name": "T"}),
            ),
        )
        .await;
    assert_eq!(ferr(&r, 403, "PERMISSION_DENIED", "CreateOrganizationPermissionDenied"), json!({}));
    let r = s.be(&people, Method::GET, &format!("{ORGS}/{rid}"), None).await;
    ferr(&r, 403, "PERMISSION_DENIED", r.body["errorName"].as_str().unwrap_or("?"));
    let r = s
        .be(&people, Method::PUT, &format!("{ORGS}/{rid}"), Some(json!({"name": "Hijacked"})))
        .await;
    assert_eq!(
        ferr(&r, 403, "PERMISSION_DENIED", "ReplaceOrganizationPermissionDenied"),
        json!({"organizationRid": rid})
    );
    let r = s
        .be(
            &people,
            Method::POST,
            &format!("{ORGS}/{rid}/roleAssignments/remove"),
            Some(ra.clone()),
        )
        .await;
    ferr(&r, 403, "PERMISSION_DENIED", "RemoveOrganizationRoleAssignmentsPermissionDenied");
    assert_eq!(edge_org(&s, "Auth Org").await["name"], "Auth_Org");

    // Malformed JSON and wrong types: Conjure:InvalidArgument.
    let enr = enrollment(&s).await;
    for bad in [
        "{not json".to_string(),
        "[]".to_string(),
        json!({"administrators": p1, "enrollmentRid": enr, "name": "W"}).to_string(),
        json!({"administrators": [p1], "enrollmentRid": enr, "name": 5}).to_string(),
        json!({"administrators": [p1], "enrollmentRid": enr}).to_string(),
        json!({"administrators": [p1], "name": "W"}).to_string(),
    ] {
        let r = raw(&s, &s.admin, Method::POST, CREATE, &bad).await;
        ferr(&r, 400, "INVALID_ARGUMENT", "Conjure:InvalidArgument");
    }
    let r = raw(&s, &s.admin, Method::PUT, &format!("{ORGS}/{rid}"), "{\"name\":").await;
    ferr(&r, 400, "INVALID_ARGUMENT", "Conjure:InvalidArgument");
    let r = raw(&s, &s.admin, Method::PUT, &format!("{ORGS}/{rid}"), r#"{"host":"a.example.com"}"#)
        .await;
    ferr(&r, 400, "INVALID_ARGUMENT", "Conjure:InvalidArgument");
    for op in ["add", "remove"] {
        let path = format!("{ORGS}/{rid}/roleAssignments/{op}");
        ferr(
            &raw(&s, &s.admin, Method::POST, &path, "nope").await,
            400,
            "INVALID_ARGUMENT",
            "Conjure:InvalidArgument",
        );
        let r = raw(
            &s,
            &s.admin,
            Method::POST,
            &path,
            r#"{"roleAssignments":[{"roleId":1,"principalId":"x"}]}"#,
        )
        .await;
        ferr(&r, 400, "INVALID_ARGUMENT", "Conjure:InvalidArgument");
        ferr(
            &raw(&s, &s.admin, Method::POST, &path, "{}").await,
            400,
            "INVALID_ARGUMENT",
            "Conjure:InvalidArgument",
        );
    }
    let r = s.adm(Method::GET, "/adm/v1/orgs?limit=100", None).await;
    assert_eq!(r.ok()["total"], 3, "operator, People, Auth_Org: {}", r.body);
});

edge_test!(foundry_create_error_order, |b| async move {
    let s = Srv::start(b).await;
    let op = operator_token(&s).await;
    let (people, _) = s.org_admin("People").await;
    let (p1, _) = person(&s, &people, "fd_p1", &[]).await;
    let r = s
        .be(
            &people,
            Method::POST,
            "/be/v1/users",
            Some(json!({"type": "machine", "username": "fd_bot", "label": "bot", "roles": []})),
        )
        .await;
    let bot = r.ok()["user"]["id"].as_str().unwrap().to_string();
    let enr = enrollment(&s).await;
    let no_orgs = operator_user(&s, &op, "no_orgs", 0).await;
    let reader = operator_user(&s, &op, "orgs_reader", 2).await;
    let unknown = "0b6c8a35-1d7e-4a8b-9f11-6f2a7c3e9d10";
    fcreate(&s, &op, "Taken Name", &[&p1]).await;

    // 1. preview, before everything else that is wrong (permission, body, administrators…).
    for q in ["", "?preview=false", "?preview=1", "?preview"] {
        let path = format!("{ORGS}{q}");
        for tok in [s.admin.as_str(), op.as_str(), no_orgs.as_str(), people.as_str()] {
            let r =
                s.be(tok, Method::POST, &path, Some(json!({"administrators": [], "enrollmentRid": "nope", "name": "Taken Name"}))).await;
            assert_eq!(
                ferr(&r, 400, "INVALID_ARGUMENT", "ApiFeaturePreviewUsageOnly"),
                json!({}),
                "{q}"
            );
        }
        let r = raw(&s, &no_orgs, Method::POST, &path, "{broken").await;
        ferr(&r, 400, "INVALID_ARGUMENT", "ApiFeaturePreviewUsageOnly");
    }
    // 2. permission: an operator user without orgs Create, even with everything else wrong.
    for tok in [no_orgs.as_str(), reader.as_str()] {
        let r = s
            .be(
                tok,
                Method::POST,
                CREATE,
                Some(json!({"administrators": [], "enrollmentRid": "nope", "name": "Taken Name"})),
            )
            .await;
        assert_eq!(
            ferr(&r, 403, "PERMISSION_DENIED", "CreateOrganizationPermissionDenied"),
            json!({})
        );
        let r = s
            .be(
                tok,
                Method::POST,
                CREATE,
                Some(json!({"administrators": [p1], "enrollmentRid": enr, "name": "Fine"})),
            )
            .await;
        ferr(&r, 403, "PERMISSION_DENIED", "CreateOrganizationPermissionDenied");
    }
    for tok in [s.admin.as_str(), op.as_str()] {
        // 3. empty administrators (also with a wrong enrollment and a taken name).
        let r = s
            .be(
                tok,
                Method::POST,
                CREATE,
                Some(json!({"administrators": [], "enrollmentRid": "nope", "name": "Taken Name"})),
            )
            .await;
        assert_eq!(
            ferr(&r, 400, "INVALID_ARGUMENT", "CreateOrganizationMissingInitialAdminRole"),
            json!({})
        );
        // 4. unknown enrollment (also with an unknown principal and a taken name).
        let bad_enr = "ri.control-panel.main.customer.00000000-0000-0000-0000-000000000000";
        let r = s
            .be(tok, Method::POST, CREATE, Some(json!({"administrators": [unknown], "enrollmentRid": bad_enr, "name": "Taken Name"})))
            .await;
        assert_eq!(
            ferr(&r, 404, "NOT_FOUND", "EnrollmentNotFound"),
            json!({"enrollmentRid": bad_enr})
        );
        // 5. unknown principal, a machine user, a malformed id (also with a taken name).
        for pid in [unknown, bot.as_str(), "not-a-uuid"] {
            let r = s
                .be(tok, Method::POST, CREATE, Some(json!({"administrators": [p1, pid], "enrollmentRid": enr, "name": "Taken Name"})))
                .await;
            assert_eq!(
                ferr(&r, 404, "NOT_FOUND", "PrincipalNotFound"),
                json!({"principalId": pid})
            );
        }
        // 6. the display name is taken.
        let r = s
            .be(
                tok,
                Method::POST,
                CREATE,
                Some(json!({"administrators": [p1], "enrollmentRid": enr, "name": "Taken Name"})),
            )
            .await;
        assert_eq!(
            ferr(&r, 400, "INVALID_ARGUMENT", "OrganizationNameAlreadyExists"),
            json!({"displayName": "Taken Name"})
        );
    }
    // An Edge org's label counts as a display name too.
    s.create_org("EdgeMade", "edgemade_admin").await;
    let r = s
        .be(
            &s.admin,
            Method::POST,
            CREATE,
            Some(json!({"administrators": [p1], "enrollmentRid": enr, "name": "EdgeMade label"})),
        )
        .await;
    ferr(&r, 400, "INVALID_ARGUMENT", "OrganizationNameAlreadyExists");
    // None of the failures left anything behind.
    let r = s.adm(Method::GET, "/adm/v1/orgs?limit=100", None).await;
    let names: Vec<_> = r.ok()["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["EdgeMade", "People", "Taken_Name", "operator"]);
    let r = s
        .req(
            Method::POST,
            "/be/v1/login",
            &[],
            Some(json!({"username": "fd_bot", "password": "x"})),
        )
        .await;
    r.err(401, "unauthorized");
});

edge_test!(foundry_create_and_get_with_both_tokens, |b| async move {
    let s = Srv::start(b).await;
    let op = operator_token(&s).await;
    let (people, _) = s.org_admin("People").await;
    let (p1, pw1) = person(&s, &people, "fd_p1", &[]).await;
    let (p2, pw2) = person(&s, &people, "fd_p2", &[]).await;
    let enr = enrollment(&s).await;
    for (i, tok) in [s.admin.clone(), op.clone()].iter().enumerate() {
        let label = format!("Example Organization {i}");
        let body = json!({"administrators": [p1, p2], "enrollmentRid": enr, "name": label,
                          "host": format!("games{i}.example.com"), "description": "made by a Foundry tool"});
        let r = s.be(tok, Method::POST, CREATE, Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let o = r.body.clone();
        let keys: Vec<_> = o.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 5, "{o}");
        assert_eq!(o["name"], label);
        assert_eq!(o["host"], format!("games{i}.example.com"));
        assert_eq!(o["description"], "made by a Foundry tool");
        let rid = o["rid"].as_str().unwrap().to_string();
        let uuid = rid.strip_prefix("ri.multipass..organization.").expect("rid form");
        assert!(is_uuid(uuid), "{rid}");
        assert!(is_uuid(o["markingId"].as_str().unwrap()));
        // The Edge org behind it.
        let edge_name = format!("Example_Organization_{i}");
        let r = s.adm(Method::GET, &format!("/adm/v1/orgs/{edge_name}"), None).await;
        let e = r.ok()["org"].clone();
        assert_eq!(e["label"], label);
        assert_eq!(e["rid"], rid);
        assert_eq!(e["users"], 2);
        assert_eq!(e["operator"], false);
        // Get, with both tokens, and with a harmless preview flag.
        for t in [s.admin.as_str(), op.as_str()] {
            for q in ["", "?preview=true"] {
                let r = s.be(t, Method::GET, &format!("{ORGS}/{rid}{q}"), None).await;
                assert_eq!(r.status, 200, "{}", r.body);
                assert_eq!(r.body, o);
            }
        }
        // Each administrator is a member with Administrators.
        for (u, pw) in [("fd_p1", &pw1), ("fd_p2", &pw2)] {
            let l = s.login(u, pw, &edge_name).await;
            assert_eq!(l["permissions"]["beUsers"], 15);
            assert_eq!(l["permissions"]["apps"], 15);
        }
        // An unknown rid.
        let r = s
            .be(
                tok,
                Method::GET,
                &format!("{ORGS}/ri.multipass..organization.{}", edge_server::util::new_uuid()),
                None,
            )
            .await;
        let p = ferr(&r, 404, "NOT_FOUND", "OrganizationNotFound");
        assert!(p["organizationRid"].as_str().unwrap().starts_with("ri.multipass..organization."));
    }
    let a =
        s.adm(Method::GET, "/adm/v1/orgs/Example_Organization_0", None).await.ok()["org"].clone();
    let b2 =
        s.adm(Method::GET, "/adm/v1/orgs/Example_Organization_1", None).await.ok()["org"].clone();
    assert_ne!(a["rid"], b2["rid"]);
    // Two-step login lists the person's three orgs.
    let r = s
        .req(Method::POST, "/be/v1/login", &[], Some(json!({"username": "fd_p1", "password": pw1})))
        .await;
    assert_eq!(r.ok()["orgs"].as_array().unwrap().len(), 3);
    // The same administrator twice is one membership.
    let o = fcreate(&s, &op, "Twice", &[&p1, &p1]).await;
    assert_eq!(o["name"], "Twice");
    assert_eq!(s.adm(Method::GET, "/adm/v1/orgs/Twice", None).await.ok()["org"]["users"], 1);
    // Created without host and description: neither is in the answer.
    assert!(o.get("host").is_none() && o.get("description").is_none(), "{o}");
    // An operator user with orgs Read may get, not create.
    let reader = operator_user(&s, &op, "orgs_reader", 2).await;
    let r =
        s.be(&reader, Method::GET, &format!("{ORGS}/{}", o["rid"].as_str().unwrap()), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, o);
    let creator = operator_user(&s, &op, "orgs_creator", 1).await;
    let o2 = fcreate(&s, &creator, "By Creator", &[&p2]).await;
    let r =
        s.be(&creator, Method::GET, &format!("{ORGS}/{}", o2["rid"].as_str().unwrap()), None).await;
    ferr(&r, 403, "PERMISSION_DENIED", r.body["errorName"].as_str().unwrap_or("?"));
});

edge_test!(foundry_name_derivation, |b| async move {
    let s = Srv::start(b).await;
    let (people, _) = s.org_admin("People").await;
    let (p1, _) = person(&s, &people, "fd_p1", &[]).await;
    let cases: Vec<(String, String)> = vec![
        ("Example Organization".into(), "Example_Organization".into()),
        ("--Hello,   World!!".into(), "Hello_World".into()),
        ("Café Straße 2024".into(), "Caf_Stra_e_2024".into()),
        ("keep_under_scores  and-dashes".into(), "keep_under_scores_and_dashes".into()),
        ("__Already_Valid__".into(), "Already_Valid".into()),
        (
            format!("{} {}", "A".repeat(30), "B".repeat(49)),
            format!("{}_{}", "A".repeat(30), "B".repeat(19)),
        ),
        ("C".repeat(60), "C".repeat(50)),
    ];
    for (label, expect) in &cases {
        let o = fcreate(&s, &s.admin, label, &[&p1]).await;
        assert_eq!(o["name"], label.as_str());
        let e = edge_org(&s, label).await;
        assert_eq!(e["name"], expect.as_str(), "{label:?}");
        assert_eq!(e["rid"], o["rid"]);
        assert!(e["name"].as_str().unwrap().len() <= 50);
    }
    // Nothing usable left, or under two characters: org_<8 hex>.
    let mut generated = Vec::new();
    for label in ["!!! ??? ###", "x", "é", "_-_", "ü!"] {
        fcreate(&s, &s.admin, label, &[&p1]).await;
        let name = edge_org(&s, label).await["name"].as_str().unwrap().to_string();
        let hex = name.strip_prefix("org_").unwrap_or_else(|| panic!("{label:?} → {name}"));
        assert_eq!(hex.len(), 8, "{name}");
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
        generated.push(name);
    }
    generated.sort();
    generated.dedup();
    assert_eq!(generated.len(), 5);
    // A clash with an org of another label: _2, _3, …
    s.create_org("Clash_Org", "clash_admin").await;
    for (label, expect) in
        [("Clash Org", "Clash_Org_2"), ("Clash-Org", "Clash_Org_3"), ("Clash.Org!", "Clash_Org_4")]
    {
        fcreate(&s, &s.admin, label, &[&p1]).await;
        assert_eq!(edge_org(&s, label).await["name"], expect, "{label}");
    }
    assert_eq!(edge_org(&s, "Clash_Org label").await["name"], "Clash_Org");
    // The suffix replaces the tail so the name stays within 50.
    let fifty = "L".repeat(50);
    s.create_org(&fifty, "long_admin").await;
    let label = format!("{fifty}?");
    fcreate(&s, &s.admin, &label, &[&p1]).await;
    assert_eq!(edge_org(&s, &label).await["name"], format!("{}_2", "L".repeat(48)));
    let label = format!("{fifty} and more");
    fcreate(&s, &s.admin, &label, &[&p1]).await;
    assert_eq!(edge_org(&s, &label).await["name"], format!("{}_3", "L".repeat(48)));
    // Replacing a label frees the display name, never the Edge name.
    let o = edge_org(&s, "Example Organization").await;
    let rid = o["rid"].as_str().unwrap().to_string();
    let r = s
        .be(
            &s.admin,
            Method::PUT,
            &format!("{ORGS}/{rid}"),
            Some(json!({"name": "Renamed Organization"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    fcreate(&s, &s.admin, "Example Organization", &[&p1]).await;
    assert_eq!(edge_org(&s, "Example Organization").await["name"], "Example_Organization_2");
    assert_eq!(edge_org(&s, "Renamed Organization").await["name"], "Example_Organization");
});

edge_test!(foundry_replace_and_hosts, |b| async move {
    let s = Srv::start(b).await;
    let op = operator_token(&s).await;
    let (people, _) = s.org_admin("People").await;
    let (p1, _) = person(&s, &people, "fd_p1", &[]).await;
    let enr = enrollment(&s).await;
    // InvalidHostName on create; nothing is made.
    for host in [
        "bad host",
        "under_score.example.com",
        "-lead.example.com",
        "trail-.example.com",
        "a..b",
        "",
        "ex!ample.com",
        "ünï.example.com",
    ] {
        let r = s
            .be(&s.admin, Method::POST, CREATE, Some(json!({"administrators": [p1], "enrollmentRid": enr, "name": "Hosted", "host": host})))
            .await;
        assert_eq!(
            ferr(&r, 400, "INVALID_ARGUMENT", "InvalidHostName"),
            json!({"invalidHostName": host}),
            "{host:?}"
        );
    }
    s.adm(Method::GET, "/adm/v1/orgs/Hosted", None).await.err(404, "not-found");
    let body = json!({"administrators": [p1], "enrollmentRid": enr, "name": "Hosted", "host": "cdn-1.games.example.com", "description": "first"});
    let r = s.be(&op, Method::POST, CREATE, Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rid = r.body["rid"].as_str().unwrap().to_string();
    let marking = r.body["markingId"].clone();
    let path = format!("{ORGS}/{rid}");
    // Replace with both tokens: label, host and description change; name, rid, marking never.
    for (i, tok) in [s.admin.clone(), op.clone()].iter().enumerate() {
        let label = format!("Hosted Renamed {i}");
        let r = s
            .be(tok, Method::PUT, &path, Some(json!({"name": label, "host": format!("h{i}.example.org"), "description": format!("d{i}")})))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.body,
            json!({"rid": rid, "name": label, "markingId": marking, "host": format!("h{i}.example.org"), "description": format!("d{i}")})
        );
        let r2 = s.be(tok, Method::GET, &path, None).await;
        assert_eq!(r2.body, r.body);
        let e = s.adm(Method::GET, "/adm/v1/orgs/Hosted", None).await.ok()["org"].clone();
        assert_eq!(e["label"], label);
        assert_eq!(e["rid"], rid);
        let derived = label.replace(' ', "_");
        s.adm(Method::GET, &format!("/adm/v1/orgs/{derived}"), None).await.err(404, "not-found");
    }
    // A replace is a replace: omitted host and description are gone.
    let r = s.be(&op, Method::PUT, &path, Some(json!({"name": "Hosted"}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"rid": rid, "name": "Hosted", "markingId": marking}));
    // InvalidHostName on replace changes nothing.
    let r = s
        .be(&op, Method::PUT, &path, Some(json!({"name": "Other Label", "host": "not a host"})))
        .await;
    assert_eq!(
        ferr(&r, 400, "INVALID_ARGUMENT", "InvalidHostName"),
        json!({"invalidHostName": "not a host"})
    );
    assert_eq!(
        s.adm(Method::GET, "/adm/v1/orgs/Hosted", None).await.ok()["org"]["label"],
        "Hosted"
    );
    // Unknown rid; a member without orgs Update.
    let ghost = format!("ri.multipass..organization.{}", edge_server::util::new_uuid());
    let r =
        s.be(&op, Method::PUT, &format!("{ORGS}/{ghost}"), Some(json!({"name": "Ghost"}))).await;
    assert_eq!(
        ferr(&r, 404, "NOT_FOUND", "OrganizationNotFound"),
        json!({"organizationRid": ghost})
    );
    let reader = operator_user(&s, &op, "orgs_reader", 3).await;
    let r = s.be(&reader, Method::PUT, &path, Some(json!({"name": "Reader Was Here"}))).await;
    assert_eq!(
        ferr(&r, 403, "PERMISSION_DENIED", "ReplaceOrganizationPermissionDenied"),
        json!({"organizationRid": rid})
    );
    let updater = operator_user(&s, &op, "orgs_updater", 4).await;
    let r = s.be(&updater, Method::PUT, &path, Some(json!({"name": "Updater Was Here"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        s.adm(Method::GET, "/adm/v1/orgs/Hosted", None).await.ok()["org"]["label"],
        "Updater Was Here"
    );
    // The Edge side: the org's name and members are untouched by all this.
    let e = s.adm(Method::GET, "/adm/v1/orgs/Hosted", None).await.ok()["org"].clone();
    assert_eq!(e["users"], 1);
});

edge_test!(foundry_roles_and_assignments, |b| async move {
    let s = Srv::start(b).await;
    let op = operator_token(&s).await;
    let (people, _) = s.org_admin("People").await;
    let (p1, pw1) = person(&s, &people, "fd_p1", &[]).await;
    let (p2, pw2) = person(&s, &people, "fd_p2", &[]).await;
    let (p3, _) = person(&s, &people, "fd_p3", &[]).await;
    let r = s
        .be(
            &people,
            Method::POST,
            "/be/v1/users",
            Some(json!({"type": "machine", "username": "fd_bot", "label": "bot", "roles": []})),
        )
        .await;
    let bot = r.ok()["user"]["id"].as_str().unwrap().to_string();
    let o = fcreate(&s, &op, "Role Org", &[&p1]).await;
    let rid = o["rid"].as_str().unwrap().to_string();
    let roles_path = format!("{ORGS}/{rid}/listAvailableRoles");
    let ra_path = format!("{ORGS}/{rid}/roleAssignments");
    let add = format!("{ra_path}/add");
    let remove = format!("{ra_path}/remove");
    let one =
        |role: &str, p: &str| json!({"roleAssignments": [{"roleId": role, "principalId": p}]});
    let assignments = |v: &Value| {
        let mut a: Vec<(String, String)> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                assert_eq!(x["principalType"], "USER");
                (
                    x["principalId"].as_str().unwrap().to_string(),
                    x["roleId"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        a.sort();
        a
    };
    let admin_role = "organization:administrator".to_string();

    // Available roles: Administrators, then a role made on the Edge side.
    for tok in [s.admin.as_str(), op.as_str()] {
        let r = s.be(tok, Method::GET, &roles_path, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let data = r.body["data"].as_array().unwrap().clone();
        assert_eq!(data.len(), 1);
        assert_eq!(data[0]["id"], "organization:administrator");
        assert_eq!(data[0]["roleSetId"], "organization");
        assert_eq!(data[0]["name"], "Administrators");
        assert_eq!(data[0]["isDefault"], true);
        assert_eq!(data[0]["type"], "ORGANIZATION");
        assert!(data[0]["description"].is_string());
        assert!(!data[0]["operations"].as_array().unwrap().is_empty());
    }
    let org_tok = s.token("fd_p1", &pw1, "Role_Org").await;
    s.be(
        &org_tok,
        Method::POST,
        "/be/v1/roles",
        Some(json!({"name": "Dev", "label": "developers", "permissions": {"apps": 2}})),
    )
    .await
    .ok();
    let r = s.be(&op, Method::GET, &roles_path, None).await;
    let data = r.body["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 2, "{}", r.body);
    let dev = data.iter().find(|d| d["id"] == "organization:Dev").expect("the Dev role");
    assert_eq!(dev["isDefault"], false);
    assert_eq!(dev["name"], "Dev");
    assert_eq!(dev["type"], "ORGANIZATION");
    assert!(data.iter().any(|d| d["id"] == "organization:administrator"));

    // Assignments: the initial administrator.
    for tok in [s.admin.as_str(), op.as_str()] {
        let r = s.be(tok, Method::GET, &ra_path, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(assignments(&r.body), vec![(p1.clone(), admin_role.clone())]);
    }
    // Add with the admin token: 204, empty body; the person becomes a member.
    let r = s.be(&s.admin, Method::POST, &add, Some(one("organization:Dev", &p2))).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(r.body.is_null());
    let l = s.login("fd_p2", &pw2, "Role_Org").await;
    assert_eq!(l["permissions"]["apps"], 2);
    assert_eq!(l["permissions"]["beUsers"], 0);
    let r = s.be(&op, Method::GET, &ra_path, None).await;
    let mut expect =
        vec![(p1.clone(), admin_role.clone()), (p2.clone(), "organization:Dev".to_string())];
    expect.sort();
    assert_eq!(assignments(&r.body), expect);
    // Adding again is harmless.
    assert_eq!(s.be(&op, Method::POST, &add, Some(one("organization:Dev", &p2))).await.status, 204);
    assert_eq!(assignments(&s.be(&op, Method::GET, &ra_path, None).await.body), expect);

    // RoleNotFound and PrincipalNotFound; an invalid item anywhere rolls the batch back.
    let r = s.be(&op, Method::POST, &add, Some(one("organization:Nope", &p3))).await;
    assert_eq!(ferr(&r, 404, "NOT_FOUND", "RoleNotFound"), json!({"roleId": "organization:Nope"}));
    let r = s.be(&op, Method::POST, &add, Some(one("Administrators", &p3))).await;
    ferr(&r, 404, "NOT_FOUND", "RoleNotFound");
    let unknown = edge_server::util::new_uuid();
    for pid in [unknown.as_str(), bot.as_str()] {
        let r = s.be(&op, Method::POST, &add, Some(one("organization:Dev", pid))).await;
        assert_eq!(ferr(&r, 404, "NOT_FOUND", "PrincipalNotFound"), json!({"principalId": pid}));
    }
    let mixed = json!({"roleAssignments": [{"roleId": "organization:Dev", "principalId": p3}, {"roleId": "organization:Nope", "principalId": p3}]});
    ferr(&s.be(&op, Method::POST, &add, Some(mixed)).await, 404, "NOT_FOUND", "RoleNotFound");
    let mixed = json!({"roleAssignments": [{"roleId": "organization:Dev", "principalId": p3}, {"roleId": "organization:Dev", "principalId": unknown}]});
    ferr(&s.be(&op, Method::POST, &add, Some(mixed)).await, 404, "NOT_FOUND", "PrincipalNotFound");
    assert_eq!(assignments(&s.be(&op, Method::GET, &ra_path, None).await.body), expect);
    assert_eq!(s.adm(Method::GET, "/adm/v1/orgs/Role_Org", None).await.ok()["org"]["users"], 2);

    // Batch limit: 101 refused (before looking at the items), 100 accepted.
    let many = |n: usize, role: &str| json!({"roleAssignments": (0..n).map(|_| json!({"roleId": role, "principalId": p3})).collect::<Vec<_>>()});
    for path in [&add, &remove] {
        let r = s.be(&op, Method::POST, path, Some(many(101, "organization:Nope"))).await;
        assert_eq!(
            ferr(&r, 400, "INVALID_ARGUMENT", "BatchRequestSizeExceededLimit"),
            json!({"maximumBatchSize": 100, "providedBatchSize": 101})
        );
    }
    assert_eq!(assignments(&s.be(&op, Method::GET, &ra_path, None).await.body), expect);
    assert_eq!(
        s.be(&op, Method::POST, &add, Some(many(100, "organization:Dev"))).await.status,
        204
    );
    expect.push((p3.clone(), "organization:Dev".to_string()));
    expect.sort();
    assert_eq!(assignments(&s.be(&op, Method::GET, &ra_path, None).await.body), expect);

    // Remove (operator token): 204; the assignment goes.
    let r = s.be(&op, Method::POST, &remove, Some(one("organization:Dev", &p3))).await;
    assert_eq!(r.status, 204, "{}", r.body);
    expect.retain(|(p, _)| *p != p3);
    assert_eq!(assignments(&s.be(&op, Method::GET, &ra_path, None).await.body), expect);
    // The last administrator stays.
    let r = s.be(&s.admin, Method::POST, &remove, Some(one(&admin_role, &p1))).await;
    assert_eq!(
        ferr(
            &r,
            400,
            "INVALID_ARGUMENT",
            "RemoveOrganizationRoleAssignmentsLastAdministratorNotAllowed"
        ),
        json!({"organizationRid": rid})
    );
    assert_eq!(assignments(&s.be(&op, Method::GET, &ra_path, None).await.body), expect);
    assert_eq!(s.login("fd_p1", &pw1, "Role_Org").await["permissions"]["beUsers"], 15);
    // … unless another takes over in the same or an earlier request.
    let swap = json!({"roleAssignments": [{"roleId": admin_role, "principalId": p2}]});
    assert_eq!(s.be(&op, Method::POST, &add, Some(swap)).await.status, 204);
    assert_eq!(s.be(&op, Method::POST, &remove, Some(one(&admin_role, &p1))).await.status, 204);
    let r = s.be(&op, Method::GET, &ra_path, None).await;
    let mut expect =
        vec![(p2.clone(), admin_role.clone()), (p2.clone(), "organization:Dev".to_string())];
    expect.sort();
    assert_eq!(assignments(&r.body), expect);
    assert_eq!(s.login("fd_p2", &pw2, "Role_Org").await["permissions"]["beUsers"], 15);
    // Removing what a non-member never had: PrincipalNotFound; unknown role: RoleNotFound.
    let (p4, _) = person(&s, &people, "fd_p4", &[]).await;
    let r = s.be(&op, Method::POST, &remove, Some(one("organization:Dev", &p4))).await;
    assert_eq!(ferr(&r, 404, "NOT_FOUND", "PrincipalNotFound"), json!({"principalId": p4}));
    let r = s.be(&op, Method::POST, &remove, Some(one("organization:Gone", &p2))).await;
    ferr(&r, 404, "NOT_FOUND", "RoleNotFound");
    let r = s.be(&op, Method::POST, &remove, Some(one("organization:Dev", &unknown))).await;
    ferr(&r, 404, "NOT_FOUND", "PrincipalNotFound");

    // Permissions: Read lists, Update changes; without orgs nothing.
    let reader = operator_user(&s, &op, "orgs_reader", 3).await;
    let updater = operator_user(&s, &op, "orgs_updater", 4).await;
    let nobody = operator_user(&s, &op, "no_orgs", 0).await;
    assert_eq!(s.be(&reader, Method::GET, &roles_path, None).await.status, 200);
    assert_eq!(s.be(&reader, Method::GET, &ra_path, None).await.status, 200);
    let r = s.be(&reader, Method::POST, &add, Some(one("organization:Dev", &p4))).await;
    assert_eq!(
        ferr(&r, 403, "PERMISSION_DENIED", "AddOrganizationRoleAssignmentsPermissionDenied"),
        json!({"organizationRid": rid})
    );
    let r = s.be(&reader, Method::POST, &remove, Some(one("organization:Dev", &p2))).await;
    assert_eq!(
        ferr(&r, 403, "PERMISSION_DENIED", "RemoveOrganizationRoleAssignmentsPermissionDenied"),
        json!({"organizationRid": rid})
    );
    assert_eq!(
        s.be(&updater, Method::POST, &add, Some(one("organization:Dev", &p4))).await.status,
        204
    );
    assert_eq!(
        s.be(&updater, Method::POST, &remove, Some(one("organization:Dev", &p4))).await.status,
        204
    );
    let r = s.be(&nobody, Method::GET, &roles_path, None).await;
    assert_eq!(
        ferr(&r, 403, "PERMISSION_DENIED", "ListAvailableRolesOrganizationPermissionDenied"),
        json!({"organizationRid": rid})
    );
    let r = s.be(&nobody, Method::GET, &ra_path, None).await;
    assert_eq!(
        ferr(&r, 403, "PERMISSION_DENIED", "ListOrganizationRoleAssignmentsPermissionDenied"),
        json!({"organizationRid": rid})
    );
    let r = s.be(&nobody, Method::POST, &add, Some(one("organization:Dev", &p4))).await;
    ferr(&r, 403, "PERMISSION_DENIED", "AddOrganizationRoleAssignmentsPermissionDenied");
    let r = s.be(&nobody, Method::GET, &format!("{ORGS}/{rid}"), None).await;
    ferr(&r, 403, "PERMISSION_DENIED", r.body["errorName"].as_str().unwrap_or("?"));

    // Unknown organization on every role endpoint.
    let ghost = format!("ri.multipass..organization.{}", edge_server::util::new_uuid());
    for (m, p, body) in [
        (Method::GET, format!("{ORGS}/{ghost}/listAvailableRoles"), None),
        (Method::GET, format!("{ORGS}/{ghost}/roleAssignments"), None),
        (Method::POST, format!("{ORGS}/{ghost}/roleAssignments/add"), Some(one(&admin_role, &p1))),
        (
            Method::POST,
            format!("{ORGS}/{ghost}/roleAssignments/remove"),
            Some(one(&admin_role, &p1)),
        ),
    ] {
        let r = s.be(&op, m, &p, body).await;
        assert_eq!(
            ferr(&r, 404, "NOT_FOUND", "OrganizationNotFound"),
            json!({"organizationRid": ghost}),
            "{p}"
        );
    }
});

edge_test!(foundry_current_enrollment, |b| async move {
    let s = Srv::start(b).await;
    let op = operator_token(&s).await;
    for q in ["", "?preview=false", "?other=true"] {
        let r = s
            .be(&s.admin, Method::GET, &format!("/api/v2/admin/enrollments/getCurrent{q}"), None)
            .await;
        assert_eq!(
            ferr(&r, 400, "INVALID_ARGUMENT", "ApiFeaturePreviewUsageOnly"),
            json!({}),
            "{q}"
        );
    }
    let r = s.be(&s.admin, Method::GET, ENROLLMENT, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let e = r.body.clone();
    assert_eq!(e.as_object().unwrap().len(), 3, "{e}");
    let uuid = e["rid"]
        .as_str()
        .unwrap()
        .strip_prefix("ri.control-panel.main.customer.")
        .expect("enrollment rid form");
    assert!(is_uuid(uuid), "{e}");
    assert_eq!(e["name"], "rockit-edge");
    assert!(edge_server::util::parse_rfc3339(e["createdTime"].as_str().unwrap()).is_some(), "{e}");
    // Stable, and the same for an operator access token.
    assert_eq!(s.be(&s.admin, Method::GET, ENROLLMENT, None).await.body, e);
    assert_eq!(s.be(&op, Method::GET, ENROLLMENT, None).await.body, e);
    let nobody = operator_user(&s, &op, "no_orgs", 0).await;
    let r = s.be(&nobody, Method::GET, ENROLLMENT, None).await;
    ferr(&r, 403, "PERMISSION_DENIED", r.body["errorName"].as_str().unwrap_or("?"));
    ferr(
        &s.req(Method::GET, ENROLLMENT, &[], None).await,
        401,
        "UNAUTHORIZED",
        "Default:Unauthorized",
    );
});

edge_test!(foundry_enrollment_from_config_and_kept_across_restarts, |b| async move {
    // Configured: the configured rid and name, and create checks against it.
    let rid = "ri.control-panel.main.customer.11111111-2222-4333-8444-555555555555";
    let s = Srv::start_with(b, |c| {
        c.enrollment_rid = Some(rid.into());
        c.enrollment_name = "Studio Cloud".into();
    })
    .await;
    let e = s.be(&s.admin, Method::GET, ENROLLMENT, None).await.body;
    assert_eq!(e["rid"], rid);
    assert_eq!(e["name"], "Studio Cloud");
    let (people, _) = s.org_admin("People").await;
    let (p1, _) = person(&s, &people, "fd_p1", &[]).await;
    let r = s
        .be(
            &s.admin,
            Method::POST,
            CREATE,
            Some(json!({"administrators": [p1], "enrollmentRid": rid, "name": "Configured"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    drop(s);

    // Generated: once, and kept across a restart on the same database.
    let dir = TempDir::new("enroll");
    let cfg = test_config(b, &dir).await;
    let mut s = Srv::start_cfg(b, cfg.clone(), dir).await;
    let first = s.be(&s.admin, Method::GET, ENROLLMENT, None).await.body;
    assert!(first["rid"].as_str().unwrap().starts_with("ri.control-panel.main.customer."));
    s.stop().await;
    let dir = std::mem::replace(&mut s.dir, TempDir::new("enroll-old"));
    drop(s);
    let s = Srv::start_cfg(b, cfg, dir).await;
    assert_eq!(s.be(&s.admin, Method::GET, ENROLLMENT, None).await.body, first);
});

edge_test!(foundry_concurrent_create, |b| async move {
    let s = Srv::start(b).await;
    let op = operator_token(&s).await;
    let (people, _) = s.org_admin("People").await;
    let (p1, _) = person(&s, &people, "fd_p1", &[]).await;
    let enr = enrollment(&s).await;
    // The same display name at once: one organization, the others are told it exists.
    let s = &s;
    let futs: Vec<_> = (0..6)
        .map(|i| {
            let tok = if i % 2 == 0 { s.admin.clone() } else { op.clone() };
            let body = json!({"administrators": [p1], "enrollmentRid": enr, "name": "Race Org"});
            async move { s.be(&tok, Method::POST, CREATE, Some(body)).await }
        })
        .collect();
    let mut won = 0;
    for r in futures_join_all(futs).await {
        if r.status == 200 {
            won += 1;
        } else {
            assert_eq!(
                ferr(&r, 400, "INVALID_ARGUMENT", "OrganizationNameAlreadyExists"),
                json!({"displayName": "Race Org"})
            );
        }
    }
    assert_eq!(won, 1);
    assert_eq!(edge_org(s, "Race Org").await["name"], "Race_Org");
    // Different display names deriving the same Edge name at once: all made, distinct names.
    let labels = ["Clash Org", "Clash-Org", "Clash.Org", "Clash/Org", "Clash:Org"];
    let futs: Vec<_> = labels
        .iter()
        .map(|l| {
            s.be(
                &s.admin,
                Method::POST,
                CREATE,
                Some(json!({"administrators": [p1], "enrollmentRid": enr, "name": l})),
            )
        })
        .collect();
    for r in futures_join_all(futs).await {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut names = Vec::new();
    for l in labels {
        names.push(edge_org(s, l).await["name"].as_str().unwrap().to_string());
    }
    names.sort();
    assert_eq!(names, ["Clash_Org", "Clash_Org_2", "Clash_Org_3", "Clash_Org_4", "Clash_Org_5"]);
});

edge_test!(foundry_body_limit, |b| async move {
    let s = Srv::start(b).await;
    let enr = enrollment(&s).await;
    for size in [(1 << 20) + 10, 3 << 20] {
        let body = json!({"administrators": [], "enrollmentRid": enr, "name": "x", "description": "d".repeat(size)}).to_string();
        let r = raw(&s, &s.admin, Method::POST, CREATE, &body).await;
        assert_eq!(r.status, 413, "{size}");
        ferr(&r, 413, "REQUEST_ENTITY_TOO_LARGE", r.body["errorName"].as_str().unwrap_or("?"));
    }
});

edge_test!(foundry_no_escalation_in_operator_org, |b| async move {
    let s = Srv::start(b).await;
    let op = operator_token(&s).await;
    // An operator user allowed to manage organizations' role assignments, nothing else.
    let r = s
        .be(
            &op,
            Method::POST,
            "/be/v1/roles",
            Some(json!({"name": "OrgManager", "permissions": {"orgs": 6}})),
        )
        .await;
    r.ok();
    let (me, pw) = person(&s, &op, "org_manager", &["OrgManager"]).await;
    let mgr = s.token("org_manager", &pw, "operator").await;
    let r = s.adm(Method::GET, "/adm/v1/orgs/operator", None).await;
    let op_rid = r.ok()["org"]["rid"].as_str().unwrap().to_string();
    let admin_id = {
        let r = s.be(&op, Method::GET, "/be/v1/users/admin", None).await;
        r.ok()["user"]["id"].as_str().unwrap().to_string()
    };
    // It may manage tenants' assignments …
    let (people, _) = s.org_admin("People").await;
    let (p1, _) = person(&s, &people, "fd_p1", &[]).await;
    let o = fcreate(&s, &op, "Tenant", &[&p1]).await;
    let add = format!("{ORGS}/{}/roleAssignments/add", o["rid"].as_str().unwrap());
    let body =
        json!({"roleAssignments": [{"roleId": "organization:administrator", "principalId": me}]});
    assert_eq!(s.be(&mgr, Method::POST, &add, Some(body.clone())).await.status, 204);
    // … but not make itself the operator's administrator, nor demote the operator's admin.
    let add = format!("{ORGS}/{op_rid}/roleAssignments/add");
    let r = s.be(&mgr, Method::POST, &add, Some(body.clone())).await;
    assert_eq!(
        ferr(&r, 403, "PERMISSION_DENIED", "AddOrganizationRoleAssignmentsPermissionDenied"),
        json!({"organizationRid": op_rid})
    );
    let l = s.login("org_manager", &pw, "operator").await;
    assert_eq!(l["permissions"]["orgs"], 6);
    assert_eq!(l["permissions"]["beUsers"], 0);
    // (with a second administrator present, so the last-administrator rule is not what stops it)
    let (second, _) = person(&s, &op, "second_admin", &["Administrators"]).await;
    assert!(!second.is_empty());
    let remove = format!("{ORGS}/{op_rid}/roleAssignments/remove");
    let r = s
        .be(
            &mgr,
            Method::POST,
            &remove,
            Some(json!({"roleAssignments": [{"roleId": "organization:administrator", "principalId": admin_id}]})),
        )
        .await;
    ferr(&r, 403, "PERMISSION_DENIED", "RemoveOrganizationRoleAssignmentsPermissionDenied");
    assert_eq!(
        s.be(&op, Method::GET, "/be/v1/users/admin", None).await.ok()["user"]["roles"],
        json!(["Administrators"])
    );
    // The admin token and the operator's administrators may.
    assert_eq!(s.be(&s.admin, Method::POST, &add, Some(body.clone())).await.status, 204);
    assert_eq!(s.login("org_manager", &pw, "operator").await["permissions"]["beUsers"], 15);
});
