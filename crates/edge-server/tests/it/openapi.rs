//! The OpenAPI document is generated from the handlers' descriptions (`src/http/openapi.rs`
//! merges them); these tests keep the document and the router in step, and check that
//! every operation describes its request and its answer.

use crate::common::*;
use crate::edge_test;
use reqwest::Method;
use std::collections::BTreeSet;

/// Every `.route("<path>", <method>(…)…)` written in src/http/, as (METHOD, path).
fn routes_in_source() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for part in flat.split(".route(").skip(1) {
            let Some(path) = part.strip_prefix('"').and_then(|p| p.split('"').next()) else {
                continue;
            };
            // The method chain runs to the parenthesis that closes this `.route(`.
            let mut depth = 1;
            let end = part
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .unwrap_or(part.len());
            let chain = &part[..end];
            for m in ["get", "post", "put", "patch", "delete"] {
                let needle_first = format!(", {m}(");
                let needle_chained = format!(".{m}(");
                if chain.contains(&needle_first) || chain.contains(&needle_chained) {
                    out.insert((m.to_uppercase(), path.to_string()));
                }
            }
        }
    }
    out
}

#[test]
fn every_route_is_documented() {
    let documented: BTreeSet<(String, String)> =
        edge_server::http::openapi::operations().into_iter().map(|o| (o.method, o.path)).collect();
    let mut in_source = routes_in_source();
    // admin.rs registers /srv/v1 and /adm/v1 through a format! loop.
    for base in ["/srv/v1", "/adm/v1"] {
        for (m, p) in [
            ("POST", "ping"),
            ("GET", "versions"),
            ("POST", "hello"),
            ("POST", "initialize"),
            ("GET", "changelog"),
        ] {
            in_source.insert((m.into(), format!("{base}/{p}")));
        }
    }
    in_source.retain(|(_, p)| !p.contains("{base}"));
    let missing: Vec<_> = in_source.difference(&documented).collect();
    assert!(missing.is_empty(), "routes without documentation: {missing:?}");
}

edge_test!(openapi_and_docs_are_served, |b| async move {
    let s = Srv::start(b).await;
    let r = s.req(Method::GET, "/openapi.json", &[], None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["openapi"], "3.1.0");
    assert!(r.body["paths"]["/be/v1/login"]["post"]["summary"].is_string());
    let html = s.http.get(format!("{}/docs", s.base)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("/be/v1/builds"));
    // Every documented route is served (never the 404 of an unknown path, never a 405).
    for o in edge_server::http::openapi::operations() {
        let path = o
            .path
            .replace("{name}", "x_unknown")
            .replace("{username}", "x_unknown")
            .replace("{key_id}", "0")
            .replace("{rid}", "r")
            .replace("{token}", "t");
        let m = Method::from_bytes(o.method.as_bytes()).unwrap();
        let r = s.req(m, &path, &[], None).await;
        assert_ne!(r.status.as_u16(), 405, "{} {}", o.method, o.path);
        assert!(
            !(r.status == 404 && r.body["message"] == "no such endpoint"),
            "{} {} not served",
            o.method,
            o.path
        );
    }
});

#[test]
fn every_operation_describes_its_request_and_answer() {
    let doc = edge_server::http::openapi::document();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut vague = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let ok = &op["responses"]["200"]["content"];
            let answer = ok["application/json"]["schema"]["$ref"].as_str().unwrap_or("");
            // A named schema other than the bare envelope, or a documented non-JSON body.
            let typed = (!answer.is_empty() && answer != "#/components/schemas/Success")
                || ok
                    .as_object()
                    .is_some_and(|c| !c.is_empty() && !c.contains_key("application/json"))
                || op["responses"]["200"].is_null()
                    && op["responses"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .any(|k| k.starts_with('2') || k.starts_with('3'));
            if !typed {
                vague.push(format!("{method} {path}: answer"));
            }
            if let Some(body) = op.get("requestBody") {
                let schema = &body["content"]["application/json"]["schema"];
                if schema == &serde_json::json!({"type": "object"}) {
                    vague.push(format!("{method} {path}: request body"));
                }
            }
            if op["summary"].as_str().unwrap_or("").is_empty() || op["x-rockit-auth"].is_null() {
                vague.push(format!("{method} {path}: summary or x-rockit-auth"));
            }
        }
    }
    for (name, s) in schemas {
        if s["properties"].as_object().is_some_and(|p| {
            p.values().any(|f| {
                f.get("description").is_none()
                    && f.get("$ref").is_none()
                    && f.get("oneOf").is_none()
            })
        }) {
            vague.push(format!("schema {name}: a field without a description"));
        }
    }
    assert!(
        vague.is_empty(),
        "{} vague places in /openapi.json:\n{}",
        vague.len(),
        vague.join("\n")
    );
}

#[test]
fn the_api_reference_in_docs_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API-REFERENCE.md");
    let now = edge_server::http::reference::markdown();
    if std::env::var_os("EDGE_WRITE_REFERENCE").is_some() {
        std::fs::write(path, &now).unwrap();
    }
    let kept = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        kept == now,
        "docs/API-REFERENCE.md is stale: run `EDGE_WRITE_REFERENCE=1 cargo test -p edge-server --test it the_api_reference`"
    );
    assert!(
        now.contains("### `POST /be/v1/roles`") && now.contains("### RoleView"),
        "the reference lists operations and schemas"
    );
}
