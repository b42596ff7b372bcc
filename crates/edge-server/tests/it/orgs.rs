//! Create Organization (`POST /adm/v1/orgs`, `POST /be/v1/orgs`) and the backend org
//! endpoints: field validation, the organization's RSA key (made with the real
//! `ssh-keygen` / `openssl`), linking persons, conflicts, races and permissions.

use crate::common::*;
use crate::edge_test;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Digest;
use std::path::Path;

/// A valid Create Organization body.
fn org_body(name: &str, username: &str) -> Value {
    json!({"name": name, "label": format!("{name} label"), "username": username,
           "email": format!("{username}@example.com"), "firstname": "Ada", "surname": "Admin"})
}

/// Runs a tool in `dir`, asserting success; returns its stdout.
pub fn tool(dir: &Path, prog: &str, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new(prog)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{prog} runs: {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Base64 of a file (what `orgPrivPemB64` carries).
fn b64_file(dir: &Path, file: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.join(file)).unwrap())
}

/// `SHA256:` + unpadded base64 of the SHA-256 of the public key's DER, computed with openssl.
fn fingerprint(dir: &Path, file: &str, pass: Option<&str>) -> String {
    let passin = pass.map(|p| format!("pass:{p}"));
    let mut args = vec!["pkey", "-in", file, "-pubout", "-outform", "DER"];
    if let Some(p) = &passin {
        args.extend(["-passin", p.as_str()]);
    }
    let der = tool(dir, "openssl", &args);
    assert!(der.len() > 200, "a public key DER");
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(sha2::Sha256::digest(&der))
    )
}

/// The SPKI public key PEM, as openssl writes it.
fn public_pem(dir: &Path, file: &str, pass: Option<&str>) -> String {
    let passin = pass.map(|p| format!("pass:{p}"));
    let mut args = vec!["pkey", "-in", file, "-pubout"];
    if let Some(p) = &passin {
        args.extend(["-passin", p.as_str()]);
    }
    String::from_utf8(tool(dir, "openssl", &args)).unwrap()
}

/// The unencrypted private key as PKCS#8 DER (to look for its bytes where they must not be).
fn private_der(dir: &Path, file: &str, pass: Option<&str>) -> Vec<u8> {
    let passin = pass.map(|p| format!("pass:{p}"));
    let mut args = vec!["pkey", "-in", file, "-outform", "DER"];
    if let Some(p) = &passin {
        args.extend(["-passin", p.as_str()]);
    }
    tool(dir, "openssl", &args)
}

/// The base64 body lines of a PEM file.
fn pem_lines(dir: &Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.contains(':') && l.len() >= 40)
        .map(str::to_string)
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// The operator admin's access token (password from the data directory).
pub async fn operator_token(s: &Srv) -> String {
    let pw = std::fs::read_to_string(s.data_dir().join("initial-admin-password"))
        .unwrap()
        .trim()
        .to_string();
    s.token("admin", &pw, "operator").await
}

/// Creates a person in the org of `tok`; returns (user id, initial password).
pub async fn person(s: &Srv, tok: &str, username: &str, roles: &[&str]) -> (String, String) {
    let r = s
        .be(
            tok,
            Method::POST,
            "/be/v1/users",
            Some(
                json!({"username": username, "email": format!("{username}@example.com"), "firstname": "P", "surname": "Q", "roles": roles}),
            ),
        )
        .await;
    let b = r.ok();
    (b["user"]["id"].as_str().unwrap().to_string(), b["initialPW"].as_str().unwrap().to_string())
}

/// Asserts a 400 `invalid-param` naming `field`.
#[track_caller]
fn bad_field(r: &Resp, field: &str) {
    assert_eq!(r.err(400, "invalid-param")["details"]["field"], field, "body: {}", r.body);
}

