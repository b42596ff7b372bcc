//! Deployments (`/be/v1/deployments`): CDN origins with write-only secrets, probed on
//! create, deleted with a purge of what was published to them.

use super::auth::Caller;
use super::extract::{project, success, JsonBody, ListQuery, ListSpec};
use crate::delivery::{purge, targets};
use crate::error::{ApiError, ApiResult};
use crate::names::{text, Name};
use crate::perms::{Resource, C, D, R, U};
use crate::state::AppState;
use crate::store::deployments::{self as store, Deployment};
use crate::store::Conn;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/deployments", get(list_deployments).post(post_deployment).patch(patch_deployment))
        .route("/be/v1/deployments/{name}", get(get_deployment).delete(delete_deployment))
}

fn field_str<'a>(o: &'a Map<String, Value>, k: &str, required: bool) -> ApiResult<Option<&'a str>> {
    match o.get(k) {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 1024 => Ok(Some(s)),
        _ => Err(ApiError::invalid(&format!("origin.{k}"), format!("origin.{k} must be a non-empty string"))),
    }
}

/// Validates an origin object. The secret may be omitted when `keep` holds the stored one
/// (same type). Returns (type, non-secret fields, secret).
fn parse_origin(v: &Value, keep: Option<(&str, Option<String>)>) -> ApiResult<(String, Value, Option<String>)> {
    let o = v.as_object().ok_or_else(|| ApiError::invalid("origin", "origin must be an object"))?;
    let kind = o
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("origin.type", "origin.type must be s3, fs or netstorage"))?;
    let allowed: &[&str] = match kind {
        "s3" => &["type", "endpoint", "region", "bucket", "accessKeyId", "secretAccessKey", "pathStyle"],
        "fs" => &["type", "path"],
        "netstorage" => &["type", "host", "keyName", "key", "cpCode", "basePath"],
        _ => return Err(ApiError::invalid("origin.type", "origin.type must be s3, fs or netstorage")),
    };
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::invalid(&format!("origin.{k}"), format!("unknown field 'origin.{k}' for type {kind}")));
    }
    let kept = keep.filter(|(t, _)| *t == kind).and_then(|(_, s)| s);
    let secret_of = |f: &str| -> ApiResult<Option<String>> {
        match (field_str(o, f, false)?, &kept) {
            (Some("********"), Some(k)) | (None, Some(k)) => Ok(Some(k.clone())),
            (Some(s), _) => Ok(Some(s.to_string())),
            (None, None) => Err(ApiError::invalid(&format!("origin.{f}"), format!("origin.{f} is required"))),
        }
    };
    let mut clean = Map::new();
    let secret = match kind {
        "s3" => {
            for f in ["endpoint", "region", "bucket", "accessKeyId"] {
                clean.insert(f.into(), json!(field_str(o, f, true)?));
            }
            let bucket = clean["bucket"].as_str().unwrap_or("");
            if !(3..=63).contains(&bucket.len())
                || !bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            {
                return Err(ApiError::invalid("origin.bucket", "origin.bucket is not a valid bucket name"));
            }
            match o.get("pathStyle") {
                None | Some(Value::Null) => {}
                Some(Value::Bool(b)) => {
                    clean.insert("pathStyle".into(), json!(b));
                }
                _ => return Err(ApiError::invalid("origin.pathStyle", "origin.pathStyle must be a boolean")),
            }
            secret_of("secretAccessKey")?
        }
        "fs" => {
            clean.insert("path".into(), json!(field_str(o, "path", true)?));
            None
        }
        _ => {
            for f in ["host", "keyName", "cpCode"] {
                clean.insert(f.into(), json!(field_str(o, f, true)?));
            }
            if !clean["cpCode"].as_str().unwrap_or("").bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::invalid("origin.cpCode", "origin.cpCode must be digits"));
            }
            if let Some(bp) = field_str(o, "basePath", false)? {
                clean.insert("basePath".into(), json!(bp.trim_matches('/')));
            }
            secret_of("key")?
        }
    };
    Ok((kind.to_string(), Value::Object(clean), secret))
}

