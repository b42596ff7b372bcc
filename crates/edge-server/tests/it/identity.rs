//! Users, roles and API keys (identity.md), end to end: success shapes, every documented
//! error, tenant isolation, the no-escalation and no-takeover rules, credential resets,
//! password changes and concurrent creation.

use crate::common::*;
use crate::edge_test;
use reqwest::Method;
use serde_json::{json, Value};

/// Every resource of an ordinary organization, in wire order.
const RESOURCES: [&str; 12] = [
    "apps",
    "beUsers",
    "bundles",
    "consumption",
    "dependencies",
    "deployments",
    "keys",
    "roles",
    "sources",
    "subscriptions",
    "tasks",
    "trainings",
];

/// The sorted keys of a JSON object.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> =
        v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect();
    k.sort();
    k
}

/// Asserts a 400 `invalid-param` naming `field`.
#[track_caller]
fn bad(r: &Resp, field: &str) {
    assert_eq!(r.err(400, "invalid-param")["details"]["field"], field, "body: {}", r.body);
}

/// The names of a list answer's items under `plural`, by `key`.
fn names(v: &Value, plural: &str, key: &str) -> Vec<String> {
    v[plural]
        .as_array()
        .unwrap_or_else(|| panic!("no {plural}: {v}"))
        .iter()
        .map(|x| x[key].as_str().unwrap().to_string())
        .collect()
}

/// An RFC 3339 timestamp as epoch milliseconds (panics otherwise).
#[track_caller]
fn ts(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    assert!(s.ends_with('Z'), "UTC timestamp expected: {s}");
    edge_server::util::parse_rfc3339(s).unwrap_or_else(|| panic!("not RFC 3339: {s}"))
}

/// Creates a role; returns the role object.
async fn add_role(s: &Srv, tok: &str, name: &str, perms: Value) -> Value {
    s.be(tok, Method::POST, "/be/v1/roles", Some(json!({"name": name, "permissions": perms})))
        .await
        .ok()["role"]
        .clone()
}

/// Creates a person holding `roles`; returns the initial password.
async fn add_person(s: &Srv, tok: &str, username: &str, roles: &[&str]) -> String {
    let body = json!({"username": username, "email": format!("{username}@example.com"), "firstname": "First", "surname": "Last", "roles": roles});
    let r = s.be(tok, Method::POST, "/be/v1/users", Some(body)).await;
    r.ok()["initialPW"].as_str().expect("initialPW").to_string()
}

/// Creates a machine user holding `roles`; returns its API key.
async fn add_machine(s: &Srv, tok: &str, username: &str, roles: &[&str]) -> String {
    let body = json!({"type": "machine", "username": username, "label": format!("{username} label"), "roles": roles});
    let r = s.be(tok, Method::POST, "/be/v1/users", Some(body)).await;
    r.ok()["apiKey"].as_str().expect("apiKey").to_string()
}

/// A person in `org` whose only role (`<username>_r`) grants `perms`, logged in: (access token, password).
pub(crate) async fn member(
    s: &Srv,
    admin_tok: &str,
    org: &str,
    username: &str,
    perms: Value,
) -> (String, String) {
    let role = format!("{username}_r");
    add_role(s, admin_tok, &role, perms).await;
    let pw = add_person(s, admin_tok, username, &[role.as_str()]).await;
    (s.token(username, &pw, org).await, pw)
}

/// The current role names of a user, read by an administrator.
async fn roles_of(s: &Srv, tok: &str, username: &str) -> Value {
    s.be(tok, Method::GET, &format!("/be/v1/users/{username}"), None).await.ok()["user"]["roles"]
        .clone()
}

/// `GET /be/v1/users?<query>`.
async fn list_users(s: &Srv, tok: &str, query: &str) -> Resp {
    s.be(tok, Method::GET, &format!("/be/v1/users?{query}"), None).await
}

/// A login attempt's status code.
async fn login_status(s: &Srv, user: &str, pw: &str, org: Option<&str>) -> u16 {
    let mut body = json!({"username": user, "password": pw});
    if let Some(o) = org {
        body["orgName"] = json!(o);
    }
    s.req(Method::POST, "/be/v1/login", &[], Some(body)).await.status.as_u16()
}

// ---------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------

edge_test!(users_create_person_and_machine, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("UOrg").await;
    add_role(&s, &tok, "Dev", json!({"apps": 6, "roles": 2})).await;

    // A person: the user object, and the initial password beside it.
    let body = json!({"username": "pat", "email": "pat@example.com", "firstname": "Pat", "surname": "Smith", "title": "Dr", "roles": ["Dev"]});
    let r = s.be(&tok, Method::POST, "/be/v1/users", Some(body)).await;
    let out = r.ok().clone();
    assert_eq!(keys(&out), ["initialPW", "status", "user"]);
    let u = &out["user"];
    assert_eq!(
        keys(u),
        [
            "created",
            "email",
            "firstname",
            "id",
            "roles",
            "surname",
            "title",
            "type",
            "updated",
            "username"
        ]
    );
    assert_eq!(u["username"], "pat");
    assert_eq!(u["type"], "user");
    assert_eq!(u["email"], "pat@example.com");
    assert_eq!(u["firstname"], "Pat");
    assert_eq!(u["surname"], "Smith");
    assert_eq!(u["title"], "Dr");
    assert_eq!(u["roles"], json!(["Dev"]));
    let id = u["id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(id.matches('-').count(), 4, "a UUID: {id}");
    let created = ts(&u["created"]);
    assert!((created - edge_server::util::now_ms()).abs() < 60_000);
    assert_eq!(u["created"], u["updated"]);
    let pw = out["initialPW"].as_str().unwrap();
    assert!(pw.len() >= 10, "{pw}");
    assert!(!out.to_string().contains("argon2"), "no hash in the answer");

    // The initial password is valid as it is; the login carries the role's permissions.
    let l = s.login("pat", pw, "UOrg").await;
    assert_eq!(l["permissions"]["apps"], 6);
    assert_eq!(l["permissions"]["roles"], 2);
    assert_eq!(l["permissions"]["beUsers"], 0);
    let mut all: Vec<String> = RESOURCES.iter().map(|s| s.to_string()).collect();
    all.sort();
    assert_eq!(keys(&l["permissions"]), all);
    // After a login the user object shows lastLogin.
    let r = s.be(&tok, Method::GET, "/be/v1/users/pat", None).await;
    assert!(ts(&r.ok()["user"]["lastLogin"]) >= created);
    assert_eq!(r.body["user"]["id"], id);

    // An explicit person type, no title, no roles.
    let body = json!({"type": "user", "username": "quinn", "email": "q@example.org", "firstname": "Q", "surname": "R", "roles": []});
    let r = s.be(&tok, Method::POST, "/be/v1/users", Some(body)).await;
    let u = r.ok()["user"].clone();
    assert_eq!(
        keys(&u),
        ["created", "email", "firstname", "id", "roles", "surname", "type", "updated", "username"]
    );
    assert_eq!(u["roles"], json!([]));
    assert_ne!(u["id"], id);
    // `roles` may be left out.
    let body =
        json!({"username": "rita", "email": "rita@example.org", "firstname": "R", "surname": "T"});
    let r = s.be(&tok, Method::POST, "/be/v1/users", Some(body)).await;
    assert_eq!(r.ok()["user"]["roles"], json!([]));

    // A machine user from `label` alone (no type, no email): an API key instead of a password.
    let body = json!({"username": "bot1", "label": "Bot one", "roles": ["Dev"]});
    let r = s.be(&tok, Method::POST, "/be/v1/users", Some(body)).await;
    let out = r.ok().clone();
    assert_eq!(keys(&out), ["apiKey", "status", "user"]);
    assert_eq!(
        keys(&out["user"]),
        ["created", "id", "label", "roles", "type", "updated", "username"]
    );
    assert_eq!(out["user"]["type"], "machine");
    assert_eq!(out["user"]["label"], "Bot one");
    assert_eq!(out["user"]["roles"], json!(["Dev"]));
    let key = out["apiKey"].as_str().unwrap().to_string();
    assert!(key.starts_with("rk_"), "{key}");
    // The key works, as that machine user, with its role's bits.
    s.be(&key, Method::GET, "/be/v1/roles", None).await.ok();
    assert_eq!(
        s.be(&key, Method::GET, "/be/v1/users/bot1", None).await.ok()["user"]["username"],
        "bot1"
    );
    let denied = s.be(&key, Method::GET, "/be/v1/users", None).await;
    assert_eq!(
        denied.err(403, "forbidden")["message"],
        "permission beUsers: Read required",
        "bits named as words"
    );
    // Its key is listed for it.
    let r = s.be(&tok, Method::GET, "/be/v1/apikeys?username=bot1", None).await;
    assert_eq!(r.ok()["keys"].as_array().unwrap().len(), 1);
    assert!(key.starts_with(&format!("rk_{}_", r.body["keys"][0]["keyId"].as_str().unwrap())));

    // An explicit machine type.
    let body = json!({"type": "machine", "username": "bot2", "label": "Bot two", "roles": []});
    let r = s.be(&tok, Method::POST, "/be/v1/users", Some(body)).await;
    assert_eq!(r.ok()["user"]["type"], "machine");
    assert!(r.body.get("initialPW").is_none());

    // Machine users cannot log in, whatever they send as a password.
    for org in [None, Some("UOrg")] {
        assert_eq!(login_status(&s, "bot1", &key, org).await, 401);
        assert_eq!(login_status(&s, "bot1", "", org).await, 401);
    }
    let r = s
        .req(Method::POST, "/be/v1/login", &[], Some(json!({"username": "bot1", "password": key})))
        .await;
    assert_eq!(r.err(401, "unauthorized")["message"], "wrong username or password");
});

