//! Users (`/be/v1/users`, resource `beUsers`): persons and machine users, memberships,
//! profile and password changes, credential resets, and the no-takeover rules.

use super::extract::{project, success, JsonBody, ListQuery, ListSpec};
use crate::caller::Caller;
use crate::crypto::random_password;
use crate::domain::users::{
    check_password, guard_target, initial_password, insert_user, resolve_roles, validate_user, TargetChange, UserIn,
};
use crate::error::{ApiError, ApiResult};
use crate::names::{email, text};
use crate::perms::{Resource, C, D, R, U};
use crate::state::AppState;
use crate::store::{apikeys, roles, sessions, users};
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/users", get(list_users).post(post_user).patch(patch_user))
        .route("/be/v1/users/{username}", get(get_user).delete(delete_user))
}

async fn post_user(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<UserIn>) -> ApiResult<Json<Value>> {
    let v = validate_user(b)?;
    let check = |granted: &crate::perms::Perms| {
        c.require(Resource::BeUsers, C)?;
        if !granted.subset_of(&c.perms) {
            return Err(ApiError::forbidden("those roles grant permissions you do not have"));
        }
        Ok(())
    };
    // Checked before the password is hashed (which holds no connection), and again in the
    // transaction that creates the user.
    check(&resolve_roles(&mut *st.db.conn().await?, &c.org_id, &v.roles).await?.1)?;
    let password = initial_password(&st, &v).await?;
    let mut tx = st.db.tx().await?;
    let (role_ids, granted) = resolve_roles(&mut tx, &c.org_id, &v.roles).await?;
    check(&granted)?;
    let (id, pw, key) = insert_user(&mut tx, &c.org_id, &v, &role_ids, password).await?;
    let u = users::by_id(&mut tx, &id).await?.ok_or_else(|| ApiError::internal("user vanished"))?;
    let names = users::role_names(&mut tx, &c.org_id, &id).await?;
    tx.commit().await?;
    let mut out = json!({"user": u.to_json(&names)});
    if let Some(p) = pw {
        out["initialPW"] = json!(p);
    }
    if let Some(k) = key {
        out["apiKey"] = json!(k);
    }
    Ok(success(out))
}

const USER_LIST: ListSpec = ListSpec {
    filters: &["username", "type"],
    order_fields: &["username", "created", "updated", "type"],
    default_order: ("username", false),
    unique: "username",
};

async fn list_users(c: Caller, State(st): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(raw.as_deref(), &USER_LIST)?;
    if let Some(t) = q.filters.get("type") {
        if t != "user" && t != "machine" {
            return Err(ApiError::invalid("type", "type must be user or machine"));
        }
    }
    c.require(Resource::BeUsers, R)?;
    let mut conn = st.db.conn().await?;
    let needle = q.filters.get("username").map(|s| s.to_lowercase());
    let items = users::members(&mut conn, &c.org_id)
        .await?
        .into_iter()
        .filter(|(u, _)| needle.as_ref().is_none_or(|n| u.username.to_lowercase().contains(n)))
        .filter(|(u, _)| q.filters.get("type").is_none_or(|t| *t == u.kind))
        .map(|(u, r)| u.to_json(&r))
        .collect();
    q.page(items, "users")
}

