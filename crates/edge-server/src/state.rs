//! Shared server state: configuration, database, keys, and small caches.

use crate::caller::Caller;
use crate::config::Config;
use crate::crypto::{DataKey, Secret};
use crate::db::Db;
use crate::depot::DepotError;
use crate::error::{About, AboutExt, ApiResult};
use crate::ids::OrgId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// The server's maintenance-mode setting, cached briefly (it lives in the database so
/// every process agrees).
#[derive(Debug, Clone, Copy)]
pub struct Maintenance {
    /// On or off.
    pub enabled: bool,
    /// `Retry-After` in seconds.
    pub retry_after: u64,
    /// When it was switched on (epoch ms), for extending upload expiries.
    pub since: i64,
}

/// Why the state cannot be assembled (start-up prints it).
#[derive(Debug)]
pub enum StateError {
    /// The depot's settings.
    Depot(DepotError),
    /// The instance id file cannot be read or written: `<path>: <why>`.
    InstanceFile(About<std::io::Error>),
    /// The instance id file holds something else.
    NotAnInstanceId(std::path::PathBuf),
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::Depot(e) => e.fmt(f),
            StateError::InstanceFile(e) => e.fmt(f),
            StateError::NotAnInstanceId(p) => write!(
                f,
                "{} does not hold an instance id; delete it to make a new one",
                p.display()
            ),
        }
    }
}

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StateError::Depot(e) => Some(e),
            StateError::InstanceFile(e) => Some(e),
            StateError::NotAnInstanceId(_) => None,
        }
    }
}

/// Everything a handler or worker needs.
pub struct AppState {
    /// Validated configuration.
    pub cfg: Config,
    /// Database pool.
    pub db: Db,
    /// Key for secrets at rest.
    pub data_key: DataKey,
    /// Raw bytes of the admin-token secret.
    pub admin_key: Secret<Vec<u8>>,
    /// Base URL clients reach this server at.
    pub public_url: String,
    /// Id of the operator organization.
    pub operator_org_id: OrgId,
    /// Instance enrollment rid for the Foundry API.
    pub enrollment_rid: String,
    /// When the enrollment was created (epoch ms).
    pub enrollment_created: i64,
    maintenance_cache: Mutex<(Maintenance, Option<Instant>)>,
    /// Authentication results by credential hash: (caller, write epoch, valid until ms).
    /// Only with SQLite, where this process is the only writer, so the write epoch (moved
    /// by every committed write transaction) invalidates entries exactly.
    auth_cache: Mutex<HashMap<String, (Caller, u64, i64)>>,
    /// Read results (the apps list) by key, under the same rule as `auth_cache`.
    read_cache: Mutex<HashMap<String, (serde_json::Value, u64, i64)>>,
    /// A dummy Argon2 hash checked when a username does not exist, so both failures
    /// take the same time.
    pub dummy_hash: String,
    /// This process's instance id (kept in the data directory, so the same across
    /// restarts): what its upload claims are named by.
    pub instance: String,
    /// Argon2 work, off the runtime and bounded (`password_hash_concurrency`).
    pub passwords: crate::passwords::Passwords,
    /// Prometheus metrics of this server.
    pub metrics: crate::metrics::Metrics,
    /// Working data and the published copy (the data directory, or an S3 bucket).
    pub depot: crate::depot::Depot,
    /// Permits for decoding and parsing traces (`trace_intake_concurrency`): bounds the
    /// memory trace uploads take together.
    pub trace_intake: std::sync::Arc<tokio::sync::Semaphore>,
    /// Wakes the settling thread when a task ended.
    pub settle: crate::util::Wake,
}