edge_test!(users_create_errors, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("EOrg").await;
    let (tok_b, _) = s.org_admin("EOrgB").await;
    add_role(&s, &tok, "Dev", json!({"apps": 6})).await;
    let p = |extra: Value| {
        let mut v = json!({"username": "newp", "email": "newp@example.com", "firstname": "N", "surname": "P", "roles": []});
        for (k, x) in extra.as_object().unwrap() {
            if x.is_null() {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = x.clone();
            }
        }
        v
    };
    let cases: Vec<(Value, &str)> = vec![
        (p(json!({"username": "x"})), "username"),
        (p(json!({"username": "bad-name"})), "username"),
        (p(json!({"username": "a".repeat(51)})), "username"),
        (p(json!({"username": 5})), "username"),
        (p(json!({"username": null})), "username"),
        (p(json!({"email": null})), "email"),
        (p(json!({"email": "not-an-address"})), "email"),
        (p(json!({"email": "a@b@c.com"})), "email"),
        (p(json!({"firstname": null})), "firstname"),
        (p(json!({"firstname": ""})), "firstname"),
        (p(json!({"surname": "s".repeat(101)})), "surname"),
        (p(json!({"title": ""})), "title"),
        (p(json!({"bogus": 1})), "bogus"),
        (p(json!({"type": "robot"})), "type"),
        (p(json!({"roles": ["NoSuchRole"]})), "roles"),
        (p(json!({"roles": ["Dev", "NoSuchRole"]})), "roles"),
        (p(json!({"roles": "Dev"})), "roles"),
        (p(json!({"type": "user", "label": "a label"})), "label"),
        (
            json!({"type": "machine", "username": "mbot", "label": "L", "email": "m@example.com"}),
            "email",
        ),
        (
            json!({"type": "machine", "username": "mbot", "label": "L", "firstname": "F"}),
            "firstname",
        ),
        (json!({"type": "machine", "username": "mbot"}), "label"),
        (json!({"type": "machine", "username": "mbot", "label": ""}), "label"),
        (json!({"type": "machine", "username": "mbot", "label": "l".repeat(201)}), "label"),
    ];
    for (body, field) in cases {
        let r = s.be(&tok, Method::POST, "/be/v1/users", Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body} → {}", r.body);
        bad(&r, field);
    }
    // None of them made a user.
    let r = s.be(&tok, Method::GET, "/be/v1/users", None).await;
    assert_eq!(names(r.ok(), "users", "username"), ["EOrg_admin"]);
    assert_eq!(r.body["total"], 1);

    // 401: no or bad credentials, on every users endpoint.
    let good = p(json!({}));
    for (m, path, body) in [
        (Method::POST, "/be/v1/users", Some(good.clone())),
        (Method::GET, "/be/v1/users", None),
        (Method::GET, "/be/v1/users/EOrg_admin", None),
        (Method::PATCH, "/be/v1/users", Some(json!({"title": "x"}))),
        (Method::DELETE, "/be/v1/users/EOrg_admin", None),
    ] {
        s.req(m.clone(), path, &[], body.clone()).await.err(401, "unauthorized");
        s.be("at_not_a_token", m, path, body).await.err(401, "unauthorized");
    }

    // 403: the role lacks beUsers Create (a person and a machine user holding it).
    let (weak, _) = member(&s, &tok, "EOrg", "weak", json!({"beUsers": 14, "apps": 15})).await;
    s.be(&weak, Method::POST, "/be/v1/users", Some(good.clone())).await.err(403, "forbidden");
    let mkey = add_machine(&s, &tok, "weakbot", &["weak_r"]).await;
    s.be(&mkey, Method::POST, "/be/v1/users", Some(good.clone())).await.err(403, "forbidden");
    // 400 comes before 403.
    bad(
        &s.be(&weak, Method::POST, "/be/v1/users", Some(p(json!({"username": "x"})))).await,
        "username",
    );
    // With beUsers Create but not the bits of the role given: 403; with a role within them: fine.
    let (creator, _) = member(&s, &tok, "EOrg", "creator", json!({"beUsers": 1, "apps": 2})).await;
    s.be(&creator, Method::POST, "/be/v1/users", Some(p(json!({"roles": ["Dev"]}))))
        .await
        .err(403, "forbidden");
    s.be(&creator, Method::POST, "/be/v1/users", Some(p(json!({"roles": ["Administrators"]}))))
        .await
        .err(403, "forbidden");
    s.be(&tok, Method::GET, "/be/v1/users/newp", None).await.err(404, "not-found");
    add_role(&s, &tok, "Reader", json!({"apps": 2})).await;
    let r =
        s.be(&creator, Method::POST, "/be/v1/users", Some(p(json!({"roles": ["Reader"]})))).await;
    assert_eq!(r.ok()["user"]["roles"], json!(["Reader"]));

    // 409: a username taken anywhere in the instance (person or machine, this org or another).
    for (t, body) in [
        (&tok, p(json!({}))),
        (&tok, p(json!({"username": "EOrg_admin"}))),
        (&tok, p(json!({"username": "EOrgB_admin"}))),
        (&tok_b, p(json!({}))),
        (&tok_b, json!({"type": "machine", "username": "newp", "label": "L"})),
        (&tok_b, json!({"type": "machine", "username": "weakbot", "label": "L"})),
        (&tok_b, p(json!({"username": "weakbot"}))),
    ] {
        s.be(t, Method::POST, "/be/v1/users", Some(body)).await.err(409, "item-exists");
    }
    // Names are case-sensitive: a different case is a different user.
    s.be(
        &tok,
        Method::POST,
        "/be/v1/users",
        Some(p(json!({"username": "NEWP", "email": "upper@example.com"}))),
    )
    .await
    .ok();
    // Org B still sees only its own admin.
    let r = s.be(&tok_b, Method::GET, "/be/v1/users", None).await;
    assert_eq!(names(r.ok(), "users", "username"), ["EOrgB_admin"]);
});

edge_test!(users_list_and_get, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("LOrg").await;
    let (tok_b, _) = s.org_admin("LOrgB").await;
    add_role(&s, &tok, "Dev", json!({"apps": 6})).await;
    add_person(&s, &tok, "alice", &["Dev"]).await;
    let bot_key = add_machine(&s, &tok, "bob_bot", &[]).await;
    add_person(&s, &tok, "carl", &[]).await;
    add_person(&s, &tok_b, "zed", &[]).await;

    let r = s.be(&tok, Method::GET, "/be/v1/users", None).await;
    let l = r.ok().clone();
    assert_eq!(names(&l, "users", "username"), ["LOrg_admin", "alice", "bob_bot", "carl"]);
    assert_eq!(
        (l["total"].clone(), l["offset"].clone(), l["limit"].clone()),
        (json!(4), json!(0), json!(10))
    );
    let alice = l["users"][1].clone();
    assert_eq!(alice["roles"], json!(["Dev"]));
    assert_eq!(alice["type"], "user");
    assert_eq!(l["users"][0]["roles"], json!(["Administrators"]));
    assert_eq!(l["users"][2]["type"], "machine");
    assert!(!l.to_string().contains("pw") && !l.to_string().contains("hash"), "{l}");
    assert!(!l.to_string().contains("zed"), "another org's user is never listed");

    assert_eq!(
        names(list_users(&s, &tok, "type=machine").await.ok(), "users", "username"),
        ["bob_bot"]
    );
    assert_eq!(
        names(list_users(&s, &tok, "type=user").await.ok(), "users", "username"),
        ["LOrg_admin", "alice", "carl"]
    );
    let r = list_users(&s, &tok, "username=li").await;
    assert_eq!(names(r.ok(), "users", "username"), ["alice"]);
    assert_eq!(r.body["total"], 1);
    assert_eq!(
        names(list_users(&s, &tok, "username=ar&type=user").await.ok(), "users", "username"),
        ["carl"]
    );
    assert_eq!(
        names(list_users(&s, &tok, "username=nomatch").await.ok(), "users", "username"),
        Vec::<String>::new()
    );
    assert_eq!(
        names(list_users(&s, &tok, "order[]=-username").await.ok(), "users", "username"),
        ["carl", "bob_bot", "alice", "LOrg_admin"]
    );
    assert_eq!(
        names(list_users(&s, &tok, "order[]=created").await.ok(), "users", "username"),
        ["LOrg_admin", "alice", "bob_bot", "carl"]
    );
    let r = list_users(&s, &tok, "limit=2&offset=1").await;
    assert_eq!(names(r.ok(), "users", "username"), ["alice", "bob_bot"]);
    assert_eq!(
        (r.body["total"].clone(), r.body["limit"].clone(), r.body["offset"].clone()),
        (json!(4), json!(2), json!(1))
    );
    let r = list_users(&s, &tok, "fields[]=username&fields[]=type&limit=1").await;
    assert_eq!(r.ok()["users"], json!([{"username": "LOrg_admin", "type": "user"}]));
    for (bad_q, field) in [
        ("type=robot", "type"),
        ("order[]=email", "order[]"),
        ("fields[]=password", "fields[]"),
        ("bogus=1", "bogus"),
        ("limit=0", "limit"),
    ] {
        bad(&list_users(&s, &tok, bad_q).await, field);
    }

    // One user: exact object, projection, 404 for unknown and for another tenant's.
    let r = s.be(&tok, Method::GET, "/be/v1/users/alice", None).await;
    assert_eq!(r.ok()["user"], alice);
    let r =
        s.be(&tok, Method::GET, "/be/v1/users/alice?fields[]=username&fields[]=roles", None).await;
    assert_eq!(r.ok()["user"], json!({"username": "alice", "roles": ["Dev"]}));
    bad(&s.be(&tok, Method::GET, "/be/v1/users/alice?fields[]=nope", None).await, "fields[]");
    s.be(&tok, Method::GET, "/be/v1/users/nobody", None).await.err(404, "not-found");
    s.be(&tok, Method::GET, "/be/v1/users/zed", None).await.err(404, "not-found");
    s.be(&tok, Method::GET, "/be/v1/users/LOrgB_admin", None).await.err(404, "not-found");
    s.be(&tok_b, Method::GET, "/be/v1/users/alice", None).await.err(404, "not-found");

    // Without beUsers Read: itself only (machine user and person alike).
    let r = s.be(&bot_key, Method::GET, "/be/v1/users/bob_bot", None).await;
    assert_eq!(r.ok()["user"]["type"], "machine");
    s.be(&bot_key, Method::GET, "/be/v1/users/alice", None).await.err(403, "forbidden");
    s.be(&bot_key, Method::GET, "/be/v1/users", None).await.err(403, "forbidden");
    let (dev, _) = member(&s, &tok, "LOrg", "dev", json!({"apps": 15, "beUsers": 13})).await;
    assert_eq!(
        s.be(&dev, Method::GET, "/be/v1/users/dev", None).await.ok()["user"]["roles"],
        json!(["dev_r"])
    );
    s.be(&dev, Method::GET, "/be/v1/users/carl", None).await.err(403, "forbidden");
    s.be(&dev, Method::GET, "/be/v1/users", None).await.err(403, "forbidden");
    // With beUsers Read only: both.
    let (reader, _) = member(&s, &tok, "LOrg", "reader", json!({"beUsers": 2})).await;
    s.be(&reader, Method::GET, "/be/v1/users/carl", None).await.ok();
    assert_eq!(s.be(&reader, Method::GET, "/be/v1/users", None).await.ok()["total"], 6);
    s.be(&reader, Method::GET, "/be/v1/users/zed", None).await.err(404, "not-found");
});

edge_test!(users_patch_profile, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("POrg").await;
    let (tok_b, _) = s.org_admin("POrgB").await;
    add_person(&s, &tok_b, "other_tenant", &[]).await;
    let (mgr, _) = member(&s, &tok, "POrg", "mgr", json!({"beUsers": 6})).await;
    let alice_pw = add_person(&s, &tok, "alice", &[]).await;
    let alice = s.token("alice", &alice_pw, "POrg").await;
    add_machine(&s, &tok, "bot", &[]).await;

    // An administrator changes another person's profile.
    let body = json!({"username": "alice", "email": "alice2@example.com", "firstname": "Alicia", "surname": "Jones", "title": "Prof"});
    let r = s.be(&tok, Method::PATCH, "/be/v1/users", Some(body)).await;
    assert_eq!(keys(r.ok()), ["status", "user"]);
    let u = r.body["user"].clone();
    assert_eq!(
        (
            u["username"].clone(),
            u["email"].clone(),
            u["firstname"].clone(),
            u["surname"].clone(),
            u["title"].clone()
        ),
        (
            json!("alice"),
            json!("alice2@example.com"),
            json!("Alicia"),
            json!("Jones"),
            json!("Prof")
        )
    );
    assert!(ts(&u["updated"]) >= ts(&u["created"]));
    let g = s.be(&tok, Method::GET, "/be/v1/users/alice", None).await;
    assert_eq!(g.ok()["user"]["email"], "alice2@example.com");
    assert_eq!(g.body["user"]["title"], "Prof");
    // Only the given fields change.
    let r = s
        .be(&tok, Method::PATCH, "/be/v1/users", Some(json!({"username": "alice", "title": "Dr"})))
        .await;
    assert_eq!(r.ok()["user"]["title"], "Dr");
    assert_eq!(r.body["user"]["firstname"], "Alicia");
    assert_eq!(r.body["user"]["email"], "alice2@example.com");
    // beUsers Update suffices for a weaker target.
    let r = s
        .be(
            &mgr,
            Method::PATCH,
            "/be/v1/users",
            Some(json!({"username": "alice", "surname": "Mgr"})),
        )
        .await;
    assert_eq!(r.ok()["user"]["surname"], "Mgr");
    // Own profile needs no permission, with or without naming oneself.
    let r = s.be(&alice, Method::PATCH, "/be/v1/users", Some(json!({"firstname": "Ali"}))).await;
    assert_eq!(r.ok()["user"]["username"], "alice");
    assert_eq!(r.body["user"]["firstname"], "Ali");
    let r = s
        .be(
            &alice,
            Method::PATCH,
            "/be/v1/users",
            Some(json!({"username": "alice", "email": "ali@example.com"})),
        )
        .await;
    assert_eq!(r.ok()["user"]["email"], "ali@example.com");
    // The machine user's label.
    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/users",
            Some(json!({"username": "bot", "label": "New label"})),
        )
        .await;
    assert_eq!(r.ok()["user"]["label"], "New label");
    assert_eq!(
        s.be(&tok, Method::GET, "/be/v1/users/bot", None).await.ok()["user"]["label"],
        "New label"
    );

    // 403: someone else's fields without beUsers Update, roles even for oneself.
    for body in [
        json!({"username": "mgr", "title": "x"}),
        json!({"username": "bot", "label": "x"}),
        json!({"username": "POrg_admin", "email": "evil@example.com"}),
        json!({"roles": []}),
        json!({"username": "mgr", "roles": []}),
        json!({"username": "mgr", "resetCreds": true}),
        // An empty change of someone else reveals their record: it needs beUsers Update too.
        json!({"username": "mgr"}),
    ] {
        let r = s.be(&alice, Method::PATCH, "/be/v1/users", Some(body.clone())).await;
        assert_eq!(r.status, 403, "{body} → {}", r.body);
        r.err(403, "forbidden");
    }
    assert_eq!(
        s.be(&tok, Method::GET, "/be/v1/users/POrg_admin", None).await.ok()["user"]["email"],
        "POrg_admin@example.com"
    );

    // 400s, each naming its field.
    for (body, field) in [
        (json!({"username": "alice", "email": "bad"}), "email"),
        (json!({"username": "alice", "firstname": ""}), "firstname"),
        (json!({"username": "alice", "surname": "s".repeat(101)}), "surname"),
        (json!({"username": "alice", "title": "t".repeat(101)}), "title"),
        (json!({"username": "alice", "label": "persons have none"}), "label"),
        (json!({"username": "bot", "label": ""}), "label"),
        (json!({"username": "alice", "bogus": true}), "bogus"),
        (json!({"username": "alice", "roles": ["NoSuchRole"]}), "roles"),
        (json!({"username": "alice", "resetCreds": "yes"}), "resetCreds"),
        (
            json!({"username": "alice", "oldPW": "whatever-it-is", "newPW": "Another-Long-Pass-1"}),
            "newPW",
        ),
    ] {
        let r = s.be(&tok, Method::PATCH, "/be/v1/users", Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body} → {}", r.body);
        bad(&r, field);
    }
    // A machine user has no e-mail or person names.
    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/users",
            Some(json!({"username": "bot", "email": "bot@example.com"})),
        )
        .await;
    r.err(400, "invalid-param");
    assert!(s.be(&tok, Method::GET, "/be/v1/users/bot", None).await.ok()["user"]
        .get("email")
        .is_none());

    // 404: unknown, and another organization's user.
    for name in ["nobody", "other_tenant", "POrgB_admin"] {
        s.be(&tok, Method::PATCH, "/be/v1/users", Some(json!({"username": name, "title": "x"})))
            .await
            .err(404, "not-found");
        s.be(
            &tok,
            Method::PATCH,
            "/be/v1/users",
            Some(json!({"username": name, "resetCreds": true})),
        )
        .await
        .err(404, "not-found");
    }
    assert!(s.be(&tok_b, Method::GET, "/be/v1/users/other_tenant", None).await.ok()["user"]
        .get("title")
        .is_none());
});

