//! `rockit roles`: list, show, create, modify and delete the organization's roles, with
//! permissions given by name: `--perm apps=CRU --perm tasks=RX`.
//!
//! A permission is a resource of the API and the letters of what holders may do on it:
//! C (Create, bit 1), R (Read, 2), U (Update, 4), D (Delete, 8), X (eXecute, 16: retry
//! tasks, process traces). `apps=` (no letters) takes every permission on the resource away.

use crate::api::{Api, Global};
use crate::fail::Fail;
use crate::resources::{self, Paging, Res};
use crate::table;
use clap::Subcommand;
use edge_server::perms::RESOURCES;
use serde_json::{json, Map, Value};

/// The roles of `/be/v1/roles`.
pub const ROLES: Res = Res {
    singular: "role",
    plural: "roles",
    path: "/be/v1/roles",
    key: "name",
    cols: &[
        ("NAME", "name"),
        ("LABEL", "label"),
        ("BUILTIN", "builtin"),
        ("USERS", "users"),
        ("PERMISSIONS", "perms:permissions"),
    ],
    default_limit: None,
};

/// The letters of the permission bits, in bit order.
const LETTERS: [(char, u64, &str); 5] = [
    ('C', 1, "Create"),
    ('R', 2, "Read"),
    ('U', 4, "Update"),
    ('D', 8, "Delete"),
    ('X', 16, "eXecute"),
];

/// `7` → `CRU`.
pub fn letters(bits: u64) -> String {
    LETTERS.iter().filter(|(_, b, _)| bits & b != 0).map(|(c, _, _)| *c).collect()
}

/// Parses `RESOURCE=LETTERS` (`apps=CRU`, `tasks=rx`, `apps=` for none) into the resource's
/// API name and its bits. Unknown resources and letters, and letters the resource does not
/// take (`trainings` has only R and U), are refused naming what is allowed.
pub fn parse_perm(s: &str) -> Result<(String, u64), String> {
    let names = || RESOURCES.iter().map(|(_, n, _)| *n).collect::<Vec<_>>().join(", ");
    let Some((res, lets)) = s.split_once('=') else {
        return Err(format!(
            "expected RESOURCE=LETTERS such as apps=CRU (letters C R U D X; resources: {})",
            names()
        ));
    };
    let Some((_, name, max)) =
        RESOURCES.iter().find(|(_, n, _)| n.eq_ignore_ascii_case(res.trim()))
    else {
        return Err(format!("unknown resource {:?} (one of {})", res.trim(), names()));
    };
    let mut bits = 0u64;
    for c in lets.trim().chars().filter(|c| *c != '-') {
        let Some((_, b, _)) = LETTERS.iter().find(|(l, _, _)| l.eq_ignore_ascii_case(&c)) else {
            return Err(format!("unknown permission letter {c:?} in {s:?} (C Create, R Read, U Update, D Delete, X eXecute)"));
        };
        if u64::from(*max) & b == 0 {
            let allowed: Vec<String> = LETTERS
                .iter()
                .filter(|(_, b, _)| u64::from(*max) & b != 0)
                .map(|(l, _, w)| format!("{l} {w}"))
                .collect();
            return Err(format!("{name} has no {c} permission (it takes {})", allowed.join(", ")));
        }
        bits |= b;
    }
    Ok((name.to_string(), bits))
}

/// The `permissions` object of a request body.
fn permissions(perms: &[(String, u64)]) -> Value {
    let mut m = Map::new();
    for (k, b) in perms {
        m.insert(k.clone(), json!(b));
    }
    Value::Object(m)
}

