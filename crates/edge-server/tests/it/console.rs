//! The web console in a real headless Chromium: the two-step sign-in; a deployment and an
//! app made with the forms; a tar uploaded from the page (refused in words while the app
//! is locked); a webhook whose real receiver verifies every delivery; an import followed live on the app page to its failure (a
//! broken origin), its warning acknowledged, the deployment fixed on its page and probed,
//! the publish retried and followed to "published"; the training and organization pages; a
//! role, keys and a credential reset on the People page; a machine user whose key is shown once and works; a
//! refused post without CSRF token; another organization's app is 404; a read-only user
//! sees no write buttons and a forged post gets the API's 403; sign-out ends the session.
//! Screenshots of the pages are written to `target/tmp/console-screens/`.

use crate::common::*;
use crate::edge_test;
use crate::game::*;
use crate::webdriver::{Browser, WAIT};
use reqwest::Method;
use serde_json::json;

/// Posts a form from the page with `fetch` (the browser adds the session's cookies) and
/// answers the status and the body's text.
const POST_FORM: &str = "const [url, body] = arguments; \
    return fetch(url, {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'}, body, redirect: 'manual'}) \
    .then(async r => [r.status, await r.text()]);";

/// Signs in with the form; `org` is chosen in the second step when given.
async fn sign_in(b: &Browser, base: &str, user: &str, pw: &str, org: Option<&str>) {
    b.go(&format!("{base}/console/sign-in")).await;
    b.el("#username").await.typ(user).await;
    b.el("#password").await.typ(pw).await;
    b.el("#next").await.click().await;
    if let Some(org) = org {
        let choice = format!("#org option[value={org}]");
        let until = std::time::Instant::now() + std::time::Duration::from_secs(WAIT);
        while b.find(&choice).await.is_none() {
            assert!(b.find("#error").await.is_none(), "sign-in: {}", b.text("#error").await);
            assert!(
                std::time::Instant::now() < until,
                "no organization to choose: {}",
                b.source().await
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        b.el(&choice).await.click().await;
        b.el("#choose").await.click().await;
    }
    b.wait_text("#who", WAIT, |t| t.contains(user)).await;
}

edge_test!(console_in_a_browser, |be| async move {
    let s = Srv::start_with(be, |c| c.allow_private_sources = true).await;
    // A producer in two organizations (two-step sign-in), and a rival organization.
    let pw = s.create_org("Studio", "producer").await;
    let other = json!({"name": "Other", "label": "Other label", "username": "producer", "email": "producer@example.com", "firstname": "P", "surname": "R"});
    s.adm(Method::POST, "/adm/v1/orgs", Some(other)).await.ok();
    let (rival, _) = s.org_admin("Rival").await;
    s.be(&rival, Method::POST, "/be/v1/apps", Some(json!({"name": "RivalGame", "label": "R"})))
        .await
        .ok();
    let b = Browser::start().await;
    let base = s.base.clone();

    // Sign-in, two steps.
    b.go(&format!("{base}/console/")).await;
    assert!(b.url().await.ends_with("/console/sign-in"), "not signed in: the sign-in page");
    b.shot("sign-in").await;
    sign_in(&b, &base, "producer", &pw, Some("Studio")).await;
    assert_eq!(b.text("#who").await, "producer · Studio");
    b.shot("overview-empty").await;

    // A deployment, by the form (probed before it is saved).
    b.go(&format!("{base}/console/deployments")).await;
    b.el("#dep-name").await.typ("site").await;
    b.el("#dep-type option[value=fs]").await.click().await;
    b.el("#dep-path").await.typ("site").await;
    b.el("#create-deployment").await.click().await;
    b.wait_text("#deployments", WAIT, |t| t.contains("site") && t.contains("fs")).await;
    b.shot("deployments").await;
    let tok = s.token("producer", &pw, "Studio").await;
    let r = s.be(&tok, Method::GET, "/be/v1/deployments/site", None).await;
    assert_eq!(r.ok()["deployment"]["origin"]["type"], "fs");

    // An app, by the form: the browser lands on its page.
    b.go(&format!("{base}/console/")).await;
    b.el("#app-name").await.typ("Game").await;
    b.el("#app-label").await.typ("The Game").await;
    b.el("#create-app").await.click().await;
    b.wait_text("h1", WAIT, |t| t.starts_with("Game")).await;
    assert!(b.url().await.ends_with("/console/apps/Game"));
    assert!(b.text("#client-key").await.starts_with("ck_"), "the admin reads keys");

    // A webhook to a real receiver that verifies every signature: its secret is shown once.
    let rec = crate::events::receiver().await;
    b.el("a[href='/console/webhooks']").await.click().await;
    b.el("#hook-name").await.typ("ci_hook").await;
    b.el("#hook-url").await.typ(&rec.url).await;
    b.el("#hook-apps").await.typ("Game").await;
    b.el("#create-webhook").await.click().await;
    let secret = b.wait_text("#secret", WAIT, |t| !t.is_empty()).await;
    rec.inbox.lock().unwrap().secret = Some(secret);
    b.go(&format!("{base}/console/apps/Game")).await;

    // An import into a broken origin, followed live on the open page (no reload: the
    // marker set in the page survives).
    let origin = s.data_dir().join("origins/site");
    std::fs::write(origin.join("dxf"), b"not a directory").unwrap();
    b.run("window.rockitMarker = 42;", json!([])).await;
    let work = TempDir::new("console");
    let dir = work.0.join("v1");
    write_tree(&dir, &game_v1());
    let t = work.0.join("v1.tar");
    tar(&dir, &t);
    // The tar picked in the page's upload form and sent with a progress bar.
    b.el("#upload-file").await.typ(t.to_str().unwrap()).await;
    b.el("#upload-name").await.typ("1.0").await;
    b.el("#upload").await.click().await;
    b.wait_text("#upload-status", 60, |t| t.starts_with("uploaded")).await;
    let sent = b.run("return document.getElementById('upload-progress').value;", json!([])).await;
    assert_eq!(sent, 100);
    b.wait_text("#pipeline [data-state]", 120, |t| t == "failed").await;
    assert_eq!(b.run("return window.rockitMarker;", json!([])).await, 42, "updated in place");
    assert_eq!(
        b.count("#pipeline tr[data-task] div.status-error").await,
        1,
        "the failure, in words"
    );
    b.shot("app-failed").await;

    // The warning (an empty file in the build): counted on the overview, acknowledged on the
    // app's page, and no longer counted.
    assert!(b.text("#pipeline").await.contains("zero-length file"));
    b.go(&format!("{base}/console/")).await;
    let row = b.text("#apps tbody").await;
    assert!(row.contains("1 open") && row.contains("failed"), "{row}");
    b.go(&format!("{base}/console/apps/Game")).await;
    b.el("#pipeline .acknowledge").await.click().await;
    b.wait_text("#pipeline", WAIT, |t| t.contains("(acknowledged)")).await;
    assert_eq!(b.count("#pipeline .acknowledge").await, 0);
    let r = s.be(&tok, Method::GET, "/be/v1/tasks?appName=Game&type=mkraw", None).await;
    assert_eq!(r.ok()["tasks"][0]["warning"]["acknowledged"], true, "{}", r.body);
    b.go(&format!("{base}/console/")).await;
    let row = b.text("#apps tbody").await;
    assert!(!row.contains("open"), "{row}");

    // While the app is locked, an upload is refused before any byte is sent, in words.
    b.go(&format!("{base}/console/apps/Game")).await;
    b.el("#upload-file").await.typ(t.to_str().unwrap()).await;
    b.el("#upload").await.click().await;
    let refused = b.wait_text("#upload-status", WAIT, |t| t.starts_with("refused")).await;
    assert!(refused.contains("409") || refused.contains("error state"), "{refused}");

    // The deployment fixed in the console (another directory; saved after a probe), a
    // probe on demand, then the publish retried from the app page, followed live.
    b.go(&format!("{base}/console/deployments")).await;
    b.el("#deployments a[href='/console/deployments/site']").await.click().await;
    let path = b.el("#dep-path").await;
    path.clear().await;
    path.typ("site2").await;
    // The page before the save also lists the apps using it: wait for the answer's page.
    b.submit("#save-deployment").await;
    b.wait_text("#apps-using", WAIT, |t| !t.is_empty()).await;
    let d =
        s.be(&tok, Method::GET, "/be/v1/deployments/site", None).await.ok()["deployment"].clone();
    assert_eq!(d["origin"]["path"], "site2", "{d}");
    b.el("#probe").await.click().await;
    assert!(b.wait_text("#probed", WAIT, |t| !t.is_empty()).await.contains(".rockit-probe"));
    b.shot("deployment").await;
    b.go(&format!("{base}/console/apps/Game")).await;
    b.el("#pipeline .retry").await.click().await;
    b.wait_text("#pipeline [data-state]", 120, |t| t == "published").await;
    let app = s.be(&tok, Method::GET, "/be/v1/apps/Game", None).await.ok()["app"].clone();
    assert_eq!(app["iCurBuild"], 1);
    assert_eq!(app["error"], false);
    let site2 = s.data_dir().join("origins/site2");
    let manifest =
        format!("dxf/Studio/Game/0001/{}/manifest.json", app["dxfName"].as_str().unwrap());
    assert!(site2.join(&manifest).is_file(), "published to the fixed deployment");
    b.go(&format!("{base}/console/apps/Game")).await;
    assert!(b.text("#current").await.starts_with("1.0 (#1)"));
    assert!(b.text("#builds").await.contains("current"));
    b.shot("app-published").await;

    // Its settings changed on the page (the API's Change App), and a new client key.
    let label = b.el("#set-label").await;
    label.clear().await;
    label.typ("The Game, revised").await;
    let max = b.el("#set-max").await;
    max.clear().await;
    max.typ("3").await;
    b.el("#app-settings input[value=site]").await.click().await;
    b.el("#save-app").await.click().await;
    b.wait_text("h1", WAIT, |t| t.contains("revised")).await;
    let a = s.be(&tok, Method::GET, "/be/v1/apps/Game", None).await.ok()["app"].clone();
    assert_eq!(
        (a["label"].as_str(), a["maxBuilds"].as_i64()),
        (Some("The Game, revised"), Some(3))
    );
    assert_eq!(a["deployments"], json!(["site"]));
    let old_key = b.text("#client-key").await;
    b.el("#rotate-key").await.click().await;
    b.accept_dialog().await;
    let new_key = b.wait_text("#client-key", WAIT, |t| t.starts_with("ck_") && t != old_key).await;
    let a = s.be(&tok, Method::GET, "/be/v1/apps/Game", None).await.ok()["app"].clone();
    assert_eq!(a["clientKey"], new_key.as_str());

    // The webhook's deliveries, verified by the receiver and listed on the page.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(WAIT);
    while rec.inbox.lock().unwrap().got.len() < 2 {
        assert!(std::time::Instant::now() < until, "no deliveries");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(rec.inbox.lock().unwrap().bad.is_empty(), "{:?}", rec.inbox.lock().unwrap().bad);
    b.go(&format!("{base}/console/webhooks")).await;
    let card = b.text("[data-subscription=ci_hook]").await;
    assert!(card.contains(&rec.url) && card.contains("done"), "{card}");
    let delivered: u64 = b.text("[data-subscription=ci_hook] .delivered").await.parse().unwrap();
    assert!(delivered >= 2, "{card}");
    b.shot("webhooks").await;

    // Its training: the image's preload figures; no traces to process yet (the API's 409).
    b.go(&format!("{base}/console/apps/Game")).await;
    b.el("#training-link").await.click().await;
    assert_eq!(b.text("#n-traces").await, "0");
    let tr = s.be(&tok, Method::GET, "/be/v1/trainings/Game", None).await.ok()["training"].clone();
    let table = b.text("#preload").await;
    match tr["preload"].as_object() {
        // Figures for the untrained image: one row per bandwidth.
        Some(p) => {
            assert_eq!(b.count("#preload tbody tr").await, p.len(), "{tr}");
            assert!(table.contains("100 Mbit/s"), "{table}");
        }
        None => assert!(table.contains("No figures yet"), "{tr} {table}"),
    }
    b.shot("training").await;
    b.el("#process").await.click().await;
    let e = b.wait_text("#error", WAIT, |t| !t.is_empty()).await;
    assert!(e.contains("no traces to process") && e.contains("409"), "{e}");
    b.go(&format!("{base}/console/")).await;
    let apps = b.text("#apps").await;
    assert!(apps.contains("Game") && apps.contains("published"), "{apps}");
    b.shot("overview").await;

    // A machine user for CI: its key is shown once, and works.
    b.go(&format!("{base}/console/people")).await;
    b.el("#user-type option[value=machine]").await.click().await;
    b.el("#user-name").await.typ("ci_bot").await;
    b.el("#user-label").await.typ("CI pipeline").await;
    b.el("#user-role option[value=Administrators]").await.click().await;
    b.el("#create-user").await.click().await;
    let key = b.wait_text("#secret", WAIT, |t| t.starts_with("rk_")).await;
    b.shot("machine-user-created").await;
    let r = s.be(&key, Method::GET, "/be/v1/apps", None).await;
    assert_eq!(r.ok()["apps"][0]["name"], "Game");
    b.go(&format!("{base}/console/people")).await;
    assert!(b.text("#members").await.contains("ci_bot"));
    assert!(!b.source().await.contains(&key), "the key is not shown again");

    // A role made by ticking bits in the grid: apps Read and Update, tasks Read.
    b.el("#role-name").await.typ("Builder").await;
    for bit in ["p.apps.2", "p.apps.4", "p.tasks.2"] {
        b.el(&format!("#role-bits input[name='{bit}']")).await.click().await;
    }
    b.el("#create-role").await.click().await;
    let row = b.wait_text("#roles tr[data-role=Builder]", WAIT, |t| !t.is_empty()).await;
    assert!(row.contains("RU") && row.contains('R'), "{row}");
    let role = s.be(&tok, Method::GET, "/be/v1/roles/Builder", None).await.ok()["role"].clone();
    assert_eq!(role["permissions"]["apps"], 6, "{role}");
    assert_eq!(role["permissions"]["tasks"], 2, "{role}");
    assert_eq!(role["permissions"]["deployments"], 0, "{role}");
    b.shot("people").await;

    // A key of one's own: shown once, works, revoked from the page (after a confirmation).
    b.el("#key-label").await.typ("laptop").await;
    b.el("#create-key").await.click().await;
    let own = b.wait_text("#secret", WAIT, |t| t.starts_with("rk_")).await;
    assert_eq!(s.be(&own, Method::GET, "/be/v1/apps", None).await.status, 200);
    b.go(&format!("{base}/console/people")).await;
    let id = own.split('_').nth(1).unwrap().to_string();
    b.el(&format!("#keys tr[data-key='{id}'] .revoke")).await.click().await;
    b.accept_dialog().await;
    b.wait_text("#keys", WAIT, |t| !t.contains(&id)).await;
    assert_eq!(s.be(&own, Method::GET, "/be/v1/apps", None).await.status, 401);

    // The machine user's credentials reset: a new key shown once, the old one dead.
    b.el("#members tr[data-user=ci_bot] .reset").await.click().await;
    b.accept_dialog().await;
    let fresh = b.wait_text("#secret", WAIT, |t| t.starts_with("rk_")).await;
    assert_ne!(fresh, key);
    assert_eq!(s.be(&key, Method::GET, "/be/v1/apps", None).await.status, 401);
    assert_eq!(s.be(&fresh, Method::GET, "/be/v1/apps", None).await.status, 200);

    // The organization: its key's fingerprint; the configuration exported as a file, and a
    // bundle with one more app imported: the plan first (nothing changed), then the commit.
    b.go(&format!("{base}/console/org")).await;
    let org = s.be(&tok, Method::GET, "/be/v1/org", None).await.ok()["org"].clone();
    // (The test's organizations have no key: the page says so, as the API's null does.)
    assert_eq!(b.text("#fingerprint").await, org["keyFingerprint"].as_str().unwrap_or("no key"));
    b.shot("organization").await;
    let export = b
        .run(
            "const csrf = document.querySelector('input[name=_csrf]').value; \
             return fetch('/console/org/export', {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'}, body: '_csrf=' + csrf}) \
             .then(async r => [r.status, r.headers.get('content-disposition'), await r.text()]);",
            json!([]),
        )
        .await;
    assert_eq!(export[0], 200, "{export}");
    assert_eq!(export[1], "attachment; filename=\"Studio-config.json\"");
    let mut bundle: serde_json::Value = serde_json::from_str(export[2].as_str().unwrap()).unwrap();
    let apps = bundle["items"]["apps"].as_array_mut().unwrap();
    assert_eq!(apps.len(), 1, "{apps:?}");
    let mut more = apps[0].clone();
    more["name"] = json!("Imported");
    more["label"] = json!("Imported from a bundle");
    apps.push(more);
    b.run("document.getElementById('bundle').value = arguments[0];", json!([bundle.to_string()]))
        .await;
    b.el("#import").await.click().await;
    let plan = b.wait_text("#plan", WAIT, |t| !t.is_empty()).await;
    assert!(plan.contains("Imported") && plan.contains("create"), "{plan}");
    assert!(plan.contains("Game") && plan.contains("unchanged"), "{plan}");
    b.shot("organization-plan").await;
    s.be(&tok, Method::GET, "/be/v1/apps/Imported", None).await.err(404, "not-found");
    b.el("#commit").await.click().await;
    assert!(b.wait_text("#applied", WAIT, |t| !t.is_empty()).await.starts_with("1 item"));
    let r = s.be(&tok, Method::GET, "/be/v1/apps/Imported", None).await;
    assert_eq!(r.ok()["app"]["label"], "Imported from a bundle");

    // A post without the CSRF token is refused and changes nothing.
    let r = b.run(POST_FORM, json!(["/console/apps", "name=Forged&label=Forged"])).await;
    assert_eq!(r[0], 403, "{r}");
    assert!(r[1].as_str().unwrap().contains("CSRF"), "{r}");
    let r = s.be(&tok, Method::GET, "/be/v1/apps/Forged", None).await;
    r.err(404, "not-found");

    // Another organization's app is not found, exactly as in the API.
    b.go(&format!("{base}/console/apps/RivalGame")).await;
    assert!(b.wait_text("#error", WAIT, |t| !t.is_empty()).await.contains("404"));
    let r = b.run("return fetch('/console/apps/RivalGame').then(r => r.status);", json!([])).await;
    assert_eq!(r, 404);
    b.go(&format!("{base}/console/no/such/page")).await;
    assert!(b.wait_text("#error", WAIT, |t| !t.is_empty()).await.contains("no such page"));

    // Sign-out ends the session: back is the sign-in page, the old tokens are dead.
    b.go(&format!("{base}/console/")).await;
    let session = b.cookie("rk_console").await.expect("the session's cookie");
    let seen = b.run("return document.cookie;", json!([])).await;
    assert!(!seen.as_str().unwrap().contains(&session), "HttpOnly: page scripts cannot read it");
    assert_eq!(s.be(&session, Method::GET, "/be/v1/apps", None).await.status, 200);
    b.el("#sign-out").await.click().await;
    b.wait_text("h1", WAIT, |t| t == "rockit-edge").await;
    b.go(&format!("{base}/console/")).await;
    assert!(b.url().await.ends_with("/console/sign-in"));
    assert_eq!(s.be(&session, Method::GET, "/be/v1/apps", None).await.status, 401);

    // A read-only user: no write buttons; a forged post gets the API's 403.
    s.be(
        &tok,
        Method::POST,
        "/be/v1/roles",
        Some(json!({"name": "Viewer", "permissions": {"apps": 2, "tasks": 2, "deployments": 2}})),
    )
    .await
    .ok();
    let body = json!({"username": "qa", "email": "qa@example.com", "firstname": "Q", "surname": "A", "roles": ["Viewer"]});
    let qa_pw = s.be(&tok, Method::POST, "/be/v1/users", Some(body)).await.ok()["initialPW"]
        .as_str()
        .unwrap()
        .to_string();
    sign_in(&b, &base, "qa", &qa_pw, None).await;
    assert!(b.find("#new-app").await.is_none(), "no New App form");
    assert!(b.text("#apps").await.contains("Game"));
    b.go(&format!("{base}/console/deployments")).await;
    assert!(b.text("#deployments").await.contains("site"));
    assert_eq!(b.count("#deployments .delete").await, 0, "no delete buttons");
    assert!(b.find("#new-deployment").await.is_none());
    assert_eq!(b.count("a[href='/console/people']").await, 0, "no People page link");
    assert_eq!(b.count("a[href='/console/webhooks']").await, 0, "no Webhooks page link");
    b.go(&format!("{base}/console/apps/Game")).await;
    assert_eq!(b.count("#pipeline form").await, 0, "no task actions");
    assert!(b.find("#upload-form").await.is_none(), "no apps: Update, no upload");
    assert!(b.find("#training-link").await.is_none(), "no trainings: Read, no link");
    assert!(b.find("#client-key").await.is_none(), "no keys: Read, no client key");
    b.shot("app-read-only").await;
    let csrf = b.run("return document.querySelector('input[name=_csrf]').value;", json!([])).await;
    let form = format!("_csrf={}&name=sneaky&type=fs&path=sneaky", csrf.as_str().unwrap());
    let r = b.run(POST_FORM, json!(["/console/deployments", form])).await;
    assert_eq!(r[0], 403, "{r}");
    assert!(r[1].as_str().unwrap().contains("permission deployments: Create required"), "{r}");
    let api = s.be(&tok, Method::GET, "/be/v1/deployments/sneaky", None).await;
    api.err(404, "not-found");

    // A phone's width.
    b.size(390, 844).await;
    b.shot("app-phone").await;
});

edge_test!(console_for_the_operator, |be| async move {
    let s = Srv::start(be).await;
    let pw = std::fs::read_to_string(s.data_dir().join("initial-admin-password")).unwrap();
    let (plain, _) = s.org_admin("Plain").await;
    let b = Browser::start().await;
    let base = s.base.clone();
    sign_in(&b, &base, "admin", pw.trim(), None).await;
    b.el("a[href='/console/operator']").await.click().await;
    assert!(b.text("#orgs").await.contains("Plain"));

    // A new organization: its administrator's password is shown once and works.
    b.el("#org-name").await.typ("NewCo").await;
    b.el("#org-label").await.typ("New Co").await;
    b.el("#org-admin").await.typ("newco_admin").await;
    b.el("#org-email").await.typ("boss@newco.example").await;
    b.el("#org-first").await.typ("Ada").await;
    b.el("#org-sur").await.typ("Boss").await;
    b.el("#create-org").await.click().await;
    let admin_pw = b.wait_text("#secret", WAIT, |t| !t.is_empty()).await;
    b.shot("operator-org-created").await;
    s.token("newco_admin", &admin_pw, "NewCo").await;

    // Maintenance mode from the page: the API answers 503 meanwhile.
    b.go(&format!("{base}/console/operator")).await;
    b.el("#maintenance-toggle").await.click().await;
    b.wait_text("#maintenance", WAIT, |t| t.starts_with("on")).await;
    b.shot("operator").await;
    s.be(&plain, Method::GET, "/be/v1/apps", None).await.err(503, "maintenance");
    b.el("#maintenance-toggle").await.click().await;
    b.wait_text("#maintenance", WAIT, |t| t == "off").await;
    assert_eq!(s.be(&plain, Method::GET, "/be/v1/apps", None).await.status, 200);

    // The test task: a worker runs it and names its version.
    b.submit("#hello").await;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(WAIT);
    loop {
        b.go(&format!("{base}/console/operator")).await;
        if !b.text("#worker").await.starts_with("no test task") {
            break;
        }
        assert!(std::time::Instant::now() < until, "the test task did not run");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }

    // Another organization's administrator has no operator page; a forged post is 403.
    b.go(&format!("{base}/console/")).await;
    b.el("#sign-out").await.click().await;
    let plain_pw = s.create_org("Tenant", "tenant_admin").await;
    sign_in(&b, &base, "tenant_admin", &plain_pw, None).await;
    assert_eq!(b.count("a[href='/console/operator']").await, 0);
    b.go(&format!("{base}/console/operator")).await;
    let e = b.wait_text("#error", WAIT, |t| !t.is_empty()).await;
    assert!(e.contains("only the operator organization"), "{e}");
    b.go(&format!("{base}/console/")).await;
    let csrf = b.run("return document.querySelector('input[name=_csrf]').value;", json!([])).await;
    let form = format!("_csrf={}&mode=on", csrf.as_str().unwrap());
    let r = b.run(POST_FORM, json!(["/console/operator/maintenance", form])).await;
    assert_eq!(r[0], 403, "{r}");
    assert_eq!(s.be(&plain, Method::GET, "/be/v1/apps", None).await.status, 200, "still off");
});

edge_test!(console_training_chart, |be| async move {
    use crate::traces::{game, make_sorted, send, session, trace, wait_kind};
    let s = Srv::start_with(be, |c| {
        c.chunk_avg_bytes = 64 << 10;
        c.pack_limit_bytes = 4 << 20;
    })
    .await;
    let (tok, pw) = s.org_admin("Play").await;
    let r =
        s.be(&tok, Method::POST, "/be/v1/apps", Some(json!({"name": "Game", "label": "G"}))).await;
    let key = r.ok()["app"]["clientKey"].as_str().unwrap().to_string();
    let work = TempDir::new("console-chart");
    let (_, tar1) = make_sorted(&work.0, "v1", &game(1));
    let imp = crate::delivery::upload(&s, &tok, "Game", "1.0", &tar1).await;
    crate::delivery::wait_group(&s, &tok, imp["taskGroup"].as_str().unwrap()).await;
    let b = Browser::start().await;
    let base = s.base.clone();
    sign_in(&b, &base, "Play_admin", &pw, None).await;

    // The setting from the page: three new traces make mkseq run by itself.
    b.go(&format!("{base}/console/apps/Game/training")).await;
    assert!(b.find("#no-chart").await.is_some(), "no sequencing yet");
    let n = b.el("#set-reliable").await;
    n.clear().await;
    n.typ("3").await;
    b.el("#save-reliable").await.click().await;
    b.wait_text("#reliable", WAIT, |t| t.starts_with("3 ")).await;
    let tr = s.be(&tok, Method::GET, "/be/v1/trainings/Game", None).await.ok()["training"].clone();
    assert_eq!(tr["nTracesReliable"], 3);

    // Three players' traces; mkseq runs, and the page charts their times-to-play.
    for (level, at, jitter) in [
        ("b_levels/level1.pak", 20_000, 0u64),
        ("b_levels/level2.pak", 30_000, 7),
        ("b_levels/level1.pak", 25_000, 13),
    ] {
        let (token, _) = session(&s, &key).await;
        let doc = serde_json::to_vec(&trace(1, level, at, jitter)).unwrap();
        assert_eq!(send(&s, &token, doc, None).await.status, 200);
    }
    let group = wait_kind(&s, &tok, "mkseq").await;
    let mkseq = group.iter().find(|t| t["type"] == "mkseq").unwrap();
    let ttp = &mkseq["result"]["timeToPlay100"];
    let (before, after) = (ttp["before"].as_array().unwrap(), ttp["after"].as_array().unwrap());
    assert_eq!((before.len(), after.len()), (3, 3), "{mkseq}");
    let sum = |v: &Vec<serde_json::Value>| v.iter().map(|x| x.as_f64().unwrap()).sum::<f64>();
    assert!(sum(after) < sum(before), "the learned order starts sooner: {ttp}");
    b.go(&format!("{base}/console/apps/Game/training")).await;
    assert_eq!(b.count("#ttp-chart rect.before").await, 3);
    assert_eq!(b.count("#ttp-chart rect.after").await, 3);
    assert!(b.text("#median-after").await.ends_with(" s"));
    b.shot("training-chart").await;
});