edge_test!(users_role_assignment_no_escalation, |b| async move {
    let s = Srv::start(b).await;
    let (tok, admin_pw) = s.org_admin("ROrg").await;
    add_role(&s, &tok, "AppsRW", json!({"apps": 6})).await;
    add_role(&s, &tok, "AppsAll", json!({"apps": 15})).await;
    add_role(&s, &tok, "Trigger", json!({"apps": 1, "tasks": 16})).await;
    add_role(&s, &tok, "UserMgr", json!({"beUsers": 15, "apps": 6})).await;
    let mgr_pw = add_person(&s, &tok, "mgr", &["UserMgr"]).await;
    let mgr = s.token("mgr", &mgr_pw, "ROrg").await;
    let tim_pw = add_person(&s, &tok, "tim", &[]).await;

    // Assignment replaces the roles; the effective permission is the OR over them.
    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/users",
            Some(json!({"username": "tim", "roles": ["Trigger", "AppsRW"]})),
        )
        .await;
    assert_eq!(r.ok()["user"]["roles"], json!(["AppsRW", "Trigger"]));
    let l = s.login("tim", &tim_pw, "ROrg").await;
    assert_eq!(
        (l["permissions"]["apps"].clone(), l["permissions"]["tasks"].clone()),
        (json!(7), json!(16))
    );
    let r = s
        .be(&tok, Method::PATCH, "/be/v1/users", Some(json!({"username": "tim", "roles": []})))
        .await;
    assert_eq!(r.ok()["user"]["roles"], json!([]));
    assert_eq!(s.login("tim", &tim_pw, "ROrg").await["permissions"]["tasks"], 0);
    // Naming a role twice is naming it once.
    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/users",
            Some(json!({"username": "tim", "roles": ["AppsRW", "AppsRW"]})),
        )
        .await;
    assert_eq!(r.ok()["user"]["roles"], json!(["AppsRW"]));
    assert_eq!(s.be(&tok, Method::GET, "/be/v1/roles/AppsRW", None).await.ok()["role"]["users"], 1);
    s.be(&tok, Method::PATCH, "/be/v1/users", Some(json!({"username": "tim", "roles": []})))
        .await
        .ok();
    // A manager within its bits.
    let r = s
        .be(
            &mgr,
            Method::PATCH,
            "/be/v1/users",
            Some(json!({"username": "tim", "roles": ["AppsRW"]})),
        )
        .await;
    assert_eq!(r.ok()["user"]["roles"], json!(["AppsRW"]));
    assert_eq!(s.login("tim", &tim_pw, "ROrg").await["permissions"]["apps"], 6);

    // Assigning roles beyond one's own bits: 403, nothing changes.
    for roles in [json!(["AppsAll"]), json!(["Administrators"]), json!(["AppsRW", "Trigger"])] {
        let r = s
            .be(
                &mgr,
                Method::PATCH,
                "/be/v1/users",
                Some(json!({"username": "tim", "roles": roles})),
            )
            .await;
        r.err(403, "forbidden");
    }
    s.be(&mgr, Method::PATCH, "/be/v1/users", Some(json!({"roles": ["UserMgr", "AppsAll"]})))
        .await
        .err(403, "forbidden");
    assert_eq!(roles_of(&s, &tok, "tim").await, json!(["AppsRW"]));
    assert_eq!(roles_of(&s, &tok, "mgr").await, json!(["UserMgr"]));
    // The same at creation time.
    for roles in [json!(["AppsAll"]), json!(["Administrators"])] {
        let body = json!({"username": "newbie", "email": "n@example.com", "firstname": "N", "surname": "B", "roles": roles});
        s.be(&mgr, Method::POST, "/be/v1/users", Some(body)).await.err(403, "forbidden");
        let body = json!({"type": "machine", "username": "newbot", "label": "N", "roles": roles});
        s.be(&mgr, Method::POST, "/be/v1/users", Some(body)).await.err(403, "forbidden");
    }
    s.be(&tok, Method::GET, "/be/v1/users/newbie", None).await.err(404, "not-found");
    s.be(&tok, Method::GET, "/be/v1/users/newbot", None).await.err(404, "not-found");
    let body = json!({"username": "newbie", "email": "n@example.com", "firstname": "N", "surname": "B", "roles": ["AppsRW", "UserMgr"]});
    assert_eq!(
        s.be(&mgr, Method::POST, "/be/v1/users", Some(body)).await.ok()["user"]["roles"],
        json!(["AppsRW", "UserMgr"])
    );

    // A stronger target cannot be changed at all by the weaker manager.
    s.be(
        &tok,
        Method::PATCH,
        "/be/v1/users",
        Some(json!({"username": "tim", "roles": ["AppsAll"]})),
    )
    .await
    .ok();
    let tim_key =
        s.be(&tok, Method::POST, "/be/v1/apikeys", Some(json!({"username": "tim"}))).await.ok()
            ["key"]["keyId"]
            .clone();
    for body in [
        json!({"username": "tim", "roles": []}),
        json!({"username": "tim", "roles": ["AppsAll"]}),
        json!({"username": "tim", "title": "x"}),
        json!({"username": "tim", "resetCreds": true}),
    ] {
        let r = s.be(&mgr, Method::PATCH, "/be/v1/users", Some(body.clone())).await;
        assert_eq!(r.status, 403, "{body} → {}", r.body);
    }
    s.be(&mgr, Method::POST, "/be/v1/apikeys", Some(json!({"username": "tim"})))
        .await
        .err(403, "forbidden");
    s.be(&mgr, Method::DELETE, &format!("/be/v1/apikeys/{}", tim_key.as_str().unwrap()), None)
        .await
        .err(403, "forbidden");
    s.be(&mgr, Method::DELETE, "/be/v1/users/tim", None).await.err(403, "forbidden");
    // The same against an administrator.
    s.be(
        &mgr,
        Method::PATCH,
        "/be/v1/users",
        Some(json!({"username": "ROrg_admin", "email": "x@example.com"})),
    )
    .await
    .err(403, "forbidden");
    s.be(
        &mgr,
        Method::PATCH,
        "/be/v1/users",
        Some(json!({"username": "ROrg_admin", "resetCreds": true})),
    )
    .await
    .err(403, "forbidden");
    s.be(&mgr, Method::POST, "/be/v1/apikeys", Some(json!({"username": "ROrg_admin"})))
        .await
        .err(403, "forbidden");
    s.be(&mgr, Method::DELETE, "/be/v1/users/ROrg_admin", None).await.err(403, "forbidden");
    // Nothing happened to them.
    assert_eq!(roles_of(&s, &tok, "tim").await, json!(["AppsAll"]));
    assert!(s.be(&tok, Method::GET, "/be/v1/users/tim", None).await.ok()["user"]
        .get("title")
        .is_none());
    assert_eq!(login_status(&s, "tim", &tim_pw, Some("ROrg")).await, 200);
    assert_eq!(login_status(&s, "ROrg_admin", &admin_pw, Some("ROrg")).await, 200);
    let r = s.be(&tok, Method::GET, "/be/v1/apikeys?username=tim", None).await;
    assert_eq!(r.ok()["keys"].as_array().unwrap().len(), 1);

    // The last administrator keeps the Administrators role.
    let r = s.be(&tok, Method::PATCH, "/be/v1/users", Some(json!({"roles": ["AppsAll"]}))).await;
    r.err(409, "item-protected");
    assert_eq!(roles_of(&s, &tok, "ROrg_admin").await, json!(["Administrators"]));
    // With a second administrator, the first may step down.
    s.be(
        &tok,
        Method::PATCH,
        "/be/v1/users",
        Some(json!({"username": "tim", "roles": ["Administrators"]})),
    )
    .await
    .ok();
    let r = s.be(&tok, Method::PATCH, "/be/v1/users", Some(json!({"roles": ["AppsAll"]}))).await;
    assert_eq!(r.ok()["user"]["roles"], json!(["AppsAll"]));
    assert_eq!(s.login("ROrg_admin", &admin_pw, "ROrg").await["permissions"]["beUsers"], 0);
    // And now tim is the last one.
    let tim = s.token("tim", &tim_pw, "ROrg").await;
    s.be(&tim, Method::PATCH, "/be/v1/users", Some(json!({"roles": []})))
        .await
        .err(409, "item-protected");
    s.be(&tim, Method::DELETE, "/be/v1/users/tim", None).await.err(409, "item-protected");
});

