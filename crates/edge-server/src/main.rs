//! The `rockit-edge` binary: `serve` and `admin-token`.

use clap::{Parser, Subcommand};
use edge_server::config::{Config, Role};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "rockit-edge", version, about = "ROCKIT Edge game-delivery server")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Common {
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (SQLite file, depot, generated secrets).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the server.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Listen address.
        #[arg(long)]
        listen: Option<String>,
        /// api, worker or all.
        #[arg(long)]
        role: Option<Role>,
    },
    /// Prints an admin token for the configured secret.
    AdminToken {
        #[command(flatten)]
        common: Common,
        /// The operator name recorded in the audit log.
        #[arg(long)]
        username: String,
        /// How long the token is valid: seconds, or with a unit (`90m`, `12h`, `30d`).
        /// To revoke every admin token at once, rotate the admin secret.
        #[arg(long, default_value = "24h", value_parser = parse_ttl)]
        ttl: u64,
    },
}

/// `3600`, `90m`, `12h`, `30d` → seconds (at least one).
fn parse_ttl(v: &str) -> Result<u64, String> {
    let (num, unit) = match v.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&v[..i], &v[i..]),
        None => (v, "s"),
    };
    let n: u64 =
        num.parse().map_err(|_| format!("'{v}' is not a duration (e.g. 3600, 90m, 12h, 30d)"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{v}': the unit is s, m, h or d")),
    };
    match n.checked_mul(mult) {
        Some(0) => Err("--ttl must be at least one second".into()),
        Some(s) if s <= 100 * 365 * 86_400 => Ok(s),
        _ => Err(format!("'{v}' is too long")),
    }
}

fn load(common: &Common) -> Config {
    let mut cfg = match Config::load(common.config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => fail(e),
    };
    if let Some(d) = &common.data_dir {
        cfg.data_dir = d.clone();
    }
    cfg
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("rockit-edge: {msg}");
    std::process::exit(2)
}

/// Logs on stderr: JSON lines for log collectors, or text for people. `auto` (the default)
/// chooses text when stderr is a terminal (a first run by hand, where the lines about the
/// generated secrets and the initial admin must be readable) and JSON otherwise.
fn init_logs(format: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDGE_LOG")
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    let tty = std::io::stderr().is_terminal();
    let json = match format {
        "text" => false,
        "json" => true,
        _ => !tty,
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(tty);
    if json {
        b.json().flatten_event(true).with_span_list(false).init();
    } else {
        b.init();
    }
}

fn main() {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve { common, listen, role } => {
            let mut cfg = load(&common);
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(r) = role {
                cfg.role = r;
            }
            init_logs(&cfg.log_format);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| fail(e));
            rt.block_on(async move {
                let running = edge_server::server::start(cfg).await.unwrap_or_else(|e| fail(e));
                let stop = running.stop_signal();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    tracing::info!("shutting down: finishing work in hand");
                    let _ = stop.send(true);
                });
                running.wait().await;
            });
        }
        Cmd::AdminToken { common, username, ttl } => {
            let cfg = load(&common);
            if !edge_server::names::valid_name(&username) && username.is_empty() {
                fail("--username must not be empty");
            }
            let key = edge_server::server::admin_secret(&cfg).unwrap_or_else(|e| fail(e));
            let now = edge_server::util::now_ms() / 1000;
            let claims =
                serde_json::json!({"username": username, "iat": now, "exp": now + ttl as i64});
            println!("{}", edge_server::crypto::jwt_sign(&claims, &key));
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