/// Validates a download-auth object; returns (non-secret fields, secret).
fn parse_download_auth(v: &Value, keep: Option<(&str, Option<String>)>) -> ApiResult<(Value, String)> {
    let bad = |f: &str, m: &str| ApiError::invalid(&format!("downloadAuth.{f}"), m.to_string());
    let o = v.as_object().ok_or_else(|| ApiError::invalid("downloadAuth", "downloadAuth must be an object or null"))?;
    let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
    let sf = match kind {
        "akamai" => "key",
        "gcore" => "secret",
        _ => return Err(bad("type", "downloadAuth.type must be akamai or gcore")),
    };
    if let Some(k) = o.keys().find(|k| !["type", "window", sf].contains(&k.as_str())) {
        return Err(ApiError::invalid(&format!("downloadAuth.{k}"), format!("unknown field 'downloadAuth.{k}'")));
    }
    let window = o
        .get("window")
        .and_then(Value::as_u64)
        .filter(|w| (1..=31_536_000).contains(w))
        .ok_or_else(|| bad("window", "downloadAuth.window must be 1..31536000 seconds"))?;
    let kept = keep.filter(|(t, _)| *t == kind).and_then(|(_, s)| s);
    let secret = match (o.get(sf).and_then(Value::as_str), kept) {
        (Some("********"), Some(k)) | (None, Some(k)) => k,
        (Some(s), _) if !s.is_empty() => s.to_string(),
        _ => return Err(bad(sf, &format!("downloadAuth.{sf} is required"))),
    };
    if kind == "akamai" && (secret.len() % 2 != 0 || !secret.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(bad("key", "downloadAuth.key must be hex"));
    }
    Ok((json!({"type": kind, "window": window}), secret))
}

fn parse_prefix(v: Option<&str>) -> ApiResult<String> {
    let p = v.unwrap_or("");
    if !edge_origin::keys::valid_prefix(p) {
        return Err(ApiError::invalid(
            "originPrefix",
            "originPrefix must be '' or /-separated segments of [A-Za-z0-9._-] (not . or ..), ≤ 200 characters",
        ));
    }
    Ok(p.to_string())
}

fn parse_public_url(v: Option<&str>) -> ApiResult<Option<String>> {
    match v {
        None => Ok(None),
        Some(u) if (u.starts_with("http://") || u.starts_with("https://")) && u.len() <= 2048 && !u.contains(char::is_whitespace) => {
            Ok(Some(u.trim_end_matches('/').to_string()))
        }
        Some(_) => Err(ApiError::invalid("publicUrl", "publicUrl must be an http(s) URL")),
    }
}

/// Resolves the target of a deployment row (fs paths made absolute) for publishing.
pub fn target_of(st: &AppState, d: &Deployment) -> ApiResult<targets::TargetSpec> {
    let secret = match &d.secret_sealed {
        Some(s) => Some(
            String::from_utf8(st.data_key.open(s).ok_or_else(|| ApiError::internal("deployment secret unreadable"))?).unwrap_or_default(),
        ),
        None => None,
    };
    let mut origin = d.origin.clone();
    if d.kind == "fs" {
        let p = targets::resolve_fs_path(st, origin["path"].as_str().unwrap_or(""), &d.prefix)?;
        origin["path"] = json!(p.display().to_string());
    }
    Ok(targets::TargetSpec {
        deployment_id: d.id.clone(),
        name: d.name.clone(),
        prefix: d.prefix.clone(),
        kind: d.kind.clone(),
        origin,
        secret,
    })
}

/// Refuses an `fs` deployment whose directory (origin path and prefix, symlinks resolved)
/// is, contains or lies inside one that another organization publishes to: tenants never
/// share files on the Edge host.
pub(crate) async fn check_fs_apart(st: &AppState, c: &mut Conn, d: &Deployment) -> ApiResult<()> {
    if d.kind != "fs" {
        return Ok(());
    }
    let dir =
        |x: &Deployment| targets::resolve_fs_path(st, x.origin["path"].as_str().unwrap_or(""), &x.prefix).ok().map(|p| p.join(&x.prefix));
    let Some(mine) = dir(d) else { return Ok(()) };
    for other in store::fs_of_other_orgs(c, &d.org_id).await? {
        if let Some(theirs) = dir(&other) {
            if mine.starts_with(&theirs) || theirs.starts_with(&mine) {
                return Err(ApiError::invalid("origin.path", "origin.path overlaps a directory another organization publishes to"));
            }
        }
    }
    Ok(())
}

async fn probe(st: &AppState, d: &Deployment) -> ApiResult<()> {
    let t = target_of(st, d)?;
    let origin = t.origin(st).map_err(|e| ApiError::invalid("origin", format!("origin rejected: {e}")).detail("probe", e.to_string()))?;
    origin.probe(&d.prefix).await.map_err(|e| ApiError::invalid("origin", format!("probe failed: {e}")).detail("probe", e.to_string()))
}

