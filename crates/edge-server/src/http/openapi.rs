//! `/openapi.json` and `/docs`: the API description. Each module of `http/` describes its
//! operations on its handlers (`#[utoipa::path]`, with request and answer types deriving
//! `utoipa::ToSchema`) and lists them in its `Api`; this module merges them and adds what
//! every operation shares: the failure answer, path parameters, and who may call it (the
//! `x-rockit-auth` extension, rendered as words and as a security requirement).
//! `tests/it/openapi.rs` reads every `.route("…")` in `src/http/` and fails when a route is
//! missing here or a documented one is not served, so the two cannot drift.

use super::reply::Failure;
use axum::response::Html;
use axum::Json;
use serde_json::{json, Value};
use utoipa::{OpenApi, ToSchema};

/// The parts merged into the document: one per module of `http/`.
const PARTS: &[fn() -> utoipa::openapi::OpenApi] = &[
    DocApi::openapi,
    super::admin::Api::openapi,
    super::apikeys::Api::openapi,
    super::apps::Api::openapi,
    super::builds::Api::openapi,
    super::client::Api::openapi,
    super::deployments::Api::openapi,
    super::depot::Api::openapi,
    super::foundry::Api::openapi,
    super::login::Api::openapi,
    super::meta::Api::openapi,
    super::orgconf::Api::openapi,
    super::orgs::Api::openapi,
    super::roles::Api::openapi,
    super::subscriptions::Api::openapi,
    super::tasks::Api::openapi,
    super::traces::Api::openapi,
    super::trainings::Api::openapi,
    super::users::Api::openapi,
];

#[derive(OpenApi)]
#[openapi(components(schemas(Failure)))]
struct Base;

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut api = Base::openapi();
    for part in PARTS {
        api.merge(part());
    }
    let mut doc = serde_json::to_value(&api).unwrap_or_else(|_| json!({}));
    let mut paths =
        doc.get_mut("paths").and_then(Value::as_object_mut).map(std::mem::take).unwrap_or_default();
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for op in item.values_mut() {
            complete(path, op);
        }
    }
    let mut schemas = doc["components"]["schemas"].as_object().cloned().unwrap_or_default();
    // Items of lists and single GETs can be projected by `fields[]`: no field is certain.
    for (name, schema) in schemas.iter_mut() {
        if name.ends_with("View") {
            if let Some(o) = schema.as_object_mut() {
                o.remove("required");
            }
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "rockit-edge", "version": env!("CARGO_PKG_VERSION"), "description": "Wire-compatible ROCKIT Edge game-delivery API."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An access token from /be/v1/login, or an API key."},
                "adminToken": {"type": "apiKey", "in": "header", "name": "x-rockit-admin-token"},
                "clientKey": {"type": "apiKey", "in": "header", "name": "x-rockit-client-key"},
                "sessionToken": {"type": "apiKey", "in": "header", "name": "x-rockit-session-token"},
                "beSessionToken": {"type": "apiKey", "in": "header", "name": "x-rockit-besession-token"},
            },
        },
        "security": [{"bearer": []}],
    })
}

/// Adds what every operation shares: undeclared path parameters, the failure answer, and
/// who may call it.
fn complete(path: &str, op: &mut Value) {
    let declared: Vec<String> = op["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for p in
        path.split('/').filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    {
        if !declared.iter().any(|d| d == p) {
            let param =
                json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}});
            match op["parameters"].as_array_mut() {
                Some(ps) => ps.push(param),
                None => op["parameters"] = json!([param]),
            }
        }
    }
    if op["responses"].get("default").is_none() {
        op["responses"]["default"] = json!({"description": "failure", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Failure"}}}});
    }
    let auth = op["x-rockit-auth"].as_str().unwrap_or("").to_string();
    if !auth.is_empty() {
        let text = format!("Authorization: {}.", auth_words(&auth));
        op["description"] = match op["description"].as_str() {
            Some(d) if !d.is_empty() => json!(format!("{d}\n\n{text}")),
            _ => json!(text),
        };
        op["security"] = security_of(&auth);
    }
}

/// The security requirement of an `x-rockit-auth` text.
fn security_of(auth: &str) -> Value {
    match auth {
        "none" => json!([]),
        "admin token" => json!([{"adminToken": []}]),
        "x-rockit-client-key" => json!([{"clientKey": []}]),
        "x-rockit-session-token" => json!([{"sessionToken": []}]),
        "x-rockit-besession-token" => json!([{"beSessionToken": []}]),
        // The one-time token is part of the path.
        "upload token" => json!([]),
        _ => json!([{"bearer": []}]),
    }
}

/// `roles:CU` → `roles: Create, Update` wherever the text names bits.
pub fn auth_words(auth: &str) -> String {
    let mut out = String::new();
    for (i, word) in auth.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let (core, tail) = word.split_at(word.trim_end_matches([',', ')']).len());
        match core.split_once(':') {
            Some((res, bits))
                if !res.is_empty()
                    && !bits.is_empty()
                    && bits.chars().all(|c| "CRUDX".contains(c)) =>
            {
                let names: Vec<&str> = bits
                    .chars()
                    .map(|c| match c {
                        'C' => "Create",
                        'R' => "Read",
                        'U' => "Update",
                        'D' => "Delete",
                        _ => "Execute",
                    })
                    .collect();
                out.push_str(&format!("{res}: {}{tail}", names.join(" + ")));
            }
            _ => out.push_str(word),
        }
    }
    out
}