edge_test!(create_org_success_and_field_validation, |b| async move {
    let s = Srv::start(b).await;
    // Success with every optional plain field; adminPW is long and logs in at once.
    let mut body = org_body("Valid_Org_1", "valid_admin");
    body["dxorglnk"] = json!("d".repeat(4096));
    body["label"] = json!("L".repeat(200));
    body["firstname"] = json!("F".repeat(100));
    body["surname"] = json!("S".repeat(100));
    let r = s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await;
    assert_eq!(r.ok()["message"], "organization created");
    let pw = r.body["adminPW"].as_str().unwrap().to_string();
    assert!(pw.chars().count() >= 16, "adminPW {pw:?}");
    let l = s.login("valid_admin", &pw, "Valid_Org_1").await;
    assert_eq!(l["permissions"]["apps"], 15);
    assert_eq!(l["permissions"]["beUsers"], 15);
    assert!(l["permissions"].get("orgs").is_none());
    let tok = l["accessToken"].as_str().unwrap().to_string();
    let r = s.be(&tok, Method::GET, "/be/v1/roles", None).await;
    let roles = r.ok()["roles"].as_array().unwrap().clone();
    assert_eq!(roles.len(), 1, "{roles:?}");
    assert_eq!(roles[0]["name"], "Administrators");
    assert_eq!(roles[0]["builtin"], true);
    assert_eq!(roles[0]["users"], 1);
    let r = s.adm(Method::GET, "/adm/v1/orgs/Valid_Org_1", None).await;
    let o = r.ok()["org"].clone();
    assert_eq!(o["dxorglnk"], "d".repeat(4096));
    assert_eq!(o["label"], "L".repeat(200));
    assert!(o["keyFingerprint"].is_null() && o["publicKeyPem"].is_null(), "{o}");
    // A different password each time.
    let pw2 = s.create_org("Valid_Org_2", "valid_admin2").await;
    assert_ne!(pw, pw2);

    // Each field's rule: 400 invalid-param naming the field; nothing is created.
    let long51 = "n".repeat(51);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("name", json!("a"), "name"),
        ("name", json!("bad-name"), "name"),
        ("name", json!("with space"), "name"),
        ("name", json!(long51), "name"),
        ("name", json!("Ünïcode"), "name"),
        ("name", json!(5), "name"),
        ("label", json!(""), "label"),
        ("label", json!("x".repeat(201)), "label"),
        ("username", json!("u"), "username"),
        ("username", json!("bad.user"), "username"),
        ("username", json!("x".repeat(51)), "username"),
        ("email", json!("not-an-address"), "email"),
        ("email", json!("a@b"), "email"),
        ("email", json!("a b@example.com"), "email"),
        ("firstname", json!(""), "firstname"),
        ("firstname", json!("f".repeat(101)), "firstname"),
        ("surname", json!(""), "surname"),
        ("surname", json!("s".repeat(101)), "surname"),
        ("dxorglnk", json!("d".repeat(4097)), "dxorglnk"),
        ("dxorglnk", json!(17), "dxorglnk"),
    ];
    for (i, (field, value, expect)) in cases.into_iter().enumerate() {
        let name = format!("Bad_{i}");
        let mut body = org_body(&name, &format!("bad_admin_{i}"));
        body[field] = value.clone();
        let r = s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await;
        assert_eq!(r.status, 400, "{field}={value}: {}", r.body);
        bad_field(&r, expect);
        assert!(r.body.get("adminPW").is_none());
        if field != "name" {
            s.adm(Method::GET, &format!("/adm/v1/orgs/{name}"), None).await.err(404, "not-found");
        }
    }
    // Missing required fields and unknown fields are named.
    for f in ["name", "label", "username", "email", "firstname", "surname"] {
        let mut body = org_body("Missing_Org", "missing_admin");
        body.as_object_mut().unwrap().remove(f);
        bad_field(&s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await, f);
    }
    let mut body = org_body("Extra_Org", "extra_admin");
    body["colour"] = json!("blue");
    bad_field(&s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await, "colour");
    // A passphrase without a key is refused, not silently dropped.
    let mut body = org_body("PwOnly_Org", "pwonly_admin");
    body["orgPrivPW"] = json!("secret");
    bad_field(&s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await, "orgPrivPW");
    // Nothing of the failures exists; only the two good orgs and the operator.
    let r = s.adm(Method::GET, "/adm/v1/orgs?limit=100", None).await;
    assert_eq!(r.ok()["total"], 3, "{}", r.body);
    // Without the admin token: 401.
    s.req(Method::POST, "/adm/v1/orgs", &[], Some(org_body("NoTok", "notok_admin")))
        .await
        .err(401, "unauthorized");
    s.adm(Method::GET, "/adm/v1/orgs/NoTok", None).await.err(404, "not-found");
});