edge_test!(users_multi_org_person, |b| async move {
    let s = Srv::start(b).await;
    let (tok_a, _) = s.org_admin("OrgA").await;
    add_role(&s, &tok_a, "AppsRW", json!({"apps": 6})).await;
    let pia_pw = add_person(&s, &tok_a, "pia", &[]).await;
    let pia_a = s.token("pia", &pia_pw, "OrgA").await;
    let pia_key_a = s
        .be(&pia_a, Method::POST, "/be/v1/apikeys", Some(json!({"label": "pia in A"})))
        .await
        .ok()
        .clone();
    let pia_key_a_id = pia_key_a["key"]["keyId"].as_str().unwrap().to_string();
    let pia_key_a = pia_key_a["apiKey"].as_str().unwrap().to_string();

    // Org B is created with pia as its administrator: linked, no password made.
    let body = json!({"name": "OrgB", "label": "B", "username": "pia", "email": "pia@example.com", "firstname": "P", "surname": "I"});
    let r = s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await;
    assert!(r.ok().get("adminPW").is_none(), "{}", r.body);
    let r = s
        .req(
            Method::POST,
            "/be/v1/login",
            &[],
            Some(json!({"username": "pia", "password": pia_pw})),
        )
        .await;
    assert_eq!(names(r.ok(), "orgs", "name"), ["OrgA", "OrgB"]);
    let pia_b = s.token("pia", &pia_pw, "OrgB").await;
    let pia_key_b = s.be(&pia_b, Method::POST, "/be/v1/apikeys", Some(json!({}))).await.ok()
        ["apiKey"]
        .as_str()
        .unwrap()
        .to_string();

    // OrgA's administrator may not touch her profile, password or credentials…
    for body in [
        json!({"username": "pia", "email": "hijack@example.com"}),
        json!({"username": "pia", "title": "Ms"}),
        json!({"username": "pia", "resetCreds": true}),
    ] {
        let r = s.be(&tok_a, Method::PATCH, "/be/v1/users", Some(body.clone())).await;
        assert_eq!(r.status, 403, "{body} → {}", r.body);
        r.err(403, "forbidden");
    }
    s.be(&tok_a, Method::POST, "/be/v1/apikeys", Some(json!({"username": "pia"})))
        .await
        .err(403, "forbidden");
    s.be(&tok_a, Method::DELETE, &format!("/be/v1/apikeys/{pia_key_a_id}"), None)
        .await
        .err(403, "forbidden");
    assert_eq!(login_status(&s, "pia", &pia_pw, Some("OrgA")).await, 200);
    s.be(&pia_key_a, Method::GET, "/be/v1/users/pia", None).await.ok();
    let u = s.be(&tok_a, Method::GET, "/be/v1/users/pia", None).await.ok()["user"].clone();
    assert_eq!(u["email"], "pia@example.com");
    // … but may manage her roles in OrgA.
    let r = s
        .be(
            &tok_a,
            Method::PATCH,
            "/be/v1/users",
            Some(json!({"username": "pia", "roles": ["AppsRW"]})),
        )
        .await;
    assert_eq!(r.ok()["user"]["roles"], json!(["AppsRW"]));
    // She changes her own profile herself, from either org.
    let r = s.be(&pia_a, Method::PATCH, "/be/v1/users", Some(json!({"title": "Dr"}))).await;
    assert_eq!(r.ok()["user"]["title"], "Dr");
    // Her own password change ends her other sessions in every org; keys stay.
    let pia_new = "Fresh-Secret-Phrase-2026";
    s.be(&pia_a, Method::PATCH, "/be/v1/users", Some(json!({"oldPW": pia_pw, "newPW": pia_new})))
        .await
        .ok();
    s.be(&pia_b, Method::GET, "/be/v1/users/pia", None).await.err(401, "unauthorized");
    s.be(&pia_a, Method::GET, "/be/v1/users/pia", None).await.ok();
    s.be(&pia_key_b, Method::GET, "/be/v1/users/pia", None).await.ok();
    let pia_b = s.token("pia", pia_new, "OrgB").await;
    let pia_pw = pia_new.to_string();
    // A key works only in the org it was made in.
    let triple = [
        ("x-rockit-orgname", "OrgA"),
        ("x-rockit-username", "pia"),
        ("x-rockit-api-key", pia_key_b.as_str()),
    ];
    s.req(Method::GET, "/be/v1/users/pia", &triple, None).await.err(401, "unauthorized");
    let triple = [
        ("x-rockit-orgname", "OrgB"),
        ("x-rockit-username", "pia"),
        ("x-rockit-api-key", pia_key_b.as_str()),
    ];
    s.req(Method::GET, "/be/v1/users/pia", &triple, None).await.ok();

    // Deleting her in OrgA removes only the membership.
    let r = s.be(&tok_a, Method::DELETE, "/be/v1/users/pia", None).await;
    assert_eq!(r.ok()["message"], "user deleted");
    s.be(&tok_a, Method::GET, "/be/v1/users/pia", None).await.err(404, "not-found");
    s.be(&pia_a, Method::GET, "/be/v1/users/pia", None).await.err(401, "unauthorized");
    s.be(&pia_key_a, Method::GET, "/be/v1/users/pia", None).await.err(401, "unauthorized");
    assert_eq!(login_status(&s, "pia", &pia_pw, Some("OrgA")).await, 403);
    let r = s
        .req(
            Method::POST,
            "/be/v1/login",
            &[],
            Some(json!({"username": "pia", "password": pia_pw})),
        )
        .await;
    assert_eq!(names(r.ok(), "orgs", "name"), ["OrgB"]);
    // In OrgB she is untouched: session, key, profile and role.
    let u = s.be(&pia_b, Method::GET, "/be/v1/users/pia", None).await.ok()["user"].clone();
    assert_eq!((u["title"].clone(), u["roles"].clone()), (json!("Dr"), json!(["Administrators"])));
    s.be(&pia_key_b, Method::GET, "/be/v1/users/pia", None).await.ok();
    // The username stays taken instance-wide.
    let body =
        json!({"username": "pia", "email": "p2@example.com", "firstname": "P", "surname": "2"});
    s.be(&tok_a, Method::POST, "/be/v1/users", Some(body)).await.err(409, "item-exists");
});

edge_test!(users_reset_creds_person, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("CrOrg").await;
    add_role(&s, &tok, "Reader", json!({"roles": 2})).await;
    let pete_pw = add_person(&s, &tok, "pete", &["Reader"]).await;
    let s1 = s.login("pete", &pete_pw, "CrOrg").await;
    let s2 = s.login("pete", &pete_pw, "CrOrg").await;
    let (a1, r2) = (
        s1["accessToken"].as_str().unwrap().to_string(),
        s2["refreshToken"].as_str().unwrap().to_string(),
    );

    // beUsers short of 15: 403, and nothing changes.
    let (partial, _) =
        member(&s, &tok, "CrOrg", "partial", json!({"beUsers": 7, "apps": 15})).await;
    s.be(
        &partial,
        Method::PATCH,
        "/be/v1/users",
        Some(json!({"username": "pete", "resetCreds": true})),
    )
    .await
    .err(403, "forbidden");
    s.be(&a1, Method::GET, "/be/v1/roles", None).await.ok();
    assert_eq!(login_status(&s, "pete", &pete_pw, Some("CrOrg")).await, 200);
    // resetCreds false is no reset.
    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/users",
            Some(json!({"username": "pete", "resetCreds": false})),
        )
        .await;
    assert_eq!(keys(r.ok()), ["status", "user"]);
    s.be(&a1, Method::GET, "/be/v1/roles", None).await.ok();

    // beUsers 15 (not an administrator) suffices for a weaker person.
    let (full, _) = member(&s, &tok, "CrOrg", "full", json!({"beUsers": 15, "roles": 2})).await;
    let r = s
        .be(
            &full,
            Method::PATCH,
            "/be/v1/users",
            Some(json!({"username": "pete", "resetCreds": true})),
        )
        .await;
    let out = r.ok().clone();
    assert_eq!(keys(&out), ["newPW", "status", "user"]);
    assert_eq!(out["user"]["username"], "pete");
    assert_eq!(out["user"]["roles"], json!(["Reader"]));
    let new_pw = out["newPW"].as_str().unwrap().to_string();
    assert_ne!(new_pw, pete_pw);
    assert!(new_pw.len() >= 10);
    // The old password fails, the new one works; every session of pete ended.
    assert_eq!(login_status(&s, "pete", &pete_pw, Some("CrOrg")).await, 401);
    s.be(&a1, Method::GET, "/be/v1/roles", None).await.err(401, "unauthorized");
    s.be(&r2, Method::POST, "/be/v1/refresh", None).await.err(401, "unauthorized");
    let a3 = s.token("pete", &new_pw, "CrOrg").await;
    s.be(&a3, Method::GET, "/be/v1/roles", None).await.ok();
    // The resetter's own session is untouched.
    s.be(&full, Method::GET, "/be/v1/users/pete", None).await.ok();
    // Unknown target: 404.
    s.be(
        &tok,
        Method::PATCH,
        "/be/v1/users",
        Some(json!({"username": "ghost", "resetCreds": true})),
    )
    .await
    .err(404, "not-found");
});

edge_test!(users_reset_creds_machine, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("CmOrg").await;
    add_role(&s, &tok, "Reader", json!({"roles": 2})).await;
    let k1 = add_machine(&s, &tok, "bot", &["Reader"]).await;
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/apikeys",
            Some(json!({"username": "bot", "label": "second"})),
        )
        .await;
    let k2 = r.ok()["apiKey"].as_str().unwrap().to_string();
    assert_eq!(r.body["key"]["username"], "bot");
    s.be(&k1, Method::GET, "/be/v1/roles", None).await.ok();
    s.be(&k2, Method::GET, "/be/v1/roles", None).await.ok();
    // Another machine user's keys are not affected.
    let other = add_machine(&s, &tok, "other_bot", &["Reader"]).await;

    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/users",
            Some(json!({"username": "bot", "resetCreds": true})),
        )
        .await;
    let out = r.ok().clone();
    assert_eq!(keys(&out), ["apiKey", "status", "user"]);
    assert_eq!(out["user"]["type"], "machine");
    let k3 = out["apiKey"].as_str().unwrap().to_string();
    assert!(k3.starts_with("rk_") && k3 != k1 && k3 != k2);
    for k in [&k1, &k2] {
        s.be(k, Method::GET, "/be/v1/roles", None).await.err(401, "unauthorized");
        let triple = [
            ("x-rockit-orgname", "CmOrg"),
            ("x-rockit-username", "bot"),
            ("x-rockit-api-key", k.as_str()),
        ];
        s.req(Method::GET, "/be/v1/roles", &triple, None).await.err(401, "unauthorized");
    }
    s.be(&k3, Method::GET, "/be/v1/roles", None).await.ok();
    let triple = [
        ("x-rockit-orgname", "CmOrg"),
        ("x-rockit-username", "bot"),
        ("x-rockit-api-key", k3.as_str()),
    ];
    s.req(Method::GET, "/be/v1/roles", &triple, None).await.ok();
    s.be(&other, Method::GET, "/be/v1/roles", None).await.ok();
    // Only the new key is left.
    let r = s.be(&tok, Method::GET, "/be/v1/apikeys?username=bot", None).await;
    let ks = r.ok()["keys"].as_array().unwrap().clone();
    assert_eq!(ks.len(), 1, "{ks:?}");
    assert!(k3.starts_with(&format!("rk_{}_", ks[0]["keyId"].as_str().unwrap())));
});

