//! Principals (persons and machine users), memberships and their roles.

use super::Conn;
use crate::ids::{OrgId, UserId};
use crate::perms::Perms;
use crate::util::now_ms;
use sqlx::Row;

/// A user row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: UserId,
    pub username: String,
    /// `user` or `machine`.
    pub kind: String,
    /// The one organization of a machine user.
    pub machine_org: Option<OrgId>,
    pub pw_hash: Option<String>,
    pub email: Option<String>,
    pub firstname: Option<String>,
    pub surname: Option<String>,
    pub title: Option<String>,
    pub label: Option<String>,
    pub created: i64,
    pub updated: i64,
    pub last_login: Option<i64>,
}

impl User {
    /// True for a machine user.
    pub fn is_machine(&self) -> bool {
        self.kind == "machine"
    }
}

const COLS: &str = "id, username, kind, machine_org, pw_hash, email, firstname, surname, title, label, created, updated, last_login";

/// Finds a user by username, instance-wide.
pub async fn by_username(c: &mut Conn, username: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLS} FROM users WHERE username = $1"))
        .bind(username)
        .fetch_optional(c)
        .await
}

/// Finds a user by id.
pub async fn by_id(c: &mut Conn, id: &UserId) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(c)
        .await
}

/// Finds a member of `org` by username (non-members are `None`: tenant isolation).
pub async fn member_by_username(
    c: &mut Conn,
    org: &OrgId,
    username: &str,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {} FROM users u JOIN memberships m ON m.user_id = u.id WHERE m.org_id = $1 AND u.username = $2",
        COLS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
    ))
    .bind(org)
    .bind(username)
    .fetch_optional(c)
    .await
}

/// Every member of `org` with their role names.
pub async fn members(c: &mut Conn, org: &OrgId) -> Result<Vec<(User, Vec<String>)>, sqlx::Error> {
    let users: Vec<User> = sqlx::query_as(&format!(
        "SELECT {} FROM users u JOIN memberships m ON m.user_id = u.id WHERE m.org_id = $1",
        COLS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
    ))
    .bind(org)
    .fetch_all(&mut *c)
    .await?;
    let role_rows: Vec<(UserId, String)> = sqlx::query_as(
        "SELECT mr.user_id, r.name FROM member_roles mr JOIN roles r ON r.id = mr.role_id WHERE mr.org_id = $1 ORDER BY r.name",
    )
    .bind(org)
    .fetch_all(&mut *c)
    .await?;
    Ok(users
        .into_iter()
        .map(|u| {
            let roles =
                role_rows.iter().filter(|(id, _)| *id == u.id).map(|(_, n)| n.clone()).collect();
            (u, roles)
        })
        .collect())
}

/// Role names a member holds in `org`.
pub async fn role_names(
    c: &mut Conn,
    org: &OrgId,
    user: &UserId,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT r.name FROM member_roles mr JOIN roles r ON r.id = mr.role_id WHERE mr.org_id = $1 AND mr.user_id = $2 ORDER BY r.name",
    )
    .bind(org)
    .bind(user)
    .fetch_all(c)
    .await
}

/// The effective permissions of a member: the OR over its roles.
pub async fn effective_perms(
    c: &mut Conn,
    org: &OrgId,
    user: &UserId,
) -> Result<Perms, sqlx::Error> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT r.perms FROM member_roles mr JOIN roles r ON r.id = mr.role_id WHERE mr.org_id = $1 AND mr.user_id = $2",
    )
    .bind(org)
    .bind(user)
    .fetch_all(c)
    .await?;
    Ok(rows.iter().fold(Perms::default(), |acc, p| acc.union(&Perms::from_db(p))))
}

/// True when `user` is a member of `org`.
pub async fn is_member(c: &mut Conn, org: &OrgId, user: &UserId) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("SELECT 1 FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(org)
        .bind(user)
        .fetch_optional(c)
        .await?
        .is_some())
}

/// Organizations a user belongs to: (id, name, label), by name.
pub async fn orgs_of(
    c: &mut Conn,
    user: &UserId,
) -> Result<Vec<(OrgId, String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT o.id, o.name, o.label FROM orgs o JOIN memberships m ON m.org_id = o.id WHERE m.user_id = $1 ORDER BY o.name")
        .bind(user)
        .fetch_all(c)
        .await
}

/// Fields of a new user.
pub struct NewUser<'a> {
    pub username: &'a str,
    pub kind: &'a str,
    pub machine_org: Option<&'a OrgId>,
    pub pw_hash: Option<String>,
    pub email: Option<&'a str>,
    pub firstname: Option<&'a str>,
    pub surname: Option<&'a str>,
    pub title: Option<&'a str>,
    pub label: Option<&'a str>,
}

/// Inserts a user; a taken username is a unique violation (→ 409 `item-exists`).
pub async fn insert(c: &mut Conn, u: NewUser<'_>) -> Result<UserId, sqlx::Error> {
    let id = UserId::new(crate::util::new_uuid());
    let now = now_ms();
    sqlx::query(
        "INSERT INTO users (id, username, kind, machine_org, pw_hash, email, firstname, surname, title, label, created, updated) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(&id)
    .bind(u.username)
    .bind(u.kind)
    .bind(u.machine_org)
    .bind(u.pw_hash)
    .bind(u.email)
    .bind(u.firstname)
    .bind(u.surname)
    .bind(u.title)
    .bind(u.label)
    .bind(now)
    .execute(c)
    .await?;
    Ok(id)
}

/// Adds a membership (idempotent).
pub async fn add_membership(c: &mut Conn, org: &OrgId, user: &UserId) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO memberships (org_id, user_id, created) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(org)
        .bind(user)
        .bind(now_ms())
        .execute(c)
        .await?;
    Ok(())
}

