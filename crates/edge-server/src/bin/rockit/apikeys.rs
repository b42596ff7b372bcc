//! `rockit apikeys`: list, create and delete API keys (`rk_<keyId>_<secret>`), one's own or
//! (with `beUsers` Update) another member's, such as a CI machine user's. A new key is shown
//! once; the server keeps only its hash.

use crate::api::{Api, Global};
use crate::fail::Fail;
use crate::resources::{self, Paging, Res};
use crate::table;
use clap::Subcommand;
use serde_json::json;

/// The keys of `/be/v1/apikeys`.
pub const KEYS: Res = Res {
    singular: "key",
    plural: "keys",
    path: "/be/v1/apikeys",
    key: "keyId",
    cols: &[
        ("KEY ID", "keyId"),
        ("USERNAME", "username"),
        ("LABEL", "label"),
        ("CREATED", "created"),
        ("EXPIRES", "expires"),
        ("LAST USED", "lastUsed"),
    ],
    default_limit: None,
};

/// `3600`, `90m`, `12h`, `30d`, `1y` → seconds.
fn parse_duration(v: &str) -> Result<u64, String> {
    let (num, unit) = match v.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&v[..i], &v[i..]),
        None => (v, "s"),
    };
    let n: u64 =
        num.parse().map_err(|_| format!("{v:?} is not a duration (3600, 90m, 12h, 30d, 1y)"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "y" => 365 * 86_400,
        _ => return Err(format!("{v:?}: the unit is s, m, h, d or y")),
    };
    n.checked_mul(mult)
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("{v:?}: give 1 second .. 10 years"))
}

/// API keys: list, create, delete.
#[derive(Subcommand)]
pub enum ApikeysCmd {
    /// List API keys: yours, or everyone's with beUsers Read (the secrets are never shown).
    List {
        /// Only this user's keys.
        #[arg(long, value_name = "USERNAME")]
        user: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Create an API key, for you or for another user (such as a machine user for CI).
    ///
    /// The key is printed once; the server keeps only its hash.
    ///
    /// Example: rockit apikeys create --user ci_bot --label "release pipeline" --expires-in 90d
    Create {
        /// The user the key acts as (default: you).
        #[arg(long, value_name = "USERNAME")]
        user: Option<String>,
        /// What the key is for.
        #[arg(long)]
        label: Option<String>,
        /// Lifetime: seconds, or with a unit (90m, 12h, 30d, 1y); default: until revoked.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires_in: Option<u64>,
    },
    /// Revoke an API key at once.
    Delete {
        /// The key's id (the 16 characters after `rk_`, as `apikeys list` shows).
        key_id: String,
    },
}

/// Runs a `rockit apikeys` command.
pub fn run(g: &Global, c: ApikeysCmd) -> Result<(), Fail> {
    let mut api = Api::open(g)?;
    match c {
        ApikeysCmd::List { user, paging } => {
            let f: Vec<(&str, String)> = user.into_iter().map(|u| ("username", u)).collect();
            resources::list(&mut api, g, &KEYS, &f, &paging)
        }
        ApikeysCmd::Create { user, label, expires_in } => {
            let mut body = json!({});
            if let Some(u) = user {
                body["username"] = json!(u);
            }
            if let Some(l) = label {
                body["label"] = json!(l);
            }
            if let Some(e) = expires_in {
                body["expiresIn"] = json!(e);
            }
            let v = api.post(KEYS.path, &body)?;
            if g.json {
                return table::print_json(&resources::without_status(v));
            }
            let k = &v["key"];
            let until = match k["expires"].as_str() {
                Some(t) => format!("expires {t}"),
                None => "valid until revoked".into(),
            };
            println!(
                "created API key {} for {} in {} ({until})",
                table::plain(&k["keyId"]),
                table::plain(&k["username"]),
                table::plain(&k["orgName"])
            );
            resources::print_secret("API key", &v["apiKey"]);
            Ok(())
        }
        ApikeysCmd::Delete { key_id } => resources::delete(&mut api, g, &KEYS, &key_id, &[]),
    }
}
