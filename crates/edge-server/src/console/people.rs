//! People and access: the organization's members (persons and machine users) with their
//! roles; creating one, whose first credential (a machine user's API key, a person's
//! initial password) is shown this once.

use super::access::{self, Column, KeyLine, RoleLine};
use super::form::Checked;
use super::page::{age, render, Chrome, PageQuery, PageResult, Pager};
use super::viewer::Viewer;
use crate::domain::users::{self as rules, UserIn};
use crate::perms::{Resource, C, R};
use crate::state::AppState;
use crate::store::{roles, users};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;

struct Member {
    username: String,
    kind: &'static str,
    /// A person's name, a machine user's label.
    about: String,
    roles: String,
    last_login: String,
}

#[derive(Template)]
#[template(path = "console/people.html")]
struct Page {
    chrome: Chrome,
    members: Vec<Member>,
    pager: Pager,
    roles: Vec<String>,
    columns: Vec<Column>,
    grid: Vec<RoleLine>,
    keys: Vec<KeyLine>,
    roles_read: bool,
    roles_create: bool,
    users_reset: bool,
}

/// `GET /console/people`.
pub async fn page(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Query(q): Query<PageQuery>,
) -> PageResult {
    v.caller.require(Resource::BeUsers, R)?;
    let mut c = st.db.conn().await?;
    let list = users::members(&mut c, &v.caller.org_id).await?;
    let roles_read = v.can(Resource::Roles, R);
    let all_roles = if roles_read || v.may().users_create {
        roles::list(&mut c, &v.caller.org_id).await?
    } else {
        Vec::new()
    };
    drop(c);
    let role_names = all_roles.iter().map(|r| r.name.clone()).collect();
    let (columns, grid) =
        if roles_read { access::grid(&v, &all_roles) } else { Default::default() };
    let (pager, shown) = Pager::of(q.page, list.len());
    let members = list[shown]
        .iter()
        .cloned()
        .map(|(u, r)| Member {
            kind: if u.is_machine() { "machine" } else { "person" },
            about: match (&u.label, &u.firstname, &u.surname) {
                (Some(l), _, _) => l.clone(),
                (None, f, s) => {
                    format!("{} {}", f.as_deref().unwrap_or(""), s.as_deref().unwrap_or(""))
                        .trim()
                        .to_string()
                }
            },
            username: u.username,
            roles: r.join(", "),
            last_login: u.last_login.map(age).unwrap_or_else(|| "never".into()),
        })
        .collect();
    let chrome = Chrome::new(&v, "People and access", "/console/people");
    let page = Page {
        chrome,
        members,
        pager,
        roles: role_names,
        columns,
        grid,
        keys: access::keys(&st, &v).await?,
        roles_read,
        roles_create: v.can(Resource::Roles, C),
        users_reset: v.can(Resource::BeUsers, 15),
    };
    Ok(render(StatusCode::OK, &page))
}

/// The New User form (a machine user, or a person).
#[derive(Deserialize)]
pub struct NewUser {
    #[serde(rename = "type")]
    kind: String,
    username: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    firstname: String,
    #[serde(default)]
    surname: String,
    #[serde(default)]
    role: String,
}

/// The credential of a user just created, shown once.
#[derive(Template)]
#[template(path = "console/created_user.html")]
struct Created {
    chrome: Chrome,
    username: String,
    machine: bool,
    secret: String,
}

/// `POST /console/people`: the API's Create User; the answer shows the new user's first
/// credential once (it is stored only as a hash).
pub async fn create(
    State(st): State<Arc<AppState>>,
    v: Viewer,
    Checked(f): Checked<NewUser>,
) -> PageResult {
    let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let machine = f.kind == "machine";
    let b = UserIn {
        username: f.username.trim().to_string(),
        kind: Some(f.kind.clone()),
        email: if machine { None } else { opt(&f.email) },
        firstname: if machine { None } else { opt(&f.firstname) },
        surname: if machine { None } else { opt(&f.surname) },
        title: None,
        label: if machine { opt(&f.label) } else { None },
        roles: opt(&f.role).into_iter().collect(),
    };
    let made = rules::create(&st, &v.caller, b).await?;
    let page = Created {
        chrome: Chrome::new(&v, "User created", "/console/people"),
        username: made.user.username,
        machine,
        secret: made.api_key.or(made.initial_pw).unwrap_or_default(),
    };
    Ok(render(StatusCode::OK, &page))
}
