//! `docs/GETTING-STARTED.md` run as written: every ```sh block, in order, in one bash with
//! `set -euo pipefail`, the built `rockit-edge`, `rockit` and `rockit-bench` on PATH, a
//! fresh HOME, and a free port in place of 8080. The guide cannot go stale without this
//! test failing.

use crate::common::TempDir;
use std::path::Path;

const GUIDE: &str = include_str!("../../../../docs/GETTING-STARTED.md");

/// The guide's executable blocks (fenced as ```sh), concatenated.
fn script(guide: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in guide.lines() {
        match (inside, line.trim_end()) {
            (false, "```sh") => inside = true,
            (true, "```") => {
                inside = false;
                out.push('\n');
            }
            (true, l) => {
                out.push_str(l);
                out.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn getting_started_walkthrough() {
    let body = script(GUIDE);
    assert!(
        body.contains("rockit push") && body.contains("rockit play"),
        "the guide's blocks were found:\n{body}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let body = body.replace("8080", &port.to_string());
    let work = TempDir::new("guide");
    let home = work.0.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = run_script(&body, &work.0, &home).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(work.0.join("edge-demo/server.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "the walkthrough failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server.log (tail)\n{}",
        tail(&log)
    );
    eprintln!("{stdout}");
    assert!(stdout.contains("the image holds the build exactly"), "{stdout}");
    // Both plays reported; the trained image starts the held-out session sooner.
    let ttp: Vec<f64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("time to play"))
        .map(|l| l.trim().split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ttp.len(), 2, "{stdout}");
    assert!(ttp[1] < ttp[0], "trained {} s vs untrained {} s\n{stdout}", ttp[1], ttp[0]);
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Runs a documentation script with `bash` the way a reader pastes it: the built `rockit`
/// first on `PATH`, a home of its own, no `ROCKIT_*` settings from the environment, and the
/// server the script starts (`$SERVER`) stopped when a step fails.
pub(crate) async fn run_script(body: &str, dir: &Path, home: &Path) -> std::process::Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_rockit")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let full = format!("set -euo pipefail\ntrap 'kill $SERVER 2>/dev/null || true' EXIT\n{body}");
    let (dir, home) = (dir.to_path_buf(), home.to_path_buf());
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(&full)
            .current_dir(&dir)
            .env("PATH", path)
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("ROCKIT_SERVER")
            .env_remove("ROCKIT_API_KEY")
            .env_remove("ROCKIT_PROFILE")
            .output()
    })
    .await
    .unwrap()
    .expect("bash runs")
}
