//! The instance: schema migrations and the operator organization, made once and checked at
//! every start.

use crate::config::Config;
use crate::db::Db;
use crate::store::{orgs, settings};

/// Applies migrations and makes sure the operator organization exists. Idempotent and safe
/// to run concurrently. Returns the schema version.
pub async fn initialize(db: &Db, cfg: &Config) -> Result<i64, String> {
    let version = db.migrate().await.map_err(|e| format!("migrations: {e}"))?;
    let mut tx = db.tx().await.map_err(|e| e.to_string())?;
    orgs::lock_creation(&mut tx, db.backend).await.map_err(|e| e.to_string())?;
    let existing = settings::get_in(&mut tx, "operator_org").await.map_err(|e| e.to_string())?;
    if let Some(name) = existing {
        if name != cfg.operator_org {
            return Err(format!(
                "the operator organization was fixed as '{name}' at the first initialization; operator_org '{}' is not allowed",
                cfg.operator_org
            ));
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        return Ok(version);
    }
    if orgs::by_name(&mut tx, &cfg.operator_org).await.map_err(|e| e.to_string())?.is_some() {
        return Err(format!("an organization named '{}' exists and cannot become the operator organization", cfg.operator_org));
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
        Some(orgs::NewAdmin { username: &cfg.operator_admin, email: None, firstname: None, surname: None }),
        Some((plain.clone(), hash)),
    )
    .await
    .map_err(|e| match e {
        orgs::CreateError::Db(e) => format!("creating the operator organization: {e}"),
        orgs::CreateError::MachineUser => "the operator admin username belongs to a machine user".into(),
    })?;
    // Under the creation lock: absent, as read above.
    settings::insert_if_absent_in(&mut tx, "operator_org", &cfg.operator_org).await.map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    if let Some(pw) = created.admin_pw {
        let path = cfg.data_dir.join("initial-admin-password");
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| e.to_string())?;
        if !crate::util::write_secret_file(&path, &format!("{pw}\n")).map_err(|e| format!("{}: {e}", path.display()))? {
            std::fs::write(&path, format!("{pw}\n")).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        tracing::info!(org = %cfg.operator_org, user = %cfg.operator_admin, path = %path.display(), "operator organization created; initial admin password written to file");
    }
    Ok(version)
}