impl AppState {
    /// Assembles the state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: Config,
        db: Db,
        data_key: DataKey,
        admin_key: Vec<u8>,
        public_url: String,
        operator_org_id: OrgId,
        enrollment: (String, i64),
    ) -> Result<Self, StateError> {
        let depot = crate::depot::Depot::new(&cfg).map_err(StateError::Depot)?;
        let passwords = crate::passwords::Passwords::new(cfg.password_hash_concurrency);
        let instance = instance_id(&cfg.data_dir)?;
        let m = Maintenance {
            enabled: cfg.maintenance,
            retry_after: cfg.maintenance_retry_after,
            since: 0,
        };
        let trace_intake = std::sync::Arc::new(tokio::sync::Semaphore::new(
            cfg.trace_intake_concurrency.min(tokio::sync::Semaphore::MAX_PERMITS),
        ));
        Ok(AppState {
            depot,
            cfg,
            db,
            data_key,
            admin_key: Secret(admin_key),
            public_url,
            operator_org_id,
            enrollment_rid: enrollment.0,
            enrollment_created: enrollment.1,
            maintenance_cache: Mutex::new((m, None)),
            auth_cache: Mutex::new(HashMap::new()),
            read_cache: Mutex::new(HashMap::new()),
            dummy_hash: crate::crypto::hash_password("not a real password, only for timing"),
            passwords,
            settle: crate::util::Wake::default(),
            instance,
            metrics: crate::metrics::Metrics::new(),
            trace_intake,
        })
    }

    /// A cached caller, if still valid at write epoch `epoch`.
    pub fn auth_cache_get(&self, key: &str, epoch: u64) -> Option<Caller> {
        if self.db.backend != crate::db::Backend::Sqlite {
            return None;
        }
        let now = crate::util::now_ms();
        let c = self.auth_cache.lock().ok()?;
        c.get(key).filter(|(_, e, until)| *e == epoch && *until > now).map(|(c, _, _)| c.clone())
    }

    /// Caches a caller resolved at write epoch `epoch` (for at most 5 s, and never past its
    /// credential's expiry).
    pub fn auth_cache_put(&self, key: String, caller: &Caller, epoch: u64, valid_until: i64) {
        if self.db.backend != crate::db::Backend::Sqlite {
            return;
        }
        if let Ok(mut c) = self.auth_cache.lock() {
            if c.len() >= 10_000 {
                c.clear();
            }
            c.insert(key, (caller.clone(), epoch, valid_until.min(crate::util::now_ms() + 5_000)));
        }
    }

    /// A cached read result, valid while no write committed since (SQLite only, 5 s at most).
    pub fn read_cache_get(&self, key: &str, epoch: u64) -> Option<serde_json::Value> {
        if self.db.backend != crate::db::Backend::Sqlite {
            return None;
        }
        let now = crate::util::now_ms();
        let c = self.read_cache.lock().ok()?;
        c.get(key).filter(|(_, e, until)| *e == epoch && *until > now).map(|(v, _, _)| v.clone())
    }

    /// Caches a read result computed at write epoch `epoch`.
    pub fn read_cache_put(&self, key: String, v: &serde_json::Value, epoch: u64) {
        if self.db.backend != crate::db::Backend::Sqlite {
            return;
        }
        if let Ok(mut c) = self.read_cache.lock() {
            if c.len() >= 1_000 {
                c.clear();
            }
            c.insert(key, (v.clone(), epoch, crate::util::now_ms() + 5_000));
        }
    }

    /// The current maintenance setting (cached for one second).
    pub async fn maintenance(&self) -> Maintenance {
        if let Ok(c) = self.maintenance_cache.lock() {
            if c.1.is_some_and(|t| t.elapsed().as_millis() < 1000) {
                return c.0;
            }
        }
        self.maintenance_fresh().await
    }

    /// The maintenance setting as the database has it now (refreshes the cache).
    pub async fn maintenance_fresh(&self) -> Maintenance {
        let m = match crate::store::settings::get(&self.db, "maintenance").await {
            Ok(Some(v)) => self.parse_maintenance(&v),
            _ => self.maintenance_off(),
        };
        if let Ok(mut c) = self.maintenance_cache.lock() {
            *c = (m, Some(Instant::now()));
        }
        m
    }

    fn maintenance_off(&self) -> Maintenance {
        Maintenance { enabled: false, retry_after: self.cfg.maintenance_retry_after, since: 0 }
    }

    fn parse_maintenance(&self, text: &str) -> Maintenance {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .map(|v| Maintenance {
                enabled: v["enabled"].as_bool().unwrap_or(false),
                retry_after: v["retryAfter"].as_u64().unwrap_or(self.cfg.maintenance_retry_after),
                since: v["since"].as_i64().unwrap_or(0),
            })
            .unwrap_or_else(|| self.maintenance_off())
    }

    /// Stores a new maintenance setting and refreshes the cache. Ending maintenance
    /// extends the expiry of every pending upload by its length (admin.md), in the same
    /// transaction, exactly once even when several processes end it at the same time.
    pub async fn set_maintenance(&self, enabled: bool, retry_after: u64) -> ApiResult<Maintenance> {
        Ok(self.write_maintenance(enabled, retry_after, false).await?)
    }

    /// At start-up: a configured maintenance wins over what the database remembers (and
    /// keeps its start time when it was on already); a start without it ends a maintenance
    /// that a configuration started (an API-started one stays until the API ends it).
    pub async fn maintenance_at_start(&self) -> Result<(), sqlx::Error> {
        if self.cfg.maintenance {
            self.write_maintenance(true, self.cfg.maintenance_retry_after, true).await?;
            return Ok(());
        }
        let stored = crate::store::settings::get(&self.db, "maintenance").await?;
        let v: serde_json::Value =
            stored.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
        if v["enabled"] == true && v["byConfig"] == true {
            let m = self
                .write_maintenance(false, self.parse_maintenance(&v.to_string()).retry_after, false)
                .await?;
            tracing::info!(
                enabled = m.enabled,
                "maintenance started by configuration ended: this process starts without it"
            );
        }
        Ok(())
    }

    async fn write_maintenance(
        &self,
        enabled: bool,
        retry_after: u64,
        by_config: bool,
    ) -> Result<Maintenance, sqlx::Error> {
        for _ in 0..50 {
            let mut tx = self.db.tx().await?;
            let old = crate::store::settings::get_in(&mut tx, "maintenance").await?;
            let prev = old
                .as_deref()
                .map(|t| self.parse_maintenance(t))
                .unwrap_or_else(|| self.maintenance_off());
            let now = crate::util::now_ms();
            let since = match (enabled, prev.enabled && prev.since > 0) {
                (true, true) => prev.since,
                (true, false) => now,
                (false, _) => 0,
            };
            let m = Maintenance { enabled, retry_after, since };
            let mut v =
                serde_json::json!({"enabled": enabled, "retryAfter": retry_after, "since": since});
            if by_config && enabled {
                v["byConfig"] = serde_json::json!(true);
            }
            let written = match &old {
                Some(o) => {
                    crate::store::settings::compare_and_set_in(
                        &mut tx,
                        "maintenance",
                        o,
                        &v.to_string(),
                    )
                    .await?
                }
                None => {
                    crate::store::settings::insert_if_absent_in(
                        &mut tx,
                        "maintenance",
                        &v.to_string(),
                    )
                    .await?
                }
            };
            if !written {
                // Another process changed it in between: read again.
                drop(tx);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
            if prev.enabled && !enabled && prev.since > 0 {
                let by = (now - prev.since).max(0);
                let n = crate::store::uploads::extend_pending(&mut tx, by).await?;
                tracing::info!(
                    maintenance_ms = by,
                    uploads = n,
                    "maintenance ended; pending upload expiries extended by its length"
                );
            }
            tx.commit().await?;
            if let Ok(mut c) = self.maintenance_cache.lock() {
                *c = (m, Some(Instant::now()));
            }
            return Ok(m);
        }
        Err(sqlx::Error::Protocol("the maintenance setting kept changing concurrently".into()))
    }
}

/// The instance id in `data_dir/instance-id`, made at the first start.
fn instance_id(data_dir: &std::path::Path) -> Result<String, StateError> {
    let path = data_dir.join("instance-id");
    let about = || path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(s) if crate::names::valid_name(s.trim()) => return Ok(s.trim().to_string()),
        Ok(_) => return Err(StateError::NotAnInstanceId(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StateError::InstanceFile(About::new(about(), e))),
    }
    let id = crate::util::new_id("i");
    std::fs::write(&path, format!("{id}\n")).about(about).map_err(StateError::InstanceFile)?;
    Ok(id)
}
