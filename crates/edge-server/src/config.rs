//! Configuration: defaults → optional TOML file → `EDGE_*` environment → command-line flags.
//! Every key of [`Config`] can be set in the file under its name and in the environment
//! as `EDGE_<NAME>` (upper case). Validated once at start-up with clear messages.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A configuration that cannot be used. The message is the product: `rockit-edge serve`
/// prints it as it is, and it names the key and what it must be. It derefs to the text,
/// so checks like `err.contains("depot_s3_prefix")` read it directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl From<String> for ConfigError {
    fn from(message: String) -> Self {
        ConfigError(message)
    }
}

impl From<&str> for ConfigError {
    fn from(message: &str) -> Self {
        ConfigError(message.to_string())
    }
}

impl std::ops::Deref for ConfigError {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// Which parts of the server a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// HTTP API only.
    Api,
    /// Task workers only.
    Worker,
    /// Both (the default).
    All,
}

impl std::str::FromStr for Role {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "api" => Ok(Role::Api),
            "worker" => Ok(Role::Worker),
            "all" => Ok(Role::All),
            _ => Err(format!("role must be api, worker or all, not '{s}'").into()),
        }
    }
}

/// The required settings of an S3 depot, present (see [`Config::depot_s3`]).
pub struct DepotS3 {
    /// `depot_s3_endpoint`.
    pub endpoint: String,
    /// `depot_s3_access_key_id`.
    pub access_key_id: String,
    /// `depot_s3_secret_access_key`.
    pub secret_access_key: String,
}

