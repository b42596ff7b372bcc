//! `rockit users`: list, show, create, modify and delete the organization's users — persons
//! (email, names, a random initial password) and machine users (a label and an API key, for
//! CI). The initial password, the API key and reset credentials are shown once.

use crate::api::{Api, Global};
use crate::fail::Fail;
use crate::resources::{self, Paging, Res};
use crate::table;
use clap::Subcommand;
use serde_json::{json, Value};

/// The users of `/be/v1/users`.
pub const USERS: Res = Res {
    singular: "user",
    plural: "users",
    path: "/be/v1/users",
    key: "username",
    cols: &[
        ("USERNAME", "username"),
        ("TYPE", "type"),
        ("ROLES", "roles"),
        ("EMAIL", "email"),
        ("LABEL", "label"),
        ("LAST LOGIN", "lastLogin"),
    ],
    default_limit: None,
};

/// Users: list, show, create, modify, delete.
#[derive(Subcommand)]
pub enum UsersCmd {
    /// List the organization's users.
    List {
        /// Only usernames containing this.
        #[arg(long)]
        username: Option<String>,
        /// Only persons (user) or machine users (machine).
        #[arg(long = "type", value_parser = ["user", "machine"])]
        kind: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show one user.
    Show { username: String },
    /// Create a person (email and names; a random initial password is shown once) or a
    /// machine user (--type machine and a label; its API key is shown once).
    ///
    /// Examples:
    ///
    ///   rockit users create --username alice --email alice@example.com --firstname Alice --surname Doe --role Publishers
    ///   rockit users create --type machine --username ci_bot --label "CI" --role Publishers
    #[command(verbatim_doc_comment)]
    Create(Box<UserCreate>),
    /// Change a user's profile or roles, or reset their credentials.
    Modify(Box<UserModify>),
    /// Remove a user from the organization.
    Delete { username: String },
}

/// `rockit users create`.
#[derive(clap::Args)]
pub struct UserCreate {
    /// The username: 2..50 of A-Z a-z 0-9 _, unique on the Edge.
    #[arg(long)]
    username: String,
    /// A person (user, the default) or a machine user (machine).
    #[arg(long = "type", value_parser = ["user", "machine"], default_value = "user")]
    kind: String,
    /// A person's email.
    #[arg(long)]
    email: Option<String>,
    /// A person's first name.
    #[arg(long)]
    firstname: Option<String>,
    /// A person's surname.
    #[arg(long)]
    surname: Option<String>,
    /// A title (either kind).
    #[arg(long)]
    title: Option<String>,
    /// A machine user's label (what it is for).
    #[arg(long, required_if_eq("kind", "machine"))]
    label: Option<String>,
    /// A role to give (repeatable).
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
}

/// `rockit users modify`.
#[derive(clap::Args)]
pub struct UserModify {
    /// The user to change.
    username: String,
    /// New email (persons).
    #[arg(long)]
    email: Option<String>,
    /// New first name (persons).
    #[arg(long)]
    firstname: Option<String>,
    /// New surname (persons).
    #[arg(long)]
    surname: Option<String>,
    /// New title.
    #[arg(long)]
    title: Option<String>,
    /// New label (machine users).
    #[arg(long)]
    label: Option<String>,
    /// The user's roles from now on (repeatable; replaces the roles they hold).
    #[arg(long = "role", value_name = "ROLE", conflicts_with = "no_roles")]
    roles: Vec<String>,
    /// Take every role away.
    #[arg(long)]
    no_roles: bool,
    /// Reset the credentials: a person gets a new random password, a machine user a new API
    /// key (its other keys are revoked); every session of the user ends. Shown once.
    #[arg(long)]
    reset_credentials: bool,
}

/// Runs a `rockit users` command.
pub fn run(g: &Global, c: UsersCmd) -> Result<(), Fail> {
    let mut api = Api::open(g)?;
    match c {
        UsersCmd::List { username, kind, paging } => {
            let f: Vec<(&str, String)> = [("username", username), ("type", kind)]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
            resources::list(&mut api, g, &USERS, &f, &paging)
        }
        UsersCmd::Show { username } => resources::show(&mut api, g, &USERS, &username),
        UsersCmd::Create(u) => create(&mut api, g, *u),
        UsersCmd::Modify(m) => modify(&mut api, g, *m),
        UsersCmd::Delete { username } => resources::delete(&mut api, g, &USERS, &username, &[]),
    }
}

/// Sets the given optional fields of a body.
fn set(body: &mut Value, fields: Vec<(&str, Option<String>)>) {
    for (k, v) in fields {
        if let Some(v) = v {
            body[k] = json!(v);
        }
    }
}

fn create(api: &mut Api, g: &Global, u: UserCreate) -> Result<(), Fail> {
    if u.kind == "user" && (u.email.is_none() || u.firstname.is_none() || u.surname.is_none()) {
        return Err(Fail::new("a person needs --email, --firstname and --surname (a machine user: --type machine --label L)"));
    }
    let mut body = json!({"username": u.username, "type": u.kind, "roles": u.roles});
    set(
        &mut body,
        vec![
            ("email", u.email),
            ("firstname", u.firstname),
            ("surname", u.surname),
            ("title", u.title),
            ("label", u.label),
        ],
    );
    let v = api.post(USERS.path, &body)?;
    if g.json {
        return table::print_json(&resources::without_status(v));
    }
    let user = &v["user"];
    let roles = user["roles"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    let roles = if roles.is_empty() { "no roles".to_string() } else { format!("roles {roles}") };
    println!(
        "created {} {} ({roles})",
        if user["type"] == "machine" { "machine user" } else { "user" },
        table::plain(&user["username"])
    );
    resources::print_secret("initial password", &v["initialPW"]);
    resources::print_secret("API key", &v["apiKey"]);
    Ok(())
}

fn modify(api: &mut Api, g: &Global, m: UserModify) -> Result<(), Fail> {
    let mut body = json!({"username": m.username});
    set(
        &mut body,
        vec![
            ("email", m.email),
            ("firstname", m.firstname),
            ("surname", m.surname),
            ("title", m.title),
            ("label", m.label),
        ],
    );
    if !m.roles.is_empty() || m.no_roles {
        body["roles"] = json!(m.roles);
    }
    if m.reset_credentials {
        body["resetCreds"] = json!(true);
    }
    let v = api.patch(USERS.path, &body)?;
    if g.json {
        return table::print_json(&resources::without_status(v));
    }
    println!("changed user {}", table::plain(&v["user"]["username"]));
    resources::print_secret("new password", &v["newPW"]);
    resources::print_secret("new API key", &v["apiKey"]);
    Ok(())
}