edge_test!(users_own_password_change, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("PwOrg").await;
    let pw0 = add_person(&s, &tok, "olga", &[]).await;
    let this = s.login("olga", &pw0, "PwOrg").await;
    let other = s.login("olga", &pw0, "PwOrg").await;
    let t_a = this["accessToken"].as_str().unwrap().to_string();
    let r_a = this["refreshToken"].as_str().unwrap().to_string();
    let t_b = other["accessToken"].as_str().unwrap().to_string();
    let r_b = other["refreshToken"].as_str().unwrap().to_string();
    const NEW: &str = "Correct-Horse-Battery-9";

    // A wrong old password: 401; the session stays, the password too.
    let r = s
        .be(
            &t_a,
            Method::PATCH,
            "/be/v1/users",
            Some(json!({"oldPW": "wrong-password-1", "newPW": NEW})),
        )
        .await;
    r.err(401, "unauthorized");
    s.be(&t_a, Method::GET, "/be/v1/users/olga", None).await.ok();
    s.be(&t_b, Method::GET, "/be/v1/users/olga", None).await.ok();
    // Weak new passwords: 400 on newPW.
    for weak in [
        "short1A!",
        "nine_char",
        "my-olga-password",
        "xxolgaxxxxxxxx",
        "password123",
        "1234567890",
        "qwertyuiop",
        &"a".repeat(257),
    ] {
        let r = s
            .be(&t_a, Method::PATCH, "/be/v1/users", Some(json!({"oldPW": pw0, "newPW": weak})))
            .await;
        assert_eq!(r.status, 400, "{weak} → {}", r.body);
        bad(&r, "newPW");
    }
    // The two go together.
    bad(&s.be(&t_a, Method::PATCH, "/be/v1/users", Some(json!({"newPW": NEW}))).await, "oldPW");
    bad(&s.be(&t_a, Method::PATCH, "/be/v1/users", Some(json!({"oldPW": pw0}))).await, "newPW");
    assert_eq!(login_status(&s, "olga", &pw0, Some("PwOrg")).await, 200);
    s.be(&t_b, Method::GET, "/be/v1/users/olga", None).await.ok();

    // The change: no secret in the answer; the other sessions end, this one stays.
    let r =
        s.be(&t_a, Method::PATCH, "/be/v1/users", Some(json!({"oldPW": pw0, "newPW": NEW}))).await;
    assert_eq!(keys(r.ok()), ["status", "user"]);
    assert!(!r.body.to_string().contains(NEW));
    s.be(&t_a, Method::GET, "/be/v1/users/olga", None).await.ok();
    s.be(&t_b, Method::GET, "/be/v1/users/olga", None).await.err(401, "unauthorized");
    s.be(&r_b, Method::POST, "/be/v1/refresh", None).await.err(401, "unauthorized");
    s.be(&r_a, Method::POST, "/be/v1/refresh", None).await.ok();
    assert_eq!(login_status(&s, "olga", &pw0, Some("PwOrg")).await, 401);
    assert_eq!(login_status(&s, "olga", NEW, Some("PwOrg")).await, 200);
    // The old password is no longer "old".
    s.be(
        &t_a,
        Method::PATCH,
        "/be/v1/users",
        Some(json!({"oldPW": pw0, "newPW": "Yet-Another-Pass-77"})),
    )
    .await
    .err(401, "unauthorized");
    // Exactly 10 and exactly 256 characters are fine.
    let ten = "Zq8#mW2!pL";
    s.be(&t_a, Method::PATCH, "/be/v1/users", Some(json!({"oldPW": NEW, "newPW": ten}))).await.ok();
    assert_eq!(login_status(&s, "olga", ten, Some("PwOrg")).await, 200);
    let long = "k9".repeat(128);
    s.be(&t_a, Method::PATCH, "/be/v1/users", Some(json!({"oldPW": ten, "newPW": long})))
        .await
        .ok();
    assert_eq!(login_status(&s, "olga", &long, Some("PwOrg")).await, 200);

    // Characters, not bytes, count.
    let umlauts = "äöüßéèêëïî";
    s.be(&t_a, Method::PATCH, "/be/v1/users", Some(json!({"oldPW": long, "newPW": umlauts})))
        .await
        .ok();
    assert_eq!(login_status(&s, "olga", umlauts, Some("PwOrg")).await, 200);
    bad(
        &s.be(
            &t_a,
            Method::PATCH,
            "/be/v1/users",
            Some(json!({"oldPW": umlauts, "newPW": "ä".repeat(257)})),
        )
        .await,
        "newPW",
    );

    // A machine user has no password to change.
    let key = add_machine(&s, &tok, "pwbot", &[]).await;
    s.be(&key, Method::PATCH, "/be/v1/users", Some(json!({"oldPW": "x-whatever-1", "newPW": NEW})))
        .await
        .err(400, "invalid-param");
    s.be(&key, Method::GET, "/be/v1/users/pwbot", None).await.ok();
});

edge_test!(users_delete, |b| async move {
    let s = Srv::start(b).await;
    let (tok, admin_pw) = s.org_admin("DOrg").await;
    let (tok_b, _) = s.org_admin("DOrgB").await;
    add_person(&s, &tok_b, "b_user", &[]).await;
    let dan_pw = add_person(&s, &tok, "dan", &[]).await;
    let dan = s.login("dan", &dan_pw, "DOrg").await;
    let dan_tok = dan["accessToken"].as_str().unwrap().to_string();
    let dan_key = s.be(&dan_tok, Method::POST, "/be/v1/apikeys", Some(json!({}))).await.ok()
        ["apiKey"]
        .as_str()
        .unwrap()
        .to_string();
    let bot_key = add_machine(&s, &tok, "dbot", &[]).await;

    // 403 without beUsers Delete; 404 before that only with the bit.
    let (nodel, _) = member(&s, &tok, "DOrg", "nodel", json!({"beUsers": 7})).await;
    s.be(&nodel, Method::DELETE, "/be/v1/users/dan", None).await.err(403, "forbidden");
    s.be(&dan_tok, Method::DELETE, "/be/v1/users/dbot", None).await.err(403, "forbidden");
    s.be(&tok, Method::DELETE, "/be/v1/users/ghost", None).await.err(404, "not-found");
    s.be(&tok, Method::DELETE, "/be/v1/users/b_user", None).await.err(404, "not-found");
    s.be(&tok, Method::DELETE, "/be/v1/users/DOrgB_admin", None).await.err(404, "not-found");
    s.be(&tok_b, Method::GET, "/be/v1/users/b_user", None).await.ok();

    // A person: gone, with sessions and keys.
    let r = s.be(&tok, Method::DELETE, "/be/v1/users/dan", None).await;
    assert_eq!(r.ok()["message"], "user deleted");
    s.be(&tok, Method::GET, "/be/v1/users/dan", None).await.err(404, "not-found");
    s.be(&dan_tok, Method::GET, "/be/v1/users/dan", None).await.err(401, "unauthorized");
    s.be(dan["refreshToken"].as_str().unwrap(), Method::POST, "/be/v1/refresh", None)
        .await
        .err(401, "unauthorized");
    s.be(&dan_key, Method::GET, "/be/v1/users/dan", None).await.err(401, "unauthorized");
    assert_eq!(login_status(&s, "dan", &dan_pw, None).await, 401);
    s.be(&tok, Method::DELETE, "/be/v1/users/dan", None).await.err(404, "not-found");
    // The username is free again (the person belonged to no other org).
    add_person(&s, &tok_b, "dan", &[]).await;
    // A machine user: its key dies.
    s.be(&tok, Method::DELETE, "/be/v1/users/dbot", None).await.ok();
    s.be(&bot_key, Method::GET, "/be/v1/users/dbot", None).await.err(401, "unauthorized");
    let r = s.be(&tok, Method::GET, "/be/v1/apikeys", None).await;
    assert_eq!(r.ok()["keys"], json!([]));

    // The last administrator cannot go, by herself or anyone else.
    let (del, _) = member(&s, &tok, "DOrg", "deleter", json!({"beUsers": 15})).await;
    s.be(&tok, Method::DELETE, "/be/v1/users/DOrg_admin", None).await.err(409, "item-protected");
    s.be(&del, Method::DELETE, "/be/v1/users/DOrg_admin", None).await.err(403, "forbidden");
    assert_eq!(login_status(&s, "DOrg_admin", &admin_pw, Some("DOrg")).await, 200);
    // With a second one, either may go; then the other is protected.
    let ad2_pw = add_person(&s, &tok, "admin2", &["Administrators"]).await;
    let ad2 = s.token("admin2", &ad2_pw, "DOrg").await;
    s.be(&ad2, Method::DELETE, "/be/v1/users/DOrg_admin", None).await.ok();
    s.be(&tok, Method::GET, "/be/v1/users", None).await.err(401, "unauthorized");
    s.be(&ad2, Method::DELETE, "/be/v1/users/admin2", None).await.err(409, "item-protected");
    // One may delete oneself otherwise.
    s.be(&del, Method::DELETE, "/be/v1/users/deleter", None).await.ok();
    s.be(&del, Method::GET, "/be/v1/users/deleter", None).await.err(401, "unauthorized");
    let r = s.be(&ad2, Method::GET, "/be/v1/users", None).await;
    assert_eq!(names(r.ok(), "users", "username"), ["admin2", "nodel"]);
});

edge_test!(users_concurrent_same_username, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("CcOrg").await;
    let (tok_b, _) = s.org_admin("CcOrgB").await;
    // Persons in one org.
    let body = json!({"username": "twin", "email": "twin@example.com", "firstname": "T", "surname": "W", "roles": []});
    let futs: Vec<_> =
        (0..6).map(|_| s.be(&tok, Method::POST, "/be/v1/users", Some(body.clone()))).collect();
    let results = futures_join_all(futs).await;
    assert_eq!(
        results.iter().filter(|r| r.status == 200).count(),
        1,
        "{:?}",
        results.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.status != 200) {
        r.err(409, "item-exists");
    }
    // Machine users from two orgs at once.
    let futs: Vec<_> = (0..6)
        .map(|i| {
            let t = if i % 2 == 0 { &tok } else { &tok_b };
            s.be(
                t,
                Method::POST,
                "/be/v1/users",
                Some(json!({"type": "machine", "username": "racebot", "label": "R"})),
            )
        })
        .collect();
    let results = futures_join_all(futs).await;
    assert_eq!(
        results.iter().filter(|r| r.status == 200).count(),
        1,
        "{:?}",
        results.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.status != 200) {
        r.err(409, "item-exists");
    }
    // Exactly one exists, in exactly one org.
    let a = s.be(&tok, Method::GET, "/be/v1/users?username=racebot", None).await.ok()["total"]
        .as_u64()
        .unwrap();
    let b2 = s.be(&tok_b, Method::GET, "/be/v1/users?username=racebot", None).await.ok()["total"]
        .as_u64()
        .unwrap();
    assert_eq!(a + b2, 1);
    assert_eq!(s.be(&tok, Method::GET, "/be/v1/users?username=twin", None).await.ok()["total"], 1);
});

edge_test!(users_concurrent_admin_removal_keeps_one, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("KOrg").await;
    for round in 0..4 {
        // Two administrators delete each other at the same moment: at least one remains.
        let name = format!("second{round}");
        let pw = add_person(&s, &tok, &name, &["Administrators"]).await;
        let other = s.token(&name, &pw, "KOrg").await;
        let d1 = format!("/be/v1/users/{name}");
        let futs = vec![
            s.be(&tok, Method::DELETE, &d1, None),
            s.be(
                &other,
                Method::PATCH,
                "/be/v1/users",
                Some(json!({"username": "KOrg_admin", "roles": []})),
            ),
        ];
        let results = futures_join_all(futs).await;
        let ok = results.iter().filter(|r| r.status == 200).count();
        assert_eq!(ok, 1, "{:?}", results.iter().map(|r| (&r.status, &r.body)).collect::<Vec<_>>());
        // Whoever is left: still an administrator of the org.
        let admins: Vec<Value> = if results[0].status == 200 {
            let r = s.be(&tok, Method::GET, "/be/v1/users", None).await;
            r.ok()["users"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|u| u["roles"] == json!(["Administrators"]))
                .cloned()
                .collect()
        } else {
            let r = s.be(&other, Method::GET, "/be/v1/users", None).await;
            r.ok()["users"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|u| u["roles"] == json!(["Administrators"]))
                .cloned()
                .collect()
        };
        assert_eq!(admins.len(), 1, "{admins:?}");
        if results[0].status != 200 {
            // The first admin lost the role; give it back for the next round.
            s.be(
                &other,
                Method::PATCH,
                "/be/v1/users",
                Some(json!({"username": "KOrg_admin", "roles": ["Administrators"]})),
            )
            .await
            .ok();
            s.be(&other, Method::DELETE, &d1, None).await.ok();
        }
    }
});

// ---------------------------------------------------------------------------------------
// Roles
// ---------------------------------------------------------------------------------------

