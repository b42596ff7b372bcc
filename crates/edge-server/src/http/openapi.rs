//! `/openapi.json` and `/docs`: the API description, generated from the route table
//! below. A test (`tests/it/openapi.rs`) reads every `.route("…")` in `src/http/` and fails
//! when a route is missing here or a documented one is not served, so the two cannot drift.

use axum::response::Html;
use axum::Json;
use serde_json::{json, Map, Value};

/// One documented operation: method, path, tag, summary, and the permission it needs.
pub struct Op {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub auth: &'static str,
}

const fn op(method: &'static str, path: &'static str, tag: &'static str, summary: &'static str, auth: &'static str) -> Op {
    Op { method, path, tag, summary, auth }
}

/// Every operation the server answers.
pub const OPS: &[Op] = &[
    op("GET", "/", "health", "Load-balancer health check", "none"),
    op("GET", "/healthz", "health", "Liveness", "none"),
    op("GET", "/readyz", "health", "Readiness: database and depot reachable", "none"),
    op("GET", "/metrics", "health", "Prometheus metrics (also open on metrics_listen when configured)", "admin token"),
    op("GET", "/openapi.json", "meta", "This OpenAPI document", "none"),
    op("GET", "/docs", "meta", "Browsable API reference", "none"),
    op("POST", "/srv/v1/ping", "admin", "Ping (echoes an optional message)", "admin token"),
    op("GET", "/srv/v1/versions", "admin", "Versions of edge, engine, api, build and worker", "admin token"),
    op("POST", "/srv/v1/hello", "admin", "Submit the test task (optionally with a maintenance sweep)", "admin token"),
    op("POST", "/srv/v1/initialize", "admin", "Apply migrations and ensure the operator organization (idempotent)", "admin token"),
    op("GET", "/srv/v1/changelog", "admin", "The changelog, newest first", "none"),
    op("POST", "/adm/v1/ping", "admin", "Ping (older path)", "admin token"),
    op("GET", "/adm/v1/versions", "admin", "Versions (older path)", "admin token"),
    op("POST", "/adm/v1/hello", "admin", "Submit the test task (older path)", "admin token"),
    op("POST", "/adm/v1/initialize", "admin", "Initialize (older path)", "admin token"),
    op("GET", "/adm/v1/changelog", "admin", "The changelog (older path)", "none"),
    op("GET", "/adm/v1/orgs", "admin", "List organizations", "admin token"),
    op("POST", "/adm/v1/orgs", "admin", "Create an organization with its administrator", "admin token"),
    op("GET", "/adm/v1/orgs/{name}", "admin", "One organization", "admin token"),
    op("DELETE", "/adm/v1/orgs/{name}", "admin", "Delete an organization (prune=true purges its files)", "admin token"),
    op("GET", "/adm/v1/tasks", "admin", "All tasks of the instance", "admin token"),
    op("GET", "/adm/v1/tasks/{name}", "admin", "One task of the instance", "admin token"),
    op("POST", "/adm/v1/commit", "admin", "Commit Export: create or restore an organization from a bundle", "admin token"),
    op("GET", "/adm/v1/maintenance", "admin", "Maintenance mode", "admin token"),
    op("PUT", "/adm/v1/maintenance", "admin", "Switch maintenance mode", "admin token"),
    op("GET", "/be/v1/orgs", "orgs", "List organizations (operator org)", "orgs:R"),
    op("POST", "/be/v1/orgs", "orgs", "Create Organization", "orgs:C"),
    op("GET", "/be/v1/orgs/{name}", "orgs", "One organization (operator org)", "orgs:R"),
    op("DELETE", "/be/v1/orgs/{name}", "orgs", "Delete an organization", "orgs:D"),
    op("GET", "/be/v1/org", "orgs", "The caller's own organization", "member"),
    op("POST", "/be/v1/login", "auth", "Log in: user+pw, org selection, or user+pw+org", "none"),
    op("POST", "/be/v1/refresh", "auth", "Rotate the refresh token, get a new access token", "refresh token"),
    op("POST", "/be/v1/logout", "auth", "End the session (or all sessions)", "access or refresh token"),
    op("POST", "/be/v1/auth", "auth", "Older clients: access token from the session token", "x-rockit-besession-token"),
    op("GET", "/be/v1/apikeys", "auth", "List API keys", "own, or beUsers:R"),
    op("POST", "/be/v1/apikeys", "auth", "Create an API key (shown once)", "own, or beUsers:U"),
    op("DELETE", "/be/v1/apikeys", "auth", "Revoke the key this request used", "API key"),
    op("DELETE", "/be/v1/apikeys/{key_id}", "auth", "Revoke an API key", "own, or beUsers:U"),
    op("GET", "/be/v1/users", "users", "List users", "beUsers:R"),
    op("POST", "/be/v1/users", "users", "Create a person or machine user", "beUsers:C"),
    op("PATCH", "/be/v1/users", "users", "Change a user (profile, password, roles, resetCreds)", "own, or beUsers:U"),
    op("GET", "/be/v1/users/{username}", "users", "One user", "beUsers:R or own"),
    op("DELETE", "/be/v1/users/{username}", "users", "Remove a user from the organization", "beUsers:D"),
    op("GET", "/be/v1/roles", "roles", "List roles", "roles:R"),
    op("POST", "/be/v1/roles", "roles", "Create a role", "roles:C"),
    op("PATCH", "/be/v1/roles", "roles", "Change a role", "roles:U"),
    op("GET", "/be/v1/roles/{name}", "roles", "One role", "roles:R"),
    op("DELETE", "/be/v1/roles/{name}", "roles", "Delete a role (force=true detaches it)", "roles:D"),
    op("GET", "/be/v1/apps", "apps", "List apps", "apps:R"),
    op("POST", "/be/v1/apps", "apps", "Create an app", "apps:C"),
    op("PATCH", "/be/v1/apps", "apps", "Change an app (maxBuilds rotates at once)", "apps:U"),
    op("GET", "/be/v1/apps/{name}", "apps", "One app with builds and patches", "apps:R"),
    op("DELETE", "/be/v1/apps/{name}", "apps", "Delete an app and purge its files", "apps:D"),
    op("GET", "/be/v1/deployments", "deployments", "List deployments", "deployments:R"),
    op("POST", "/be/v1/deployments", "deployments", "Create a deployment (probed)", "deployments:C"),
    op("PATCH", "/be/v1/deployments", "deployments", "Change a deployment", "deployments:U"),
    op("GET", "/be/v1/deployments/{name}", "deployments", "One deployment", "deployments:R"),
    op("DELETE", "/be/v1/deployments/{name}", "deployments", "Delete a deployment and purge its files", "deployments:D"),
    op("POST", "/be/v1/builds", "builds", "Import a build (Edge download or client upload)", "apps:U"),
    op("PUT", "/be/v1/uploads/{token}", "builds", "Upload the build archive (raw bytes)", "upload token"),
    op("GET", "/be/v1/tasks", "tasks", "List tasks", "tasks:R"),
    op("PATCH", "/be/v1/tasks", "tasks", "Acknowledge a warning or expire a waiting upload", "tasks:U"),
    op("GET", "/be/v1/tasks/{name}", "tasks", "One task", "tasks:R"),
    op("POST", "/be/v1/trigger", "tasks", "Retry Task / Process Traces", "tasks:X"),
    op("POST", "/be/v1/apps/{name}/client-key", "apps", "Rotate the app's client key (the old one stops at once)", "keys:U"),
    op("GET", "/be/v1/trainings", "trainings", "List trainings (one per app)", "trainings:R"),
    op("PATCH", "/be/v1/trainings", "trainings", "Set nTracesReliable of an app's training", "trainings:U"),
    op("GET", "/be/v1/trainings/{app}", "trainings", "One app's training", "trainings:R"),
    op("POST", "/client/v1/rte-sessions", "client", "Open a play session with the app's client key", "x-rockit-client-key"),
    op("PATCH", "/client/v1/rte-sessions", "client", "End a play session", "x-rockit-session-token"),
    op("POST", "/client/v1/traces", "client", "Upload the session's play trace (rockit-trace; zstd or gzip)", "x-rockit-session-token"),
    op(
        "GET",
        "/client/v1/depot/{org}/{app}/{build}/{dxf}/{file}",
        "client",
        "A file of a published image, from the Edge's depot (ranges)",
        "x-rockit-session-token",
    ),
    op("POST", "/be/v1/export", "config", "Export the organization's configuration as a bundle", "R on every resource exported"),
    op("POST", "/be/v1/import", "config", "Stage a bundle: a validated plan, nothing changed", "C+U on every resource touched"),
    op("POST", "/be/v1/commit", "config", "Apply a staged import, all or nothing", "the caller that staged it"),
    op("GET", "/be/v1/subscriptions", "events", "List subscriptions", "subscriptions:R"),
    op("POST", "/be/v1/subscriptions", "events", "Subscribe a webhook or Slack channel (secret shown once)", "subscriptions:C"),
    op("GET", "/be/v1/subscriptions/{name}", "events", "One subscription with delivery stats", "subscriptions:R"),
    op("DELETE", "/be/v1/subscriptions/{name}", "events", "Unsubscribe (queued deliveries dropped)", "subscriptions:D"),
    op("GET", "/be/v1/schemas/webhook-request-body", "events", "JSON Schema of the webhook body", "none"),
    op("GET", "/be/v1/schemas/import-url", "builds", "JSON Schema of the import URL", "none"),
    op("POST", "/api/v2/admin/organizations", "foundry", "Foundry: create organization (preview)", "orgs:C"),
    op("GET", "/api/v2/admin/organizations/{rid}", "foundry", "Foundry: get organization", "orgs:R"),
    op("PUT", "/api/v2/admin/organizations/{rid}", "foundry", "Foundry: replace organization", "orgs:U"),
    op("GET", "/api/v2/admin/organizations/{rid}/listAvailableRoles", "foundry", "Foundry: list available roles", "orgs:R"),
    op("GET", "/api/v2/admin/organizations/{rid}/roleAssignments", "foundry", "Foundry: list role assignments", "orgs:R"),
    op("POST", "/api/v2/admin/organizations/{rid}/roleAssignments/add", "foundry", "Foundry: add role assignments", "orgs:U"),
    op("POST", "/api/v2/admin/organizations/{rid}/roleAssignments/remove", "foundry", "Foundry: remove role assignments", "orgs:U"),
    op("GET", "/api/v2/admin/enrollments/getCurrent", "foundry", "Foundry: current enrollment (preview)", "orgs:R"),
];

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for o in OPS {
        let params: Vec<Value> = o
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "tags": [o.tag], "summary": o.summary, "description": format!("Authorization: {}.", o.auth),
            "responses": {"200": {"description": "success envelope", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Success"}}}},
                          "default": {"description": "failure envelope", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Failure"}}}}},
        });
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if ["POST", "PUT", "PATCH"].contains(&o.method) {
            let ctype = if o.path.starts_with("/be/v1/uploads/") { "application/octet-stream" } else { "application/json" };
            op["requestBody"] =
                json!({"content": {ctype: {"schema": {"type": if ctype == "application/json" { "object" } else { "string" }}}}});
        }
        let entry = paths.entry(o.path.to_string()).or_insert_with(|| json!({}));
        entry[o.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "rockit-edge", "version": env!("CARGO_PKG_VERSION"), "description": "Wire-compatible ROCKIT Edge game-delivery API."},
        "paths": paths,
        "components": {
            "schemas": {
                "Success": {"type": "object", "required": ["status"], "properties": {"status": {"const": "success"}, "message": {"type": "string"}}},
                "Failure": {"type": "object", "required": ["status", "error", "message"], "properties": {
                    "status": {"const": "failed"}, "error": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}},
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "adminToken": {"type": "apiKey", "in": "header", "name": "x-rockit-admin-token"},
            },
        },
    })
}

/// `GET /openapi.json`.
pub async fn openapi_json() -> Json<Value> {
    Json(document())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `GET /docs`: a self-contained HTML rendering (no external assets).
pub async fn docs() -> Html<String> {
    let mut rows = String::new();
    let mut tag = "";
    for o in OPS {
        if o.tag != tag {
            tag = o.tag;
            rows.push_str(&format!("<tr><th colspan=4 class=tag>{}</th></tr>", esc(tag)));
        }
        rows.push_str(&format!(
            "<tr><td class=m>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            o.method,
            esc(o.path),
            esc(o.summary),
            esc(o.auth)
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
