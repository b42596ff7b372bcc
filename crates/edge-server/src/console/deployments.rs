//! The deployments page: every origin with its state, creating one (type-specific fields,
//! secrets write-only, probed on save, the probe's answer shown), deleting one (the in-use
//! answer explained).

use super::form::Checked;
use super::page::{render, when, Chrome, PageResult};
use super::viewer::Viewer;
use crate::domain::deployments::{self as rules, DeploymentIn};
use crate::perms::{Resource, R};
use crate::state::AppState;
use crate::store::deployments as store;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

struct Line {
    name: String,
    label: String,
    kind: String,
    /// Where it writes, in words (a path, `bucket at endpoint`, a host).
    target: String,
    status: String,
    message: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "console/deployments.html")]
struct Page {
    chrome: Chrome,
    items: Vec<Line>,
}

/// `GET /console/deployments`.
pub async fn page(State(st): State<Arc<AppState>>, v: Viewer) -> PageResult {
    v.caller.require(Resource::Deployments, R)?;
    let rows = store::list(&mut *st.db.conn().await?, &v.caller.org_id).await?;
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let items = rows
        .iter()
        .map(|d| Line {
            name: d.name.clone(),
            label: d.label.clone().unwrap_or_default(),
            kind: d.kind.clone(),
            target: match d.kind.as_str() {
                "fs" => s(&d.origin, "path"),
                "s3" => format!("{} at {}", s(&d.origin, "bucket"), s(&d.origin, "endpoint")),
                _ => s(&d.origin, "host"),
            } + &if d.prefix.is_empty() {
                String::new()
            } else {
                format!(" / {}", d.prefix)
            },
            status: d.status.clone(),
            message: d.message.clone().unwrap_or_default(),
            updated: when(d.updated),
        })
        .collect();
    let chrome = Chrome::new(&v, "Deployments", "/console/deployments");
    Ok(render(StatusCode::OK, &Page { chrome, items }))
}

/// The New Deployment form: the fields of every type; those of other types are ignored.
#[derive(Deserialize)]
pub struct NewDeployment {
    pub name: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub bucket: String,
    #[serde(default)]
    pub access_key_id: String,
    #[serde(default)]
    pub secret_access_key: String,
    #[serde(default)]
    pub path_style: Option<String>,
    #[serde(default)]
    pub public_url: String,
}

/// The origin object of the API's Create Deployment from the form's fields of its type.
pub fn origin_of(f: &NewDeployment) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!(f.kind));
    let mut put = |k: &str, v: &str| {
        if !v.trim().is_empty() {
            o.insert(k.into(), json!(v.trim()));
        }
    };
    match f.kind.as_str() {
        "fs" => put("path", &f.path),
        "s3" => {
            put("endpoint", &f.endpoint);
            put("region", &f.region);
            put("bucket", &f.bucket);
            put("accessKeyId", &f.access_key_id);
            put("secretAccessKey", &f.secret_access_key);
        }
        _ => {}
    }
    if f.kind == "s3" && f.path_style.is_some() {
        o.insert("pathStyle".into(), json!(true));
    }
    Value::Object(o)
}

/// `POST /console/deployments`: the API's Create Deployment (probed before it is saved).
pub async fn create(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Checked(f): Checked<NewDeployment>,
) -> PageResult {
    let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let b = DeploymentIn {
        name: f.name.trim().to_string(),
        label: opt(&f.label),
        origin_prefix: opt(&f.prefix),
        origin: origin_of(&f),
        download_auth: None,
        public_url: opt(&f.public_url),
        probe: None,
    };
    rules::create(&st, &v.caller, &b).await?;
    Ok(Redirect::to("/console/deployments").into_response())
}

/// `POST /console/deployments/{name}/delete`: the API's Delete Deployment; 409 while apps
/// publish to it, with their names.
pub async fn delete(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(name): Path<String>,
    Checked(_): Checked<super::form::NoFields>,
) -> PageResult {
    rules::delete::delete(&st, &v.caller, &name).await?;
    Ok(Redirect::to("/console/deployments").into_response())
}