/// The Create Deployment body (also, without `probe`, a deployment item of a bundle).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct DeploymentIn {
    pub name: String,
    pub label: Option<String>,
    pub origin_prefix: Option<String>,
    pub origin: Value,
    pub download_auth: Option<Value>,
    pub public_url: Option<String>,
    pub probe: Option<bool>,
}

/// Validates a complete deployment description into a row of `org_id`: a new one, or
/// `existing` replaced field by field (its secrets kept where the body omits them or sends
/// `********`). fs paths are checked against `fs_origin_root`; nothing is probed.
pub(crate) fn row_from(st: &AppState, org_id: &str, b: &DeploymentIn, existing: Option<&Deployment>) -> ApiResult<Deployment> {
    let name = Name::parse("name", &b.name)?;
    let label = b.label.as_deref().map(|l| text("label", l, 1, 200)).transpose()?;
    let prefix = parse_prefix(b.origin_prefix.as_deref())?;
    let open = |s: &Option<String>| s.as_ref().and_then(|s| st.data_key.open(s)).and_then(|b| String::from_utf8(b).ok());
    let (kind, origin, secret) = parse_origin(&b.origin, existing.map(|d| (d.kind.as_str(), open(&d.secret_sealed))))?;
    let da = match &b.download_auth {
        None | Some(Value::Null) => None,
        Some(v) => {
            let keep = existing.map(|d| (d.download_auth["type"].as_str().unwrap_or(""), open(&d.download_secret_sealed)));
            Some(parse_download_auth(v, keep)?)
        }
    };
    let public_url = parse_public_url(b.public_url.as_deref())?;
    let mut d = match existing {
        Some(e) => e.clone(),
        None => store::new_row(org_id, name.as_str()),
    };
    d.label = label;
    d.prefix = prefix;
    d.kind = kind;
    d.origin = origin;
    d.secret_sealed = secret.map(|s| st.data_key.seal(s.as_bytes()));
    (d.download_auth, d.download_secret_sealed) = match da {
        Some((v, s)) => (v, Some(st.data_key.seal(s.as_bytes()))),
        None => (Value::Null, None),
    };
    d.public_url = public_url;
    if d.kind == "fs" {
        target_of(st, &d)?;
    }
    Ok(d)
}

async fn post_deployment(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<DeploymentIn>) -> ApiResult<Json<Value>> {
    let d = row_from(&st, &c.org_id, &b, None)?;
    c.require(Resource::Deployments, C)?;
    {
        let mut conn = st.db.conn().await?;
        if store::get(&mut conn, &c.org_id, &d.name).await?.is_some() {
            return Err(ApiError::conflict("item-exists", format!("deployment '{}' exists", d.name)));
        }
        check_fs_apart(&st, &mut conn, &d).await?;
    }
    // The probe reaches out over the network: no connection is held meanwhile.
    if b.probe.unwrap_or(true) {
        probe(&st, &d).await?;
    }
    let mut tx = st.db.tx().await?;
    if store::get(&mut tx, &c.org_id, &d.name).await?.is_some() {
        return Err(ApiError::conflict("item-exists", format!("deployment '{}' exists", d.name)));
    }
    check_fs_apart(&st, &mut tx, &d).await?;
    store::save(&mut tx, &d).await?;
    tx.commit().await?;
    Ok(success(json!({"deployment": d.to_json(&[])})))
}

const DEP_LIST: ListSpec =
    ListSpec { filters: &["name", "error"], order_fields: &["name", "created", "updated"], default_order: ("name", false), unique: "name" };

async fn list_deployments(c: Caller, State(st): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(raw.as_deref(), &DEP_LIST)?;
    let error = q.bool_filter("error")?;
    c.require(Resource::Deployments, R)?;
    let mut conn = st.db.conn().await?;
    let needle = q.filters.get("name").map(|s| s.to_lowercase());
    let mut items = Vec::new();
    for d in store::list(&mut conn, &c.org_id).await? {
        if needle.as_ref().is_some_and(|n| !d.name.to_lowercase().contains(n)) || error.is_some_and(|e| e != (d.status == "error")) {
            continue;
        }
        let apps = store::apps_using(&mut conn, &c.org_id, &d.name).await?;
        items.push(d.to_json(&apps));
    }
    q.page(items, "deployments")
}

