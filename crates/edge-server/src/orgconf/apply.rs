//! Applying a plan inside the caller's transaction: every create and update of the plan,
//! in its order, with the credentials of what it created collected to show once.

use super::in_item;
use super::plan::{parse, Action, Step};
use crate::domain::{apps, deployments, subscriptions, users};
use crate::error::{ApiError, ApiResult};
use crate::ids::OrgId;
use crate::perms::Perms;
use crate::state::AppState;
use crate::store::{self, Conn};
use crate::util::now_ms;
use std::collections::HashMap;

/// What a commit did.
pub struct Applied {
    /// Items created or updated.
    pub applied: usize,
    /// Every credential created.
    pub secrets: Vec<CreatedSecret>,
}

/// A credential a commit created, shown this once: exactly one of `initialPW`, `apiKey`
/// and `secret`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CreatedSecret {
    /// `users` or `subscriptions`.
    #[schema(value_type = super::schema::BundleResource)]
    resource: &'static str,
    /// The item (`username` for users).
    name: String,
    /// A person created: the initial password (to change at the first login).
    #[serde(rename = "initialPW", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    initial_pw: Option<String>,
    /// A machine user created: its API key.
    #[serde(rename = "apiKey", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    api_key: Option<String>,
    /// A subscription created: the secret its webhook deliveries are signed with.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    secret: Option<String>,
}

impl CreatedSecret {
    fn new(resource: &'static str, name: &str) -> CreatedSecret {
        CreatedSecret {
            resource,
            name: name.to_string(),
            initial_pw: None,
            api_key: None,
            secret: None,
        }
    }
}

/// Initial passwords of the people a plan creates, by username: hashed before the
/// transaction that applies the plan is begun (hashing holds no connection).
pub type Passwords = HashMap<String, users::InitialPassword>;

/// Makes the [`Passwords`] of `steps`.
pub async fn passwords_for(st: &AppState, steps: &[Step]) -> ApiResult<Passwords> {
    let mut out = Passwords::new();
    for s in steps.iter().filter(|s| s.resource == "users" && s.action == Action::Create) {
        let v =
            users::validate_user(parse(&s.item)?).map_err(|e| in_item(s.resource, &s.name, e))?;
        if let Some(p) = users::initial_password(st, &v).await? {
            out.insert(s.name.clone(), p);
        }
    }
    Ok(out)
}

/// Applies every step that changes something. The caller commits or rolls back.
/// `passwords` are [`passwords_for`] a plan made before the caller's transaction; a person
/// to create that it lacks means the configuration changed in between (409).
pub async fn apply(
    st: &AppState,
    c: &mut Conn,
    org_id: &OrgId,
    operator: bool,
    steps: &[Step],
    mut passwords: Passwords,
) -> ApiResult<Applied> {
    let mut out = Applied { applied: 0, secrets: Vec::new() };
    for s in steps.iter().filter(|s| s.action != Action::Unchanged) {
        apply_one(st, c, org_id, operator, s, &mut out.secrets, &mut passwords)
            .await
            .map_err(|e| in_item(s.resource, &s.name, e))?;
        out.applied += 1;
    }
    if steps.iter().any(|s| s.resource == "users" && s.action == Action::Update)
        && store::users::admin_count(c, org_id).await? == 0
    {
        return Err(ApiError::conflict(
            "item-protected",
            "the organization's last administrator keeps the Administrators role",
        ));
    }
    Ok(out)
}

async fn apply_one(
    st: &AppState,
    c: &mut Conn,
    org_id: &OrgId,
    operator: bool,
    s: &Step,
    secrets: &mut Vec<CreatedSecret>,
    passwords: &mut Passwords,
) -> ApiResult<()> {
    let create = s.action == Action::Create;
    match s.resource {
        "roles" => {
            let perms = Perms::parse_onto(
                Perms::default(),
                &s.item["permissions"],
                operator,
                "permissions",
            )?;
            let label = s.item["label"].as_str();
            match store::roles::get(c, org_id, &s.name).await? {
                Some(r) if !create => store::roles::update(c, org_id, &r.id, label, &perms).await?,
                None if create => {
                    store::roles::insert(c, org_id, &s.name, label, &perms, false).await?;
                }
                _ => return Err(stale()),
            }
        }
        "deployments" => {
            let b: deployments::DeploymentIn = parse(&s.item)?;
            let existing = store::deployments::get(c, org_id, &s.name).await?;
            if existing.is_some() == create {
                return Err(stale());
            }
            let mut d = deployments::row_from(st, org_id, &b, existing.as_ref())?;
            d.updated = now_ms();
            deployments::check_fs_apart(st, c, &d).await?;
            store::deployments::save(c, &d).await?;
        }
        "apps" => {
            let b: apps::AppIn = parse(&s.item)?;
            let (max, deps) = (b.max_builds.unwrap_or(5), b.deployments.unwrap_or_default());
            if create {
                apps::insert_app(st, c, org_id, &s.name, &b.label, max, &deps).await?;
            } else if !apps::update_app(c, org_id, &s.name, Some(&b.label), Some(max), Some(&deps))
                .await?
            {
                return Err(stale());
            }
        }
        "users" => {
            let v = users::validate_user(parse(&s.item)?)?;
            let (role_ids, _) = users::resolve_roles(c, org_id, &v.roles).await?;
            if create {
                let pw = passwords.remove(&s.name);
                if pw.is_none() && !v.machine {
                    return Err(ApiError::conflict(
                        "invalid-state",
                        "the configuration changed while the import was applied; commit again",
                    ));
                }
                let (_, pw, key) = users::insert_user(c, org_id, &v, &role_ids, pw).await?;
                match (pw, key) {
                    (Some(p), _) => secrets.push(CreatedSecret {
                        initial_pw: Some(p),
                        ..CreatedSecret::new("users", &s.name)
                    }),
                    (_, Some(k)) => secrets.push(CreatedSecret {
                        api_key: Some(k),
                        ..CreatedSecret::new("users", &s.name)
                    }),
                    _ => {}
                }
            } else {
                let t = store::users::member_by_username(c, org_id, &s.name)
                    .await?
                    .ok_or_else(stale)?;
                let profile = store::users::Profile {
                    email: v.email.as_deref(),
                    firstname: v.firstname.as_deref(),
                    surname: v.surname.as_deref(),
                    title: v.title.as_deref(),
                    label: v.label.as_deref(),
                };
                store::users::replace_profile(c, &t.id, &profile).await?;
                store::users::set_roles(c, org_id, &t.id, &role_ids).await?;
            }
        }
        "subscriptions" => {
            let v = subscriptions::validate_subscription(st, parse(&s.item)?).await?;
            if create {
                let (_, secret) = subscriptions::insert_subscription(st, c, org_id, &v).await?;
                secrets.push(CreatedSecret {
                    secret: Some(secret),
                    ..CreatedSecret::new("subscriptions", &s.name)
                });
            } else {
                let sealed = v.token.as_ref().map(|t| st.data_key.seal(t.as_bytes()));
                let (url, channel) = (v.url.as_deref(), v.channel.as_deref());
                if !store::subscriptions::update(
                    c,
                    org_id,
                    &s.name,
                    &v.kind,
                    url,
                    channel,
                    sealed,
                    v.filter.to_string(),
                )
                .await?
                {
                    return Err(stale());
                }
            }
        }
        _ => return Err(ApiError::internal("unknown resource in a plan")),
    }
    Ok(())
}

fn stale() -> ApiError {
    ApiError::conflict(
        "invalid-state",
        "the configuration changed since the plan was made; import again",
    )
}
