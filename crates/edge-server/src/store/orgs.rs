//! Organizations: the tenant root. Creation makes the org, its `Administrators` role and
//! its administrator in one transaction.

use super::{roles, users, Conn};
use crate::ids::{AppId, OrgId, UserId};
use crate::perms::Perms;
use crate::util::{new_uuid, now_ms};
use sqlx::any::AnyRow;

/// An organization row with member and app counts.
#[derive(Debug, Clone)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub label: String,
    pub rid: String,
    pub marking_id: String,
    pub operator: bool,
    pub dxorglnk: Option<String>,
    pub key_sealed: Option<String>,
    pub public_key_pem: Option<String>,
    pub key_fingerprint: Option<String>,
    pub host: Option<String>,
    pub description: Option<String>,
    pub created: i64,
    pub updated: i64,
    pub users: i64,
    pub apps: i64,
}

/// Decoded strictly: a missing or mistyped column is an error, not an empty value.
impl<'r> sqlx::FromRow<'r, AnyRow> for Org {
    fn from_row(r: &'r AnyRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Org {
            id: r.try_get::<OrgId, _>("id")?,
            name: r.try_get::<String, _>("name")?,
            label: r.try_get::<String, _>("label")?,
            rid: r.try_get::<String, _>("rid")?,
            marking_id: r.try_get::<String, _>("marking_id")?,
            operator: r.try_get::<i64, _>("operator")? == 1,
            dxorglnk: r.try_get::<Option<String>, _>("dxorglnk")?,
            key_sealed: r.try_get::<Option<String>, _>("key_sealed")?,
            public_key_pem: r.try_get::<Option<String>, _>("public_key_pem")?,
            key_fingerprint: r.try_get::<Option<String>, _>("key_fingerprint")?,
            host: r.try_get::<Option<String>, _>("host")?,
            description: r.try_get::<Option<String>, _>("description")?,
            created: r.try_get::<i64, _>("created")?,
            updated: r.try_get::<i64, _>("updated")?,
            users: r.try_get::<i64, _>("users")?,
            apps: r.try_get::<i64, _>("apps")?,
        })
    }
}

const SELECT: &str =
    "SELECT o.id, o.name, o.label, o.rid, o.marking_id, o.operator, o.dxorglnk, o.key_sealed, \
    o.public_key_pem, o.key_fingerprint, o.host, o.description, o.created, o.updated, \
    (SELECT COUNT(*) FROM memberships m WHERE m.org_id = o.id) AS users, \
    (SELECT COUNT(*) FROM apps a WHERE a.org_id = o.id) AS apps FROM orgs o";

/// Every organization, by name.
pub async fn list(c: &mut Conn) -> Result<Vec<Org>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} ORDER BY o.name")).fetch_all(c).await
}

/// One organization by name.
pub async fn by_name(c: &mut Conn, name: &str) -> Result<Option<Org>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE o.name = $1")).bind(name).fetch_optional(c).await
}

/// One organization by id.
pub async fn by_id(c: &mut Conn, id: &OrgId) -> Result<Option<Org>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE o.id = $1")).bind(id).fetch_optional(c).await
}

/// Name and operator flag of an org by id (the cheap lookup every request makes).
pub async fn brief(c: &mut Conn, id: &OrgId) -> Result<Option<(String, bool)>, sqlx::Error> {
    let r: Option<(String, i64)> = sqlx::query_as("SELECT name, operator FROM orgs WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await?;
    Ok(r.map(|(name, operator)| (name, operator == 1)))
}

/// One organization by Foundry rid.
pub async fn by_rid(c: &mut Conn, rid: &str) -> Result<Option<Org>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE o.rid = $1")).bind(rid).fetch_optional(c).await
}

/// What a new organization is made of (already validated).
pub struct NewOrg {
    pub name: String,
    pub label: String,
    pub operator: bool,
    pub dxorglnk: Option<String>,
    /// Sealed PKCS#8 key, sealed passphrase, public PEM, fingerprint.
    pub key: Option<(String, Option<String>, String, String)>,
    pub host: Option<String>,
    pub description: Option<String>,
}

/// The administrator to create or link.
pub struct NewAdmin<'a> {
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub firstname: Option<&'a str>,
    pub surname: Option<&'a str>,
}

/// Outcome of [`create`].
pub struct Created {
    /// The new org's id.
    pub org_id: OrgId,
    /// The administrator's initial password; `None` when an existing person was linked.
    pub admin_pw: Option<String>,
    /// The administrator's user id (empty without an administrator).
    pub admin_id: UserId,
}

/// Why [`create`] refused.
pub enum CreateError {
    /// The username belongs to a machine user.
    MachineUser,
    /// A database error (a unique violation means the name is taken).
    Db(sqlx::Error),
}

impl From<sqlx::Error> for CreateError {
    fn from(e: sqlx::Error) -> Self {
        CreateError::Db(e)
    }
}