edge_test!(roles_crud, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("RcOrg").await;

    // The built-in role.
    let r = s.be(&tok, Method::GET, "/be/v1/roles/Administrators", None).await;
    let adm = r.ok()["role"].clone();
    assert_eq!(adm["builtin"], true);
    assert_eq!(adm["users"], 1);
    assert_eq!(
        adm["permissions"],
        json!({"apps": 15, "beUsers": 15, "bundles": 15, "consumption": 2, "dependencies": 15, "deployments": 15, "keys": 15,
               "roles": 15, "sources": 15, "subscriptions": 15, "tasks": 31, "trainings": 6})
    );

    // Create: exact fields, missing resources 0.
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/roles",
            Some(json!({"name": "Ops", "label": "Operations", "permissions": {"apps": 6, "trainings": 6}})),
        )
        .await;
    assert_eq!(keys(r.ok()), ["role", "status"]);
    let role = r.body["role"].clone();
    assert_eq!(
        keys(&role),
        ["builtin", "created", "label", "name", "permissions", "updated", "users"]
    );
    assert_eq!(
        (
            role["name"].clone(),
            role["label"].clone(),
            role["builtin"].clone(),
            role["users"].clone()
        ),
        (json!("Ops"), json!("Operations"), json!(false), json!(0))
    );
    let mut expect = json!({});
    for res in RESOURCES {
        expect[res] = json!(0);
    }
    expect["apps"] = json!(6);
    expect["trainings"] = json!(6);
    assert_eq!(role["permissions"], expect);
    assert!((ts(&role["created"]) - edge_server::util::now_ms()).abs() < 60_000);
    // No label, no permissions: a role of zeros without a label key.
    let r = s.be(&tok, Method::POST, "/be/v1/roles", Some(json!({"name": "Empty"}))).await;
    let empty = r.ok()["role"].clone();
    assert!(empty.get("label").is_none(), "{empty}");
    assert!(RESOURCES.iter().all(|res| empty["permissions"][res] == 0), "{empty}");
    // Maxima are accepted.
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/roles",
            Some(json!({"name": "Max", "permissions": {"tasks": 31, "consumption": 2, "trainings": 4}})),
        )
        .await;
    assert_eq!(r.ok()["role"]["permissions"]["tasks"], 31);

    // Read one and the list.
    let r = s.be(&tok, Method::GET, "/be/v1/roles/Ops", None).await;
    assert_eq!(r.ok()["role"], role);
    let r = s.be(&tok, Method::GET, "/be/v1/roles", None).await;
    assert_eq!(names(r.ok(), "roles", "name"), ["Administrators", "Empty", "Max", "Ops"]);
    assert_eq!(r.body["total"], 4);
    assert_eq!(r.body["roles"][3], role);
    let r = s
        .be(
            &tok,
            Method::GET,
            "/be/v1/roles?fields[]=name&fields[]=users&order[]=-users&limit=2",
            None,
        )
        .await;
    assert_eq!(
        r.ok()["roles"],
        json!([{"name": "Administrators", "users": 1}, {"name": "Empty", "users": 0}])
    );

    // Holders are counted.
    add_person(&s, &tok, "holder", &["Ops"]).await;
    assert_eq!(s.be(&tok, Method::GET, "/be/v1/roles/Ops", None).await.ok()["role"]["users"], 1);

    // Patch: only the given resources change; label set and cleared.
    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/roles",
            Some(json!({"name": "Ops", "permissions": {"apps": 2, "tasks": 18}})),
        )
        .await;
    let p = r.ok()["role"].clone();
    assert_eq!(
        (
            p["permissions"]["apps"].clone(),
            p["permissions"]["tasks"].clone(),
            p["permissions"]["trainings"].clone()
        ),
        (json!(2), json!(18), json!(6))
    );
    assert_eq!(p["label"], "Operations");
    assert_eq!(p["users"], 1);
    assert_eq!(p["created"], role["created"]);
    assert!(ts(&p["updated"]) >= ts(&role["updated"]));
    let r = s
        .be(&tok, Method::PATCH, "/be/v1/roles", Some(json!({"name": "Ops", "label": "Ops team"})))
        .await;
    assert_eq!(r.ok()["role"]["label"], "Ops team");
    assert_eq!(r.body["role"]["permissions"]["tasks"], 18);
    let r = s
        .be(&tok, Method::PATCH, "/be/v1/roles", Some(json!({"name": "Ops", "label": null})))
        .await;
    assert!(r.ok()["role"].get("label").is_none(), "{}", r.body);
    // The holder's effective permissions follow the role.
    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/users",
            Some(json!({"username": "holder", "resetCreds": true})),
        )
        .await;
    let hpw = r.ok()["newPW"].as_str().unwrap().to_string();
    let l = s.login("holder", &hpw, "RcOrg").await;
    assert_eq!(
        (l["permissions"]["apps"].clone(), l["permissions"]["tasks"].clone()),
        (json!(2), json!(18))
    );
    // Zeroing a resource.
    let r = s
        .be(
            &tok,
            Method::PATCH,
            "/be/v1/roles",
            Some(json!({"name": "Ops", "permissions": {"tasks": 0}})),
        )
        .await;
    assert_eq!(r.ok()["role"]["permissions"]["tasks"], 0);

    // Delete.
    let r = s.be(&tok, Method::DELETE, "/be/v1/roles/Empty", None).await;
    assert_eq!(r.ok()["message"], "role deleted");
    s.be(&tok, Method::GET, "/be/v1/roles/Empty", None).await.err(404, "not-found");
    s.be(&tok, Method::DELETE, "/be/v1/roles/Empty", None).await.err(404, "not-found");
    s.be(&tok, Method::PATCH, "/be/v1/roles", Some(json!({"name": "Empty", "label": "x"})))
        .await
        .err(404, "not-found");
    // The name can be reused.
    s.be(&tok, Method::POST, "/be/v1/roles", Some(json!({"name": "Empty"}))).await.ok();
    let r = s.be(&tok, Method::DELETE, "/be/v1/roles/Max?force=false", None).await;
    r.ok();
    assert_eq!(s.be(&tok, Method::GET, "/be/v1/roles", None).await.ok()["total"], 3);
});

edge_test!(roles_errors, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("ReOrg").await;
    let (tok_b, _) = s.org_admin("ReOrgB").await;
    add_role(&s, &tok, "Mine", json!({"apps": 2})).await;
    add_role(&s, &tok_b, "Theirs", json!({"apps": 2})).await;

    // 400 on create and patch, naming the field; nothing is created.
    for (body, field) in [
        (json!({"name": "x"}), "name"),
        (json!({"name": "has space"}), "name"),
        (json!({"name": "n".repeat(51)}), "name"),
        (json!({"label": "no name"}), "name"),
        (json!({"name": 7}), "name"),
        (json!({"name": "Okay", "label": ""}), "label"),
        (json!({"name": "Okay", "label": "l".repeat(201)}), "label"),
        (json!({"name": "Okay", "permissions": {"nope": 1}}), "permissions"),
        (json!({"name": "Okay", "permissions": {"orgs": 1}}), "permissions"),
        (json!({"name": "Okay", "permissions": {"apps": 16}}), "permissions"),
        (json!({"name": "Okay", "permissions": {"apps": -1}}), "permissions"),
        (json!({"name": "Okay", "permissions": {"apps": "15"}}), "permissions"),
        (json!({"name": "Okay", "permissions": {"trainings": 1}}), "permissions"),
        (json!({"name": "Okay", "permissions": {"consumption": 4}}), "permissions"),
        (json!({"name": "Okay", "permissions": {"tasks": 32}}), "permissions"),
        (json!({"name": "Okay", "permissions": [1]}), "permissions"),
        (json!({"name": "Okay", "users": 3}), "users"),
    ] {
        let r = s.be(&tok, Method::POST, "/be/v1/roles", Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body} → {}", r.body);
        bad(&r, field);
    }
    for (body, field) in [
        (json!({"name": "Mine", "label": ""}), "label"),
        (json!({"name": "Mine", "permissions": {"apps": 16}}), "permissions"),
        (json!({"name": "Mine", "permissions": {"trainings": 1}}), "permissions"),
        (json!({"name": "Mine", "permissions": {"nope": 0}}), "permissions"),
        (json!({"name": "Mine", "builtin": true}), "builtin"),
        (json!({"label": "x"}), "name"),
    ] {
        let r = s.be(&tok, Method::PATCH, "/be/v1/roles", Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body} → {}", r.body);
        bad(&r, field);
    }
    for q in ["force=maybe", "bogus=1"] {
        s.be(&tok, Method::DELETE, &format!("/be/v1/roles/Mine?{q}"), None)
            .await
            .err(400, "invalid-param");
    }
    let r = s.be(&tok, Method::GET, "/be/v1/roles", None).await;
    assert_eq!(names(r.ok(), "roles", "name"), ["Administrators", "Mine"]);
    assert_eq!(r.body["roles"][1]["permissions"]["apps"], 2);

    // 401 everywhere.
    for (m, path, body) in [
        (Method::POST, "/be/v1/roles", Some(json!({"name": "Okay"}))),
        (Method::GET, "/be/v1/roles", None),
        (Method::GET, "/be/v1/roles/Mine", None),
        (Method::PATCH, "/be/v1/roles", Some(json!({"name": "Mine", "label": "x"}))),
        (Method::DELETE, "/be/v1/roles/Mine", None),
    ] {
        s.req(m.clone(), path, &[], body.clone()).await.err(401, "unauthorized");
        s.be("rk_0000000000000000_nope", m, path, body).await.err(401, "unauthorized");
    }

    // 403 per bit: read-only roles access, and none at all (person and machine user).
    let (ro, _) = member(&s, &tok, "ReOrg", "ro", json!({"roles": 2, "apps": 15})).await;
    s.be(&ro, Method::GET, "/be/v1/roles", None).await.ok();
    s.be(&ro, Method::GET, "/be/v1/roles/Mine", None).await.ok();
    s.be(&ro, Method::POST, "/be/v1/roles", Some(json!({"name": "Okay"})))
        .await
        .err(403, "forbidden");
    s.be(&ro, Method::PATCH, "/be/v1/roles", Some(json!({"name": "Mine", "label": "x"})))
        .await
        .err(403, "forbidden");
    s.be(&ro, Method::DELETE, "/be/v1/roles/Mine", None).await.err(403, "forbidden");
    let (cud, _) = member(&s, &tok, "ReOrg", "cud", json!({"roles": 13})).await;
    s.be(&cud, Method::GET, "/be/v1/roles", None).await.err(403, "forbidden");
    s.be(&cud, Method::GET, "/be/v1/roles/Mine", None).await.err(403, "forbidden");
    let key = add_machine(&s, &tok, "nobits", &[]).await;
    for (m, path, body) in [
        (Method::POST, "/be/v1/roles", Some(json!({"name": "Okay"}))),
        (Method::GET, "/be/v1/roles", None),
        (Method::GET, "/be/v1/roles/Mine", None),
        (Method::PATCH, "/be/v1/roles", Some(json!({"name": "Mine", "label": "x"}))),
        (Method::DELETE, "/be/v1/roles/Mine", None),
    ] {
        s.be(&key, m, path, body).await.err(403, "forbidden");
    }
    // 403 comes before 404.
    s.be(&ro, Method::DELETE, "/be/v1/roles/Nothing", None).await.err(403, "forbidden");
    // The role is unchanged.
    let r = s.be(&tok, Method::GET, "/be/v1/roles/Mine", None).await;
    assert!(r.ok()["role"].get("label").is_none());

    // 404: unknown, and another tenant's role (never 403).
    for (m, path, body) in [
        (Method::GET, "/be/v1/roles/Theirs", None),
        (Method::PATCH, "/be/v1/roles", Some(json!({"name": "Theirs", "label": "x"}))),
        (Method::DELETE, "/be/v1/roles/Theirs", None),
        (Method::DELETE, "/be/v1/roles/Theirs?force=true", None),
        (Method::GET, "/be/v1/roles/Nothing", None),
    ] {
        s.be(&tok, m, path, body).await.err(404, "not-found");
    }
    let r = s.be(&tok_b, Method::GET, "/be/v1/roles/Theirs", None).await;
    assert!(r.ok()["role"].get("label").is_none());
    // Another tenant's role cannot be assigned either.
    let body = json!({"username": "stealer", "email": "s@example.com", "firstname": "S", "surname": "T", "roles": ["Theirs"]});
    bad(&s.be(&tok, Method::POST, "/be/v1/users", Some(body)).await, "roles");

    // 409 item-exists: per organization, case-sensitive.
    s.be(&tok, Method::POST, "/be/v1/roles", Some(json!({"name": "Mine"})))
        .await
        .err(409, "item-exists");
    s.be(&tok, Method::POST, "/be/v1/roles", Some(json!({"name": "Administrators"})))
        .await
        .err(409, "item-exists");
    s.be(&tok_b, Method::POST, "/be/v1/roles", Some(json!({"name": "Mine"}))).await.ok();
    s.be(&tok, Method::POST, "/be/v1/roles", Some(json!({"name": "mine"}))).await.ok();
    assert_eq!(
        s.be(&tok, Method::GET, "/be/v1/roles/Mine", None).await.ok()["role"]["permissions"]
            ["apps"],
        2
    );

    // 409 item-protected: the Administrators role never changes.
    let admin_role =
        s.be(&tok, Method::GET, "/be/v1/roles/Administrators", None).await.ok()["role"].clone();
    assert_eq!(admin_role["permissions"]["apps"], 15);
    for body in [
        json!({"name": "Administrators", "label": "x"}),
        json!({"name": "Administrators", "permissions": {"apps": 0}}),
        json!({"name": "Administrators", "permissions": {}}),
    ] {
        s.be(&tok, Method::PATCH, "/be/v1/roles", Some(body)).await.err(409, "item-protected");
    }
    s.be(&tok, Method::DELETE, "/be/v1/roles/Administrators", None)
        .await
        .err(409, "item-protected");
    s.be(&tok, Method::DELETE, "/be/v1/roles/Administrators?force=true", None)
        .await
        .err(409, "item-protected");
    let r = s.be(&tok, Method::GET, "/be/v1/roles/Administrators", None).await;
    assert_eq!(r.ok()["role"], admin_role);
    // Also for someone with the roles bits but not every bit.
    let (rm, _) = member(&s, &tok, "ReOrg", "rolemgr", json!({"roles": 15})).await;
    s.be(&rm, Method::DELETE, "/be/v1/roles/Administrators?force=true", None)
        .await
        .err(409, "item-protected");
    s.be(
        &rm,
        Method::PATCH,
        "/be/v1/roles",
        Some(json!({"name": "Administrators", "label": "mine now"})),
    )
    .await
    .err(409, "item-protected");
    assert_eq!(
        s.be(&tok, Method::GET, "/be/v1/roles/Administrators", None).await.ok()["role"],
        admin_role
    );
});