/// Roles: list, show, create, modify, delete.
#[derive(Subcommand)]
pub enum RolesCmd {
    /// List the organization's roles.
    List {
        #[command(flatten)]
        paging: Paging,
    },
    /// Show one role with its permissions.
    Show { name: String },
    /// Create a role.
    ///
    /// Permissions are given per resource as letters: C Create, R Read, U Update, D Delete,
    /// X eXecute (bits 1 2 4 8 16). A role may grant only what you hold yourself.
    ///
    /// Example: rockit roles create --name Publishers --perm apps=RU --perm tasks=RX
    Create {
        /// The role's name: 2..50 of A-Z a-z 0-9 _.
        #[arg(long)]
        name: String,
        /// Display label.
        #[arg(long)]
        label: Option<String>,
        /// A permission, RESOURCE=LETTERS (repeatable): apps=CRU, tasks=RX, deployments=R.
        #[arg(long = "perm", value_name = "RESOURCE=LETTERS", value_parser = parse_perm)]
        perms: Vec<(String, u64)>,
    },
    /// Change a role's label or permissions.
    ///
    /// Each --perm sets that resource's permissions (RESOURCE= takes them all away);
    /// resources not named keep theirs.
    Modify {
        /// The role to change.
        name: String,
        /// New display label.
        #[arg(long, conflicts_with = "no_label")]
        label: Option<String>,
        /// Remove the label.
        #[arg(long)]
        no_label: bool,
        /// A permission to set, RESOURCE=LETTERS (repeatable).
        #[arg(long = "perm", value_name = "RESOURCE=LETTERS", value_parser = parse_perm)]
        perms: Vec<(String, u64)>,
    },
    /// Delete a role.
    Delete {
        name: String,
        /// Delete it even when users hold it (they lose it).
        #[arg(long)]
        force: bool,
    },
}

/// Runs a `rockit roles` command.
pub fn run(g: &Global, c: RolesCmd) -> Result<(), Fail> {
    let mut api = Api::open(g)?;
    match c {
        RolesCmd::List { paging } => resources::list(&mut api, g, &ROLES, &[], &paging),
        RolesCmd::Show { name } => show(&mut api, g, &name),
        RolesCmd::Create { name, label, perms } => {
            let mut body = json!({"name": name, "permissions": permissions(&perms)});
            if let Some(l) = label {
                body["label"] = json!(l);
            }
            resources::create(&mut api, g, &ROLES, &body)
        }
        RolesCmd::Modify { name, label, no_label, perms } => {
            let mut body = json!({"name": name});
            if let Some(l) = label {
                body["label"] = json!(l);
            } else if no_label {
                body["label"] = Value::Null;
            }
            if !perms.is_empty() {
                body["permissions"] = permissions(&perms);
            }
            resources::change(&mut api, g, &ROLES, &body).map(|_| ())
        }
        RolesCmd::Delete { name, force } => {
            let q: Vec<(&str, String)> =
                if force { vec![("force", "true".into())] } else { vec![] };
            resources::delete(&mut api, g, &ROLES, &name, &q)
        }
    }
}

/// A role as `field: value` lines, its permissions one resource a line in letters.
fn show(api: &mut Api, g: &Global, name: &str) -> Result<(), Fail> {
    let v = api.get(&resources::item_path(&ROLES, name)?, &[])?;
    let role = &v["role"];
    if g.json {
        return table::print_json(role);
    }
    let mut head = role.clone();
    if let Some(o) = head.as_object_mut() {
        o.remove("permissions");
    }
    table::print_fields(&head);
    println!("permissions:");
    if let Some(p) = role["permissions"].as_object() {
        let w = p.keys().map(String::len).max().unwrap_or(0);
        for (k, b) in p {
            let bits = b.as_u64().unwrap_or(0);
            let words: Vec<&str> =
                LETTERS.iter().filter(|(_, x, _)| bits & x != 0).map(|(_, _, w)| *w).collect();
            let shown = if words.is_empty() {
                "-".to_string()
            } else {
                format!("{:<5} {}", letters(bits), words.join(", "))
            };
            println!("  {k:<w$}  {shown}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_by_letter() {
        assert_eq!(parse_perm("apps=CRU"), Ok(("apps".into(), 7)));
        assert_eq!(parse_perm("Tasks=rx"), Ok(("tasks".into(), 18)));
        assert_eq!(parse_perm("beusers="), Ok(("beUsers".into(), 0)));
        assert!(parse_perm("nope=R").unwrap_err().contains("unknown resource"));
        assert!(parse_perm("apps=Q").unwrap_err().contains("unknown permission letter 'Q'"));
        assert!(parse_perm("trainings=C")
            .unwrap_err()
            .contains("trainings has no C permission (it takes R Read, U Update)"));
        assert!(parse_perm("apps").is_err());
        assert_eq!(letters(31), "CRUDX");
    }
}