/// One operation as `/docs` lists it: method, path, tag, summary, authorization.
pub struct DocOp {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path with `{parameters}`.
    pub path: String,
    /// Its group.
    pub tag: String,
    /// One line.
    pub summary: String,
    /// Who may call it, in words.
    pub auth: String,
}

/// The groups of operations in the order `/docs` shows them.
const TAGS: &[&str] = &[
    "health",
    "meta",
    "admin",
    "orgs",
    "auth",
    "users",
    "roles",
    "apps",
    "deployments",
    "builds",
    "tasks",
    "trainings",
    "client",
    "config",
    "events",
    "foundry",
];

/// Every operation of the document, grouped by tag.
pub fn operations() -> Vec<DocOp> {
    let doc = document();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            ops.push(DocOp {
                method: method.to_uppercase(),
                path: path.clone(),
                tag: op["tags"][0].as_str().unwrap_or("").to_string(),
                summary: op["summary"].as_str().unwrap_or("").to_string(),
                auth: auth_words(op["x-rockit-auth"].as_str().unwrap_or("")),
            });
        }
    }
    ops.sort_by_key(|o| TAGS.iter().position(|t| *t == o.tag).unwrap_or(usize::MAX));
    ops
}

/// The OpenAPI document, as `GET /openapi.json` sends it (described, not parsed: its
/// parts are OpenAPI's own objects).
#[derive(ToSchema)]
#[allow(dead_code)] // describes the answer of `openapi_json`, which sends a `Value`
pub struct OpenApiDocument {
    /// Always `3.1.0`.
    openapi: String,
    /// Title, version of this server, description.
    #[schema(value_type = Object)]
    info: Value,
    /// Every operation, by path and method.
    #[schema(value_type = Object)]
    paths: Value,
    /// Schemas and security schemes the operations refer to.
    #[schema(value_type = Object)]
    components: Value,
    /// The default security requirement (a bearer token).
    #[schema(value_type = Vec<Object>)]
    security: Value,
}

/// This OpenAPI document
///
/// OpenAPI 3.1, generated from the handlers themselves.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "This document", body = OpenApiDocument)),
    extensions(("x-rockit-auth" = json!("none"))))]
pub async fn openapi_json() -> Json<Value> {
    Json(document())
}

/// This module's own operations: the document and its HTML rendering.
#[derive(OpenApi)]
#[openapi(paths(openapi_json, docs))]
struct DocApi;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Browsable API reference
///
/// A self-contained HTML page listing every operation (no external assets).
#[utoipa::path(get, path = "/docs", tag = "meta",
    responses((status = 200, description = "An HTML page", content_type = "text/html", body = String)),
    extensions(("x-rockit-auth" = json!("none"))))]
pub async fn docs() -> Html<String> {
    let mut rows = String::new();
    let mut tag = String::new();
    for o in operations() {
        if o.tag != tag {
            tag = o.tag.clone();
            rows.push_str(&format!("<tr><th colspan=4 class=tag>{}</th></tr>", esc(&tag)));
        }
        rows.push_str(&format!(
            "<tr><td class=m>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            o.method,
            esc(&o.path),
            esc(&o.summary),
            esc(&o.auth)
        ));
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>rockit-edge API</title><style>\
         body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}}\
         .tag{{background:#f3f3f3;text-transform:uppercase}}.m{{font-weight:bold}}</style></head><body>\
         <h1>rockit-edge API {}</h1><p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a>. Decisions beyond the ROCKIT Edge contract: docs/API.md in the rockit-edge repository.</p>\
         <table><tr><th>method</th><th>path</th><th>what</th><th>authorization</th></tr>{rows}</table></body></html>",
        env!("CARGO_PKG_VERSION")
    ))
}
