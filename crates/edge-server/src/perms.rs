//! Permission bits per resource (conventions.md, "Permissions").

use crate::error::ApiError;
use serde_json::{Map, Value};
use std::borrow::Cow;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// Create, Read, Update, Delete, eXecute.
pub const C: u8 = 1;
/// Read.
pub const R: u8 = 2;
/// Update.
pub const U: u8 = 4;
/// Delete.
pub const D: u8 = 8;
/// eXecute.
pub const X: u8 = 16;

/// A permission resource. `Orgs` exists only in the operator organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Apps,
    BeUsers,
    Bundles,
    Consumption,
    Dependencies,
    Deployments,
    Keys,
    Roles,
    Sources,
    Subscriptions,
    Tasks,
    Trainings,
    Orgs,
}

/// Every resource with its wire name and maximum, in response order.
pub const RESOURCES: [(Resource, &str, u8); 13] = [
    (Resource::Apps, "apps", 15),
    (Resource::BeUsers, "beUsers", 15),
    (Resource::Bundles, "bundles", 15),
    (Resource::Consumption, "consumption", 2),
    (Resource::Dependencies, "dependencies", 15),
    (Resource::Deployments, "deployments", 15),
    (Resource::Keys, "keys", 15),
    (Resource::Roles, "roles", 15),
    (Resource::Sources, "sources", 15),
    (Resource::Subscriptions, "subscriptions", 15),
    (Resource::Tasks, "tasks", 31),
    (Resource::Trainings, "trainings", 6),
    (Resource::Orgs, "orgs", 15),
];

impl Resource {
    fn idx(self) -> usize {
        RESOURCES.iter().position(|r| r.0 == self).unwrap_or(0)
    }
    /// Wire name.
    pub fn name(self) -> &'static str {
        RESOURCES[self.idx()].1
    }
}

/// Effective or granted bits for every resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Perms([u8; 13]);

impl Perms {
    /// Every resource at its maximum (the `Administrators` role); `orgs` only for the operator.
    pub fn all(operator: bool) -> Perms {
        let mut p = Perms::default();
        for (i, (r, _, max)) in RESOURCES.iter().enumerate() {
            if *r != Resource::Orgs || operator {
                p.0[i] = *max;
            }
        }
        p
    }
    /// Bits on one resource.
    pub fn get(&self, r: Resource) -> u8 {
        self.0[r.idx()]
    }
    /// True when every bit of `bits` is held on `r`.
    pub fn has(&self, r: Resource, bits: u8) -> bool {
        self.get(r) & bits == bits
    }
    /// Bitwise OR (a user's roles combine this way).
    pub fn union(&self, o: &Perms) -> Perms {
        let mut p = *self;
        for i in 0..p.0.len() {
            p.0[i] |= o.0[i];
        }
        p
    }
    /// True when every bit here is also in `o` (the no-escalation test).
    pub fn subset_of(&self, o: &Perms) -> bool {
        self.0.iter().zip(o.0.iter()).all(|(a, b)| a & !b == 0)
    }

    /// Parses a (possibly partial) wire map onto `base`. Unknown resources, non-integers
    /// and bits beyond a maximum are `invalid-param` naming `field`.
    pub fn parse_onto(
        base: Perms,
        v: &Value,
        operator: bool,
        field: &str,
    ) -> Result<Perms, ApiError> {
        let obj = v
            .as_object()
            .ok_or_else(|| ApiError::invalid(field, format!("{field} must be an object")))?;
        let mut p = base;
        for (k, val) in obj {
            let (i, (_, _, max)) = RESOURCES
                .iter()
                .enumerate()
                .find(|(_, (r, n, _))| *n == k && (operator || *r != Resource::Orgs))
                .ok_or_else(|| {
                    ApiError::invalid(field, format!("unknown resource '{k}' in {field}"))
                })?;
            let bits = val
                .as_u64()
                .filter(|b| *b <= u64::from(*max) && (*b as u8) & !max == 0)
                .ok_or_else(|| {
                    ApiError::invalid(field, format!("{field}.{k} must be a subset of {max}"))
                })?;
            p.0[i] = bits as u8;
        }
        Ok(p)
    }

