//! Users and memberships: validation of a new user, the password rules, role resolution,
//! the no-takeover rules for changing someone else, creating a user with its initial
//! credential (hashed before any connection is taken) and removing a member; the API and
//! configuration bundles share them. Changing a user is [`change`].

use crate::caller::Caller;
use crate::crypto::random_password;
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, UserId};
use crate::names::{email, text, Name};
use crate::perms::{Perms, Resource, C, D};
use crate::state::AppState;
use crate::store::{apikeys, roles, users, Conn};
use serde::Deserialize;

pub mod change;

/// What a caller is about to do to another user.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TargetChange {
    /// Profile fields or password.
    Profile,
    /// Passwords and API keys.
    Credentials,
    /// Role assignment in this org.
    Roles,
    /// Removal from this org.
    Delete,
}

/// The no-takeover rule: the target's permissions must be a subset of the caller's, and a
/// person's profile and credentials may be touched only when the person belongs to no
/// organization but the caller's.
pub async fn guard_target(
    c: &mut Conn,
    caller: &Caller,
    target: &users::User,
    change: TargetChange,
) -> ApiResult<()> {
    if target.id == caller.user_id {
        return Ok(());
    }
    let theirs = users::effective_perms(c, &caller.org_id, &target.id).await?;
    if !theirs.subset_of(&caller.perms) {
        return Err(ApiError::forbidden("the target user holds permissions you do not have"));
    }
    if !target.is_machine()
        && matches!(change, TargetChange::Profile | TargetChange::Credentials)
        && users::other_org_count(c, &caller.org_id, &target.id).await? > 0
    {
        return Err(ApiError::forbidden(
            "this person belongs to other organizations too; only they can change their profile and credentials",
        ));
    }
    Ok(())
}

/// The password rule: 10..256 characters, not containing the username, not a common one.
pub fn check_password(pw: &str, username: &str) -> ApiResult<()> {
    const COMMON: &[&str] = &[
        "1234567890",
        "123456789012",
        "password123",
        "password1234",
        "qwertyuiop",
        "1q2w3e4r5t",
        "iloveyou12",
        "administrator",
        "letmein1234",
        "welcome1234",
        "passw0rd123",
        "0987654321",
        "abcdefghij",
        "qwerty12345",
        "1111111111",
        "changeme123",
    ];
    let n = pw.chars().count();
    if !(10..=256).contains(&n) {
        return Err(ApiError::invalid("newPW", "the password must be 10..256 characters"));
    }
    if pw.to_lowercase().contains(&username.to_lowercase()) {
        return Err(ApiError::invalid("newPW", "the password must not contain the username"));
    }
    if COMMON.contains(&pw.to_lowercase().as_str()) {
        return Err(ApiError::invalid("newPW", "the password is too common"));
    }
    Ok(())
}

/// Resolves role names of `org` to (ids, combined permissions); unknown → 400.
pub(crate) async fn resolve_roles(
    c: &mut Conn,
    org: &OrgId,
    names: &[String],
) -> ApiResult<(Vec<String>, Perms)> {
    let mut ids = Vec::new();
    let mut p = Perms::default();
    for n in names {
        let r = roles::get(c, org, n)
            .await?
            .ok_or_else(|| ApiError::invalid("roles", format!("unknown role '{n}'")))?;
        p = p.union(&r.perms);
        ids.push(r.id);
    }
    Ok((ids, p))
}

/// The Create User body (also a user item of a configuration bundle). A person has
/// `email`, `firstname` and `surname` (and gets an initial password); a machine user has a
/// `label` instead (and gets an API key).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserIn {
    /// Unique in the instance: 2 to 50 letters, digits or `_`.
    #[schema(pattern = "^[A-Za-z0-9_]{2,50}$")]
    pub username: String,
    /// `user` (a person) or `machine`; default `machine` when `label` is given without
    /// `email`, else `user`.
    #[serde(rename = "type")]
    #[schema(value_type = Option<UserType>)]
    pub kind: Option<String>,
    /// A person's e-mail address (required for a person, refused for a machine user).
    #[schema(
        max_length = 254,
        pattern = "^[^@\\s\\x00-\\x1f\\x7f-\\x9f]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+$"
    )]
    pub email: Option<String>,
    /// A person's first name, 1 to 100 characters (required for a person, refused for a
    /// machine user).
    #[schema(min_length = 1, max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub firstname: Option<String>,
    /// A person's surname, 1 to 100 characters (required for a person, refused for a
    /// machine user).
    #[schema(min_length = 1, max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub surname: Option<String>,
    /// A title, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub title: Option<String>,
    /// A machine user's description, 1 to 200 characters (required for a machine user,
    /// refused for a person).
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub label: Option<String>,
    /// Names of roles of the organization to give (default none); together they may grant
    /// only permissions the caller holds.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The kind of a user.