async fn get_user(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(username): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    if username != c.username {
        c.require(Resource::BeUsers, R)?;
    }
    let mut conn = st.db.conn().await?;
    let u = users::member_by_username(&mut conn, &c.org_id, &username).await?.ok_or_else(|| ApiError::not_found("user", &username))?;
    let names = users::role_names(&mut conn, &c.org_id, &u.id).await?;
    Ok(success(json!({"user": project(u.to_json(&names), raw.as_deref())?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    username: Option<String>,
    email: Option<String>,
    firstname: Option<String>,
    surname: Option<String>,
    title: Option<String>,
    label: Option<String>,
    roles: Option<Vec<String>>,
    #[serde(rename = "oldPW")]
    old_pw: Option<String>,
    #[serde(rename = "newPW")]
    new_pw: Option<String>,
    #[serde(rename = "resetCreds")]
    reset_creds: Option<bool>,
}

async fn patch_user(c: Caller, State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<UserPatch>) -> ApiResult<Json<Value>> {
    let target_name = b.username.clone().unwrap_or_else(|| c.username.clone());
    let own = target_name == c.username;
    let mail = b.email.as_deref().map(|e| email("email", e)).transpose()?;
    let first = b.firstname.as_deref().map(|t| text("firstname", t, 1, 100)).transpose()?;
    let sur = b.surname.as_deref().map(|t| text("surname", t, 1, 100)).transpose()?;
    let title = b.title.as_deref().map(|t| text("title", t, 1, 100)).transpose()?;
    let label = b.label.as_deref().map(|t| text("label", t, 1, 200)).transpose()?;
    if b.new_pw.is_some() && !own {
        return Err(ApiError::invalid("newPW", "newPW changes only your own password; use resetCreds for others"));
    }
    if b.new_pw.is_some() != b.old_pw.is_some() {
        return Err(ApiError::invalid(if b.new_pw.is_some() { "oldPW" } else { "newPW" }, "oldPW and newPW go together"));
    }
    if let Some(pw) = &b.new_pw {
        check_password(pw, &target_name)?;
    }
    let reset = b.reset_creds.unwrap_or(false);
    // Argon2 work first, holding no connection: the old password checked against the hash
    // as it is now (the write below requires it unchanged), the new hashes made.
    let mut checked_hash = None;
    if let Some(old) = &b.old_pw {
        // A machine user has no password: that 400 comes below, in its place.
        let me = users::member_by_username(&mut *st.db.conn().await?, &c.org_id, &target_name).await?.filter(|u| !u.is_machine());
        if let Some(me) = me {
            let hash = me.pw_hash.clone();
            if !st.passwords.verify(old.clone(), hash.clone().unwrap_or_else(|| st.dummy_hash.clone())).await? || hash.is_none() {
                return Err(ApiError::unauthorized("oldPW is wrong"));
            }
            checked_hash = hash;
        }
    }
    let new_hash = match &b.new_pw {
        Some(pw) => Some(st.passwords.hash(pw.clone()).await?),
        None => None,
    };
    let reset_pw = match reset {
        true => {
            let p = random_password();
            Some((p.clone(), st.passwords.hash(p).await?))
        }
        false => None,
    };
    let mut tx = st.db.tx().await?;
    if b.roles.is_some() {
        users::lock_admins(&mut tx, &c.org_id, st.db.backend).await?;
    }
    let t = users::member_by_username(&mut tx, &c.org_id, &target_name).await?;
    let role_change = match &b.roles {
        Some(names) => Some(resolve_roles(&mut tx, &c.org_id, names).await?),
        None => None,
    };
    // 403s: permission bits, then the no-takeover rules.
    let profile_change = mail.is_some() || first.is_some() || sur.is_some() || title.is_some() || label.is_some();
    // Anything about someone else (even an empty change, which answers their record) and
    // any role change needs beUsers Update.
    if !own || b.roles.is_some() {
        c.require(Resource::BeUsers, U)?;
    }
    if reset && c.perms.get(Resource::BeUsers) != 15 {
        return Err(ApiError::forbidden("resetCreds needs beUsers = 15"));
    }
    if let Some((_, p)) = &role_change {
        if !p.subset_of(&c.perms) {
            return Err(ApiError::forbidden("those roles grant permissions you do not have"));
        }
    }
    let t = t.ok_or_else(|| ApiError::not_found("user", &target_name))?;
    if profile_change || b.new_pw.is_some() {
        guard_target(&mut tx, &c, &t, TargetChange::Profile).await?;
    }
    if reset {
        guard_target(&mut tx, &c, &t, TargetChange::Credentials).await?;
    }
    if role_change.is_some() {
        guard_target(&mut tx, &c, &t, TargetChange::Roles).await?;
    }
    if t.is_machine() && (mail.is_some() || first.is_some() || sur.is_some() || b.new_pw.is_some()) {
        return Err(ApiError::invalid("type", "a machine user has no email, names or password"));
    }
    if !t.is_machine() && label.is_some() {
        return Err(ApiError::invalid("label", "a person has no label"));
    }
    if b.old_pw.is_some() && t.pw_hash != checked_hash {
        return Err(ApiError::conflict("invalid-state", "the password changed meanwhile; send the change again"));
    }
    if let Some((ids, _)) = &role_change {
        let admins_before = users::admin_count(&mut tx, &c.org_id).await?;
        users::set_roles(&mut tx, &c.org_id, &t.id, ids).await?;
        if admins_before > 0 && users::admin_count(&mut tx, &c.org_id).await? == 0 {
            return Err(ApiError::conflict("item-protected", "the organization's last administrator keeps the Administrators role"));
        }
    }
    if profile_change {
        let profile = users::Profile {
            email: mail.as_deref(),
            firstname: first.as_deref(),
            surname: sur.as_deref(),
            title: title.as_deref(),
            label: label.as_deref(),
        };
        users::patch_profile(&mut tx, &t.id, &profile).await?;
    }
    let mut out = json!({});
    if let Some(h) = new_hash {
        users::set_password(&mut tx, &t.id, &h).await?;
        sessions::revoke_user(&mut tx, &t.id, c.session_id.as_deref()).await?;
    }
    if reset {
        sessions::revoke_user(&mut tx, &t.id, None).await?;
        if t.is_machine() {
            apikeys::delete_for_user(&mut tx, &c.org_id, &t.id).await?;
            out["apiKey"] = json!(apikeys::create(&mut tx, &c.org_id, &t.id, Some("reset key"), None).await?.1);
        } else if let Some((p, h)) = reset_pw {
            users::set_password(&mut tx, &t.id, &h).await?;
            out["newPW"] = json!(p);
        }
    }
    let u = users::by_id(&mut tx, &t.id).await?.ok_or_else(|| ApiError::internal("user vanished"))?;
    let names = users::role_names(&mut tx, &c.org_id, &t.id).await?;
    tx.commit().await?;
    out["user"] = u.to_json(&names);
    Ok(success(out))
}

async fn delete_user(c: Caller, State(st): State<Arc<AppState>>, Path(username): Path<String>) -> ApiResult<Json<Value>> {
    c.require(Resource::BeUsers, D)?;
    let mut tx = st.db.tx().await?;
    users::lock_admins(&mut tx, &c.org_id, st.db.backend).await?;
    let t = users::member_by_username(&mut tx, &c.org_id, &username).await?.ok_or_else(|| ApiError::not_found("user", &username))?;
    guard_target(&mut tx, &c, &t, TargetChange::Delete).await?;
    let admins = users::admin_count(&mut tx, &c.org_id).await?;
    let is_admin = users::role_names(&mut tx, &c.org_id, &t.id).await?.iter().any(|r| r == roles::ADMINISTRATORS);
    if is_admin && admins <= 1 {
        return Err(ApiError::conflict("item-protected", "the organization's last administrator cannot be deleted"));
    }
    users::remove_member(&mut tx, &c.org_id, &t).await?;
    tx.commit().await?;
    Ok(success(json!({"message": "user deleted"})))
}