    /// The wire map: every resource of the org (no `orgs` key in an ordinary org).
    pub fn to_json(&self, operator: bool) -> Value {
        let mut m = Map::new();
        for (i, (r, n, _)) in RESOURCES.iter().enumerate() {
            if *r != Resource::Orgs || operator {
                m.insert((*n).into(), Value::from(self.0[i]));
            }
        }
        Value::Object(m)
    }

    /// Compact storage form (same as the wire map, all resources).
    pub fn to_db(&self) -> String {
        self.to_json(true).to_string()
    }

    /// Reads the storage form; anything unreadable grants nothing.
    pub fn from_db(s: &str) -> Perms {
        serde_json::from_str::<Value>(s)
            .ok()
            .and_then(|v| Perms::parse_onto(Perms::default(), &v, true, "permissions").ok())
            .unwrap_or_default()
    }
}

/// `6` → `Read + Update`: the bits a mask holds, named as errors and docs name them.
pub fn bit_names(mask: u8) -> String {
    let names = [(C, "Create"), (R, "Read"), (U, "Update"), (D, "Delete"), (X, "Execute")];
    let held: Vec<&str> = names.iter().filter(|(b, _)| mask & b != 0).map(|(_, n)| *n).collect();
    held.join(" + ")
}

/// `15` → `1 Create, 2 Read, 4 Update, 8 Delete`: the bits a mask holds, in words.
pub fn bit_words(mask: u8) -> String {
    let names = [(C, "Create"), (R, "Read"), (U, "Update"), (D, "Delete"), (X, "Execute")];
    let held: Vec<String> =
        names.iter().filter(|(b, _)| mask & b != 0).map(|(b, n)| format!("{b} {n}")).collect();
    held.join(", ")
}

/// The schema of a permissions map in `/openapi.json` (named `Permissions`): one bit mask
/// per resource. Bits: 1 Create, 2 Read, 4 Update,
/// 8 Delete, 16 Execute (retry tasks, process traces).
pub struct PermissionsSchema;

impl PartialSchema for PermissionsSchema {
    fn schema() -> RefOr<Schema> {
        let mut o = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .description(Some(
                "Permission bits per resource: 1 Create, 2 Read, 4 Update, 8 Delete, 16 Execute. \
                 `orgs` exists only in the operator organization.",
            ))
            .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(
                false,
            )));
        for (_, name, max) in RESOURCES {
            let p = ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Integer))
                .minimum(Some(0))
                .maximum(Some(max))
                .description(Some(format!("Bits on {name}: any of {}", bit_words(max))));
            o = o.property(name, p);
        }
        RefOr::T(Schema::Object(o.build()))
    }
}

impl ToSchema for PermissionsSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Permissions")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[test]
    fn parse_and_subset() {
        let p = Perms::parse_onto(
            Perms::default(),
            &json!({"apps": 6, "tasks": 16}),
            false,
            "permissions",
        )
        .unwrap();
        assert!(p.has(Resource::Apps, R | U));
        assert!(!p.has(Resource::Apps, C));
        assert!(p.subset_of(&Perms::all(false)));
        assert!(Perms::parse_onto(Perms::default(), &json!({"trainings": 1}), false, "p").is_err());
        assert!(Perms::parse_onto(Perms::default(), &json!({"orgs": 1}), false, "p").is_err());
        assert!(Perms::parse_onto(Perms::default(), &json!({"orgs": 1}), true, "p").is_ok());
        assert!(Perms::parse_onto(Perms::default(), &json!({"apps": 16}), false, "p").is_err());
        assert!(Perms::parse_onto(Perms::default(), &json!({"apps": "1"}), false, "p").is_err());
        assert_eq!(Perms::from_db(&Perms::all(true).to_db()), Perms::all(true));
    }
}
