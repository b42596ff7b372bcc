//! Organization configuration export, import and commit (config-export.md), and the
//! operator's Commit Export: round trips between organizations and instances with the
//! same export hash, stale plans, permissions, and secrets that travel only encrypted
//! (checked by decrypting them with the real `openssl`).

use crate::common::*;
use crate::edge_test;
use crate::orgs::tool;
use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;

const PARTS: [&str; 4] = ["roles", "deployments", "apps", "subscriptions"];

/// A server that may send webhooks to 127.0.0.1.
async fn server(backend: Backend) -> Srv {
    Srv::start_with(backend, |c| c.allow_private_sources = true).await
}

/// Gives `tok`'s org a role, an fs deployment, an app on it, a webhook subscription and a
/// machine user.
async fn configure(s: &Srv, tok: &str) {
    let ok = |r: Resp| {
        r.ok();
    };
    ok(s.be(
        tok,
        Method::POST,
        "/be/v1/roles",
        Some(json!({"name": "CI", "label": "pipelines", "permissions": {"apps": 6, "tasks": 2}})),
    )
    .await);
    ok(s.be(
        tok,
        Method::POST,
        "/be/v1/roles",
        Some(json!({"name": "Viewer", "permissions": {"apps": 2}})),
    )
    .await);
    ok(s.be(
        tok,
        Method::POST,
        "/be/v1/deployments",
        Some(json!({"name": "local", "originPrefix": "cdn", "origin": {"type": "fs", "path": "site"}})),
    )
    .await);
    ok(s.be(
        tok,
        Method::POST,
        "/be/v1/apps",
        Some(
            json!({"name": "Game", "label": "The Game", "maxBuilds": 3, "deployments": ["local"]}),
        ),
    )
    .await);
    ok(s.be(tok, Method::POST, "/be/v1/apps", Some(json!({"name": "Demo", "label": "Demo"})))
        .await);
    ok(s.be(
        tok,
        Method::POST,
        "/be/v1/subscriptions",
        Some(
            json!({"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook", "filter": {"events": ["error"], "apps": ["Game"]}}),
        ),
    )
    .await);
    ok(s.be(
        tok,
        Method::POST,
        "/be/v1/users",
        Some(json!({"username": "ci_bot", "type": "machine", "label": "CI", "roles": ["CI"]})),
    )
    .await);
}

async fn export(s: &Srv, tok: &str, include: Option<&[&str]>) -> Value {
    let body = include.map(|i| json!({"include": i}));
    s.be(tok, Method::POST, "/be/v1/export", body).await.ok()["export"].clone()
}

async fn import(s: &Srv, tok: &str, bundle: &Value) -> Resp {
    s.be(tok, Method::POST, "/be/v1/import", Some(json!({"bundle": bundle}))).await
}

async fn commit(s: &Srv, tok: &str, id: &str) -> Resp {
    s.be(tok, Method::POST, "/be/v1/commit", Some(json!({"importId": id}))).await
}

fn actions(plan: &Value) -> Vec<(String, String, String)> {
    plan.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["resource"].as_str().unwrap().into(),
                p["name"].as_str().unwrap().into(),
                p["action"].as_str().unwrap().into(),
            )
        })
        .collect()
}