/// Creates the org, its `Administrators` role and its administrator, inside the caller's
/// transaction. `pw_hash` is used for a newly made person.
pub async fn create(
    c: &mut Conn,
    o: NewOrg,
    admin: Option<NewAdmin<'_>>,
    pw: Option<(String, String)>,
) -> Result<Created, CreateError> {
    let id = OrgId::new(new_uuid());
    let now = now_ms();
    let (key_sealed, pw_sealed, pem, fp) = match o.key {
        Some((k, p, pem, fp)) => (Some(k), p, Some(pem), Some(fp)),
        None => (None, None, None, None),
    };
    sqlx::query(
        "INSERT INTO orgs (id, name, label, rid, marking_id, operator, dxorglnk, key_sealed, key_pw_sealed, public_key_pem, \
         key_fingerprint, host, description, created, updated) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$14)",
    )
    .bind(&id)
    .bind(&o.name)
    .bind(&o.label)
    .bind(format!("ri.multipass..organization.{}", new_uuid()))
    .bind(new_uuid())
    .bind(o.operator as i64)
    .bind(&o.dxorglnk)
    .bind(key_sealed)
    .bind(pw_sealed)
    .bind(pem)
    .bind(fp)
    .bind(&o.host)
    .bind(&o.description)
    .bind(now)
    .execute(&mut *c)
    .await?;
    let role = roles::insert(
        c,
        &id,
        roles::ADMINISTRATORS,
        Some("Administrators"),
        &Perms::all(o.operator),
        true,
    )
    .await?;
    let Some(admin) = admin else {
        return Ok(Created { org_id: id, admin_pw: None, admin_id: UserId::default() });
    };
    let (user_id, admin_pw) = match users::by_username(c, admin.username).await? {
        Some(u) if u.is_machine() => return Err(CreateError::MachineUser),
        Some(u) => (u.id, None),
        None => {
            let (plain, hash) = pw.unwrap_or_default();
            let uid = users::insert(
                c,
                users::NewUser {
                    username: admin.username,
                    kind: "user",
                    machine_org: None,
                    pw_hash: Some(hash),
                    email: admin.email,
                    firstname: admin.firstname,
                    surname: admin.surname,
                    title: None,
                    label: None,
                },
            )
            .await?;
            (uid, Some(plain))
        }
    };
    users::add_membership(c, &id, &user_id).await?;
    users::set_roles(c, &id, &user_id, &[role]).await?;
    Ok(Created { org_id: id, admin_pw, admin_id: user_id })
}

/// Deletes every piece of an organization's data (not its published files: that is the
/// purge task's job).
pub async fn delete(c: &mut Conn, org: &OrgId) -> Result<(), sqlx::Error> {
    let members = users::members(c, org).await?;
    for (u, _) in &members {
        users::remove_member(c, org, u).await?;
    }
    let apps: Vec<AppId> = sqlx::query_scalar("SELECT id FROM apps WHERE org_id = $1")
        .bind(org)
        .fetch_all(&mut *c)
        .await?;
    for a in &apps {
        for table in ["builds", "patches", "uploads", "published"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE app_id = $1"))
                .bind(a)
                .execute(&mut *c)
                .await?;
        }
    }
    for table in [
        "member_roles",
        "memberships",
        "roles",
        "apikeys",
        "sessions",
        "apps",
        "deployments",
        "subscriptions",
        "deliveries",
        "outbox",
        "imports",
    ] {
        sqlx::query(&format!("DELETE FROM {table} WHERE org_id = $1"))
            .bind(org)
            .execute(&mut *c)
            .await?;
    }
    // Tasks go too, except purge tasks, which must outlive the org to do their work.
    sqlx::query("DELETE FROM tasks WHERE org_id = $1 AND type <> 'purge'")
        .bind(org)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM orgs WHERE id = $1").bind(org).execute(&mut *c).await?;
    Ok(())
}

/// Updates Foundry display fields.
pub async fn update_display(
    c: &mut Conn,
    org: &OrgId,
    label: &str,
    host: Option<&str>,
    description: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orgs SET label = $1, host = $2, description = $3, updated = $4 WHERE id = $5",
    )
    .bind(label)
    .bind(host)
    .bind(description)
    .bind(now_ms())
    .bind(org)
    .execute(c)
    .await?;
    Ok(())
}

/// Locks the organization's row for the rest of the transaction (the write lock on
/// SQLite): one configuration commit per organization at a time.
pub async fn lock(c: &mut Conn, id: &OrgId) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orgs SET updated = updated WHERE id = $1").bind(id).execute(c).await?;
    Ok(())
}

/// Serializes organization creation across processes for the rest of the transaction
/// (PostgreSQL; SQLite's write transaction already does): name and label checks and the
/// insert become one step.
pub async fn lock_creation(c: &mut Conn, backend: crate::db::Backend) -> Result<(), sqlx::Error> {
    if backend == crate::db::Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(7310002)").execute(c).await?;
    }
    Ok(())
}

/// The organization's sealed private key, when it has one.
pub async fn key_sealed(c: &mut Conn, id: &OrgId) -> Result<Option<String>, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, Option<String>>("SELECT key_sealed FROM orgs WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await?
        .flatten())
}
