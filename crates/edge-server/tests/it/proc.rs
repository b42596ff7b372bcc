//! A real `rockit-edge serve` child process, for tests that kill it, restart it or
//! measure its memory.

use crate::common::{test_config, Backend, TempDir};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A `rockit-edge serve` child process and its address.
pub struct Proc {
    pub child: Child,
    pub base: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `rockit-edge serve` on `data` (and database `db`, else SQLite in `data`) and waits
/// for it to announce its address.
pub fn spawn(data: &std::path::Path, db: Option<&str>) -> Proc {
    spawn_env(data, db, &[])
}

/// [`spawn`] with extra environment variables (settings as `EDGE_*`).
pub fn spawn_env(data: &std::path::Path, db: Option<&str>, env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rockit-edge"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("EDGE_ADMIN_SECRET_B64", edge_server::util::b64(&[7u8; 32]))
        .env("EDGE_DATA_KEY_B64", edge_server::util::b64(&[9u8; 32]))
        .env("EDGE_TASK_LEASE_SECONDS", "5")
        .env("EDGE_WORKER_POLL_MS", "50")
        .env("EDGE_ALLOW_PRIVATE_SOURCES", "true")
        .env("EDGE_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(u) = db {
        cmd.env("EDGE_DATABASE_URL", u);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("rockit-edge starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["message"] == "rockit-edge listening" {
                        let _ = tx.send(v["addr"].as_str().unwrap_or("").to_string());
                        sent = true;
                    }
                }
            }
        }
    });
    let addr =
        rx.recv_timeout(std::time::Duration::from_secs(30)).expect("server announces its address");
    Proc { child, base: format!("http://{addr}") }
}

impl Proc {
    /// The process's peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

/// The database a child server of a test on `b` uses: a fresh PostgreSQL schema, or `None`
/// for SQLite in its data directory.
pub async fn child_database(b: Backend, dir: &TempDir) -> Option<String> {
    match b {
        Backend::Postgres => {
            Some(test_config(b, dir).await.database_url.expect("a PostgreSQL URL"))
        }
        Backend::Sqlite => None,
    }
}

/// The URL of the database a child server on `data` uses (its SQLite file, or `db`).
pub fn child_database_url(data: &std::path::Path, db: Option<&str>) -> String {
    db.map(String::from).unwrap_or_else(|| format!("sqlite://{}", data.join("edge.db").display()))
}
