//! Organization configuration bundles (config-export.md): what an export holds, how its
//! secrets travel, and how a bundle is planned and applied elsewhere.
//!
//! Everything works on *clear items*: per resource, objects holding exactly the fields the
//! resource's POST accepts, secrets in plain text. They live only in memory: an export
//! encrypts or omits the secrets, the hash masks them, and a staged import keeps the
//! bundle as it arrived.

pub mod apply;
pub mod items;
pub mod plan;
pub mod schema;
pub mod seal;
pub mod service;

use crate::error::{ApiError, ApiResult};
use crate::perms::Resource;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The bundle's `format`.
pub const FORMAT: &str = "rockit-org-config";
/// The bundle's `version`.
pub const VERSION: u64 = 1;

/// Exportable resources in the order a plan applies them (roles before the users holding
/// them, deployments before the apps using them).
pub const RESOURCES: [(&str, Resource); 6] = [
    ("roles", Resource::Roles),
    ("deployments", Resource::Deployments),
    ("apps", Resource::Apps),
    ("users", Resource::BeUsers),
    ("subscriptions", Resource::Subscriptions),
    ("trainings", Resource::Trainings),
];

/// Clear items by resource name.
pub type Items = BTreeMap<String, Vec<Value>>;

/// The permission resource behind a bundle resource name.
pub fn resource_of(name: &str) -> Option<Resource> {
    RESOURCES.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

/// The field naming an item (`username` for users).
pub fn key_field(resource: &str) -> &'static str {
    if resource == "users" {
        "username"
    } else {
        "name"
    }
}

/// The name of an item.
pub fn item_name(resource: &str, item: &Value) -> String {
    item[key_field(resource)].as_str().unwrap_or("").to_string()
}

/// Where secrets sit in an item of `resource`, as paths of object keys.
const SECRET_SLOTS: &[(&str, &[&str])] = &[
    ("deployments", &["origin", "secretAccessKey"]),
    ("deployments", &["origin", "key"]),
    ("deployments", &["downloadAuth", "key"]),
    ("deployments", &["downloadAuth", "secret"]),
    ("subscriptions", &["slackToken"]),
];

/// Rewrites every secret present in `item`: `f` gets the value and returns its
/// replacement, or `None` to remove the field.
pub fn map_secrets(
    resource: &str,
    item: &mut Value,
    mut f: impl FnMut(&Value) -> ApiResult<Option<Value>>,
) -> ApiResult<()> {
    for (_, path) in SECRET_SLOTS.iter().filter(|(r, _)| *r == resource) {
        let (last, parents) = path.split_last().unwrap_or((&"", &[]));
        let mut obj = Some(&mut *item);
        for p in parents {
            obj = obj.and_then(|o| o.get_mut(*p));
        }
        let Some(Value::Object(o)) = obj else { continue };
        let Some(v) = o.get(*last) else { continue };
        match f(v)? {
            Some(n) => {
                o.insert((*last).to_string(), n);
            }
            None => {
                o.remove(*last);
            }
        }
    }
    Ok(())
}

/// The stable hash of a bundle's items: canonical JSON (sorted keys, no whitespace) with
/// every secret shown as `********`, whether it travels encrypted or not at all.
pub fn items_sha256(items: &Items) -> String {
    let mut masked = Map::new();
    for (res, list) in items {
        let mut out = Vec::with_capacity(list.len());
        for item in list {
            let mut v = item.clone();
            let _ = map_secrets(res, &mut v, |_| Ok(Some(json!("********"))));
            out.push(v);
        }
        masked.insert(res.clone(), Value::Array(out));
    }
    hex_sha256(&Value::Object(masked))
}

/// A fingerprint of an organization's whole configuration, secrets included (as their
/// hashes): a staged plan is stale when this changed.
pub fn fingerprint(items: &Items) -> String {
    let mut all = Map::new();
    for (res, list) in items {
        let mut out = Vec::with_capacity(list.len());
        for item in list {
            let mut v = item.clone();
            let _ = map_secrets(res, &mut v, |s| {
                Ok(Some(json!(crate::util::sha256_hex(s.to_string().as_bytes()))))
            });
            out.push(v);
        }
        all.insert(res.clone(), Value::Array(out));
    }
    hex_sha256(&Value::Object(all))
}

fn hex_sha256(v: &Value) -> String {
    // serde_json's maps are ordered by key (no `preserve_order`), so this is canonical.
    crate::util::hex(&Sha256::digest(v.to_string().as_bytes()))
}

/// Parses and checks a bundle's envelope; returns its items as given (secrets still
/// encrypted) and whether it says its secrets were omitted.
pub fn parse_bundle(b: &Value) -> ApiResult<(Items, bool)> {
    let o = b.as_object().ok_or_else(|| ApiError::invalid("bundle", "bundle must be an object"))?;
    if o.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(ApiError::invalid(
            "bundle.format",
            format!("bundle.format must be \"{FORMAT}\""),
        ));
    }
    if o.get("version").and_then(Value::as_u64) != Some(VERSION) {
        return Err(ApiError::invalid(
            "bundle.version",
            format!(
                "bundle.version {} is not supported (this server reads {VERSION})",
                o.get("version").unwrap_or(&Value::Null)
            ),
        ));
    }
    let items = o
        .get("items")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::invalid("bundle.items", "bundle.items must be an object"))?;
    let mut out = Items::new();
    for (res, list) in items {
        if resource_of(res).is_none() {
            return Err(ApiError::invalid(
                "bundle.items",
                format!("unknown resource '{res}' in bundle.items"),
            ));
        }
        let list = list.as_array().ok_or_else(|| {
            ApiError::invalid("bundle.items", format!("bundle.items.{res} must be a list"))
        })?;
        let mut seen = std::collections::HashSet::new();
        for item in list {
            if !item.is_object() {
                return Err(ApiError::invalid(
                    "bundle.items",
                    format!("bundle.items.{res} holds a non-object"),
                ));
            }
            let name = item_name(res, item);
            if !seen.insert(name.clone()) {
                return Err(ApiError::invalid(
                    "bundle.items",
                    format!("{res} '{name}' appears twice in the bundle"),
                ));
            }
        }
        out.insert(res.clone(), list.clone());
    }
    Ok((out, o.get("secretsOmitted").and_then(Value::as_bool).unwrap_or(false)))
}

/// Prefixes an item's validation error with the item, so a 400 on a bundle says where.
pub fn in_item(resource: &str, name: &str, mut e: ApiError) -> ApiError {
    e.message = format!("{resource} '{name}': {}", e.message);
    e.detail("item", format!("{resource}/{name}"))
}