/// The whole server configuration. See `config.example.toml` for every key, commented.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub public_url: Option<String>,
    pub admin_secret_b64: Option<String>,
    pub data_key_b64: Option<String>,
    pub fs_origin_root: Option<PathBuf>,
    pub allow_private_sources: bool,
    pub slack_api_base: String,
    pub maintenance: bool,
    pub maintenance_retry_after: u64,
    pub operator_org: String,
    pub operator_admin: String,
    pub role: Role,
    pub json_body_limit: usize,
    pub orgsel_ttl: u64,
    pub access_ttl: u64,
    pub refresh_ttl: u64,
    pub refresh_grace_seconds: u64,
    pub login_max_failures_user: u32,
    pub login_max_failures_addr: u32,
    pub login_window: u64,
    pub password_hash_concurrency: usize,
    pub trusted_proxies: Vec<String>,
    pub enrollment_name: String,
    pub enrollment_rid: Option<String>,
    /// `auto` (the default: human-readable text when stderr is a terminal, JSON lines
    /// otherwise), `json` or `text`.
    pub log_format: String,
    pub task_lease_seconds: u64,
    pub worker_poll_ms: u64,
    /// A running task's progress is written to its row when it moved by a hundredth or its
    /// note changed, at most this often (milliseconds).
    pub progress_interval_ms: u64,
    pub metrics_listen: Option<String>,
    pub download_idle_timeout: u64,
    pub upload_max_bytes: u64,
    pub upload_ttl: u64,
    pub upload_lease_seconds: u64,
    pub grace_period: u64,
    pub sweep_interval: u64,
    pub webhook_backoff_ms: Vec<u64>,
    pub webhook_timeout_ms: u64,
    pub session_rate_per_minute: u32,
    pub max_traces: u64,
    pub trace_intake_concurrency: usize,
    pub mkseq_seconds: u64,
    pub mkseq_min_gain: f64,
    pub chunk_avg_bytes: u32,
    pub zstd_level: i32,
    /// Level the settling thread compresses stored chunks at again when the machine has
    /// time (0: never; see `crate::settle`).
    pub settle_level: i32,
    /// Settle only while the rest of the machine leaves at least this share of its CPU
    /// time unused (percent; 0: whatever the load).
    pub settle_idle_percent: u32,
    pub pack_limit_bytes: u64,
    pub ingest_during_upload: bool,
    pub depot_s3_endpoint: Option<String>,
    pub depot_s3_bucket: Option<String>,
    pub depot_s3_region: String,
    pub depot_s3_prefix: String,
    pub depot_s3_access_key_id: Option<String>,
    pub depot_s3_secret_access_key: Option<String>,
    pub depot_s3_path_style: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            public_url: None,
            admin_secret_b64: None,
            data_key_b64: None,
            fs_origin_root: None,
            allow_private_sources: false,
            slack_api_base: "https://slack.com/api".into(),
            maintenance: false,
            maintenance_retry_after: 900,
            operator_org: "operator".into(),
            operator_admin: "admin".into(),
            role: Role::All,
            json_body_limit: 1 << 20,
            orgsel_ttl: 900,
            access_ttl: 900,
            refresh_ttl: 86_400,
            refresh_grace_seconds: 10,
            login_max_failures_user: 10,
            login_max_failures_addr: 50,
            login_window: 900,
            password_hash_concurrency: 0,
            trusted_proxies: Vec::new(),
            enrollment_name: "rockit-edge".into(),
            enrollment_rid: None,
            log_format: "auto".into(),
            task_lease_seconds: 60,
            worker_poll_ms: 500,
            progress_interval_ms: 500,
            metrics_listen: None,
            download_idle_timeout: 60,
            upload_max_bytes: 256 << 30,
            upload_ttl: 86_400,
            upload_lease_seconds: 30,
            grace_period: 86_400,
            sweep_interval: 3600,
            webhook_backoff_ms: vec![
                5_000, 30_000, 120_000, 600_000, 3_600_000, 10_800_000, 21_600_000, 43_200_000,
            ],
            webhook_timeout_ms: 10_000,
            session_rate_per_minute: 60,
            max_traces: 1000,
            trace_intake_concurrency: 2,
            mkseq_seconds: 30,
            mkseq_min_gain: 0.05,
            chunk_avg_bytes: 256 << 10,
            zstd_level: 3,
            settle_level: 19,
            settle_idle_percent: 50,
            pack_limit_bytes: 64 << 20,
            ingest_during_upload: true,
            depot_s3_endpoint: None,
            depot_s3_bucket: None,
            depot_s3_region: "us-east-1".into(),
            depot_s3_prefix: String::new(),
            depot_s3_access_key_id: None,
            depot_s3_secret_access_key: None,
            depot_s3_path_style: false,
        }
    }
}

fn parse_env<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ConfigError> {
    v.parse().map_err(|_| format!("EDGE_{}: cannot parse '{v}'", key.to_uppercase()).into())
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("EDGE_{}: expected true or false, not '{v}'", key.to_uppercase()).into()),
    }
}