#[derive(serde::Serialize, utoipa::ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum UserType {
    /// A person: logs in with a password, may belong to several organizations.
    User,
    /// A machine user: works with API keys, belongs to one organization.
    Machine,
}

impl UserType {
    /// The kind of a stored user.
    pub fn of(u: &users::User) -> UserType {
        if u.is_machine() {
            UserType::Machine
        } else {
            UserType::User
        }
    }
}

/// A Create User body that passed validation.
pub(crate) struct ValidUser {
    pub username: Name,
    pub machine: bool,
    pub email: Option<String>,
    pub firstname: Option<String>,
    pub surname: Option<String>,
    pub title: Option<String>,
    pub label: Option<String>,
    pub roles: Vec<String>,
}

/// Checks every field of a Create User body.
pub(crate) fn validate_user(b: UserIn) -> ApiResult<ValidUser> {
    let username = Name::parse("username", &b.username)?;
    let machine = match b.kind.as_deref() {
        Some("machine") => true,
        Some("user") => false,
        Some(_) => return Err(ApiError::invalid("type", "type must be user or machine")),
        None => b.label.is_some() && b.email.is_none(),
    };
    let title = b.title.as_deref().map(|t| text("title", t, 1, 100)).transpose()?;
    let (mail, first, sur, label) = if machine {
        for (f, v) in [("email", &b.email), ("firstname", &b.firstname), ("surname", &b.surname)] {
            if v.is_some() {
                return Err(ApiError::invalid(f, format!("a machine user has no {f}")));
            }
        }
        let label = text(
            "label",
            b.label
                .as_deref()
                .ok_or_else(|| ApiError::invalid("label", "missing field 'label'"))?,
            1,
            200,
        )?;
        (None, None, None, Some(label))
    } else {
        let req = |f: &str, v: &Option<String>| {
            v.clone().ok_or_else(|| ApiError::invalid(f, format!("missing field '{f}'")))
        };
        if b.label.is_some() {
            return Err(ApiError::invalid(
                "label",
                "a person has no label; use firstname and surname",
            ));
        }
        (
            Some(email("email", &req("email", &b.email)?)?),
            Some(text("firstname", &req("firstname", &b.firstname)?, 1, 100)?),
            Some(text("surname", &req("surname", &b.surname)?, 1, 100)?),
            None,
        )
    };
    Ok(ValidUser {
        username,
        machine,
        email: mail,
        firstname: first,
        surname: sur,
        title,
        label,
        roles: b.roles,
    })
}

/// A person's random initial password and its Argon2 hash.
pub struct InitialPassword {
    plain: String,
    hash: String,
}

/// A new random password and its hash (for a person; `None` for a machine user).
pub(crate) async fn initial_password(
    st: &AppState,
    v: &ValidUser,
) -> ApiResult<Option<InitialPassword>> {
    if v.machine {
        return Ok(None);
    }
    let plain = random_password();
    let hash = st.passwords.hash(plain.clone()).await?;
    Ok(Some(InitialPassword { plain, hash }))
}

