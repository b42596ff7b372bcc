//! Start-up: data directory, generated secrets, database, initialization, listener,
//! worker loop, graceful shutdown.

use crate::config::{Config, ConfigError, Role};
use crate::crypto::DataKey;
use crate::db::Db;
use crate::domain::instance::InitError;
use crate::error::{from_causes, About, AboutExt};
use crate::state::{AppState, StateError};
use crate::store::{orgs, settings};
use crate::util::{b64, b64_decode, random_bytes};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;

/// Why the server cannot start; `rockit-edge serve` prints it as it is.
#[derive(Debug)]
pub enum StartError {
    /// The configuration, or a secret it names, cannot be used.
    Config(ConfigError),
    /// A file, directory or socket (named when the message names it).
    Io(About<std::io::Error>),
    /// The database (what was being done, when the message names it).
    Db(About<sqlx::Error>),
    /// Initializing the instance failed.
    Init(InitError),
    /// The shared state cannot be assembled.
    State(StateError),
    /// Initialization left no operator organization.
    NoOperator,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => e.fmt(f),
            StartError::Io(e) => e.fmt(f),
            StartError::Db(e) => e.fmt(f),
            StartError::Init(e) => e.fmt(f),
            StartError::State(e) => e.fmt(f),
            StartError::NoOperator => f.write_str("operator organization missing"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Config(e) => Some(e),
            StartError::Io(e) => Some(e),
            StartError::Db(e) => Some(e),
            StartError::Init(e) => Some(e),
            StartError::State(e) => Some(e),
            StartError::NoOperator => None,
        }
    }
}

from_causes!(StartError {
    ConfigError => Config,
    About<std::io::Error> => Io,
    std::io::Error => Io,
    About<sqlx::Error> => Db,
    sqlx::Error => Db,
});

