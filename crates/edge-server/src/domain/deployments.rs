//! Deployments (CDN origins): the body's validation into a row (secrets sealed, `fs` paths
//! resolved inside the origin root without creating anything), the rule that tenants never
//! share an `fs` directory, the probe, a row turned into a publishing target, and creating
//! one (probed). Changing one is [`change`], deleting one [`delete`].

use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::ids::OrgId;
use crate::names::{text, Name};
use crate::perms::{Resource, C, U};
use crate::state::AppState;
use crate::store::deployments::{self as store, Deployment};
use crate::store::Conn;
use crate::targets;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub mod change;
pub mod delete;
pub mod origins;

pub(crate) fn field_str<'a>(
    o: &'a Map<String, Value>,
    k: &str,
    required: bool,
) -> ApiResult<Option<&'a str>> {
    match o.get(k) {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 1024 => Ok(Some(s)),
        _ => Err(ApiError::invalid(
            &format!("origin.{k}"),
            format!("origin.{k} must be a non-empty string"),
        )),
    }
}

/// Validates an origin object. The secret may be omitted when `keep` holds the stored one
/// (same type). Returns (type, non-secret fields, secret).
pub(crate) fn parse_origin(
    v: &Value,
    keep: Option<(&str, Option<String>)>,
) -> ApiResult<(String, Value, Option<String>)> {
    let o = v.as_object().ok_or_else(|| ApiError::invalid("origin", "origin must be an object"))?;
    let kind = o.get("type").and_then(Value::as_str).ok_or_else(|| {
        ApiError::invalid("origin.type", "origin.type must be s3, fs or netstorage")
    })?;
    let allowed: &[&str] = match kind {
        "s3" => {
            &["type", "endpoint", "region", "bucket", "accessKeyId", "secretAccessKey", "pathStyle"]
        }
        "fs" => &["type", "path"],
        "netstorage" => &["type", "host", "keyName", "key", "cpCode", "basePath"],
        _ => {
            return Err(ApiError::invalid(
                "origin.type",
                "origin.type must be s3, fs or netstorage",
            ))
        }
    };
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            &format!("origin.{k}"),
            format!("unknown field 'origin.{k}' for type {kind}"),
        ));
    }
    let kept = keep.filter(|(t, _)| *t == kind).and_then(|(_, s)| s);
    let secret_of = |f: &str| -> ApiResult<Option<String>> {
        match (field_str(o, f, false)?, &kept) {
            (Some("********"), Some(k)) | (None, Some(k)) => Ok(Some(k.clone())),
            (Some(s), _) => Ok(Some(s.to_string())),
            (None, None) => {
                Err(ApiError::invalid(&format!("origin.{f}"), format!("origin.{f} is required")))
            }
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
                || !bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            {
                return Err(ApiError::invalid(
                    "origin.bucket",
                    "origin.bucket is not a valid bucket name",
                ));
            }
            match o.get("pathStyle") {
                None | Some(Value::Null) => {}
                Some(Value::Bool(b)) => {
                    clean.insert("pathStyle".into(), json!(b));
                }
                _ => {
                    return Err(ApiError::invalid(
                        "origin.pathStyle",
                        "origin.pathStyle must be a boolean",
                    ))
                }
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
pub(crate) fn parse_download_auth(
    v: &Value,
    keep: Option<(&str, Option<String>)>,
) -> ApiResult<(Value, String)> {
    let bad = |f: &str, m: &str| ApiError::invalid(&format!("downloadAuth.{f}"), m.to_string());
    let o = v.as_object().ok_or_else(|| {
        ApiError::invalid("downloadAuth", "downloadAuth must be an object or null")
    })?;
    let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
    let sf = match kind {
        "akamai" => "key",
        "gcore" => "secret",
        _ => return Err(bad("type", "downloadAuth.type must be akamai or gcore")),
    };
    if let Some(k) = o.keys().find(|k| !["type", "window", sf].contains(&k.as_str())) {
        return Err(ApiError::invalid(
            &format!("downloadAuth.{k}"),
            format!("unknown field 'downloadAuth.{k}'"),
        ));
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
    if kind == "akamai" && (secret.len() % 2 != 0 || !secret.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(bad("key", "downloadAuth.key must be hex"));
    }
    Ok((json!({"type": kind, "window": window}), secret))
}

pub(crate) fn parse_prefix(v: Option<&str>) -> ApiResult<String> {
    let p = v.unwrap_or("");
    if !edge_origin::keys::valid_prefix(p) {
        return Err(ApiError::invalid(
            "originPrefix",
            "originPrefix must be '' or /-separated segments of [A-Za-z0-9._-] (not . or ..), ≤ 200 characters",
        ));
    }
    Ok(p.to_string())
}

pub(crate) fn parse_public_url(v: Option<&str>) -> ApiResult<Option<String>> {
    match v {
        None => Ok(None),
        Some(u)
            if (u.starts_with("http://") || u.starts_with("https://"))
                && u.len() <= 2048
                && !u.contains(char::is_whitespace) =>
        {
            Ok(Some(u.trim_end_matches('/').to_string()))
        }
        Some(_) => Err(ApiError::invalid("publicUrl", "publicUrl must be an http(s) URL")),
    }
}

/// Resolves the target of a deployment row (fs paths made absolute) for publishing.
pub fn target_of(st: &AppState, d: &Deployment) -> ApiResult<targets::TargetSpec> {
    let secret = match &d.secret_sealed {
        Some(s) => Some(
            String::from_utf8(
                st.data_key
                    .open(s)
                    .ok_or_else(|| ApiError::internal("deployment secret unreadable"))?,
            )
            .unwrap_or_default(),
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
    let dir = |x: &Deployment| {
        targets::resolve_fs_path(st, x.origin["path"].as_str().unwrap_or(""), &x.prefix)
            .ok()
            .map(|p| p.join(&x.prefix))
    };
    let Some(mine) = dir(d) else { return Ok(()) };
    for other in store::fs_of_other_orgs(c, &d.org_id).await? {
        if let Some(theirs) = dir(&other) {
            if mine.starts_with(&theirs) || theirs.starts_with(&mine) {
                return Err(ApiError::invalid(
                    "origin.path",
                    "origin.path overlaps a directory another organization publishes to",
                ));
            }
        }
    }
    Ok(())
}

pub(crate) async fn probe(st: &AppState, d: &Deployment) -> ApiResult<()> {
    let t = target_of(st, d)?;
    let origin = t.origin(st).map_err(|e| {
        ApiError::invalid("origin", format!("origin rejected: {e}")).detail("probe", e.to_string())
    })?;
    origin.probe(&d.prefix).await.map_err(|e| {
        ApiError::invalid("origin", format!("probe failed: {e}")).detail("probe", e.to_string())
    })
}

/// Probes `org`'s deployment `name` now: writes and deletes `<originPrefix>/.rockit-probe`
/// on its origin, changing nothing else. Answers the probed key. Needs `deployments:
/// Update` (it writes to the origin); 404 for an unknown name; a failed probe is 400
/// `invalid-param` with the cause in `details.probe`, as on create.
pub(crate) async fn probe_now(st: &AppState, c: &Caller, name: &str) -> ApiResult<String> {
    c.require(Resource::Deployments, U)?;
    // Read, then let the connection go: the probe is network I/O of unknown length.
    let d = store::get(&mut *st.db.conn().await?, &c.org_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found("deployment", name))?;
    probe(st, &d).await?;
    Ok(edge_origin::keys::probe_key(&d.prefix))
}

/// The Create Deployment body (also, without `probe`, a deployment item of a bundle).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct DeploymentIn {
    /// Unique in the organization: 2 to 50 letters, digits or `_`.
    #[schema(pattern = "^[A-Za-z0-9_]{2,50}$")]
    pub name: String,
    /// Free text, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub label: Option<String>,
    /// A directory inside the origin that everything goes under: `/`-separated segments of
    /// `[A-Za-z0-9._-]` (not `.` or `..`), at most 200 characters; default `''`.
    pub origin_prefix: Option<String>,
    /// Where the files go.
    // JSON here: `parse_origin` reads it, with error messages that name the exact field.
    #[schema(value_type = origins::OriginIn)]
    pub origin: Value,
    /// How the CDN signs download URLs; absent or null: downloads are not signed.
    #[schema(value_type = Option<origins::DownloadAuthIn>)]
    pub download_auth: Option<Value>,
    /// The http(s) URL that serves the origin to players (a trailing `/` is dropped).
    pub public_url: Option<String>,
    /// Write and read back a test file before saving (default true); a failed probe is 400
    /// with the cause in `details.probe`.
    pub probe: Option<bool>,
}

/// Validates a complete deployment description into a row of `org_id`: a new one, or
/// `existing` replaced field by field (its secrets kept where the body omits them or sends
/// `********`). fs paths are checked against `fs_origin_root`; nothing is probed.
pub(crate) fn row_from(
    st: &AppState,
    org_id: &OrgId,
    b: &DeploymentIn,
    existing: Option<&Deployment>,
) -> ApiResult<Deployment> {
    let name = Name::parse("name", &b.name)?;
    let label = b.label.as_deref().map(|l| text("label", l, 1, 200)).transpose()?;
    let prefix = parse_prefix(b.origin_prefix.as_deref())?;
    let open = |s: &Option<String>| {
        s.as_ref().and_then(|s| st.data_key.open(s)).and_then(|b| String::from_utf8(b).ok())
    };
    let (kind, origin, secret) =
        parse_origin(&b.origin, existing.map(|d| (d.kind.as_str(), open(&d.secret_sealed))))?;
    let da = match &b.download_auth {
        None | Some(Value::Null) => None,
        Some(v) => {
            let keep = existing.map(|d| {
                (d.download_auth["type"].as_str().unwrap_or(""), open(&d.download_secret_sealed))
            });
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

/// Creates a deployment of the caller's organization. Checks in the API's order: the body
/// (400), `deployments: Create` (403), a taken name (409), `fs` directories kept apart
/// (400), then unless `probe` is false the probe (400 with `details.probe`), all but the
/// probe again in the transaction that saves it.
pub(crate) async fn create(st: &AppState, c: &Caller, b: &DeploymentIn) -> ApiResult<Deployment> {
    let d = row_from(st, &c.org_id, b, None)?;
    c.require(Resource::Deployments, C)?;
    {
        let mut conn = st.db.conn().await?;
        refuse_taken(&mut conn, &c.org_id, &d.name).await?;
        check_fs_apart(st, &mut conn, &d).await?;
    }
    // The probe reaches out over the network: no connection is held meanwhile.
    if b.probe.unwrap_or(true) {
        probe(st, &d).await?;
    }
    let mut tx = st.db.tx().await?;
    refuse_taken(&mut tx, &c.org_id, &d.name).await?;
    check_fs_apart(st, &mut tx, &d).await?;
    store::save(&mut tx, &d).await?;
    tx.commit().await?;
    Ok(d)
}

/// 409 `item-exists` when `org` has a deployment called `name`.
async fn refuse_taken(c: &mut Conn, org: &OrgId, name: &str) -> ApiResult<()> {
    if store::get(c, org, name).await?.is_some() {
        return Err(ApiError::conflict("item-exists", format!("deployment '{name}' exists")));
    }
    Ok(())
}