edge_test!(export_is_canonical_and_round_trips_between_orgs, |backend| async move {
    let s = server(backend).await;
    let (a, _) = s.org_admin("Alpha").await;
    configure(&s, &a).await;
    let e = export(&s, &a, Some(&PARTS)).await;
    let bundle = &e["bundle"];
    assert_eq!(bundle["format"], "rockit-org-config");
    assert_eq!(bundle["version"], 1);
    assert_eq!(bundle["orgName"], "Alpha");
    assert_eq!(e["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(e["sizeBytes"].as_u64().unwrap() as usize, bundle.to_string().len());
    let items = &bundle["items"];
    assert_eq!(
        items.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["apps", "deployments", "roles", "subscriptions"]
    );
    // Sorted by name; exactly the POST fields; no ids, timestamps or state.
    let names = |r: &str| {
        items[r]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names("apps"), ["Demo", "Game"]);
    assert_eq!(
        names("roles"),
        ["CI", "Viewer"],
        "the built-in Administrators role is not exported"
    );
    assert_eq!(
        items["apps"][1],
        json!({"name": "Game", "label": "The Game", "maxBuilds": 3, "deployments": ["local"]})
    );
    assert_eq!(
        items["deployments"][0],
        json!({"name": "local", "originPrefix": "cdn", "origin": {"type": "fs", "path": "site"}})
    );
    assert_eq!(
        items["subscriptions"][0],
        json!({"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook", "filter": {"types": [], "events": ["error"], "apps": ["Game"]}})
    );
    assert_eq!(items["roles"][0]["permissions"]["apps"], 6);
    for bad in ["created", "updated", "\"id\"", "status", "builds", "clientKey", "stats"] {
        assert!(!items.to_string().contains(bad), "{bad} in {items}");
    }
    // Exporting again gives the same hash (created differs, items do not).
    let e2 = export(&s, &a, Some(&PARTS)).await;
    assert_eq!(e2["sha256"], e["sha256"]);
    assert_ne!(e2["exportId"], e["exportId"]);

    // Another org on the same instance may not publish into Alpha's fs directory.
    let (g, _) = s.org_admin("Gamma").await;
    let r = import(&s, &g, bundle).await;
    assert_eq!(r.err(400, "invalid-param")["details"]["item"], "deployments/local", "{:?}", r.body);

    // Another org on another instance: plan (nothing changes yet), commit, same configuration.
    let s = server(backend).await;
    let (b, _) = s.org_admin("Beta").await;
    let r = import(&s, &b, bundle).await;
    let staged = r.ok().clone();
    assert!(staged["expires"].is_string());
    let plan = actions(&staged["plan"]);
    assert_eq!(plan.len(), 6, "{plan:?}");
    assert!(plan.iter().all(|(_, _, a)| a == "create"), "{plan:?}");
    assert_eq!(plan[0].0, "roles", "roles come first: {plan:?}");
    assert_eq!(
        s.be(&b, Method::GET, "/be/v1/apps", None).await.ok()["apps"].as_array().unwrap().len(),
        0,
        "import changes nothing"
    );
    let done = commit(&s, &b, staged["importId"].as_str().unwrap()).await;
    let done = done.ok();
    assert_eq!(done["applied"], 6);
    let secrets = done["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 1, "{done}");
    assert_eq!(secrets[0]["resource"], "subscriptions");
    assert!(secrets[0]["secret"].as_str().unwrap().len() >= 32);
    let eb = export(&s, &b, Some(&PARTS)).await;
    assert_eq!(eb["sha256"], e["sha256"], "the same configuration hashes the same");
    assert_eq!(eb["bundle"]["items"], e["bundle"]["items"]);
    let app = s.be(&b, Method::GET, "/be/v1/apps/Game", None).await;
    assert_eq!(app.ok()["app"]["deployments"], json!(["local"]));

    // Committed once: the import id is spent.
    commit(&s, &b, staged["importId"].as_str().unwrap()).await.err(404, "not-found");
    // A second import of the same bundle changes nothing.
    let again = import(&s, &b, bundle).await;
    assert!(actions(&again.ok()["plan"]).iter().all(|(_, _, a)| a == "unchanged"));
    // An edited bundle updates just what differs, and leaves what is not in it alone.
    let mut edited = bundle.clone();
    edited["items"]["apps"][1]["maxBuilds"] = json!(7);
    edited["items"]["roles"] = json!([]);
    s.be(&b, Method::POST, "/be/v1/apps", Some(json!({"name": "Extra", "label": "only in Beta"})))
        .await
        .ok();
    let r = import(&s, &b, &edited).await;
    let plan = actions(&r.ok()["plan"]);
    let changed: Vec<_> = plan.iter().filter(|p| p.2 != "unchanged").collect();
    assert_eq!(changed, [&("apps".to_string(), "Game".to_string(), "update".to_string())]);
    commit(&s, &b, r.body["importId"].as_str().unwrap()).await.ok();
    assert_eq!(s.be(&b, Method::GET, "/be/v1/apps/Game", None).await.ok()["app"]["maxBuilds"], 7);
    s.be(&b, Method::GET, "/be/v1/apps/Extra", None).await.ok();
    s.be(&b, Method::GET, "/be/v1/roles/CI", None).await.ok();

    // PATCH stores an app's deployments (and refuses unknown ones), as the export shows.
    let r = s
        .be(
            &b,
            Method::PATCH,
            "/be/v1/apps",
            Some(json!({"name": "Demo", "deployments": ["local"]})),
        )
        .await;
    assert_eq!(r.ok()["app"]["deployments"], json!(["local"]));
    s.be(
        &b,
        Method::PATCH,
        "/be/v1/apps",
        Some(json!({"name": "Demo", "deployments": ["nowhere"]})),
    )
    .await
    .err(400, "invalid-param");
    let e = export(&s, &b, Some(&["apps"])).await;
    assert_eq!(e["bundle"]["items"]["apps"][0]["deployments"], json!(["local"]));
});

edge_test!(users_move_between_instances, |backend| async move {
    let s1 = server(backend).await;
    let (a, _) = s1.org_admin("Studio").await;
    configure(&s1, &a).await;
    s1.be(&a, Method::POST, "/be/v1/users", Some(json!({"username": "dev_one", "email": "dev@example.com", "firstname": "Dev", "surname": "One", "title": "Lead", "roles": ["Viewer"]})))
        .await
        .ok();
    let e = export(&s1, &a, None).await;
    let users = e["bundle"]["items"]["users"].as_array().unwrap().clone();
    assert_eq!(
        users.iter().map(|u| u["username"].as_str().unwrap()).collect::<Vec<_>>(),
        ["Studio_admin", "ci_bot", "dev_one"]
    );
    assert_eq!(
        users[2],
        json!({"username": "dev_one", "type": "user", "email": "dev@example.com", "firstname": "Dev", "surname": "One", "title": "Lead", "roles": ["Viewer"]})
    );
    assert_eq!(
        users[1],
        json!({"username": "ci_bot", "type": "machine", "label": "CI", "roles": ["CI"]})
    );
    assert!(e["bundle"]["items"]["trainings"].as_array().unwrap().is_empty());
    let text = e.to_string();
    assert!(
        !text.contains("password") && !text.contains("pw_hash") && !text.contains("apiKey"),
        "{text}"
    );

    // In the same instance the people exist already: never linked. (The fs deployment
    // moves to a directory of its own: Studio's is not for another organization.)
    let (b, _) = s1.org_admin("Other").await;
    let mut same = e["bundle"].clone();
    same["items"]["deployments"][0]["origin"]["path"] = json!("other_site");
    let r = import(&s1, &b, &same).await;
    assert!(r.err(409, "item-exists")["message"].as_str().unwrap().contains("Studio_admin"));

    // Another instance: the organization moves with its people, who get new credentials.
    let s2 = server(backend).await;
    let (t, _) = s2.org_admin("Studio").await;
    let r = import(&s2, &t, &e["bundle"]).await;
    let plan = actions(&r.ok()["plan"]);
    assert!(
        plan.contains(&("users".into(), "Studio_admin".into(), "unchanged".into())),
        "{plan:?}"
    );
    let done = commit(&s2, &t, r.body["importId"].as_str().unwrap()).await;
    let secrets = done.ok()["secrets"].as_array().unwrap().clone();
    let pw = secrets
        .iter()
        .find(|x| x["name"] == "dev_one")
        .and_then(|x| x["initialPW"].as_str())
        .expect("initialPW of dev_one")
        .to_string();
    let key = secrets
        .iter()
        .find(|x| x["name"] == "ci_bot")
        .and_then(|x| x["apiKey"].as_str())
        .expect("apiKey of ci_bot")
        .to_string();
    let dev = s2.token("dev_one", &pw, "Studio").await;
    s2.be(&dev, Method::GET, "/be/v1/apps", None).await.ok();
    s2.be(&dev, Method::POST, "/be/v1/roles", Some(json!({"name": "Nope"})))
        .await
        .err(403, "forbidden");
    s2.be(&key, Method::GET, "/be/v1/apps", None).await.ok();
    let e2 = export(&s2, &t, None).await;
    assert_eq!(e2["sha256"], e["sha256"]);
});

edge_test!(stale_plans_permissions_and_bad_bundles, |backend| async move {
    let s = server(backend).await;
    let (a, _) = s.org_admin("Src").await;
    configure(&s, &a).await;
    let mut bundle = export(&s, &a, Some(&PARTS)).await["bundle"].clone();
    // Dst publishes to a directory of its own (Src's is not for another organization).
    bundle["items"]["deployments"][0]["origin"]["path"] = json!("dst_site");
    let (b, _) = s.org_admin("Dst").await;

    // Stale: the configuration changed between plan and commit.
    let r = import(&s, &b, &bundle).await;
    let id = r.ok()["importId"].as_str().unwrap().to_string();
    s.be(
        &b,
        Method::POST,
        "/be/v1/roles",
        Some(json!({"name": "Late", "permissions": {"apps": 2}})),
    )
    .await
    .ok();
    commit(&s, &b, &id).await.err(409, "invalid-state");
    assert!(
        s.be(&b, Method::GET, "/be/v1/apps", None).await.ok()["apps"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing applied"
    );
    commit(&s, &b, "imp_nope").await.err(404, "not-found");

    // Only the caller that staged it commits it; another org cannot even see it.
    let r = import(&s, &b, &bundle).await;
    let id = r.ok()["importId"].as_str().unwrap().to_string();
    let r = s
        .be(
            &b,
            Method::POST,
            "/be/v1/users",
            Some(
                json!({"username": "dst_two", "email": "two@example.com", "firstname": "T", "surname": "Wo", "roles": ["Administrators"]}),
            ),
        )
        .await;
    let two = s.token("dst_two", r.ok()["initialPW"].as_str().unwrap(), "Dst").await;
    commit(&s, &two, &id).await.err(403, "forbidden");
    commit(&s, &a, &id).await.err(404, "not-found");
    // (dst_two's creation changed the configuration too: the plan is stale now.)
    commit(&s, &b, &id).await.err(409, "invalid-state");

    // Permissions: Create and Update on every resource touched; no escalation.
    let r = s
        .be(
            &b,
            Method::POST,
            "/be/v1/roles",
            Some(json!({"name": "AppsOnly", "permissions": {"apps": 15, "roles": 15}})),
        )
        .await;
    r.ok();
    let r = s
        .be(
            &b,
            Method::POST,
            "/be/v1/users",
            Some(json!({"username": "dst_apps", "type": "machine", "label": "apps", "roles": ["AppsOnly"]})),
        )
        .await;
    let key = r.ok()["apiKey"].as_str().unwrap().to_string();
    import(&s, &key, &bundle).await.err(403, "forbidden");
    let only_apps = json!({"format": "rockit-org-config", "version": 1, "items": {"apps": [{"name": "Mine", "label": "mine"}]}});
    let r = import(&s, &key, &only_apps).await;
    commit(&s, &key, r.ok()["importId"].as_str().unwrap()).await.ok();
    let escalate = json!({"format": "rockit-org-config", "version": 1, "items": {"roles": [{"name": "Big", "permissions": {"apps": 15, "keys": 15}}]}});
    import(&s, &key, &escalate).await.err(403, "forbidden");
    let nope = s.be(&key, Method::POST, "/be/v1/export", Some(json!({"include": ["users"]}))).await;
    nope.err(403, "forbidden");
    let e = s.be(&key, Method::POST, "/be/v1/export", None).await;
    let keys: Vec<String> =
        e.ok()["export"]["bundle"]["items"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["apps", "roles"], "by default, what the caller can read");

    // Invalid bundles: 400, nothing staged.
    let base = json!({"format": "rockit-org-config", "version": 1, "items": {}});
    let mut cases = vec![];
    let mut v = base.clone();
    v["format"] = json!("zip");
    cases.push((v, "bundle.format"));
    let mut v = base.clone();
    v["version"] = json!(2);
    cases.push((v, "bundle.version"));
    let mut v = base.clone();
    v["items"] = json!({"widgets": []});
    cases.push((v, "widgets"));
    let mut v = base.clone();
    v["items"] = json!({"roles": [{"name": "Bits", "permissions": {"apps": 99}}]});
    cases.push((v, "roles 'Bits'"));
    let mut v = base.clone();
    v["items"] = json!({"users": [{"username": "x_user", "type": "machine", "label": "x", "roles": ["Ghost"]}]});
    cases.push((v, "unknown role 'Ghost'"));
    let mut v = base.clone();
    v["items"] = json!({"apps": [{"name": "A1", "label": "a", "deployments": ["missing"]}]});
    cases.push((v, "unknown deployment 'missing'"));
    let mut v = base.clone();
    v["items"] = json!({"apps": [{"name": "A1", "label": "a"}, {"name": "A1", "label": "b"}]});
    cases.push((v, "twice"));
    let mut v = base.clone();
    v["items"] = json!({"apps": [{"name": "A1", "label": "a", "colour": "red"}]});
    cases.push((v, "colour"));
    let mut v = base.clone();
    v["items"] = json!({"roles": [{"name": "Administrators", "permissions": {}}]});
    cases.push((v, "built in"));
    for (bundle, needle) in cases {
        let r = import(&s, &b, &bundle).await;
        let m = r.err(400, "invalid-param").to_string();
        assert!(m.contains(needle), "{needle} not in {m}");
    }
    import(&s, &b, &json!("not a bundle")).await.err(400, "invalid-param");
    s.be(&b, Method::POST, "/be/v1/import", Some(json!({"bundle": base, "extra": 1})))
        .await
        .err(400, "invalid-param");
});

/// Decrypts a bundle secret with openssl (RSA-OAEP-SHA-256) and AES-256-GCM.
fn decrypt(dir: &Path, key_file: &str, v: &Value) -> String {
    let b64 =
        |k: &str| base64::engine::general_purpose::STANDARD.decode(v[k].as_str().unwrap()).unwrap();
    std::fs::write(dir.join("ek.bin"), b64("ek")).unwrap();
    let aes = tool(
        dir,
        "openssl",
        &[
            "pkeyutl",
            "-decrypt",
            "-inkey",
            key_file,
            "-in",
            "ek.bin",
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ],
    );
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&aes).unwrap();
    let plain =
        cipher.decrypt(aes_gcm::Nonce::from_slice(&b64("iv")), b64("ct").as_slice()).unwrap();
    String::from_utf8(plain).unwrap()
}

/// An organization created with an RSA key made by `ssh-keygen` (file `org` in `dir`):
/// (its admin's access token, the key as `orgPrivPemB64`).
async fn keyed_org(s: &Srv, dir: &Path, name: &str) -> (String, String) {
    tool(
        dir,
        "ssh-keygen",
        &["-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-C", "", "-f", "org"],
    );
    let pem_b64 =
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.join("org")).unwrap());
    let admin = format!("{}_admin", name.to_lowercase());
    let body = json!({"name": name, "label": format!("{name} Studio"), "username": admin, "email": "k@example.com", "firstname": "K", "surname": "A", "orgPrivPemB64": pem_b64});
    let r = s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await;
    (s.token(&admin, r.ok()["adminPW"].as_str().unwrap(), name).await, pem_b64)
}

edge_test!(secrets_travel_encrypted_to_the_org_key, |backend| async move {
    let s = server(backend).await;
    let dir = TempDir::new("orgconf-key");
    let (tok, _) = keyed_org(&s, &dir.0, "Keyed").await;
    let fp = s.be(&tok, Method::GET, "/be/v1/org", None).await.ok()["org"]["keyFingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let s3 = json!({"type": "s3", "endpoint": "http://127.0.0.1:9", "region": "us-east-1", "bucket": "games", "accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "S3CR3T-s3-value"});
    s.be(&tok, Method::POST, "/be/v1/deployments", Some(json!({"name": "bucket", "origin": s3, "probe": false, "downloadAuth": {"type": "gcore", "window": 600, "secret": "gcore-secret-1"}})))
        .await
        .ok();
    s.be(
        &tok,
        Method::POST,
        "/be/v1/subscriptions",
        Some(json!({"name": "chat", "type": "slack", "slackChannel": "#builds", "slackToken": "xoxb-slack-token"})),
    )
    .await
    .ok();
    let e = export(&s, &tok, Some(&["deployments", "subscriptions"])).await;
    let text = e.to_string();
    for secret in ["S3CR3T-s3-value", "gcore-secret-1", "xoxb-slack-token"] {
        assert!(!text.contains(secret), "{secret} in clear in {text}");
    }
    assert!(e.get("secretsOmitted").is_none());
    let dep = &e["bundle"]["items"]["deployments"][0];
    let sealed = &dep["origin"]["secretAccessKey"];
    assert_eq!(sealed["encrypted"], "RSA-OAEP-256+A256GCM");
    assert_eq!(sealed["keyFingerprint"], fp.as_str());
    assert_eq!(decrypt(&dir.0, "org", sealed), "S3CR3T-s3-value");
    assert_eq!(decrypt(&dir.0, "org", &dep["downloadAuth"]["secret"]), "gcore-secret-1");
    assert_eq!(
        decrypt(&dir.0, "org", &e["bundle"]["items"]["subscriptions"][0]["slackToken"]),
        "xoxb-slack-token"
    );
    // The hash masks secrets: re-encrypting (new keys, new ciphertexts) keeps it.
    let e2 = export(&s, &tok, Some(&["deployments", "subscriptions"])).await;
    assert_ne!(e2["bundle"]["items"], e["bundle"]["items"]);
    assert_eq!(e2["sha256"], e["sha256"]);

    // Deleted, then restored from the bundle with the org's own key.
    s.be(&tok, Method::DELETE, "/be/v1/deployments/bucket", None).await.ok();
    s.be(&tok, Method::DELETE, "/be/v1/subscriptions/chat", None).await.ok();
    let r = import(&s, &tok, &e["bundle"]).await;
    commit(&s, &tok, r.ok()["importId"].as_str().unwrap()).await.ok();
    let back = export(&s, &tok, Some(&["deployments", "subscriptions"])).await;
    assert_eq!(back["sha256"], e["sha256"]);
    let dep = &back["bundle"]["items"]["deployments"][0];
    assert_eq!(
        decrypt(&dir.0, "org", &dep["origin"]["secretAccessKey"]),
        "S3CR3T-s3-value",
        "the secret survived the trip"
    );

    // A tampered ciphertext or another org's key: 400, nothing staged.
    let mut bad = e["bundle"].clone();
    bad["items"]["deployments"][0]["origin"]["secretAccessKey"]["ct"] =
        json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    import(&s, &tok, &bad).await.err(400, "invalid-param");
    let (other, _) = s.org_admin("Keyless").await;
    let m = import(&s, &other, &e["bundle"]).await;
    assert!(
        m.err(400, "invalid-param")["message"].as_str().unwrap().contains("encrypted"),
        "{}",
        m.body
    );

    // Without an org key the secrets stay home, flagged.
    s.be(
        &other,
        Method::POST,
        "/be/v1/deployments",
        Some(json!({"name": "bucket", "origin": s3, "probe": false})),
    )
    .await
    .ok();
    let e = export(&s, &other, Some(&["deployments"])).await;
    assert_eq!(e["secretsOmitted"], true);
    assert_eq!(e["bundle"]["secretsOmitted"], true);
    assert!(e["bundle"]["items"]["deployments"][0]["origin"].get("secretAccessKey").is_none());
    assert!(!e.to_string().contains("S3CR3T"));
    // Back into the same org: the stored secret is kept, so nothing changes.
    let r = import(&s, &other, &e["bundle"]).await;
    assert_eq!(actions(&r.ok()["plan"])[0].2, "unchanged");
    // Into an org without that deployment: the secret is missing, said clearly.
    let (third, _) = s.org_admin("Third").await;
    let m = import(&s, &third, &e["bundle"]).await;
    assert!(
        m.err(400, "invalid-param")["message"].as_str().unwrap().contains("secretAccessKey"),
        "{}",
        m.body
    );
});

edge_test!(admin_commit_export_restores_a_deleted_org, |backend| async move {
    let s = server(backend).await;
    let dir = TempDir::new("orgconf-restore");
    let (tok, pem_b64) = keyed_org(&s, &dir.0, "Gone").await;
    configure(&s, &tok).await;
    let s3 = json!({"type": "s3", "endpoint": "http://127.0.0.1:9", "region": "us-east-1", "bucket": "games", "accessKeyId": "AK", "secretAccessKey": "restore-me"});
    s.be(
        &tok,
        Method::POST,
        "/be/v1/deployments",
        Some(json!({"name": "bucket", "origin": s3, "probe": false})),
    )
    .await
    .ok();
    let e = export(&s, &tok, None).await;
    s.adm(Method::DELETE, "/adm/v1/orgs/Gone", None).await.ok();
    s.adm(Method::GET, "/adm/v1/orgs/Gone", None).await.err(404, "not-found");

    // Without the key the encrypted secret cannot be read: 400, and no org is left behind.
    let r = s
        .adm(
            Method::POST,
            "/adm/v1/commit",
            Some(json!({"orgName": "Gone", "bundle": e["bundle"]})),
        )
        .await;
    r.err(400, "invalid-param");
    s.adm(Method::GET, "/adm/v1/orgs/Gone", None).await.err(404, "not-found");
    // Needs the admin token.
    s.req(
        Method::POST,
        "/adm/v1/commit",
        &[],
        Some(json!({"orgName": "Gone", "bundle": e["bundle"]})),
    )
    .await
    .err(401, "unauthorized");

    let r = s
        .adm(
            Method::POST,
            "/adm/v1/commit",
            Some(json!({"orgName": "Gone", "label": "Gone Studio", "bundle": e["bundle"], "orgPrivPemB64": pem_b64})),
        )
        .await;
    let out = r.ok().clone();
    assert_eq!(out["orgName"], "Gone");
    assert_eq!(out["created"], true);
    assert!(out["applied"].as_u64().unwrap() >= 8, "{out}");
    let pw = out["adminPW"].as_str().expect("adminPW for the re-created administrator");
    let tok = s.token("gone_admin", pw, "Gone").await;
    let again = export(&s, &tok, None).await;
    assert_eq!(again["sha256"], e["sha256"], "the configuration is back as it was");
    let org = s.be(&tok, Method::GET, "/be/v1/org", None).await;
    assert!(org.ok()["org"]["keyFingerprint"].is_string(), "the org key came back with it");
    let dep = &again["bundle"]["items"]["deployments"][0];
    assert_eq!(dep["name"], "bucket");
    assert_eq!(decrypt(&dir.0, "org", &dep["origin"]["secretAccessKey"]), "restore-me");

    // Applied to an existing org: nothing to do.
    let r = s
        .adm(
            Method::POST,
            "/adm/v1/commit",
            Some(json!({"orgName": "Gone", "bundle": e["bundle"]})),
        )
        .await;
    assert_eq!(r.ok()["created"], false);
    assert_eq!(r.body["applied"], 0);
    assert!(r.body.get("adminPW").is_none());
    // A bundle without a person holding Administrators cannot create an org.
    let mut no_admin = e["bundle"].clone();
    no_admin["items"]["users"] = json!([]);
    let r = s
        .adm(
            Method::POST,
            "/adm/v1/commit",
            Some(json!({"orgName": "Fresh", "bundle": no_admin, "orgPrivPemB64": pem_b64})),
        )
        .await;
    r.err(400, "invalid-param");
    s.adm(Method::GET, "/adm/v1/orgs/Fresh", None).await.err(404, "not-found");
});
