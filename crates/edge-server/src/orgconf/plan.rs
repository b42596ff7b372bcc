//! Planning: a bundle checked item by item with the same rules as the resources' POSTs,
//! normalized, and compared with what the organization holds.

use super::items::{app_item, deployment_item, role_item, subscription_item, user_item};
use super::seal::{open_value, BundleKey};
use super::{in_item, item_name, map_secrets, Items, RESOURCES};
use crate::caller::Caller;
use crate::domain::users::{guard_target, TargetChange};
use crate::domain::{apps, deployments, roles, subscriptions, users};
use crate::error::{ApiError, ApiResult};
use crate::ids::OrgId;
use crate::names::{text, Name};
use crate::perms::{Perms, C, U};
use crate::state::AppState;
use crate::store::{self, Conn};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};

/// What committing does to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The item is new: it is created.
    Create,
    /// The item exists and differs: it is replaced by the bundle's.
    Update,
    /// The item exists as the bundle has it: nothing happens.
    Unchanged,
}

/// One item of a plan: the normalized clear item and what happens to it.
pub struct Step {
    pub resource: &'static str,
    pub name: String,
    pub action: Action,
    pub item: Value,
}

/// One entry of a plan as the caller sees it (never the item: it holds secrets in clear).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PlanEntry {
    /// The resource of the item.
    #[schema(value_type = super::schema::BundleResource)]
    resource: &'static str,
    /// The item's name (`username` for users).
    name: String,
    /// What committing does to it.
    action: Action,
}

impl Step {
    /// The plan entry shown to the caller.
    pub fn entry(&self) -> PlanEntry {
        PlanEntry { resource: self.resource, name: self.name.clone(), action: self.action }
    }
}

pub(super) fn parse<T: DeserializeOwned>(item: &Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(item.clone()).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid(&path, e.into_inner().to_string())
    })
}

/// Opens an item's encrypted secrets.
fn open_secrets(resource: &str, item: &mut Value, key: Option<&BundleKey>) -> ApiResult<()> {
    map_secrets(resource, item, |v| open_value(v, key, "secret").map(Some))
}

/// Checks every item of `bundle` against the organization (`current` holds its clear
/// items for every resource) and says what committing would do, in applying order.
pub async fn make_plan(
    st: &AppState,
    c: &mut Conn,
    org_id: &OrgId,
    operator: bool,
    bundle: &Items,
    current: &Items,
    key: Option<&BundleKey>,
) -> ApiResult<Vec<Step>> {
    let names_in = |items: &Items, res: &str| -> HashSet<String> {
        items.get(res).map(|l| l.iter().map(|i| item_name(res, i)).collect()).unwrap_or_default()
    };
    let mut known_roles = names_in(current, "roles");
    known_roles.extend(names_in(bundle, "roles"));
    known_roles.insert(store::roles::ADMINISTRATORS.to_string());
    let mut known_deps = names_in(current, "deployments");
    known_deps.extend(names_in(bundle, "deployments"));
    let mut steps = Vec::new();
    for (res, _) in RESOURCES {
        let Some(list) = bundle.get(res) else { continue };
        for raw in list {
            let name = item_name(res, raw);
            let mut item = raw.clone();
            let norm = async {
                open_secrets(res, &mut item, key)?;
                normalize(st, c, org_id, operator, res, &item, &known_roles, &known_deps).await
            }
            .await
            .map_err(|e| in_item(res, &name, e))?;
            let before =
                current.get(res).and_then(|l| l.iter().find(|i| item_name(res, i) == name));
            if before.is_some_and(|b| b["type"] != norm["type"]) && res == "users" {
                return Err(ApiError::conflict(
                    "item-exists",
                    format!("users '{name}': exists here as another type of user"),
                )
                .detail("item", format!("users/{name}")));
            }
            let action = match before {
                Some(b) if *b == norm => Action::Unchanged,
                Some(_) => Action::Update,
                None => Action::Create,
            };
            if res == "users"
                && action == Action::Create
                && store::users::by_username(c, &name).await?.is_some()
            {
                // Never link an account of another organization (or instance tenant) by name.
                return Err(ApiError::conflict(
                    "item-exists",
                    format!("users '{name}': the username exists outside this organization"),
                )
                .detail("item", format!("users/{name}")));
            }
            steps.push(Step { resource: res, name, action, item: norm });
        }
    }
    Ok(steps)
}