edge_test!(roles_no_escalation, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("RxOrg").await;
    add_role(&s, &tok, "Narrow", json!({"apps": 2})).await;
    add_role(&s, &tok, "Wide", json!({"apps": 15, "deployments": 15})).await;
    let (rm, _) = member(&s, &tok, "RxOrg", "rm", json!({"roles": 15, "apps": 6})).await;

    // Creating: only bits the caller holds, per resource.
    let r = s
        .be(
            &rm,
            Method::POST,
            "/be/v1/roles",
            Some(json!({"name": "Sub", "permissions": {"apps": 6, "roles": 15}})),
        )
        .await;
    assert_eq!(r.ok()["role"]["permissions"]["roles"], 15);
    for perms in [
        json!({"apps": 7}),
        json!({"apps": 8}),
        json!({"beUsers": 1}),
        json!({"tasks": 16}),
        json!({"apps": 2, "deployments": 2}),
    ] {
        let r = s
            .be(
                &rm,
                Method::POST,
                "/be/v1/roles",
                Some(json!({"name": "Esc", "permissions": perms.clone()})),
            )
            .await;
        assert_eq!(r.status, 403, "{perms} → {}", r.body);
        r.err(403, "forbidden");
    }
    s.be(&tok, Method::GET, "/be/v1/roles/Esc", None).await.err(404, "not-found");
    // 400 comes before 403.
    bad(
        &s.be(
            &rm,
            Method::POST,
            "/be/v1/roles",
            Some(json!({"name": "Esc", "permissions": {"apps": 99}})),
        )
        .await,
        "permissions",
    );

    // Patching: adding bits the caller lacks is 403; adding held bits is fine.
    let r = s
        .be(
            &rm,
            Method::PATCH,
            "/be/v1/roles",
            Some(json!({"name": "Narrow", "permissions": {"apps": 15}})),
        )
        .await;
    r.err(403, "forbidden");
    let r = s
        .be(
            &rm,
            Method::PATCH,
            "/be/v1/roles",
            Some(json!({"name": "Narrow", "permissions": {"beUsers": 2}})),
        )
        .await;
    r.err(403, "forbidden");
    assert_eq!(
        s.be(&tok, Method::GET, "/be/v1/roles/Narrow", None).await.ok()["role"]["permissions"]
            ["apps"],
        2
    );
    let r = s
        .be(
            &rm,
            Method::PATCH,
            "/be/v1/roles",
            Some(json!({"name": "Narrow", "permissions": {"apps": 6}})),
        )
        .await;
    assert_eq!(r.ok()["role"]["permissions"]["apps"], 6);
    // Its own role cannot be widened either.
    s.be(
        &rm,
        Method::PATCH,
        "/be/v1/roles",
        Some(json!({"name": "rm_r", "permissions": {"apps": 15}})),
    )
    .await
    .err(403, "forbidden");
    s.be(
        &rm,
        Method::PATCH,
        "/be/v1/roles",
        Some(json!({"name": "rm_r", "permissions": {"beUsers": 15}})),
    )
    .await
    .err(403, "forbidden");
    assert_eq!(
        s.be(&rm, Method::GET, "/be/v1/roles/rm_r", None).await.ok()["role"]["permissions"]
            ["beUsers"],
        0
    );
    // Lowering a wider role grants nothing.
    let r = s
        .be(
            &rm,
            Method::PATCH,
            "/be/v1/roles",
            Some(json!({"name": "Wide", "permissions": {"deployments": 2}})),
        )
        .await;
    assert_eq!(r.ok()["role"]["permissions"]["deployments"], 2);
    assert_eq!(r.body["role"]["permissions"]["apps"], 15);
    // The escalation check uses the caller's current rights: after losing "roles" bits, 403.
    s.be(
        &tok,
        Method::PATCH,
        "/be/v1/roles",
        Some(json!({"name": "rm_r", "permissions": {"roles": 2}})),
    )
    .await
    .ok();
    s.be(&rm, Method::POST, "/be/v1/roles", Some(json!({"name": "Later"})))
        .await
        .err(403, "forbidden");
});

edge_test!(roles_delete_in_use, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("RdOrg").await;
    add_role(&s, &tok, "Shared", json!({"roles": 2})).await;
    add_role(&s, &tok, "Keep", json!({"beUsers": 2})).await;
    let pw1 = add_person(&s, &tok, "h1", &["Shared", "Keep"]).await;
    let k2 = add_machine(&s, &tok, "h2", &["Shared"]).await;
    let h1 = s.token("h1", &pw1, "RdOrg").await;
    s.be(&h1, Method::GET, "/be/v1/roles", None).await.ok();
    s.be(&k2, Method::GET, "/be/v1/roles", None).await.ok();
    assert_eq!(s.be(&tok, Method::GET, "/be/v1/roles/Shared", None).await.ok()["role"]["users"], 2);

    // Held by users: 409 item-in-use, also with force=false.
    s.be(&tok, Method::DELETE, "/be/v1/roles/Shared", None).await.err(409, "item-in-use");
    s.be(&tok, Method::DELETE, "/be/v1/roles/Shared?force=false", None)
        .await
        .err(409, "item-in-use");
    assert_eq!(roles_of(&s, &tok, "h1").await, json!(["Keep", "Shared"]));
    // force=true detaches it first; the holders lose its bits at once.
    let r = s.be(&tok, Method::DELETE, "/be/v1/roles/Shared?force=true", None).await;
    assert_eq!(r.ok()["message"], "role deleted");
    s.be(&tok, Method::GET, "/be/v1/roles/Shared", None).await.err(404, "not-found");
    assert_eq!(roles_of(&s, &tok, "h1").await, json!(["Keep"]));
    assert_eq!(roles_of(&s, &tok, "h2").await, json!([]));
    s.be(&h1, Method::GET, "/be/v1/roles", None).await.err(403, "forbidden");
    s.be(&k2, Method::GET, "/be/v1/roles", None).await.err(403, "forbidden");
    s.be(&h1, Method::GET, "/be/v1/users", None).await.ok();
    assert_eq!(s.login("h1", &pw1, "RdOrg").await["permissions"]["roles"], 0);
    // A re-created role of the same name is a new role: nobody holds it.
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/roles",
            Some(json!({"name": "Shared", "permissions": {"roles": 2}})),
        )
        .await;
    assert_eq!(r.ok()["role"]["users"], 0);
    s.be(&k2, Method::GET, "/be/v1/roles", None).await.err(403, "forbidden");
    // Unheld: deleted without force.
    s.be(&tok, Method::DELETE, "/be/v1/roles/Shared", None).await.ok();
});

edge_test!(roles_concurrent_same_name, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("RrOrg").await;
    let (tok_b, _) = s.org_admin("RrOrgB").await;
    let futs: Vec<_> = (0..8)
        .map(|i| {
            s.be(
                &tok,
                Method::POST,
                "/be/v1/roles",
                Some(json!({"name": "Racer", "label": format!("try {i}"), "permissions": {"apps": 2}})),
            )
        })
        .collect();
    let results = futures_join_all(futs).await;
    assert_eq!(
        results.iter().filter(|r| r.status == 200).count(),
        1,
        "{:?}",
        results.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.status != 200) {
        r.err(409, "item-exists");
    }
    let winner = results.iter().find(|r| r.status == 200).unwrap().body["role"]["label"].clone();
    assert_eq!(
        s.be(&tok, Method::GET, "/be/v1/roles/Racer", None).await.ok()["role"]["label"],
        winner
    );
    assert_eq!(s.be(&tok, Method::GET, "/be/v1/roles", None).await.ok()["total"], 2);
    // The same name in two orgs at once: both win.
    let futs = vec![
        s.be(&tok, Method::POST, "/be/v1/roles", Some(json!({"name": "Both"}))),
        s.be(&tok_b, Method::POST, "/be/v1/roles", Some(json!({"name": "Both"}))),
    ];
    for r in futures_join_all(futs).await {
        r.ok();
    }
});

// ---------------------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------------------

edge_test!(apikeys_own_create_list_revoke, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("KeyOrg").await;
    // A person without any bit still manages its own keys.
    let (nob, _) = member(&s, &tok, "KeyOrg", "nobits", json!({})).await;
    let r = s.be(&nob, Method::POST, "/be/v1/apikeys", Some(json!({"label": "laptop"}))).await;
    let out = r.ok().clone();
    assert_eq!(keys(&out), ["apiKey", "key", "status"]);
    let k = &out["key"];
    for f in ["keyId", "username", "label", "created", "expires"] {
        assert!(k.get(f).is_some(), "{f} missing: {k}");
    }
    assert_eq!(k["username"], "nobits");
    assert_eq!(k["label"], "laptop");
    assert_eq!(k["orgName"], "KeyOrg");
    assert!(k["expires"].is_null());
    assert!((ts(&k["created"]) - edge_server::util::now_ms()).abs() < 60_000);
    let key_id = k["keyId"].as_str().unwrap().to_string();
    let key = out["apiKey"].as_str().unwrap().to_string();
    assert!(key.starts_with(&format!("rk_{key_id}_")) && key.len() > key_id.len() + 10, "{key}");
    assert!(
        !k.to_string().contains(&key[key_id.len() + 4..]),
        "the secret is shown once, beside the key"
    );
    // It authenticates as its user: Bearer, older header, machine-style triple.
    assert_eq!(
        s.be(&key, Method::GET, "/be/v1/users/nobits", None).await.ok()["user"]["username"],
        "nobits"
    );
    s.req(Method::GET, "/be/v1/users/nobits", &[("x-rockit-beauth-token", &key)], None).await.ok();
    let triple = [
        ("x-rockit-orgname", "KeyOrg"),
        ("x-rockit-username", "nobits"),
        ("x-rockit-api-key", key.as_str()),
    ];
    s.req(Method::GET, "/be/v1/users/nobits", &triple, None).await.ok();
    let wrong_org = [
        ("x-rockit-orgname", "Nope"),
        ("x-rockit-username", "nobits"),
        ("x-rockit-api-key", key.as_str()),
    ];
    s.req(Method::GET, "/be/v1/users/nobits", &wrong_org, None).await.err(401, "unauthorized");
    // …with the user's bits only.
    s.be(&key, Method::GET, "/be/v1/users", None).await.err(403, "forbidden");
    // Explicitly naming oneself is the same as the default.
    let r = s.be(&nob, Method::POST, "/be/v1/apikeys", Some(json!({"username": "nobits"}))).await;
    let second_id = r.ok()["key"]["keyId"].as_str().unwrap().to_string();
    assert!(r.body["key"]["label"].is_null());
    assert_ne!(second_id, key_id);

    // The admin has keys too; a user without beUsers Read lists only its own keys.
    s.be(&tok, Method::POST, "/be/v1/apikeys", Some(json!({"label": "admin key"}))).await.ok();
    let r = s.be(&nob, Method::GET, "/be/v1/apikeys", None).await;
    let mut ids = names(r.ok(), "keys", "keyId");
    ids.sort();
    let mut want = vec![key_id.clone(), second_id.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(r.body["total"], 2);
    for k in r.body["keys"].as_array().unwrap() {
        for f in ["keyId", "username", "label", "created", "expires", "lastUsed"] {
            assert!(k.get(f).is_some(), "{f} missing: {k}");
        }
        assert_eq!(k["username"], "nobits");
        assert!(!k.to_string().contains("rk_"), "no secret in lists: {k}");
    }
    // The used key shows lastUsed, the unused one does not.
    let used = r.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["keyId"] == key_id.as_str())
        .unwrap()
        .clone();
    assert!(ts(&used["lastUsed"]) > 0);
    let unused = r.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["keyId"] == second_id.as_str())
        .unwrap()
        .clone();
    assert!(unused["lastUsed"].is_null());
    assert_eq!(
        s.be(&nob, Method::GET, "/be/v1/apikeys?username=nobits", None).await.ok()["total"],
        2
    );
    s.be(&nob, Method::GET, "/be/v1/apikeys?username=KeyOrg_admin", None)
        .await
        .err(403, "forbidden");
    // With beUsers Read: everybody's in the org, or one user's.
    assert_eq!(s.be(&tok, Method::GET, "/be/v1/apikeys", None).await.ok()["total"], 3);
    let r = s.be(&tok, Method::GET, "/be/v1/apikeys?username=nobits", None).await;
    assert_eq!(r.ok()["total"], 2);
    let r = s.be(&tok, Method::GET, "/be/v1/apikeys?username=KeyOrg_admin", None).await;
    assert_eq!(names(r.ok(), "keys", "label"), ["admin key"]);
    s.be(&tok, Method::GET, "/be/v1/apikeys?username=ghost", None).await.err(404, "not-found");
    bad(&s.be(&tok, Method::GET, "/be/v1/apikeys?bogus=1", None).await, "bogus");

    // Revoke by id: gone at once, and from the list.
    let r = s.be(&nob, Method::DELETE, &format!("/be/v1/apikeys/{key_id}"), None).await;
    assert_eq!(r.ok()["message"], "API key revoked");
    s.be(&key, Method::GET, "/be/v1/users/nobits", None).await.err(401, "unauthorized");
    s.req(Method::GET, "/be/v1/users/nobits", &triple, None).await.err(401, "unauthorized");
    assert_eq!(
        names(s.be(&nob, Method::GET, "/be/v1/apikeys", None).await.ok(), "keys", "keyId"),
        vec![second_id.clone()]
    );
    s.be(&nob, Method::DELETE, &format!("/be/v1/apikeys/{key_id}"), None)
        .await
        .err(404, "not-found");
    s.be(&nob, Method::DELETE, "/be/v1/apikeys/0000000000000000", None).await.err(404, "not-found");
    // Without an id: the key the request came with; with a token instead of a key: 400.
    s.be(&nob, Method::DELETE, "/be/v1/apikeys", None).await.err(400, "invalid-param");
    let r = s.be(&nob, Method::POST, "/be/v1/apikeys", Some(json!({}))).await;
    let third = r.ok()["apiKey"].as_str().unwrap().to_string();
    s.be(&third, Method::DELETE, "/be/v1/apikeys", None).await.ok();
    s.be(&third, Method::GET, "/be/v1/users/nobits", None).await.err(401, "unauthorized");
    assert_eq!(s.be(&nob, Method::GET, "/be/v1/apikeys", None).await.ok()["total"], 1);
    // 401 without credentials.
    s.req(Method::GET, "/be/v1/apikeys", &[], None).await.err(401, "unauthorized");
    s.req(Method::POST, "/be/v1/apikeys", &[], Some(json!({}))).await.err(401, "unauthorized");
    s.req(Method::DELETE, &format!("/be/v1/apikeys/{second_id}"), &[], None)
        .await
        .err(401, "unauthorized");
    s.req(Method::DELETE, "/be/v1/apikeys", &[], None).await.err(401, "unauthorized");
});

