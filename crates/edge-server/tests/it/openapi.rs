//! The OpenAPI document is generated from the route table in `src/http/openapi.rs`; this
//! test keeps the table and the router in step.

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
            let Some(path) = part.strip_prefix('"').and_then(|p| p.split('"').next()) else { continue };
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
        edge_server::http::openapi::OPS.iter().map(|o| (o.method.to_string(), o.path.to_string())).collect();
    let mut in_source = routes_in_source();
    // admin.rs registers /srv/v1 and /adm/v1 through a format! loop.
    for base in ["/srv/v1", "/adm/v1"] {
        for (m, p) in [("POST", "ping"), ("GET", "versions"), ("POST", "hello"), ("POST", "initialize"), ("GET", "changelog")] {
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
    for o in edge_server::http::openapi::OPS {
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
        assert!(!(r.status == 404 && r.body["message"] == "no such endpoint"), "{} {} not served", o.method, o.path);
    }
});
