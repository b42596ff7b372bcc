//! Clear items: one builder per resource, shared by the export (reading what is) and the
//! plan (normalizing what a bundle asks for), so both sides compare field for field.

use super::Items;
use crate::error::{ApiError, ApiResult};
use crate::ids::OrgId;
use crate::perms::Perms;
use crate::state::AppState;
use crate::store::deployments::Deployment;
use crate::store::{deployments, roles, users, Conn};
use serde_json::{json, Map, Value};

/// An object of the given fields, nulls left out (absent and null mean the same in a POST).
fn obj(fields: &[(&str, Value)]) -> Value {
    let mut m = Map::new();
    for (k, v) in fields {
        if !v.is_null() {
            m.insert((*k).to_string(), v.clone());
        }
    }
    Value::Object(m)
}

/// A role item.
pub fn role_item(name: &str, label: Option<&str>, perms: &Perms, operator: bool) -> Value {
    obj(&[("name", json!(name)), ("label", json!(label)), ("permissions", perms.to_json(operator))])
}

/// A user item (persons and machine users; roles sorted).
pub(crate) fn user_item(u: &crate::domain::users::ValidUser) -> Value {
    let mut roles = u.roles.clone();
    roles.sort();
    roles.dedup();
    obj(&[
        ("username", json!(u.username.as_str())),
        ("type", json!(if u.machine { "machine" } else { "user" })),
        ("email", json!(u.email)),
        ("firstname", json!(u.firstname)),
        ("surname", json!(u.surname)),
        ("title", json!(u.title)),
        ("label", json!(u.label)),
        ("roles", json!(roles)),
    ])
}

/// A deployment item with its secrets in clear.
pub fn deployment_item(st: &AppState, d: &Deployment) -> ApiResult<Value> {
    let open = |sealed: &Option<String>| -> ApiResult<Option<String>> {
        sealed
            .as_ref()
            .map(|s| {
                st.data_key
                    .open(s)
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| ApiError::internal("deployment secret unreadable"))
            })
            .transpose()
    };
    let mut origin = d.origin.clone();
    origin["type"] = json!(d.kind);
    if let (Some(f), Some(secret)) = (Deployment::secret_field(&d.kind), open(&d.secret_sealed)?) {
        origin[f] = json!(secret);
    }
    let mut da = d.download_auth.clone();
    if da.is_object() {
        let f = if da["type"] == "akamai" { "key" } else { "secret" };
        da[f] = json!(open(&d.download_secret_sealed)?);
    }
    Ok(obj(&[
        ("name", json!(d.name)),
        ("label", json!(d.label)),
        ("originPrefix", json!(d.prefix)),
        ("origin", origin),
        ("downloadAuth", da),
        ("publicUrl", json!(d.public_url)),
    ]))
}

/// An app item.
pub fn app_item(name: &str, label: &str, max_builds: i64, deployments: &[String]) -> Value {
    obj(&[
        ("name", json!(name)),
        ("label", json!(label)),
        ("maxBuilds", json!(max_builds)),
        ("deployments", json!(deployments)),
    ])
}

/// A subscription item with its Slack token in clear.
pub(crate) fn subscription_item(v: &crate::domain::subscriptions::ValidSub) -> Value {
    obj(&[
        ("name", json!(v.name.as_str())),
        ("type", json!(v.kind)),
        ("url", json!(v.url)),
        ("slackChannel", json!(v.channel)),
        ("slackToken", json!(v.token)),
        ("filter", v.filter.clone()),
    ])
}

/// The clear items of `org` for the named resources, each list sorted by name.
pub async fn read(
    st: &AppState,
    c: &mut Conn,
    org_id: &OrgId,
    operator: bool,
    which: &[&str],
) -> ApiResult<Items> {
    let mut out = Items::new();
    for res in which {
        let mut list = match *res {
            "roles" => roles::list(c, org_id)
                .await?
                .iter()
                .filter(|r| !r.builtin)
                .map(|r| role_item(&r.name, r.label.as_deref(), &r.perms, operator))
                .collect(),
            "users" => users::members(c, org_id)
                .await?
                .into_iter()
                .map(|(u, roles)| {
                    let machine = u.is_machine();
                    user_item(&crate::domain::users::ValidUser {
                        username: crate::names::Name::trusted(&u.username),
                        machine,
                        email: u.email,
                        firstname: u.firstname,
                        surname: u.surname,
                        title: u.title,
                        label: u.label,
                        roles,
                    })
                })
                .collect(),
            "deployments" => {
                let mut v = Vec::new();
                for d in deployments::list(c, org_id).await? {
                    v.push(deployment_item(st, &d)?);
                }
                v
            }
            "apps" => crate::store::apps::list(&mut *c, org_id)
                .await?
                .iter()
                .map(|r| {
                    let deps: Vec<String> =
                        serde_json::from_str(&r.deployments).unwrap_or_default();
                    app_item(&r.name, &r.label, r.max_builds, &deps)
                })
                .collect(),
            "subscriptions" => {
                let rows = crate::store::subscriptions::list(&mut *c, org_id).await?;
                rows.iter()
                    .map(|r| {
                        let token = r
                            .slack_token_sealed
                            .as_deref()
                            .and_then(|t| st.data_key.open(t))
                            .and_then(|b| String::from_utf8(b).ok());
                        subscription_item(&crate::domain::subscriptions::ValidSub {
                            name: crate::names::Name::trusted(&r.name),
                            kind: r.kind.clone(),
                            url: r.url.clone(),
                            channel: r.slack_channel.clone(),
                            token,
                            filter: serde_json::from_str(&r.filter).unwrap_or(json!({})),
                        })
                    })
                    .collect()
            }
            // Training settings join the bundle with the trainings API; until then the list
            // is always empty (and a bundle naming any is refused).
            _ => Vec::new(),
        };
        let key = super::key_field(res);
        list.sort_by(|a: &Value, b: &Value| a[key].as_str().cmp(&b[key].as_str()));
        out.insert((*res).to_string(), list);
    }
    Ok(out)
}