edge_test!(apikeys_create_errors_and_expiry, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("KxOrg").await;
    for (body, field) in [
        (json!({"expiresIn": 0}), "expiresIn"),
        (json!({"expiresIn": -5}), "expiresIn"),
        (json!({"expiresIn": "60"}), "expiresIn"),
        (json!({"expiresIn": 1.5}), "expiresIn"),
        (json!({"expiresIn": 20u64 * 365 * 86_400}), "expiresIn"),
        (json!({"label": ""}), "label"),
        (json!({"label": "l".repeat(201)}), "label"),
        (json!({"label": 3}), "label"),
        (json!({"secret": "mine"}), "secret"),
        (json!({"username": 1}), "username"),
    ] {
        let r = s.be(&tok, Method::POST, "/be/v1/apikeys", Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body} → {}", r.body);
        bad(&r, field);
    }
    assert_eq!(s.be(&tok, Method::GET, "/be/v1/apikeys", None).await.ok()["total"], 0);

    // expiresIn: the expiry is reported, and the key dies with it.
    let r = s
        .be(&tok, Method::POST, "/be/v1/apikeys", Some(json!({"label": "long", "expiresIn": 3600})))
        .await;
    let k = r.ok()["key"].clone();
    let diff = ts(&k["expires"]) - ts(&k["created"]);
    assert!((3_599_000..=3_601_000).contains(&diff), "{k}");
    let long = r.body["apiKey"].as_str().unwrap().to_string();
    let r = s
        .be(&tok, Method::POST, "/be/v1/apikeys", Some(json!({"label": "short", "expiresIn": 1})))
        .await;
    let short = r.ok()["apiKey"].as_str().unwrap().to_string();
    assert!(r.body["key"]["expires"].is_string());
    s.be(&short, Method::GET, "/be/v1/roles", None).await.ok();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    s.be(&short, Method::GET, "/be/v1/roles", None).await.err(401, "unauthorized");
    s.be(&long, Method::GET, "/be/v1/roles", None).await.ok();
});

edge_test!(apikeys_for_others, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("KoOrg").await;
    let (tok_b, _) = s.org_admin("KoOrgB").await;
    add_role(&s, &tok, "Reader", json!({"roles": 2})).await;
    add_machine(&s, &tok, "bot", &["Reader"]).await;
    let vic_pw = add_person(&s, &tok, "vic", &["Reader"]).await;
    let foreign_key = s.be(&tok_b, Method::POST, "/be/v1/apikeys", Some(json!({}))).await.ok()
        ["key"]["keyId"]
        .as_str()
        .unwrap()
        .to_string();
    add_person(&s, &tok_b, "foreigner", &[]).await;

    // With beUsers Update: a key for another member, acting as that member.
    let (upd, _) = member(&s, &tok, "KoOrg", "upd", json!({"beUsers": 6, "roles": 2})).await;
    let r = s
        .be(
            &upd,
            Method::POST,
            "/be/v1/apikeys",
            Some(json!({"username": "bot", "label": "for bot"})),
        )
        .await;
    let bot_key = r.ok()["apiKey"].as_str().unwrap().to_string();
    let bot_key_id = r.body["key"]["keyId"].as_str().unwrap().to_string();
    assert_eq!(r.body["key"]["username"], "bot");
    assert_eq!(
        s.be(&bot_key, Method::GET, "/be/v1/users/bot", None).await.ok()["user"]["type"],
        "machine"
    );
    s.be(&bot_key, Method::GET, "/be/v1/roles", None).await.ok();
    let triple = [
        ("x-rockit-orgname", "KoOrg"),
        ("x-rockit-username", "bot"),
        ("x-rockit-api-key", bot_key.as_str()),
    ];
    s.req(Method::GET, "/be/v1/roles", &triple, None).await.ok();
    let mismatch = [
        ("x-rockit-orgname", "KoOrg"),
        ("x-rockit-username", "upd"),
        ("x-rockit-api-key", bot_key.as_str()),
    ];
    s.req(Method::GET, "/be/v1/roles", &mismatch, None).await.err(401, "unauthorized");
    // A machine user makes its own keys without any beUsers bit.
    let r =
        s.be(&bot_key, Method::POST, "/be/v1/apikeys", Some(json!({"label": "self-made"}))).await;
    assert_eq!(r.ok()["key"]["username"], "bot");
    let own_bot_key = r.body["apiKey"].as_str().unwrap().to_string();
    s.be(&own_bot_key, Method::GET, "/be/v1/roles", None).await.ok();
    let r = s.be(&upd, Method::POST, "/be/v1/apikeys", Some(json!({"username": "vic"}))).await;
    let vic_key = r.ok()["apiKey"].as_str().unwrap().to_string();
    // The key acts with the user's current roles.
    s.be(&tok, Method::PATCH, "/be/v1/users", Some(json!({"username": "bot", "roles": []})))
        .await
        .ok();
    s.be(&bot_key, Method::GET, "/be/v1/roles", None).await.err(403, "forbidden");
    s.be(
        &tok,
        Method::PATCH,
        "/be/v1/users",
        Some(json!({"username": "bot", "roles": ["Reader"]})),
    )
    .await
    .ok();
    s.be(&bot_key, Method::GET, "/be/v1/roles", None).await.ok();

    // Without beUsers Update: 403 (a person, and a machine user using its own key).
    let (ronly, _) = member(&s, &tok, "KoOrg", "ronly", json!({"beUsers": 11, "apps": 15})).await;
    s.be(&ronly, Method::POST, "/be/v1/apikeys", Some(json!({"username": "bot"})))
        .await
        .err(403, "forbidden");
    s.be(&bot_key, Method::POST, "/be/v1/apikeys", Some(json!({"username": "vic"})))
        .await
        .err(403, "forbidden");
    s.be(&ronly, Method::DELETE, &format!("/be/v1/apikeys/{bot_key_id}"), None)
        .await
        .err(403, "forbidden");
    s.be(&bot_key, Method::GET, "/be/v1/roles", None).await.ok();
    // beUsers Read lists others' keys, but Read alone cannot revoke them.
    let r = s.be(&ronly, Method::GET, "/be/v1/apikeys?username=bot", None).await;
    assert!(names(r.ok(), "keys", "keyId").contains(&bot_key_id));
    // Unknown and foreign users: 404; foreign keys: 404.
    s.be(&upd, Method::POST, "/be/v1/apikeys", Some(json!({"username": "ghost"})))
        .await
        .err(404, "not-found");
    s.be(&upd, Method::POST, "/be/v1/apikeys", Some(json!({"username": "foreigner"})))
        .await
        .err(404, "not-found");
    s.be(&upd, Method::POST, "/be/v1/apikeys", Some(json!({"username": "KoOrgB_admin"})))
        .await
        .err(404, "not-found");
    s.be(&tok, Method::DELETE, &format!("/be/v1/apikeys/{foreign_key}"), None)
        .await
        .err(404, "not-found");
    s.be(&tok, Method::GET, "/be/v1/apikeys?username=foreigner", None).await.err(404, "not-found");
    assert!(!names(s.be(&tok, Method::GET, "/be/v1/apikeys", None).await.ok(), "keys", "keyId")
        .contains(&foreign_key));
    assert_eq!(s.be(&tok_b, Method::GET, "/be/v1/apikeys", None).await.ok()["total"], 1);

    // A stronger user's keys are out of reach (creation and revocation).
    s.be(&upd, Method::POST, "/be/v1/apikeys", Some(json!({"username": "KoOrg_admin"})))
        .await
        .err(403, "forbidden");
    let admin_key_id = s.be(&tok, Method::POST, "/be/v1/apikeys", Some(json!({}))).await.ok()
        ["key"]["keyId"]
        .as_str()
        .unwrap()
        .to_string();
    s.be(&upd, Method::DELETE, &format!("/be/v1/apikeys/{admin_key_id}"), None)
        .await
        .err(403, "forbidden");
    s.be(&ronly, Method::POST, "/be/v1/apikeys", Some(json!({"username": "upd"})))
        .await
        .err(403, "forbidden");

    // With beUsers Update: revoke another's key.
    s.be(&upd, Method::DELETE, &format!("/be/v1/apikeys/{bot_key_id}"), None).await.ok();
    s.be(&bot_key, Method::GET, "/be/v1/roles", None).await.err(401, "unauthorized");
    // The key dies when the membership ends.
    s.be(&vic_key, Method::GET, "/be/v1/roles", None).await.ok();
    s.be(&tok, Method::DELETE, "/be/v1/users/vic", None).await.ok();
    s.be(&vic_key, Method::GET, "/be/v1/roles", None).await.err(401, "unauthorized");
    assert_eq!(login_status(&s, "vic", &vic_pw, None).await, 401);
    let r = s.be(&tok, Method::GET, "/be/v1/apikeys", None).await;
    assert!(!names(r.ok(), "keys", "username").contains(&"vic".to_string()), "{}", r.body);
    assert!(!names(&r.body, "keys", "keyId").contains(&bot_key_id), "{}", r.body);
});