/// Creates a validated user as a member of `org` with `role_ids`: a person gets a random
/// initial password, a machine user an API key. Returns (id, initialPW, apiKey).
/// `password` is [`initial_password`]'s answer, made before `c` was taken (hashing holds no
/// connection).
pub(crate) async fn insert_user(
    c: &mut Conn,
    org: &OrgId,
    v: &ValidUser,
    role_ids: &[String],
    password: Option<InitialPassword>,
) -> ApiResult<(UserId, Option<String>, Option<String>)> {
    let (pw_plain, pw_hash) = match (v.machine, password) {
        (true, _) => (None, None),
        (false, Some(p)) => (Some(p.plain), Some(p.hash)),
        (false, None) => {
            return Err(ApiError::internal(
                "a person was to be created without an initial password",
            ))
        }
    };
    if users::by_username(c, v.username.as_str()).await?.is_some() {
        return Err(ApiError::conflict(
            "item-exists",
            format!("username '{}' is taken", v.username),
        ));
    }
    let id = users::insert(
        c,
        users::NewUser {
            username: v.username.as_str(),
            kind: if v.machine { "machine" } else { "user" },
            machine_org: v.machine.then_some(org),
            pw_hash,
            email: v.email.as_deref(),
            firstname: v.firstname.as_deref(),
            surname: v.surname.as_deref(),
            title: v.title.as_deref(),
            label: v.label.as_deref(),
        },
    )
    .await?;
    users::add_membership(c, org, &id).await?;
    users::set_roles(c, org, &id, role_ids).await?;
    let key = if v.machine {
        Some(apikeys::create(c, org, &id, Some("initial key"), None).await?.1)
    } else {
        None
    };
    Ok((id, pw_plain, key))
}

/// A user just created, with its first credential (shown this once).
pub(crate) struct CreatedUser {
    /// The user as stored.
    pub user: users::User,
    /// Names of the roles it holds, sorted.
    pub roles: Vec<String>,
    /// A person's initial password.
    pub initial_pw: Option<String>,
    /// A machine user's first API key.
    pub api_key: Option<String>,
}

/// Creates a person or machine user as a member of the caller's organization with the
/// roles named. Checks in the API's order: the body (400), an unknown role (400),
/// `beUsers: Create` and no grant beyond the caller's bits (403), a taken username (409).
pub(crate) async fn create(st: &AppState, c: &Caller, b: UserIn) -> ApiResult<CreatedUser> {
    let v = validate_user(b)?;
    let check = |granted: &Perms| {
        c.require(Resource::BeUsers, C)?;
        if !granted.subset_of(&c.perms) {
            return Err(ApiError::forbidden(ROLES_BEYOND_YOURS));
        }
        Ok(())
    };
    // Checked before the password is hashed (which holds no connection), and again in the
    // transaction that creates the user.
    check(&resolve_roles(&mut *st.db.conn().await?, &c.org_id, &v.roles).await?.1)?;
    let password = initial_password(st, &v).await?;
    let mut tx = st.db.tx().await?;
    let (role_ids, granted) = resolve_roles(&mut tx, &c.org_id, &v.roles).await?;
    check(&granted)?;
    let (id, initial_pw, api_key) =
        insert_user(&mut tx, &c.org_id, &v, &role_ids, password).await?;
    let user =
        users::by_id(&mut tx, &id).await?.ok_or_else(|| ApiError::internal("user vanished"))?;
    let roles = users::role_names(&mut tx, &c.org_id, &id).await?;
    tx.commit().await?;
    Ok(CreatedUser { user, roles, initial_pw, api_key })
}

/// Removes the member `username` from the caller's organization (its roles, API keys and
/// sessions there; the user itself when it belongs nowhere else). Needs `beUsers: Delete`;
/// the no-takeover rule applies (403); the organization's last administrator stays (409).
pub(crate) async fn delete(st: &AppState, c: &Caller, username: &str) -> ApiResult<()> {
    c.require(Resource::BeUsers, D)?;
    let mut tx = st.db.tx().await?;
    users::lock_admins(&mut tx, &c.org_id, st.db.backend).await?;
    let t = users::member_by_username(&mut tx, &c.org_id, username)
        .await?
        .ok_or_else(|| ApiError::not_found("user", username))?;
    guard_target(&mut tx, c, &t, TargetChange::Delete).await?;
    let admins = users::admin_count(&mut tx, &c.org_id).await?;
    let is_admin = users::role_names(&mut tx, &c.org_id, &t.id)
        .await?
        .iter()
        .any(|r| r == roles::ADMINISTRATORS);
    if is_admin && admins <= 1 {
        return Err(ApiError::conflict(
            "item-protected",
            "the organization's last administrator cannot be deleted",
        ));
    }
    users::remove_member(&mut tx, &c.org_id, &t).await?;
    tx.commit().await?;
    Ok(())
}

/// The refusal of roles that grant more than the caller holds.
const ROLES_BEYOND_YOURS: &str = "those roles grant permissions you do not have";