edge_test!(create_org_with_real_keys, |b| async move {
    let s = Srv::start(b).await;
    let d = TempDir::new("orgkeys");
    let dir = d.0.as_path();
    // (file, passphrase, how it was made)
    tool(
        dir,
        "ssh-keygen",
        &["-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-C", "", "-f", "pkcs1"],
    );
    tool(
        dir,
        "ssh-keygen",
        &[
            "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "secretpw", "-C", "", "-f",
            "pkcs1enc",
        ],
    );
    tool(
        dir,
        "ssh-keygen",
        &["-q", "-t", "rsa", "-b", "4096", "-m", "PEM", "-N", "", "-C", "", "-f", "big"],
    );
    tool(
        dir,
        "openssl",
        &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "pkcs8"],
    );
    tool(
        dir,
        "openssl",
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            "pkcs8",
            "-passout",
            "pass:pw",
            "-out",
            "pkcs8enc",
        ],
    );
    let head =
        |f: &str| std::fs::read_to_string(dir.join(f)).unwrap().lines().next().unwrap().to_string();
    assert_eq!(head("pkcs1"), "-----BEGIN RSA PRIVATE KEY-----");
    assert_eq!(head("pkcs1enc"), "-----BEGIN RSA PRIVATE KEY-----");
    assert!(std::fs::read_to_string(dir.join("pkcs1enc"))
        .unwrap()
        .contains("Proc-Type: 4,ENCRYPTED"));
    assert_eq!(head("big"), "-----BEGIN RSA PRIVATE KEY-----");
    assert_eq!(head("pkcs8"), "-----BEGIN PRIVATE KEY-----");
    assert_eq!(head("pkcs8enc"), "-----BEGIN ENCRYPTED PRIVATE KEY-----");

    let op = operator_token(&s).await;
    let keys: [(&str, Option<&str>); 5] = [
        ("pkcs1", None),
        ("pkcs1enc", Some("secretpw")),
        ("big", None),
        ("pkcs8", None),
        ("pkcs8enc", Some("pw")),
    ];
    let mut fps = Vec::new();
    let mut responses: Vec<String> = Vec::new();
    for (i, (file, pass)) in keys.iter().enumerate() {
        let name = format!("Keyed_{file}");
        let mut body = org_body(&name, &format!("keyed_admin_{i}"));
        body["orgPrivPemB64"] = json!(b64_file(dir, file));
        if let Some(p) = pass {
            body["orgPrivPW"] = json!(p);
        }
        // The admin route, and the backend route with the operator's token, both take keys.
        let r = if i % 2 == 0 {
            s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await
        } else {
            s.be(&op, Method::POST, "/be/v1/orgs", Some(body)).await
        };
        assert_eq!(r.ok()["message"], "organization created", "{file}");
        responses.push(r.body.to_string());
        let admin_pw = r.body["adminPW"].as_str().unwrap().to_string();
        let expect_fp = fingerprint(dir, file, *pass);
        let r = s.adm(Method::GET, &format!("/adm/v1/orgs/{name}"), None).await;
        let o = r.ok()["org"].clone();
        responses.push(r.body.to_string());
        assert_eq!(o["keyFingerprint"], expect_fp, "{file}");
        assert_eq!(
            o["publicKeyPem"].as_str().unwrap().trim(),
            public_pem(dir, file, *pass).trim(),
            "{file}"
        );
        // The backend views show the same.
        let r = s.be(&op, Method::GET, &format!("/be/v1/orgs/{name}"), None).await;
        assert_eq!(r.ok()["org"]["keyFingerprint"], expect_fp);
        responses.push(r.body.to_string());
        s.login(&format!("keyed_admin_{i}"), &admin_pw, &name).await;
        fps.push(expect_fp);
    }
    // Four distinct keys (pkcs8enc is pkcs8, encrypted): four fingerprints.
    assert_eq!(fps[3], fps[4]);
    let mut uniq = fps.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 4);
    let r = s.adm(Method::GET, "/adm/v1/orgs?limit=100", None).await;
    responses.push(r.ok().to_string());
    let r = s.be(&op, Method::GET, "/be/v1/orgs?limit=100", None).await;
    responses.push(r.ok().to_string());
    // No response ever carries private material or a passphrase.
    for text in &responses {
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains("secretpw"), "{text}");
        assert!(!text.contains("orgPrivPW") && !text.contains("orgPrivPemB64"), "{text}");
        for (file, _) in &keys {
            for line in pem_lines(dir, file) {
                assert!(!text.contains(&line), "a PEM line of {file} in a response");
            }
        }
    }
    // The raw key never lands in the database file (SQLite: the file and its WAL).
    if s.backend == Backend::Sqlite {
        let mut db = std::fs::read(s.data_dir().join("edge.db")).unwrap();
        if let Ok(w) = std::fs::read(s.data_dir().join("edge.db-wal")) {
            db.extend(w);
        }
        // The org rows are there (so the search below looks at the right bytes).
        assert!(contains(&db, fps[0].as_bytes()), "the fingerprint is stored");
        assert!(contains(&db, b"Keyed_pkcs8enc"));
        assert!(!contains(&db, b"PRIVATE KEY"));
        assert!(!contains(&db, b"secretpw"));
        for (file, pass) in &keys {
            for line in pem_lines(dir, file) {
                assert!(!contains(&db, line.as_bytes()), "a PEM line of {file} in the database");
            }
            let b64 = b64_file(dir, file);
            assert!(
                !contains(&db, &b64.as_bytes()[..64]),
                "orgPrivPemB64 of {file} in the database"
            );
            let der = private_der(dir, file, *pass);
            assert!(
                !contains(&db, &der[der.len() - 64..]),
                "private DER of {file} in the database"
            );
        }
    }
});

