//! Roles of an organization.

use super::Conn;
use crate::ids::OrgId;
use crate::perms::Perms;
use crate::util::{new_id, now_ms};
use sqlx::any::AnyRow;

/// The protected built-in role.
pub const ADMINISTRATORS: &str = "Administrators";

/// A role row with its holder count.
#[derive(Debug, Clone)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub label: Option<String>,
    pub perms: Perms,
    pub builtin: bool,
    pub users: i64,
    pub created: i64,
    pub updated: i64,
}

/// Decoded strictly: a missing or mistyped column is an error, not an empty value.
impl<'r> sqlx::FromRow<'r, AnyRow> for Role {
    fn from_row(r: &'r AnyRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Role {
            id: r.try_get::<String, _>("id")?,
            name: r.try_get::<String, _>("name")?,
            label: r.try_get::<Option<String>, _>("label")?,
            perms: Perms::from_db(&r.try_get::<String, _>("perms")?),
            builtin: r.try_get::<i64, _>("builtin")? == 1,
            users: r.try_get::<i64, _>("users")?,
            created: r.try_get::<i64, _>("created")?,
            updated: r.try_get::<i64, _>("updated")?,
        })
    }
}

const SELECT: &str = "SELECT r.id, r.name, r.label, r.perms, r.builtin, r.created, r.updated, \
    (SELECT COUNT(*) FROM member_roles mr WHERE mr.role_id = r.id) AS users FROM roles r";

/// Every role of `org`.
pub async fn list(c: &mut Conn, org: &OrgId) -> Result<Vec<Role>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE r.org_id = $1")).bind(org).fetch_all(c).await
}

/// One role of `org` by name.
pub async fn get(c: &mut Conn, org: &OrgId, name: &str) -> Result<Option<Role>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE r.org_id = $1 AND r.name = $2"))
        .bind(org)
        .bind(name)
        .fetch_optional(c)
        .await
}

/// Inserts a role; a taken name is a unique violation.
pub async fn insert(
    c: &mut Conn,
    org: &OrgId,
    name: &str,
    label: Option<&str>,
    perms: &Perms,
    builtin: bool,
) -> Result<String, sqlx::Error> {
    let id = new_id("r");
    let now = now_ms();
    sqlx::query("INSERT INTO roles (id, org_id, name, label, perms, builtin, created, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)")
        .bind(&id)
        .bind(org)
        .bind(name)
        .bind(label)
        .bind(perms.to_db())
        .bind(builtin as i64)
        .bind(now)
        .execute(c)
        .await?;
    Ok(id)
}

/// Updates label and permissions.
pub async fn update(
    c: &mut Conn,
    org: &OrgId,
    id: &str,
    label: Option<&str>,
    perms: &Perms,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE roles SET label = $1, perms = $2, updated = $3 WHERE org_id = $4 AND id = $5",
    )
    .bind(label)
    .bind(perms.to_db())
    .bind(now_ms())
    .bind(org)
    .bind(id)
    .execute(c)
    .await?;
    Ok(())
}

/// Deletes a role and detaches it from its holders.
pub async fn delete(c: &mut Conn, org: &OrgId, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM member_roles WHERE org_id = $1 AND role_id = $2")
        .bind(org)
        .bind(id)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM roles WHERE org_id = $1 AND id = $2")
        .bind(org)
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
}