/// A started server: its address and state, and the handles to stop it.
pub struct Running {
    /// The bound address (the real port when listening on port 0).
    pub addr: SocketAddr,
    /// Shared state.
    pub state: Arc<AppState>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops taking work and requests, drains what is in flight, and returns when done.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
    /// Waits until the server stops by itself (it normally runs until shut down).
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
    /// A receiver that flips to true at shutdown.
    pub fn stop_signal(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// Makes `path` readable by its owner only, creating it empty if missing: the embedded
/// database holds password hashes and sealed secrets (SQLite gives its WAL and shared
/// memory files the database file's mode).
fn private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        for p in [path.to_path_buf(), path.with_extension("db-wal"), path.with_extension("db-shm")]
        {
            if p.exists() {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    #[cfg(not(unix))]
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(path)?;
    Ok(())
}

/// A secret from configuration (base64), or from a file in the data directory, generated
/// on first use. Never logged; only its file's location is.
fn load_secret(
    configured: &Option<String>,
    data_dir: &Path,
    file: &str,
    what: &str,
    exact: Option<usize>,
) -> Result<Vec<u8>, StartError> {
    let check = |bytes: Vec<u8>, src: &str| -> Result<Vec<u8>, StartError> {
        match exact {
            Some(n) if bytes.len() != n => {
                Err(ConfigError::from(format!("{what} from {src} must be exactly {n} bytes"))
                    .into())
            }
            None if bytes.len() < 32 => {
                Err(ConfigError::from(format!("{what} from {src} is shorter than 32 bytes")).into())
            }
            _ => Ok(bytes),
        }
    };
    if let Some(v) = configured {
        let bytes =
            b64_decode(v).ok_or_else(|| ConfigError::from(format!("{what}: not valid base64")))?;
        return check(bytes, "configuration");
    }
    let path = data_dir.join(file);
    let about = || format!("{what} file {}", path.display());
    if crate::util::write_secret_file(&path, &b64(&random_bytes(32))).about(about)? {
        tracing::info!(path = %path.display(), "generated {what}");
    }
    let text = std::fs::read_to_string(&path).about(about)?;
    let bytes = b64_decode(text.trim()).ok_or_else(|| {
        ConfigError::from(format!("{what} file {} is not base64", path.display()))
    })?;
    check(bytes, &path.display().to_string())
}

/// `data directory <path>`, what the messages about it say.
fn data_dir_about(cfg: &Config) -> impl Fn() -> String + '_ {
    || format!("data directory {}", cfg.data_dir.display())
}

/// Reads the admin-token secret the way `serve` does (for `rockit-edge admin-token`).
pub fn admin_secret(cfg: &Config) -> Result<Vec<u8>, StartError> {
    std::fs::create_dir_all(&cfg.data_dir).about(data_dir_about(cfg))?;
    load_secret(&cfg.admin_secret_b64, &cfg.data_dir, "admin-secret", "admin secret", None)
}

/// Starts everything the configured role runs and returns once the listener is bound.
pub async fn start(mut cfg: Config) -> Result<Running, StartError> {
    cfg.validate()?;
    std::fs::create_dir_all(&cfg.data_dir).about(data_dir_about(&cfg))?;
    // Paths are taken as given at start (`--data-dir ./data`) and held absolute from then on:
    // origins and the depot refuse relative roots.
    cfg.data_dir = std::path::absolute(&cfg.data_dir).about(data_dir_about(&cfg))?;
    if let Some(root) = &cfg.fs_origin_root {
        cfg.fs_origin_root =
            Some(std::path::absolute(root).about(|| format!("fs_origin_root {}", root.display()))?);
    }
    let url = cfg.database_url();
    if url.starts_with("postgres") && (cfg.admin_secret_b64.is_none() || cfg.data_key_b64.is_none())
    {
        return Err(
            ConfigError::from("with PostgreSQL, admin_secret_b64 and data_key_b64 must be configured (every process shares them)").into()
        );
    }
    let admin_key =
        load_secret(&cfg.admin_secret_b64, &cfg.data_dir, "admin-secret", "admin secret", None)?;
    let dk = load_secret(&cfg.data_key_b64, &cfg.data_dir, "data-key", "data key", Some(32))?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&dk);
    if cfg.database_url.is_none() {
        private_file(&cfg.data_dir.join("edge.db")).about(|| "database file")?;
    }
    let db = Db::connect(&url).await.about(|| "database")?;
    crate::domain::instance::initialize(&db, &cfg).await.map_err(StartError::Init)?;
    let operator_org_id = {
        let mut c = db.conn().await?;
        orgs::by_name(&mut c, &cfg.operator_org).await?.ok_or(StartError::NoOperator)?.id
    };
    let rid = match &cfg.enrollment_rid {
        Some(r) => r.clone(),
        None => {
            settings::get_or_init(
                &db,
                "enrollment_rid",
                &format!("ri.control-panel.main.customer.{}", crate::util::new_uuid()),
            )
            .await?
        }
    };
    let enrolled: i64 =
        settings::get_or_init(&db, "enrollment_created", &crate::util::now_ms().to_string())
            .await?
            .parse()
            .unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .about(|| format!("listen {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let public_url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_string();
    let role = cfg.role;
    let metrics_listener = match &cfg.metrics_listen {
        Some(a) => {
            Some(tokio::net::TcpListener::bind(a).await.about(|| format!("metrics_listen {a}"))?)
        }
        None => None,
    };
    let state = Arc::new(
        AppState::new(
            cfg,
            db,
            DataKey::new(key),
            admin_key,
            public_url,
            operator_org_id,
            (rid, enrolled),
        )
        .map_err(StartError::State)?,
    );
    if let Err(e) = state.depot.ready().await {
        // Not fatal: the store may come up after us; /readyz reports it until it does.
        tracing::warn!(error = %e, "the depot does not answer");
    }
    state.maintenance_at_start().await.about(|| "maintenance setting")?;
    // Uploads this instance was receiving when it stopped can be sent again at once.
    let reset =
        crate::store::uploads::reset_dead_claims(&mut *state.db.conn().await?, &state.instance)
            .await
            .about(|| "upload claims")?;
    if reset > 0 {
        tracing::info!(uploads = reset, "uploads cut off by the last stop can be sent again");
    }
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    if role != Role::Api {
        tasks.push(tokio::spawn(crate::db::scope(crate::worker::run(
            state.clone(),
            stop_rx.clone(),
        ))));
        tasks.push(tokio::spawn(crate::db::scope(crate::worker::run_sweeper(
            state.clone(),
            stop_rx.clone(),
        ))));
        tasks.push(tokio::spawn(crate::db::scope(crate::delivery::dispatch::run(
            state.clone(),
            stop_rx.clone(),
        ))));
        tasks.extend(crate::settle::spawn(state.clone(), stop_rx.clone()));
    }
    if let Some(l) = metrics_listener {
        let maddr = l.local_addr()?;
        tracing::info!(addr = %maddr, "metrics listening");
        tasks.push(tokio::spawn(serve_until(
            l,
            crate::http::metrics_router(state.clone()),
            stop_rx.clone(),
        )));
    }
    let app = if role == Role::Worker {
        crate::http::health_router(state.clone())
    } else {
        crate::http::router_with(state.clone(), crate::console::router(state.clone()))
    };
    tasks.push(tokio::spawn(serve_until(listener, app, stop_rx.clone())));
    tracing::info!(%addr, ?role, "rockit-edge listening");
    Ok(Running { addr, state, stop, tasks })
}

/// Serves `app` on `listener` until `rx` flips to true, then drains.
async fn serve_until(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    mut rx: watch::Receiver<bool>,
) {
    let svc = app.into_make_service_with_connect_info::<SocketAddr>();
    let shutdown = async move {
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                break;
            }
        }
    };
    if let Err(e) = axum::serve(listener, svc).with_graceful_shutdown(shutdown).await {
        tracing::error!(error = %e, "server stopped with an error");
    }
}