impl Config {
    /// Loads the file (when given) over the defaults, then applies `vars` (the process
    /// environment in production; tests pass their own).
    pub fn load(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut c: Config = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("config file {}: {e}", p.display()))?;
                toml::from_str(&text).map_err(|e| format!("config file {}: {e}", p.display()))?
            }
            None => Config::default(),
        };
        for (k, v) in vars {
            let Some(key) = k.strip_prefix("EDGE_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            c.set(&key, &v)?;
        }
        Ok(c)
    }

    /// Sets one key from its text form (environment variables).
    fn set(&mut self, key: &str, v: &str) -> Result<(), ConfigError> {
        let opt = |v: &str| {
            if v.is_empty() {
                None
            } else {
                Some(v.to_string())
            }
        };
        match key {
            "listen" => self.listen = v.into(),
            "data_dir" => self.data_dir = v.into(),
            "database_url" => self.database_url = opt(v),
            "public_url" => self.public_url = opt(v),
            "admin_secret_b64" => self.admin_secret_b64 = opt(v),
            "data_key_b64" => self.data_key_b64 = opt(v),
            "fs_origin_root" => self.fs_origin_root = opt(v).map(PathBuf::from),
            "allow_private_sources" => self.allow_private_sources = parse_bool(key, v)?,
            "slack_api_base" => self.slack_api_base = v.into(),
            "maintenance" => self.maintenance = parse_bool(key, v)?,
            "maintenance_retry_after" => self.maintenance_retry_after = parse_env(key, v)?,
            "operator_org" => self.operator_org = v.into(),
            "operator_admin" => self.operator_admin = v.into(),
            "role" => self.role = v.parse()?,
            "json_body_limit" => self.json_body_limit = parse_env(key, v)?,
            "orgsel_ttl" => self.orgsel_ttl = parse_env(key, v)?,
            "access_ttl" => self.access_ttl = parse_env(key, v)?,
            "refresh_ttl" => self.refresh_ttl = parse_env(key, v)?,
            "refresh_grace_seconds" => self.refresh_grace_seconds = parse_env(key, v)?,
            "login_max_failures_user" => self.login_max_failures_user = parse_env(key, v)?,
            "login_max_failures_addr" => self.login_max_failures_addr = parse_env(key, v)?,
            "login_window" => self.login_window = parse_env(key, v)?,
            "password_hash_concurrency" => self.password_hash_concurrency = parse_env(key, v)?,
            "trusted_proxies" => {
                self.trusted_proxies = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "enrollment_name" => self.enrollment_name = v.into(),
            "enrollment_rid" => self.enrollment_rid = opt(v),
            "log_format" => self.log_format = v.into(),
            "task_lease_seconds" => self.task_lease_seconds = parse_env(key, v)?,
            "worker_poll_ms" => self.worker_poll_ms = parse_env(key, v)?,
            "progress_interval_ms" => self.progress_interval_ms = parse_env(key, v)?,
            "metrics_listen" => self.metrics_listen = opt(v),
            "download_idle_timeout" => self.download_idle_timeout = parse_env(key, v)?,
            "upload_max_bytes" => self.upload_max_bytes = parse_env(key, v)?,
            "upload_ttl" => self.upload_ttl = parse_env(key, v)?,
            "upload_lease_seconds" => self.upload_lease_seconds = parse_env(key, v)?,
            "grace_period" => self.grace_period = parse_env(key, v)?,
            "sweep_interval" => self.sweep_interval = parse_env(key, v)?,
            "webhook_backoff_ms" => {
                self.webhook_backoff_ms =
                    v.split(',').map(|x| parse_env(key, x.trim())).collect::<Result<_, _>>()?;
            }
            "webhook_timeout_ms" => self.webhook_timeout_ms = parse_env(key, v)?,
            "session_rate_per_minute" => self.session_rate_per_minute = parse_env(key, v)?,
            "max_traces" => self.max_traces = parse_env(key, v)?,
            "trace_intake_concurrency" => self.trace_intake_concurrency = parse_env(key, v)?,
            "mkseq_seconds" => self.mkseq_seconds = parse_env(key, v)?,
            "mkseq_min_gain" => self.mkseq_min_gain = parse_env(key, v)?,
            "chunk_avg_bytes" => self.chunk_avg_bytes = parse_env(key, v)?,
            "zstd_level" => self.zstd_level = parse_env(key, v)?,
            "settle_level" => self.settle_level = parse_env(key, v)?,
            "settle_idle_percent" => self.settle_idle_percent = parse_env(key, v)?,
            "pack_limit_bytes" => self.pack_limit_bytes = parse_env(key, v)?,
            "ingest_during_upload" => self.ingest_during_upload = parse_bool(key, v)?,
            "depot_s3_endpoint" => self.depot_s3_endpoint = opt(v),
            "depot_s3_bucket" => self.depot_s3_bucket = opt(v),
            "depot_s3_region" => self.depot_s3_region = v.into(),
            "depot_s3_prefix" => self.depot_s3_prefix = v.into(),
            "depot_s3_access_key_id" => self.depot_s3_access_key_id = opt(v),
            "depot_s3_secret_access_key" => self.depot_s3_secret_access_key = opt(v),
            "depot_s3_path_style" => self.depot_s3_path_style = parse_bool(key, v)?,
            // Variables of other tools may share the prefix (EDGE_TEST_…); they are not ours.
            _ => {}
        }
        Ok(())
    }

    /// Checks cross-field rules after all sources are applied.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !crate::names::valid_name(&self.operator_org) {
            return Err(format!(
                "operator_org '{}' does not match ^[A-Za-z0-9_]{{2,50}}$",
                self.operator_org
            )
            .into());
        }
        if !crate::names::valid_name(&self.operator_admin) {
            return Err(format!(
                "operator_admin '{}' does not match ^[A-Za-z0-9_]{{2,50}}$",
                self.operator_admin
            )
            .into());
        }
        if self.json_body_limit < 1024 {
            return Err("json_body_limit must be at least 1024 bytes".into());
        }
        if !["auto", "json", "text"].contains(&self.log_format.as_str()) {
            return Err(format!(
                "log_format must be auto, json or text, not '{}'",
                self.log_format
            )
            .into());
        }
        if !(16 << 10..=8 << 20).contains(&self.chunk_avg_bytes) {
            return Err("chunk_avg_bytes must be 16 KiB..8 MiB".into());
        }
        if !(0.0..1.0).contains(&self.mkseq_min_gain) {
            return Err("mkseq_min_gain must be 0 ≤ gain < 1".into());
        }
        if !(1..=19).contains(&self.zstd_level) {
            return Err("zstd_level must be 1..19".into());
        }
        if !(0..=19).contains(&self.settle_level) {
            return Err("settle_level must be 0 (off) or 1..19".into());
        }
        if self.settle_idle_percent > 100 {
            return Err("settle_idle_percent must be 0..100".into());
        }
        if self.pack_limit_bytes < u64::from(self.chunk_avg_bytes) * 8 {
            return Err("pack_limit_bytes must hold at least 8 average chunks".into());
        }
        if !(3..=3600).contains(&self.upload_lease_seconds) {
            return Err("upload_lease_seconds must be 3..3600".into());
        }
        if self.password_hash_concurrency > 256 {
            return Err("password_hash_concurrency must be 0 (one per core) .. 256".into());
        }
        if self.task_lease_seconds < 5 {
            return Err("task_lease_seconds must be at least 5".into());
        }
        if !(10..=60_000).contains(&self.progress_interval_ms) {
            return Err("progress_interval_ms must be 10..60000".into());
        }
        if self.trace_intake_concurrency < 1 {
            return Err("trace_intake_concurrency must be at least 1".into());
        }
        self.depot_s3()?;
        Ok(())
    }

    /// The S3 depot's settings, checked: `None` when `depot_s3_bucket` is not set.
    pub fn depot_s3(&self) -> Result<Option<DepotS3>, ConfigError> {
        if self.depot_s3_bucket.is_none() {
            return Ok(None);
        }
        let need = |v: &Option<String>, k: &str| {
            v.clone().ok_or_else(|| {
                ConfigError::from(format!("depot_s3_bucket is set: {k} is required too"))
            })
        };
        let endpoint = need(&self.depot_s3_endpoint, "depot_s3_endpoint")?;
        let access_key_id = need(&self.depot_s3_access_key_id, "depot_s3_access_key_id")?;
        let secret_access_key =
            need(&self.depot_s3_secret_access_key, "depot_s3_secret_access_key")?;
        if !edge_origin::keys::valid_prefix(&self.depot_s3_prefix) {
            return Err(format!(
                "depot_s3_prefix {:?} is not a valid key prefix",
                self.depot_s3_prefix
            )
            .into());
        }
        Ok(Some(DepotS3 { endpoint, access_key_id, secret_access_key }))
    }

    /// The database URL: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("edge.db").display()),
        }
    }
}
