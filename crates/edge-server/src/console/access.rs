//! Roles and keys on the People page: roles with their permission bits as a grid and a
//! new role made by ticking bits; API keys (the viewer's own, or all for those with
//! `beUsers: Read`), a new key shown once, revoking one; resetting a member's credentials.

use super::form::{Checked, NoFields};
use super::page::{age, render, when, Chrome, PageResult};
use super::viewer::Viewer;
use crate::domain;
use crate::perms::{Resource, RESOURCES};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The letters of the permission bits, lowest first.
const BITS: [(u8, &str); 5] = [(1, "C"), (2, "R"), (4, "U"), (8, "D"), (16, "X")];

/// The resources a role of the viewer's organization can hold (no `orgs` outside the
/// operator organization), with their maximum bits.
pub fn resources(v: &Viewer) -> Vec<(Resource, &'static str, u8)> {
    RESOURCES
        .iter()
        .copied()
        .filter(|(r, _, _)| *r != Resource::Orgs || v.caller.operator)
        .collect()
}

/// A role as a row of the grid.
pub struct RoleLine {
    pub name: String,
    pub label: String,
    /// Per resource, the bits held in letters (`CRUD`, `R`, or empty).
    pub cells: Vec<String>,
    pub users: i64,
    pub builtin: bool,
}

/// A column of the grid, and the checkboxes of the new-role form for it.
pub struct Column {
    pub name: &'static str,
    /// `(field name, letter)` of every bit the resource has.
    pub bits: Vec<(String, &'static str)>,
}

/// The grid of the viewer's organization's roles.
pub fn grid(v: &Viewer, roles: &[crate::store::roles::Role]) -> (Vec<Column>, Vec<RoleLine>) {
    let res = resources(v);
    let columns = res
        .iter()
        .map(|(_, n, max)| Column {
            name: n,
            bits: BITS
                .iter()
                .filter(|(b, _)| max & b != 0)
                .map(|(b, l)| (format!("p.{n}.{b}"), *l))
                .collect(),
        })
        .collect();
    let lines = roles
        .iter()
        .map(|r| RoleLine {
            name: r.name.clone(),
            label: r.label.clone().unwrap_or_default(),
            cells: res
                .iter()
                .map(|(res, _, _)| {
                    let got = r.perms.get(*res);
                    BITS.iter().filter(|(b, _)| got & b != 0).map(|(_, l)| *l).collect()
                })
                .collect(),
            users: r.users,
            builtin: r.builtin,
        })
        .collect();
    (columns, lines)
}

/// `POST /console/people/roles`: the API's Create Role, its bits from the ticked boxes
/// (`p.<resource>.<bit>`).
pub async fn create_role(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Checked(f): Checked<Vec<(String, String)>>,
) -> PageResult {
    let field = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim().to_string());
    let mut perms = Map::new();
    for (k, _) in &f {
        let Some(rest) = k.strip_prefix("p.") else { continue };
        let Some((res, bit)) = rest.split_once('.') else { continue };
        // A bit that is not a number is left out; the API's rules judge the rest.
        let bit: u64 = bit.parse().unwrap_or(0);
        let cur = perms.get(res).and_then(Value::as_u64).unwrap_or(0);
        perms.insert(res.to_string(), json!(cur | bit));
    }
    let b = domain::roles::RoleIn {
        name: field("name").unwrap_or_default(),
        label: field("label").filter(|l| !l.is_empty()),
        permissions: Some(Value::Object(perms)),
    };
    domain::roles::create(&st.db, &v.caller, &b).await?;
    Ok(Redirect::to("/console/people").into_response())
}

/// A key as a row.
pub struct KeyLine {
    pub id: String,
    pub username: String,
    pub label: String,
    pub created: String,
    pub expires: String,
    pub last_used: String,
    /// The viewer's own key, or the viewer holds `beUsers: Update`.
    pub revocable: bool,
}

/// The keys the viewer may see.
pub async fn keys(st: &AppState, v: &Viewer) -> Result<Vec<KeyLine>, crate::error::ApiError> {
    Ok(domain::apikeys::list(&st.db, &v.caller, None)
        .await?
        .into_iter()
        .map(|k| KeyLine {
            revocable: k.username == v.caller.username || v.can(Resource::BeUsers, crate::perms::U),
            id: k.key_id,
            username: k.username,
            label: k.label.unwrap_or_default(),
            created: when(k.created),
            expires: k.expires.map(when).unwrap_or_else(|| "never".into()),
            last_used: k.last_used.map(age).unwrap_or_else(|| "never".into()),
        })
        .collect())
}

/// A credential made this once.
#[derive(Template)]
#[template(path = "console/credential.html")]
struct Credential {
    chrome: Chrome,
    heading: String,
    what: &'static str,
    secret: String,
}

/// The New Key form.
#[derive(serde::Deserialize)]
pub struct NewKey {
    /// Empty: the viewer's own.
    #[serde(default)]
    username: String,
    #[serde(default)]
    label: String,
}

/// `POST /console/people/keys`: the API's Create Key; the key is shown once.
pub async fn create_key(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Checked(f): Checked<NewKey>,
) -> PageResult {
    let user = Some(f.username.trim()).filter(|u| !u.is_empty());
    let label = Some(f.label.trim()).filter(|l| !l.is_empty());
    let (key, rec) = domain::apikeys::create(&st.db, &v.caller, user, label, None).await?;
    let page = Credential {
        chrome: Chrome::new(&v, "API key created", "/console/people"),
        heading: format!("A key for {}", rec.username),
        what: "The API key",
        secret: key,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /console/people/keys/{id}/revoke`: the API's Revoke Key.
pub async fn revoke_key(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(id): Path<String>,
    Checked(_): Checked<NoFields>,
) -> PageResult {
    domain::apikeys::revoke(&st.db, &v.caller, &id).await?;
    Ok(Redirect::to("/console/people").into_response())
}

/// `POST /console/people/{username}/reset`: replaces the member's credentials (a person's
/// password, a machine user's API keys) and ends their sessions; the new one is shown once.
pub async fn reset(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Path(username): Path<String>,
    Checked(_): Checked<NoFields>,
) -> PageResult {
    let ch = domain::users::change::UserChange {
        username: Some(username.clone()),
        reset_creds: true,
        ..Default::default()
    };
    let done = domain::users::change::update(&st, &v.caller, ch).await?;
    let (what, secret) = match (done.api_key, done.new_pw) {
        (Some(k), _) => ("The new API key", k),
        (None, Some(p)) => ("The new password", p),
        (None, None) => ("Nothing", String::new()),
    };
    let page = Credential {
        chrome: Chrome::new(&v, "Credentials reset", "/console/people"),
        heading: format!("{username}'s credentials were reset"),
        what,
        secret,
    };
    Ok(render(StatusCode::OK, &page))
}