async fn get_deployment(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    c.require(Resource::Deployments, R)?;
    let mut conn = st.db.conn().await?;
    let d = store::get(&mut conn, &c.org_id, &name).await?.ok_or_else(|| ApiError::not_found("deployment", &name))?;
    let apps = store::apps_using(&mut conn, &c.org_id, &name).await?;
    Ok(success(json!({"deployment": project(d.to_json(&apps), raw.as_deref())?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DeploymentPatch {
    name: String,
    #[serde(default, deserialize_with = "super::extract::double_option")]
    label: Option<Option<String>>,
    origin_prefix: Option<String>,
    origin: Option<Value>,
    #[serde(default, deserialize_with = "super::extract::double_option")]
    download_auth: Option<Option<Value>>,
    #[serde(default, deserialize_with = "super::extract::double_option")]
    public_url: Option<Option<String>>,
    probe: Option<bool>,
}

async fn patch_deployment(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<DeploymentPatch>) -> ApiResult<Json<Value>> {
    let label = match &b.label {
        Some(Some(l)) => Some(Some(text("label", l, 1, 200)?)),
        Some(None) => Some(None),
        None => None,
    };
    let prefix = b.origin_prefix.as_deref().map(|p| parse_prefix(Some(p))).transpose()?;
    let public_url = match &b.public_url {
        Some(u) => Some(parse_public_url(u.as_deref())?),
        None => None,
    };
    c.require(Resource::Deployments, U)?;
    let mut d =
        store::get(&mut *st.db.conn().await?, &c.org_id, &b.name).await?.ok_or_else(|| ApiError::not_found("deployment", &b.name))?;
    let loaded_at = d.updated;
    let open = |s: &Option<String>| s.as_ref().and_then(|s| st.data_key.open(s)).and_then(|b| String::from_utf8(b).ok());
    let mut reach_changed = false;
    if let Some(o) = &b.origin {
        let (kind, origin, secret) = parse_origin(o, Some((&d.kind, open(&d.secret_sealed))))?;
        d.kind = kind;
        d.origin = origin;
        d.secret_sealed = secret.map(|s| st.data_key.seal(s.as_bytes()));
        reach_changed = true;
    }
    match &b.download_auth {
        Some(None) => {
            d.download_auth = Value::Null;
            d.download_secret_sealed = None;
        }
        Some(Some(v)) => {
            let keep_kind = d.download_auth["type"].as_str().unwrap_or("").to_string();
            let (v, s) = parse_download_auth(v, Some((&keep_kind, open(&d.download_secret_sealed))))?;
            d.download_auth = v;
            d.download_secret_sealed = Some(st.data_key.seal(s.as_bytes()));
        }
        None => {}
    }
    if let Some(l) = label {
        d.label = l;
    }
    if let Some(p) = prefix {
        reach_changed |= p != d.prefix;
        d.prefix = p;
    }
    if let Some(u) = public_url {
        d.public_url = u;
    }
    if d.kind == "fs" {
        target_of(&st, &d)?;
    }
    if reach_changed {
        check_fs_apart(&st, &mut *st.db.conn().await?, &d).await?;
    }
    if reach_changed && b.probe.unwrap_or(true) {
        probe(&st, &d).await?;
    }
    d.updated = crate::util::now_ms();
    let mut tx = st.db.tx().await?;
    // Read, probed and written without a lock held through the probe: a change that
    // landed meanwhile is not silently overwritten.
    let current = store::get(&mut tx, &c.org_id, &b.name).await?.ok_or_else(|| ApiError::not_found("deployment", &b.name))?;
    if current.updated != loaded_at {
        return Err(ApiError::conflict("invalid-state", "the deployment changed meanwhile; send the change again"));
    }
    check_fs_apart(&st, &mut tx, &d).await?;
    store::save(&mut tx, &d).await?;
    let apps = store::apps_using(&mut tx, &c.org_id, &d.name).await?;
    tx.commit().await?;
    Ok(success(json!({"deployment": d.to_json(&apps)})))
}

async fn delete_deployment(c: Caller, State(st): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    c.require(Resource::Deployments, D)?;
    let mut tx = st.db.tx().await?;
    let d = store::get(&mut tx, &c.org_id, &name).await?.ok_or_else(|| ApiError::not_found("deployment", &name))?;
    let apps = store::apps_using(&mut tx, &c.org_id, &name).await?;
    if !apps.is_empty() {
        return Err(ApiError::conflict("item-in-use", format!("deployment '{name}' is used by app(s) {}", apps.join(", "))));
    }
    let target = target_of(&st, &d).ok();
    let task = purge::enqueue_for_deployment(&st, &mut tx, &c.org_id, &c.org_name, &d, target).await?;
    store::delete(&mut tx, &c.org_id, &d.id).await?;
    tx.commit().await?;
    Ok(success(json!({"message": "deployment deleted", "taskName": task})))
}
