//! Changing a user: profile, one's own password, roles, and the reset of a user's
//! credentials, under the no-takeover rules and the last administrator's protection.

use super::{check_password, guard_target, resolve_roles, TargetChange, ROLES_BEYOND_YOURS};
use crate::caller::Caller;
use crate::crypto::random_password;
use crate::error::{ApiError, ApiResult};
use crate::names::{email, text};
use crate::perms::{Resource, U};
use crate::state::AppState;
use crate::store::{apikeys, sessions, users};

/// What a Change User asks for; fields left `None` stay as they are.
#[derive(Default)]
pub(crate) struct UserChange {
    /// The member to change; `None`: the caller.
    pub username: Option<String>,
    /// A person's new e-mail address.
    pub email: Option<String>,
    /// A person's new first name.
    pub firstname: Option<String>,
    /// A person's new surname.
    pub surname: Option<String>,
    /// A new title.
    pub title: Option<String>,
    /// A machine user's new description.
    pub label: Option<String>,
    /// The complete new set of role names.
    pub roles: Option<Vec<String>>,
    /// The caller's current password (with `new_pw`).
    pub old_pw: Option<String>,
    /// The caller's new password (with `old_pw`).
    pub new_pw: Option<String>,
    /// Replace the user's credentials (a new password or API key).
    pub reset_creds: bool,
}

/// A user as changed, with a credential made by a reset (shown this once).
pub(crate) struct ChangedUser {
    /// The user as it is now.
    pub user: users::User,
    /// Names of the roles it holds, sorted.
    pub roles: Vec<String>,
    /// A person's new random password (a reset).
    pub new_pw: Option<String>,
    /// A machine user's new API key (a reset).
    pub api_key: Option<String>,
}