/// One item validated as its resource's POST would, in normalized clear form.
#[allow(clippy::too_many_arguments)]
async fn normalize(
    st: &AppState,
    c: &mut Conn,
    org_id: &OrgId,
    operator: bool,
    res: &str,
    item: &Value,
    known_roles: &HashSet<String>,
    known_deps: &HashSet<String>,
) -> ApiResult<Value> {
    match res {
        "roles" => {
            let b: roles::RoleIn = parse(item)?;
            let name = Name::parse("name", &b.name)?;
            if name.as_str() == store::roles::ADMINISTRATORS {
                return Err(ApiError::invalid(
                    "name",
                    "the Administrators role is built in and cannot be imported",
                ));
            }
            let label = b.label.as_deref().map(|l| text("label", l, 1, 200)).transpose()?;
            let perms = Perms::parse_onto(
                Perms::default(),
                b.permissions.as_ref().unwrap_or(&json!({})),
                operator,
                "permissions",
            )?;
            Ok(role_item(name.as_str(), label.as_deref(), &perms, operator))
        }
        "deployments" => {
            let b: deployments::DeploymentIn = parse(item)?;
            let existing = store::deployments::get(c, org_id, &b.name).await?;
            let d = deployments::row_from(st, org_id, &b, existing.as_ref())?;
            deployments::check_fs_apart(st, c, &d).await?;
            deployment_item(st, &d)
        }
        "apps" => {
            let b: apps::AppIn = parse(item)?;
            let name = Name::parse("name", &b.name)?;
            let label = text("label", &b.label, 1, 200)?;
            apps::check_max_builds(b.max_builds)?;
            apps::check_deployments(&b.deployments)?;
            let deps = b.deployments.unwrap_or_default();
            if let Some(d) = deps.iter().find(|d| !known_deps.contains(*d)) {
                return Err(ApiError::invalid("deployments", format!("unknown deployment '{d}'")));
            }
            Ok(app_item(name.as_str(), &label, b.max_builds.unwrap_or(5), &deps))
        }
        "users" => {
            let v = users::validate_user(parse(item)?)?;
            if let Some(r) = v.roles.iter().find(|r| !known_roles.contains(*r)) {
                return Err(ApiError::invalid("roles", format!("unknown role '{r}'")));
            }
            Ok(user_item(&v))
        }
        "subscriptions" => {
            let mut b: subscriptions::SubscriptionIn = parse(item)?;
            if b.kind == "slack" && b.slack_token.is_none() {
                // An export without the org key leaves the token out: keep the stored one.
                let r = crate::store::subscriptions::by_name(&mut *c, org_id, &b.name).await?;
                b.slack_token = r
                    .and_then(|r| r.slack_token_sealed)
                    .and_then(|t| st.data_key.open(&t))
                    .and_then(|t| String::from_utf8(t).ok());
            }
            let v = subscriptions::validate_subscription(st, b).await?;
            Ok(subscription_item(&v))
        }
        _ => Err(ApiError::invalid(
            "trainings",
            "training settings cannot be imported yet: this server has no trainings API",
        )),
    }
}

/// The caller-side rules of import and commit: Create and Update on every resource the
/// plan touches, and no escalation — roles it writes and roles it gives to users hold
/// only bits the caller has, and users it changes pass the no-takeover rule.
pub async fn authorize(
    c: &mut Conn,
    caller: &Caller,
    steps: &[Step],
    current: &Items,
) -> ApiResult<()> {
    for (res, resource) in RESOURCES {
        if steps.iter().any(|s| s.resource == res && s.action != Action::Unchanged) {
            caller.require(resource, C | U)?;
        }
    }
    // Every role's bits as they will be after the commit.
    let mut role_perms: BTreeMap<String, Perms> = BTreeMap::new();
    role_perms.insert(store::roles::ADMINISTRATORS.to_string(), Perms::all(caller.operator));
    for item in current
        .get("roles")
        .into_iter()
        .flatten()
        .chain(steps.iter().filter(|s| s.resource == "roles").map(|s| &s.item))
    {
        let p = Perms::parse_onto(Perms::default(), &item["permissions"], true, "permissions")?;
        role_perms.insert(item_name("roles", item), p);
    }
    for s in steps.iter().filter(|s| s.action != Action::Unchanged) {
        match s.resource {
            "roles" => {
                let old = current
                    .get("roles")
                    .and_then(|l| l.iter().find(|i| item_name("roles", i) == s.name));
                let old = old
                    .map(|o| {
                        Perms::parse_onto(Perms::default(), &o["permissions"], true, "permissions")
                    })
                    .transpose()?
                    .unwrap_or_default();
                let new = role_perms.get(&s.name).copied().unwrap_or_default();
                if !new.subset_of(&caller.perms.union(&old)) {
                    return Err(in_item(
                        "roles",
                        &s.name,
                        ApiError::forbidden("a role may grant only bits you hold yourself"),
                    ));
                }
            }
            "users" => {
                let mut granted = Perms::default();
                for r in s.item["roles"].as_array().into_iter().flatten() {
                    granted = granted.union(
                        &role_perms.get(r.as_str().unwrap_or("")).copied().unwrap_or_default(),
                    );
                }
                if !granted.subset_of(&caller.perms) {
                    return Err(in_item(
                        "users",
                        &s.name,
                        ApiError::forbidden("those roles grant permissions you do not have"),
                    ));
                }
                if s.action == Action::Update {
                    if let Some(t) =
                        store::users::member_by_username(c, &caller.org_id, &s.name).await?
                    {
                        let before = current
                            .get("users")
                            .and_then(|l| l.iter().find(|i| item_name("users", i) == s.name));
                        let roles_changed = before.is_none_or(|b| b["roles"] != s.item["roles"]);
                        let mut b2 = before.cloned().unwrap_or(Value::Null);
                        let mut n2 = s.item.clone();
                        if let (Some(b), Some(n)) = (b2.as_object_mut(), n2.as_object_mut()) {
                            b.remove("roles");
                            n.remove("roles");
                        }
                        let change =
                            if b2 != n2 { TargetChange::Profile } else { TargetChange::Roles };
                        guard_target(c, caller, &t, change)
                            .await
                            .map_err(|e| in_item("users", &s.name, e))?;
                        if roles_changed && change == TargetChange::Profile {
                            guard_target(c, caller, &t, TargetChange::Roles)
                                .await
                                .map_err(|e| in_item("users", &s.name, e))?;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}