edge_test!(create_org_rejects_bad_keys, |b| async move {
    let s = Srv::start(b).await;
    let d = TempDir::new("badkeys");
    let dir = d.0.as_path();
    tool(
        dir,
        "ssh-keygen",
        &[
            "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "secretpw", "-C", "", "-f",
            "pkcs1enc",
        ],
    );
    tool(
        dir,
        "openssl",
        &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "pkcs8"],
    );
    tool(
        dir,
        "openssl",
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            "pkcs8",
            "-passout",
            "pass:pw",
            "-out",
            "pkcs8enc",
        ],
    );
    tool(
        dir,
        "openssl",
        &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ec"],
    );
    tool(dir, "openssl", &["ec", "-in", "ec", "-out", "ec_trad"]);
    tool(
        dir,
        "openssl",
        &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", "small"],
    );
    tool(dir, "openssl", &["rsa", "-in", "small", "-traditional", "-out", "small_pkcs1"]);
    tool(
        dir,
        "ssh-keygen",
        &["-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "", "-f", "openssh"],
    );
    tool(dir, "openssl", &["pkey", "-in", "pkcs8", "-pubout", "-out", "public"]);
    assert!(std::fs::read_to_string(dir.join("openssh"))
        .unwrap()
        .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    assert!(std::fs::read_to_string(dir.join("ec_trad"))
        .unwrap()
        .starts_with("-----BEGIN EC PRIVATE KEY-----"));
    assert!(std::fs::read_to_string(dir.join("small_pkcs1"))
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let cases: Vec<(String, Option<&str>, &str)> = vec![
        // Wrong passphrase, either encryption.
        (b64_file(dir, "pkcs1enc"), Some("wrongpw"), "orgPrivPW"),
        (b64_file(dir, "pkcs8enc"), Some("wrong"), "orgPrivPW"),
        // Encrypted, no passphrase.
        (b64_file(dir, "pkcs1enc"), None, "orgPrivPW"),
        (b64_file(dir, "pkcs8enc"), None, "orgPrivPW"),
        // Not RSA.
        (b64_file(dir, "ec"), None, "orgPrivPemB64"),
        (b64_file(dir, "ec_trad"), None, "orgPrivPemB64"),
        // Too small.
        (b64_file(dir, "small"), None, "orgPrivPemB64"),
        (b64_file(dir, "small_pkcs1"), None, "orgPrivPemB64"),
        // Garbage, base64 of garbage, a PEM with a broken body, a public key, OpenSSH format.
        ("!!! not base64 !!!".to_string(), None, "orgPrivPemB64"),
        (String::new(), None, "orgPrivPemB64"),
        (enc("hello, this is not a key"), None, "orgPrivPemB64"),
        (
            enc("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"),
            None,
            "orgPrivPemB64",
        ),
        (
            enc("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n"),
            None,
            "orgPrivPemB64",
        ),
        (b64_file(dir, "public"), None, "orgPrivPemB64"),
        (b64_file(dir, "openssh"), None, "orgPrivPemB64"),
        // The PEM itself instead of its base64.
        (std::fs::read_to_string(dir.join("pkcs8")).unwrap(), None, "orgPrivPemB64"),
    ];
    for (i, (key, pw, field)) in cases.iter().enumerate() {
        let name = format!("BadKey_{i}");
        let mut body = org_body(&name, &format!("badkey_admin_{i}"));
        body["orgPrivPemB64"] = json!(key);
        if let Some(p) = pw {
            body["orgPrivPW"] = json!(p);
        }
        let r = s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await;
        assert_eq!(r.status, 400, "case {i}: {}", r.body);
        bad_field(&r, field);
        let text = r.body.to_string();
        assert!(
            !text.contains("secretpw")
                && !text.contains("wrongpw")
                && !text.contains("PRIVATE KEY"),
            "case {i}: {text}"
        );
        s.adm(Method::GET, &format!("/adm/v1/orgs/{name}"), None).await.err(404, "not-found");
    }
    // A non-string key is an ill-typed field.
    let mut body = org_body("BadKey_T", "badkey_admin_t");
    body["orgPrivPemB64"] = json!(12);
    bad_field(&s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await, "orgPrivPemB64");
    // The same bodies go through the backend route alike.
    let op = operator_token(&s).await;
    let mut body = org_body("BadKey_Be", "badkey_admin_be");
    body["orgPrivPemB64"] = json!(b64_file(dir, "pkcs8enc"));
    bad_field(&s.be(&op, Method::POST, "/be/v1/orgs", Some(body.clone())).await, "orgPrivPW");
    body["orgPrivPW"] = json!("pw");
    s.be(&op, Method::POST, "/be/v1/orgs", Some(body)).await.ok();
    let r = s.adm(Method::GET, "/adm/v1/orgs?limit=100", None).await;
    assert_eq!(r.ok()["total"], 2, "only the operator and BadKey_Be: {}", r.body);
});

edge_test!(existing_person_is_linked, |b| async move {
    let s = Srv::start(b).await;
    let pw = s.create_org("HomeOrg", "shared_person").await;
    // A second org naming the same person: linked, no new password.
    let r = s.adm(Method::POST, "/adm/v1/orgs", Some(org_body("SecondOrg", "shared_person"))).await;
    assert_eq!(r.ok()["message"], "organization created");
    assert!(r.body.get("adminPW").is_none(), "{}", r.body);
    // The old password still works and the person now sees both organizations.
    let r = s
        .req(
            Method::POST,
            "/be/v1/login",
            &[],
            Some(json!({"username": "shared_person", "password": pw})),
        )
        .await;
    let orgs = r.ok()["orgs"].clone();
    assert_eq!(
        orgs,
        json!([{"name": "HomeOrg", "label": "HomeOrg label"}, {"name": "SecondOrg", "label": "SecondOrg label"}])
    );
    let sel = r.body["orgSelectionToken"].as_str().unwrap().to_string();
    let r = s
        .req(
            Method::POST,
            "/be/v1/login",
            &[],
            Some(json!({"orgSelectionToken": sel, "orgName": "SecondOrg"})),
        )
        .await;
    assert_eq!(r.ok()["permissions"]["beUsers"], 15);
    assert_eq!(r.body["orgName"], "SecondOrg");
    let tok = r.body["accessToken"].as_str().unwrap().to_string();
    let r = s.be(&tok, Method::GET, "/be/v1/users/shared_person", None).await;
    assert_eq!(r.ok()["user"]["roles"], json!(["Administrators"]));
    assert_eq!(s.adm(Method::GET, "/adm/v1/orgs/SecondOrg", None).await.ok()["org"]["users"], 1);
    // Via the backend route too (and the person's own new org login works at once).
    let op = operator_token(&s).await;
    let r =
        s.be(&op, Method::POST, "/be/v1/orgs", Some(org_body("ThirdOrg", "shared_person"))).await;
    assert!(r.ok().get("adminPW").is_none());
    s.login("shared_person", &pw, "ThirdOrg").await;
    // Deleting one org keeps the person, who belongs to others.
    s.adm(Method::DELETE, "/adm/v1/orgs/HomeOrg", None).await.ok();
    s.login("shared_person", &pw, "SecondOrg").await;
});

edge_test!(machine_username_and_duplicates_conflict, |b| async move {
    let s = Srv::start(b).await;
    let (tok, _) = s.org_admin("BotHome").await;
    let r = s
        .be(
            &tok,
            Method::POST,
            "/be/v1/users",
            Some(json!({"type": "machine", "username": "robot_one", "label": "R", "roles": []})),
        )
        .await;
    r.ok();
    // A machine user cannot become an org's administrator.
    let r = s.adm(Method::POST, "/adm/v1/orgs", Some(org_body("RobotOrg", "robot_one"))).await;
    r.err(409, "item-exists");
    s.adm(Method::GET, "/adm/v1/orgs/RobotOrg", None).await.err(404, "not-found");
    let op = operator_token(&s).await;
    s.be(&op, Method::POST, "/be/v1/orgs", Some(org_body("RobotOrg", "robot_one")))
        .await
        .err(409, "item-exists");
    s.adm(Method::GET, "/adm/v1/orgs/RobotOrg", None).await.err(404, "not-found");
    // A duplicate org name: 409; names are case-sensitive.
    s.adm(Method::POST, "/adm/v1/orgs", Some(org_body("BotHome", "other_admin")))
        .await
        .err(409, "item-exists");
    s.be(&op, Method::POST, "/be/v1/orgs", Some(org_body("BotHome", "other_admin")))
        .await
        .err(409, "item-exists");
    s.adm(Method::POST, "/adm/v1/orgs", Some(org_body("operator", "other_admin")))
        .await
        .err(409, "item-exists");
    // The loser's would-be administrator was not created.
    person(&s, &tok, "other_admin", &[]).await;
    s.create_org("bothome", "lower_admin").await;
    let r = s.adm(Method::GET, "/adm/v1/orgs/BotHome", None).await;
    assert_eq!(r.ok()["org"]["label"], "BotHome label");
    assert_eq!(r.body["org"]["users"], 3);
});

edge_test!(concurrent_create_same_name, |b| async move {
    let s = Srv::start(b).await;
    let futs: Vec<_> = (0..6)
        .map(|i| {
            s.adm(Method::POST, "/adm/v1/orgs", Some(org_body("RaceOrg", &format!("racer_{i}"))))
        })
        .collect();
    let results = futures_join_all(futs).await;
    let mut winner = None;
    for (i, r) in results.iter().enumerate() {
        if r.status == 200 {
            assert!(winner.is_none(), "two winners");
            winner = Some((i, r.ok()["adminPW"].as_str().unwrap().to_string()));
        } else {
            r.err(409, "item-exists");
            assert!(r.body.get("adminPW").is_none());
        }
    }
    let (w, pw) = winner.expect("exactly one creation succeeds");
    let r = s.adm(Method::GET, "/adm/v1/orgs/RaceOrg", None).await;
    assert_eq!(r.ok()["org"]["users"], 1);
    assert_eq!(r.body["org"]["label"], "RaceOrg label");
    let tok = s.token(&format!("racer_{w}"), &pw, "RaceOrg").await;
    let r = s.be(&tok, Method::GET, "/be/v1/users", None).await;
    assert_eq!(r.ok()["total"], 1);
    assert_eq!(r.body["users"][0]["username"], format!("racer_{w}"));
    let r = s.be(&tok, Method::GET, "/be/v1/roles", None).await;
    assert_eq!(r.ok()["total"], 1);
    // The losers' users do not exist anywhere: their names are free.
    for i in (0..6).filter(|i| *i != w) {
        person(&s, &tok, &format!("racer_{i}"), &[]).await;
    }
    let r = s.adm(Method::GET, "/adm/v1/orgs?limit=100", None).await;
    assert_eq!(r.ok()["total"], 2);

    // Concurrent creations of different orgs all succeed.
    let futs: Vec<_> = (0..5)
        .map(|i| {
            s.adm(
                Method::POST,
                "/adm/v1/orgs",
                Some(org_body(&format!("Par_{i}"), &format!("par_{i}"))),
            )
        })
        .collect();
    for r in futures_join_all(futs).await {
        assert!(r.ok()["adminPW"].is_string());
    }
    let r = s.adm(Method::GET, "/adm/v1/orgs?name=par_", None).await;
    assert_eq!(r.ok()["total"], 5);
});

edge_test!(backend_orgs_permissions, |b| async move {
    let s = Srv::start(b).await;
    let op = operator_token(&s).await;
    // The operator admin creates an org through /be/v1/orgs.
    let r = s.be(&op, Method::POST, "/be/v1/orgs", Some(org_body("BeOrg", "beorg_admin"))).await;
    assert_eq!(r.ok()["message"], "organization created");
    let pw = r.body["adminPW"].as_str().unwrap().to_string();
    assert!(pw.len() >= 16);
    let tenant = s.token("beorg_admin", &pw, "BeOrg").await;
    // A tenant's administrator holds every bit of its own org, but is not the operator.
    s.be(&tenant, Method::POST, "/be/v1/orgs", Some(org_body("Sneaky", "sneaky_admin")))
        .await
        .err(403, "forbidden");
    s.be(&tenant, Method::GET, "/be/v1/orgs", None).await.err(403, "forbidden");
    s.be(&tenant, Method::GET, "/be/v1/orgs/BeOrg", None).await.err(403, "forbidden");
    s.be(&tenant, Method::DELETE, "/be/v1/orgs/BeOrg", None).await.err(403, "forbidden");
    s.adm(Method::GET, "/adm/v1/orgs/Sneaky", None).await.err(404, "not-found");
    // 401 before anything; 400 comes before 403.
    s.req(Method::POST, "/be/v1/orgs", &[], Some(org_body("NoAuth", "noauth_admin")))
        .await
        .err(401, "unauthorized");
    s.be("garbage", Method::GET, "/be/v1/orgs", None).await.err(401, "unauthorized");
    bad_field(
        &s.be(&tenant, Method::POST, "/be/v1/orgs", Some(org_body("x", "sneaky_admin"))).await,
        "name",
    );

    // Operator users whose roles lack the bit.
    let r = s
        .be(
            &op,
            Method::POST,
            "/be/v1/roles",
            Some(json!({"name": "OrgReader", "permissions": {"orgs": 2}})),
        )
        .await;
    assert_eq!(r.ok()["role"]["permissions"]["orgs"], 2);
    s.be(
        &op,
        Method::POST,
        "/be/v1/roles",
        Some(json!({"name": "OrgMaker", "permissions": {"orgs": 1}})),
    )
    .await
    .ok();
    s.be(
        &op,
        Method::POST,
        "/be/v1/roles",
        Some(json!({"name": "Nothing", "permissions": {"apps": 2}})),
    )
    .await
    .ok();
    let (_, rpw) = person(&s, &op, "org_reader", &["OrgReader"]).await;
    let (_, mpw) = person(&s, &op, "org_maker", &["OrgMaker"]).await;
    let (_, npw) = person(&s, &op, "no_orgs", &["Nothing"]).await;
    let reader = s.token("org_reader", &rpw, "operator").await;
    let maker = s.token("org_maker", &mpw, "operator").await;
    let nobody = s.token("no_orgs", &npw, "operator").await;
    s.be(&reader, Method::POST, "/be/v1/orgs", Some(org_body("ReaderOrg", "reader_admin")))
        .await
        .err(403, "forbidden");
    s.be(&nobody, Method::POST, "/be/v1/orgs", Some(org_body("ReaderOrg", "reader_admin")))
        .await
        .err(403, "forbidden");
    s.adm(Method::GET, "/adm/v1/orgs/ReaderOrg", None).await.err(404, "not-found");
    s.be(&nobody, Method::GET, "/be/v1/orgs", None).await.err(403, "forbidden");
    s.be(&nobody, Method::GET, "/be/v1/orgs/BeOrg", None).await.err(403, "forbidden");
    s.be(&maker, Method::GET, "/be/v1/orgs", None).await.err(403, "forbidden");
    s.be(&reader, Method::DELETE, "/be/v1/orgs/BeOrg", None).await.err(403, "forbidden");
    // Create-only may create.
    let r =
        s.be(&maker, Method::POST, "/be/v1/orgs", Some(org_body("MakerOrg", "maker_admin"))).await;
    assert!(r.ok()["adminPW"].is_string());
    // So may an operator machine user holding the bit, with its API key.
    let r = s
        .be(
            &op,
            Method::POST,
            "/be/v1/users",
            Some(json!({"type": "machine", "username": "org_bot", "label": "bot", "roles": ["OrgMaker"]})),
        )
        .await;
    let key = r.ok()["apiKey"].as_str().unwrap().to_string();
    let r = s.be(&key, Method::POST, "/be/v1/orgs", Some(org_body("BotOrg", "botorg_admin"))).await;
    assert!(r.ok()["adminPW"].is_string());
    s.be(&key, Method::GET, "/be/v1/orgs", None).await.err(403, "forbidden");
    // Deleting with prune=true hands back the purge task.
    let r = s.be(&op, Method::DELETE, "/be/v1/orgs/BotOrg?prune=true", None).await;
    let t = s.wait_admin_task(r.ok()["taskName"].as_str().unwrap()).await;
    assert_eq!(t["type"], "purge");
    assert_eq!(t["orgName"], "BotOrg");
    s.adm(Method::GET, "/adm/v1/orgs/BotOrg", None).await.err(404, "not-found");

    // Reading mirrors /adm/v1/orgs.
    let r = s.be(&reader, Method::GET, "/be/v1/orgs?limit=100", None).await;
    let be_list = r.ok().clone();
    let adm_list = s.adm(Method::GET, "/adm/v1/orgs?limit=100", None).await.ok().clone();
    assert_eq!(be_list, adm_list);
    assert_eq!(be_list["total"], 3);
    let names: Vec<_> =
        be_list["orgs"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["BeOrg", "MakerOrg", "operator"]);
    let r = s.be(&reader, Method::GET, "/be/v1/orgs?name=maker", None).await;
    assert_eq!(r.ok()["total"], 1);
    let r = s.be(&reader, Method::GET, "/be/v1/orgs/BeOrg", None).await;
    let o = r.ok()["org"].clone();
    assert_eq!(o, s.adm(Method::GET, "/adm/v1/orgs/BeOrg", None).await.ok()["org"]);
    assert_eq!(o["label"], "BeOrg label");
    assert_eq!(o["users"], 1);
    assert_eq!(o["operator"], false);
    let r = s.be(&reader, Method::GET, "/be/v1/orgs/operator", None).await;
    assert_eq!(r.ok()["org"]["operator"], true);
    assert_eq!(r.body["org"]["users"], 5);
    s.be(&reader, Method::GET, "/be/v1/orgs/Nope", None).await.err(404, "not-found");

    // GET /be/v1/org: any member, even one without any permission.
    let (_, ppw) = person(&s, &tenant, "plain_member", &[]).await;
    let plain = s.token("plain_member", &ppw, "BeOrg").await;
    let r = s.be(&plain, Method::GET, "/be/v1/org", None).await;
    assert_eq!(r.ok()["org"]["name"], "BeOrg");
    assert_eq!(r.body["org"]["users"], 2);
    assert_eq!(r.body["org"]["operator"], false);
    assert!(r.body["org"]["rid"].as_str().unwrap().starts_with("ri.multipass..organization."));
    let r = s.be(&nobody, Method::GET, "/be/v1/org", None).await;
    assert_eq!(r.ok()["org"]["name"], "operator");
    assert_eq!(r.body["org"]["operator"], true);
    s.req(Method::GET, "/be/v1/org", &[], None).await.err(401, "unauthorized");

    // Delete: the operator org is protected, unknown is 404, a tenant goes with its data.
    s.be(&op, Method::DELETE, "/be/v1/orgs/operator", None).await.err(409, "item-protected");
    s.be(&op, Method::DELETE, "/be/v1/orgs/Nope", None).await.err(404, "not-found");
    s.be(&op, Method::DELETE, "/be/v1/orgs/BeOrg?prune=sometimes", None)
        .await
        .err(400, "invalid-param");
    let r = s.be(&op, Method::DELETE, "/be/v1/orgs/BeOrg", None).await;
    assert_eq!(r.ok()["message"], "organization deleted");
    s.be(&op, Method::GET, "/be/v1/orgs/BeOrg", None).await.err(404, "not-found");
    s.be(&plain, Method::GET, "/be/v1/org", None).await.err(401, "unauthorized");
    s.be(&tenant, Method::GET, "/be/v1/org", None).await.err(401, "unauthorized");
    let r = s
        .req(
            Method::POST,
            "/be/v1/login",
            &[],
            Some(json!({"username": "beorg_admin", "password": pw})),
        )
        .await;
    r.err(401, "unauthorized");
    s.be(&op, Method::DELETE, "/be/v1/orgs/BeOrg", None).await.err(404, "not-found");
    // The operator org is still intact.
    let r = s.be(&op, Method::GET, "/be/v1/orgs?limit=100", None).await;
    assert_eq!(r.ok()["total"], 2);
});

edge_test!(create_org_key_variants, |b| async move {
    let s = Srv::start(b).await;
    let d = TempDir::new("keyvariants");
    let dir = d.0.as_path();
    tool(
        dir,
        "openssl",
        &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "base"],
    );
    // Legacy PKCS#1 encryption with every AES key size.
    for bits in ["128", "192", "256"] {
        tool(
            dir,
            "openssl",
            &[
                "rsa",
                "-in",
                "base",
                "-traditional",
                &format!("-aes{bits}"),
                "-passout",
                "pass:legacy pw",
                "-out",
                &format!("aes{bits}"),
            ],
        );
    }
    // PKCS#8 with other PBES2 choices.
    tool(
        dir,
        "openssl",
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-128-cbc",
            "-in",
            "base",
            "-passout",
            "pass:pw",
            "-out",
            "p8aes128",
        ],
    );
    tool(
        dir,
        "openssl",
        &["pkcs8", "-topk8", "-scrypt", "-in", "base", "-passout", "pass:pw", "-out", "p8scrypt"],
    );
    tool(
        dir,
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-aes-256-cbc",
            "-pass",
            "pass:pw",
            "-out",
            "genenc",
        ],
    );
    // Windows line endings.
    let crlf = std::fs::read_to_string(dir.join("aes128")).unwrap().replace('\n', "\r\n");
    std::fs::write(dir.join("crlf"), crlf).unwrap();
    let cases: [(&str, &str, &str); 7] = [
        ("aes128", "legacy pw", "base"),
        ("aes192", "legacy pw", "base"),
        ("aes256", "legacy pw", "base"),
        ("p8aes128", "pw", "base"),
        ("p8scrypt", "pw", "base"),
        ("genenc", "pw", "genenc"),
        ("crlf", "legacy pw", "base"),
    ];
    for (i, (file, pw, same_as)) in cases.iter().enumerate() {
        let name = format!("Variant_{i}");
        let mut body = org_body(&name, &format!("variant_admin_{i}"));
        body["orgPrivPemB64"] = json!(b64_file(dir, file));
        body["orgPrivPW"] = json!(pw);
        let r = s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await;
        assert_eq!(r.status, 200, "{file}: {}", r.body);
        let passin = if *same_as == "base" { None } else { Some(*pw) };
        let r = s.adm(Method::GET, &format!("/adm/v1/orgs/{name}"), None).await;
        assert_eq!(r.ok()["org"]["keyFingerprint"], fingerprint(dir, same_as, passin), "{file}");
    }
    // base64 as the `base64` tool writes it: wrapped at 76 columns.
    let wrapped = String::from_utf8(tool(dir, "base64", &["base"])).unwrap();
    assert!(wrapped.trim_end().contains('\n'));
    let mut body = org_body("Wrapped", "wrapped_admin");
    body["orgPrivPemB64"] = json!(wrapped);
    s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await.ok();
    assert_eq!(
        s.adm(Method::GET, "/adm/v1/orgs/Wrapped", None).await.ok()["org"]["keyFingerprint"],
        fingerprint(dir, "base", None)
    );
    // A passphrase given for an unencrypted key is harmless; a wrong one for a legacy AES-256 key is not.
    let mut body = org_body("Needless_Pw", "needless_admin");
    body["orgPrivPemB64"] = json!(b64_file(dir, "base"));
    body["orgPrivPW"] = json!("unused");
    s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await.ok();
    // Encryption this server cannot undo is the key file's fault, not the passphrase's.
    tool(
        dir,
        "openssl",
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-v2prf",
            "hmacWithSHA1",
            "-in",
            "base",
            "-passout",
            "pass:pw",
            "-out",
            "p8sha1",
        ],
    );
    tool(
        dir,
        "openssl",
        &[
            "pkcs8",
            "-topk8",
            "-v1",
            "PBE-SHA1-3DES",
            "-in",
            "base",
            "-passout",
            "pass:pw",
            "-out",
            "p8pbes1",
        ],
    );
    tool(
        dir,
        "openssl",
        &["rsa", "-in", "base", "-traditional", "-des3", "-passout", "pass:pw", "-out", "des3"],
    );
    for (i, file) in ["p8sha1", "p8pbes1", "des3"].iter().enumerate() {
        let mut body = org_body(&format!("Unsupported_{i}"), &format!("unsupported_admin_{i}"));
        body["orgPrivPemB64"] = json!(b64_file(dir, file));
        body["orgPrivPW"] = json!("pw");
        let r = s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await;
        bad_field(&r, "orgPrivPemB64");
        assert!(!r.body["message"].as_str().unwrap().contains("passphrase"), "{file}: {}", r.body);
    }
    let mut body = org_body("Wrong_Pw", "wrong_admin");
    body["orgPrivPemB64"] = json!(b64_file(dir, "aes256"));
    body["orgPrivPW"] = json!("legacy PW");
    bad_field(&s.adm(Method::POST, "/adm/v1/orgs", Some(body)).await, "orgPrivPW");
});