/// Replaces a member's roles with `role_ids`.
pub async fn set_roles(
    c: &mut Conn,
    org: &OrgId,
    user: &UserId,
    role_ids: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM member_roles WHERE org_id = $1 AND user_id = $2")
        .bind(org)
        .bind(user)
        .execute(&mut *c)
        .await?;
    for r in role_ids {
        sqlx::query("INSERT INTO member_roles (org_id, user_id, role_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(org)
            .bind(user)
            .bind(r)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

/// Removes a membership, its roles, sessions and API keys in that org; deletes the user
/// itself when it belongs to no other org (machine users always).
pub async fn remove_member(c: &mut Conn, org: &OrgId, user: &User) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM member_roles WHERE org_id = $1 AND user_id = $2")
        .bind(org)
        .bind(&user.id)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(org)
        .bind(&user.id)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM apikeys WHERE org_id = $1 AND user_id = $2")
        .bind(org)
        .bind(&user.id)
        .execute(&mut *c)
        .await?;
    sqlx::query("UPDATE sessions SET revoked = 1 WHERE org_id = $1 AND user_id = $2")
        .bind(org)
        .bind(&user.id)
        .execute(&mut *c)
        .await?;
    let others = sqlx::query("SELECT 1 FROM memberships WHERE user_id = $1")
        .bind(&user.id)
        .fetch_optional(&mut *c)
        .await?;
    if others.is_none() || user.is_machine() {
        sqlx::query("DELETE FROM tokens WHERE user_id = $1")
            .bind(&user.id)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(&user.id)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM apikeys WHERE user_id = $1")
            .bind(&user.id)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM users WHERE id = $1").bind(&user.id).execute(&mut *c).await?;
    }
    Ok(())
}

/// Serializes changes to who administers `org` until the transaction ends. On PostgreSQL
/// (read committed) it takes a row lock on the org's `Administrators` role, so two
/// administrators removing each other at the same moment cannot both pass the
/// last-administrator check; SQLite's write transactions are serial already.
pub async fn lock_admins(
    c: &mut Conn,
    org: &OrgId,
    backend: crate::db::Backend,
) -> Result<(), sqlx::Error> {
    if backend == crate::db::Backend::Postgres {
        sqlx::query("SELECT id FROM roles WHERE org_id = $1 AND builtin = 1 FOR UPDATE")
            .bind(org)
            .fetch_all(c)
            .await?;
    }
    Ok(())
}

/// Members of `org` holding the `Administrators` role.
pub async fn admin_count(c: &mut Conn, org: &OrgId) -> Result<i64, sqlx::Error> {
    let r =
        sqlx::query("SELECT COUNT(*) AS n FROM member_roles mr JOIN roles r ON r.id = mr.role_id WHERE mr.org_id = $1 AND r.builtin = 1")
            .bind(org)
            .fetch_one(c)
            .await?;
    Ok(r.try_get::<i64, _>("n").unwrap_or(0))
}

/// Sets the password hash.
pub async fn set_password(c: &mut Conn, user: &UserId, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET pw_hash = $1, updated = $2 WHERE id = $3")
        .bind(hash)
        .bind(now_ms())
        .bind(user)
        .execute(c)
        .await?;
    Ok(())
}

/// Records a successful login.
pub async fn touch_login(c: &mut Conn, user: &UserId) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET last_login = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(user)
        .execute(c)
        .await?;
    Ok(())
}

/// Organizations other than `org` the user belongs to (how many).
pub async fn other_org_count(c: &mut Conn, org: &OrgId, user: &UserId) -> Result<i64, sqlx::Error> {
    let r =
        sqlx::query("SELECT COUNT(*) AS n FROM memberships WHERE user_id = $1 AND org_id <> $2")
            .bind(user)
            .bind(org)
            .fetch_one(c)
            .await?;
    Ok(r.try_get::<i64, _>("n").unwrap_or(0))
}

/// A person's or machine user's descriptive fields.
pub struct Profile<'a> {
    pub email: Option<&'a str>,
    pub firstname: Option<&'a str>,
    pub surname: Option<&'a str>,
    pub title: Option<&'a str>,
    pub label: Option<&'a str>,
}

/// Sets every profile field (absent ones to null).
pub async fn replace_profile(
    c: &mut Conn,
    user: &UserId,
    p: &Profile<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET email = $1, firstname = $2, surname = $3, title = $4, label = $5, updated = $6 WHERE id = $7")
        .bind(p.email)
        .bind(p.firstname)
        .bind(p.surname)
        .bind(p.title)
        .bind(p.label)
        .bind(now_ms())
        .bind(user)
        .execute(c)
        .await?;
    Ok(())
}

/// Sets the profile fields given (absent ones stay).
pub async fn patch_profile(
    c: &mut Conn,
    user: &UserId,
    p: &Profile<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET email = COALESCE($1, email), firstname = COALESCE($2, firstname), surname = COALESCE($3, surname), \
         title = COALESCE($4, title), label = COALESCE($5, label), updated = $6 WHERE id = $7",
    )
    .bind(p.email)
    .bind(p.firstname)
    .bind(p.surname)
    .bind(p.title)
    .bind(p.label)
    .bind(now_ms())
    .bind(user)
    .execute(c)
    .await?;
    Ok(())
}