/// Changes a member of the caller's organization. Checks in the API's order: the fields,
/// the password pair and rule (400), a wrong `old_pw` (401), an unknown role (400), the
/// permission bits (403), an unknown member (404), the no-takeover rules (403), fields the
/// user's kind lacks (400), the password changed meanwhile (409), taking `Administrators`
/// from the last administrator (409). One's own profile and password need no permission; anything about another
/// member, and any role change, needs `beUsers: Update`; a reset needs `beUsers` = 15. A new
/// password ends the user's other sessions; a reset ends all of them.
pub(crate) async fn update(st: &AppState, c: &Caller, ch: UserChange) -> ApiResult<ChangedUser> {
    let target_name = ch.username.clone().unwrap_or_else(|| c.username.clone());
    let own = target_name == c.username;
    let mail = ch.email.as_deref().map(|e| email("email", e)).transpose()?;
    let first = ch.firstname.as_deref().map(|t| text("firstname", t, 1, 100)).transpose()?;
    let sur = ch.surname.as_deref().map(|t| text("surname", t, 1, 100)).transpose()?;
    let title = ch.title.as_deref().map(|t| text("title", t, 1, 100)).transpose()?;
    let label = ch.label.as_deref().map(|t| text("label", t, 1, 200)).transpose()?;
    if ch.new_pw.is_some() && !own {
        return Err(ApiError::invalid(
            "newPW",
            "newPW changes only your own password; use resetCreds for others",
        ));
    }
    if ch.new_pw.is_some() != ch.old_pw.is_some() {
        return Err(ApiError::invalid(
            if ch.new_pw.is_some() { "oldPW" } else { "newPW" },
            "oldPW and newPW go together",
        ));
    }
    if let Some(pw) = &ch.new_pw {
        check_password(pw, &target_name)?;
    }
    let reset = ch.reset_creds;
    // Argon2 work first, holding no connection: the old password checked against the hash
    // as it is now (the write below requires it unchanged), the new hashes made.
    let mut checked_hash = None;
    if let Some(old) = &ch.old_pw {
        // A machine user has no password: that 400 comes below, in its place.
        let me = users::member_by_username(&mut *st.db.conn().await?, &c.org_id, &target_name)
            .await?
            .filter(|u| !u.is_machine());
        if let Some(me) = me {
            let hash = me.pw_hash.clone();
            if !st
                .passwords
                .verify(old.clone(), hash.clone().unwrap_or_else(|| st.dummy_hash.clone()))
                .await?
                || hash.is_none()
            {
                return Err(ApiError::unauthorized("oldPW is wrong"));
            }
            checked_hash = hash;
        }
    }
    let new_hash = match &ch.new_pw {
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
    if ch.roles.is_some() {
        users::lock_admins(&mut tx, &c.org_id, st.db.backend).await?;
    }
    let t = users::member_by_username(&mut tx, &c.org_id, &target_name).await?;
    let role_change = match &ch.roles {
        Some(names) => Some(resolve_roles(&mut tx, &c.org_id, names).await?),
        None => None,
    };
    // 403s: permission bits, then the no-takeover rules.
    let profile_change =
        mail.is_some() || first.is_some() || sur.is_some() || title.is_some() || label.is_some();
    // Anything about someone else (even an empty change, which answers their record) and
    // any role change needs beUsers Update.
    if !own || ch.roles.is_some() {
        c.require(Resource::BeUsers, U)?;
    }
    if reset && c.perms.get(Resource::BeUsers) != 15 {
        return Err(ApiError::forbidden("resetCreds needs beUsers = 15"));
    }
    if let Some((_, p)) = &role_change {
        if !p.subset_of(&c.perms) {
            return Err(ApiError::forbidden(ROLES_BEYOND_YOURS));
        }
    }
    let t = t.ok_or_else(|| ApiError::not_found("user", &target_name))?;
    if profile_change || ch.new_pw.is_some() {
        guard_target(&mut tx, c, &t, TargetChange::Profile).await?;
    }
    if reset {
        guard_target(&mut tx, c, &t, TargetChange::Credentials).await?;
    }
    if role_change.is_some() {
        guard_target(&mut tx, c, &t, TargetChange::Roles).await?;
    }
    if t.is_machine() && (mail.is_some() || first.is_some() || sur.is_some() || ch.new_pw.is_some())
    {
        return Err(ApiError::invalid("type", "a machine user has no email, names or password"));
    }
    if !t.is_machine() && label.is_some() {
        return Err(ApiError::invalid("label", "a person has no label"));
    }
    if ch.old_pw.is_some() && t.pw_hash != checked_hash {
        return Err(ApiError::conflict(
            "invalid-state",
            "the password changed meanwhile; send the change again",
        ));
    }
    if let Some((ids, _)) = &role_change {
        let admins_before = users::admin_count(&mut tx, &c.org_id).await?;
        users::set_roles(&mut tx, &c.org_id, &t.id, ids).await?;
        if admins_before > 0 && users::admin_count(&mut tx, &c.org_id).await? == 0 {
            return Err(ApiError::conflict(
                "item-protected",
                "the organization's last administrator keeps the Administrators role",
            ));
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
    let (mut new_pw, mut api_key) = (None, None);
    if let Some(h) = new_hash {
        users::set_password(&mut tx, &t.id, &h).await?;
        sessions::revoke_user(&mut tx, &t.id, c.session_id.as_deref()).await?;
    }
    if reset {
        sessions::revoke_user(&mut tx, &t.id, None).await?;
        if t.is_machine() {
            apikeys::delete_for_user(&mut tx, &c.org_id, &t.id).await?;
            api_key =
                Some(apikeys::create(&mut tx, &c.org_id, &t.id, Some("reset key"), None).await?.1);
        } else if let Some((p, h)) = reset_pw {
            users::set_password(&mut tx, &t.id, &h).await?;
            new_pw = Some(p);
        }
    }
    let user =
        users::by_id(&mut tx, &t.id).await?.ok_or_else(|| ApiError::internal("user vanished"))?;
    let roles = users::role_names(&mut tx, &c.org_id, &t.id).await?;
    tx.commit().await?;
    Ok(ChangedUser { user, roles, new_pw, api_key })
}
