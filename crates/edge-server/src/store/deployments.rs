//! Deployments (CDN origins) of an organization. Secrets are stored sealed.

use super::Conn;
use crate::ids::{DeploymentId, OrgId};
use crate::util::now_ms;
use serde_json::Value;

/// A deployment row.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub id: DeploymentId,
    pub org_id: OrgId,
    pub name: String,
    pub label: Option<String>,
    pub prefix: String,
    pub kind: String,
    /// Non-secret origin fields.
    pub origin: Value,
    pub secret_sealed: Option<String>,
    /// Non-secret download-auth fields (`type`, `window`) or null.
    pub download_auth: Value,
    pub download_secret_sealed: Option<String>,
    pub public_url: Option<String>,
    pub status: String,
    pub message: Option<String>,
    pub created: i64,
    pub updated: i64,
}

/// A deployment as stored: the origin and download-auth fields are JSON text.
#[derive(sqlx::FromRow)]
struct DeploymentRow {
    id: DeploymentId,
    org_id: OrgId,
    name: String,
    label: Option<String>,
    origin_prefix: String,
    origin_type: String,
    origin: String,
    secret_sealed: Option<String>,
    download_auth: Option<String>,
    download_secret_sealed: Option<String>,
    public_url: Option<String>,
    status: String,
    message: Option<String>,
    created: i64,
    updated: i64,
}

impl From<DeploymentRow> for Deployment {
    fn from(r: DeploymentRow) -> Deployment {
        // JSON that does not parse reads as null, as it always has.
        let j = |v: Option<String>| {
            v.and_then(|v| serde_json::from_str(&v).ok()).unwrap_or(Value::Null)
        };
        Deployment {
            id: r.id,
            org_id: r.org_id,
            name: r.name,
            label: r.label,
            prefix: r.origin_prefix,
            kind: r.origin_type,
            origin: j(Some(r.origin)),
            secret_sealed: r.secret_sealed,
            download_auth: j(r.download_auth),
            download_secret_sealed: r.download_secret_sealed,
            public_url: r.public_url,
            status: r.status,
            message: r.message,
            created: r.created,
            updated: r.updated,
        }
    }
}

impl Deployment {
    /// The secret field's name for this origin type.
    pub fn secret_field(kind: &str) -> Option<&'static str> {
        match kind {
            "s3" => Some("secretAccessKey"),
            "netstorage" => Some("key"),
            _ => None,
        }
    }
}

const COLS: &str =
    "id, org_id, name, label, origin_prefix, origin_type, origin, secret_sealed, download_auth, \
    download_secret_sealed, public_url, status, message, created, updated";

/// Every deployment of `org`.
pub async fn list(c: &mut Conn, org: &OrgId) -> Result<Vec<Deployment>, sqlx::Error> {
    let rows: Vec<DeploymentRow> =
        sqlx::query_as(&format!("SELECT {COLS} FROM deployments WHERE org_id = $1 ORDER BY name"))
            .bind(org)
            .fetch_all(c)
            .await?;
    Ok(rows.into_iter().map(Deployment::from).collect())
}

/// The `fs` deployments of every organization but `org` (to keep their directories apart).
pub async fn fs_of_other_orgs(c: &mut Conn, org: &OrgId) -> Result<Vec<Deployment>, sqlx::Error> {
    let rows: Vec<DeploymentRow> = sqlx::query_as(&format!(
        "SELECT {COLS} FROM deployments WHERE org_id <> $1 AND origin_type = 'fs'"
    ))
    .bind(org)
    .fetch_all(c)
    .await?;
    Ok(rows.into_iter().map(Deployment::from).collect())
}

/// One deployment of `org` by name.
pub async fn get(c: &mut Conn, org: &OrgId, name: &str) -> Result<Option<Deployment>, sqlx::Error> {
    let r: Option<DeploymentRow> =
        sqlx::query_as(&format!("SELECT {COLS} FROM deployments WHERE org_id = $1 AND name = $2"))
            .bind(org)
            .bind(name)
            .fetch_optional(c)
            .await?;
    Ok(r.map(Deployment::from))
}

/// Inserts or replaces (by id) a deployment.
pub async fn save(c: &mut Conn, d: &Deployment) -> Result<(), sqlx::Error> {
    let da = if d.download_auth.is_null() { None } else { Some(d.download_auth.to_string()) };
    sqlx::query(
        "INSERT INTO deployments (id, org_id, name, label, origin_prefix, origin_type, origin, secret_sealed, download_auth, \
         download_secret_sealed, public_url, status, message, created, updated) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) \
         ON CONFLICT (id) DO UPDATE SET label = excluded.label, origin_prefix = excluded.origin_prefix, origin_type = excluded.origin_type, \
         origin = excluded.origin, secret_sealed = excluded.secret_sealed, download_auth = excluded.download_auth, \
         download_secret_sealed = excluded.download_secret_sealed, public_url = excluded.public_url, updated = excluded.updated",
    )
    .bind(&d.id)
    .bind(&d.org_id)
    .bind(&d.name)
    .bind(&d.label)
    .bind(&d.prefix)
    .bind(&d.kind)
    .bind(d.origin.to_string())
    .bind(&d.secret_sealed)
    .bind(da)
    .bind(&d.download_secret_sealed)
    .bind(&d.public_url)
    .bind(&d.status)
    .bind(&d.message)
    .bind(d.created)
    .bind(d.updated)
    .execute(c)
    .await?;
    Ok(())
}

/// Records the outcome of the last publish to a deployment.
pub async fn set_status(
    c: &mut Conn,
    id: &DeploymentId,
    ok: bool,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE deployments SET status = $1, message = $2 WHERE id = $3")
        .bind(if ok { "ok" } else { "error" })
        .bind(message)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

/// Names of the apps of `org` registered to deployment `name` explicitly.
pub async fn apps_using(c: &mut Conn, org: &OrgId, name: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT name, deployments FROM apps WHERE org_id = $1 ORDER BY name")
            .bind(org)
            .fetch_all(c)
            .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, deps)| {
            serde_json::from_str::<Vec<String>>(deps).unwrap_or_default().iter().any(|d| d == name)
        })
        .map(|(app, _)| app)
        .collect())
}

/// Deletes a deployment.
pub async fn delete(c: &mut Conn, org: &OrgId, id: &DeploymentId) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM deployments WHERE org_id = $1 AND id = $2")
        .bind(org)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

/// A new deployment row with defaults.
pub fn new_row(org: &OrgId, name: &str) -> Deployment {
    let now = now_ms();
    Deployment {
        id: DeploymentId::new(crate::util::new_id("dep")),
        org_id: org.clone(),
        name: name.into(),
        label: None,
        prefix: String::new(),
        kind: String::new(),
        origin: Value::Null,
        secret_sealed: None,
        download_auth: Value::Null,
        download_secret_sealed: None,
        public_url: None,
        status: "ok".into(),
        message: None,
        created: now,
        updated: now,
    }
}
