//! Shared server state: configuration, database, keys, and small caches.

use crate::config::Config;
use crate::crypto::{DataKey, Secret};
use crate::db::Db;
use crate::error::ApiResult;
use crate::http::auth::Caller;
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
    pub operator_org_id: String,
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
        operator_org_id: String,
        enrollment: (String, i64),
    ) -> Self {
        let m = Maintenance { enabled: cfg.maintenance, retry_after: cfg.maintenance_retry_after, since: 0 };
        AppState {
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
        }
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
        let m = match crate::store::settings::get(&self.db, "maintenance").await {
            Ok(Some(v)) => serde_json::from_str::<serde_json::Value>(&v)
                .ok()
                .map(|v| Maintenance {
                    enabled: v["enabled"].as_bool().unwrap_or(false),
                    retry_after: v["retryAfter"].as_u64().unwrap_or(self.cfg.maintenance_retry_after),
                    since: v["since"].as_i64().unwrap_or(0),
                })
                .unwrap_or(Maintenance { enabled: false, retry_after: self.cfg.maintenance_retry_after, since: 0 }),
            _ => Maintenance { enabled: false, retry_after: self.cfg.maintenance_retry_after, since: 0 },
        };
        if let Ok(mut c) = self.maintenance_cache.lock() {
            *c = (m, Some(Instant::now()));
        }
        m
    }

    /// Stores a new maintenance setting and refreshes the cache.
    pub async fn set_maintenance(&self, enabled: bool, retry_after: u64) -> ApiResult<Maintenance> {
        let prev = self.maintenance().await;
        let since = if enabled {
            if prev.enabled {
                prev.since
            } else {
                crate::util::now_ms()
            }
        } else {
            0
        };
        let m = Maintenance { enabled, retry_after, since };
        let v = serde_json::json!({"enabled": enabled, "retryAfter": retry_after, "since": since});
        crate::store::settings::put(&self.db, "maintenance", &v.to_string()).await?;
        if let Ok(mut c) = self.maintenance_cache.lock() {
            *c = (m, Some(Instant::now()));
        }
        Ok(m)
    }
}
