//! The instance: schema migrations and the operator organization, made once and checked at
//! every start.

use crate::config::Config;
use crate::db::Db;
use crate::error::{from_causes, About, AboutExt};
use crate::store::{orgs, settings};
use std::fmt;

/// Why the instance cannot be initialized (start-up prints it; the admin API logs it).
#[derive(Debug)]
pub enum InitError {
    /// The migrations failed: `migrations: <why>`.
    Migrations(sqlx::Error),
    /// The database failed.
    Db(sqlx::Error),
    /// `operator_org` differs from the name fixed at the first initialization.
    OperatorRenamed {
        /// The name fixed then.
        fixed: String,
        /// The name configured now.
        configured: String,
    },
    /// An ordinary organization already has the operator organization's name.
    NameTaken(String),
    /// Creating the operator organization failed: `creating the operator organization: <why>`.
    Create(sqlx::Error),
    /// The operator admin's username belongs to a machine user.
    MachineAdmin,
    /// The initial password's file (named when the message names it).
    PasswordFile(About<std::io::Error>),
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::Migrations(e) => write!(f, "migrations: {e}"),
            InitError::Db(e) => e.fmt(f),
            InitError::OperatorRenamed { fixed, configured } => write!(
                f,
                "the operator organization was fixed as '{fixed}' at the first initialization; operator_org '{configured}' is not allowed"
            ),
            InitError::NameTaken(name) => write!(f, "an organization named '{name}' exists and cannot become the operator organization"),
            InitError::Create(e) => write!(f, "creating the operator organization: {e}"),
            InitError::MachineAdmin => f.write_str("the operator admin username belongs to a machine user"),
            InitError::PasswordFile(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for InitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InitError::Migrations(e) | InitError::Db(e) | InitError::Create(e) => Some(e),
            InitError::PasswordFile(e) => Some(e),
            InitError::OperatorRenamed { .. }
            | InitError::NameTaken(_)
            | InitError::MachineAdmin => None,
        }
    }
}

from_causes!(InitError { sqlx::Error => Db, About<std::io::Error> => PasswordFile });

/// Applies migrations and makes sure the operator organization exists. Idempotent and safe
/// to run concurrently. Returns the schema version.
pub async fn initialize(db: &Db, cfg: &Config) -> Result<i64, InitError> {
    let version = db.migrate().await.map_err(InitError::Migrations)?;
    let mut tx = db.tx().await?;
    orgs::lock_creation(&mut tx, db.backend).await?;
    let existing = settings::get_in(&mut tx, "operator_org").await?;
    if let Some(name) = existing {
        if name != cfg.operator_org {
            return Err(InitError::OperatorRenamed {
                fixed: name,
                configured: cfg.operator_org.clone(),
            });
        }
        tx.commit().await?;
        return Ok(version);
    }
    if orgs::by_name(&mut tx, &cfg.operator_org).await?.is_some() {
        return Err(InitError::NameTaken(cfg.operator_org.clone()));
    }
    let plain = crate::crypto::random_password();
    let hash = crate::crypto::hash_password(&plain);
    let created = orgs::create(
        &mut tx,
        orgs::NewOrg {
            name: cfg.operator_org.clone(),
            label: "Operator".into(),
            operator: true,
            dxorglnk: None,
            key: None,
            host: None,
            description: None,
        },
        Some(orgs::NewAdmin {
            username: &cfg.operator_admin,
            email: None,
            firstname: None,
            surname: None,
        }),
        Some((plain.clone(), hash)),
    )
    .await
    .map_err(|e| match e {
        orgs::CreateError::Db(e) => InitError::Create(e),
        orgs::CreateError::MachineUser => InitError::MachineAdmin,
    })?;
    // Under the creation lock: absent, as read above.
    settings::insert_if_absent_in(&mut tx, "operator_org", &cfg.operator_org).await?;
    tx.commit().await?;
    if let Some(pw) = created.admin_pw {
        let path = cfg.data_dir.join("initial-admin-password");
        std::fs::create_dir_all(&cfg.data_dir).map_err(About::from)?;
        let about = || path.display().to_string();
        if !crate::util::write_secret_file(&path, &format!("{pw}\n")).about(about)? {
            std::fs::write(&path, format!("{pw}\n")).about(about)?;
        }
        tracing::info!(org = %cfg.operator_org, user = %cfg.operator_admin, path = %path.display(), "operator organization created; initial admin password written to file");
    }
    Ok(version)
}
