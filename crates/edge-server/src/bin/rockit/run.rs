//! `rockit run -- <command…>`: what a launcher does for a play — open a session, mount the
//! build in a temporary directory while it streams, wait for the preload, run the game
//! there, pass its exit status through, then send the trace and close the session.

use crate::api::Global;
use crate::fail::Fail;
use crate::mount::{self, LaunchArgs, StatusLine};
use edge_client::Runtime;
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::time::Duration;

/// Run a game from its published image while it streams, as a launcher does.
///
/// Opens a launcher session (or reads the image at --manifest-url), mounts the build
/// read-only in a temporary directory, waits until the preload is verified (unless
/// --no-wait), runs COMMAND there with $ROCKIT_GAME_DIR set to that directory, and exits
/// with the command's status (128 + the signal for a command killed by one). Then it
/// unmounts, sends the trace and closes the session. rockit's own output — progress and
/// the final summary (JSON with --json) — goes to stderr; stdout is the command's.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub launch: LaunchArgs,
    /// An image by URL instead of a session (its manifest.json or directory).
    #[arg(long, value_name = "URL")]
    pub manifest_url: Option<String>,
    /// Start the command at once instead of after the preload.
    #[arg(long)]
    pub no_wait: bool,
    /// Show progress on stderr even when it is not a terminal.
    #[arg(long)]
    pub progress: bool,
    /// Open the game's files with direct I/O instead of through the page cache: the trace
    /// then holds exactly the game's reads (without the kernel's read-ahead), but reads in
    /// small pieces are slower.
    #[arg(long)]
    pub direct_io: bool,
    /// Also write the recorded trace (rockit-trace JSON) to this file.
    #[arg(long, value_name = "FILE")]
    pub trace_out: Option<PathBuf>,
    /// The game's command and its arguments, run in the mounted directory (relative
    /// program paths such as ./bin/game are found there).
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The exit code a shell would give for a status.
fn code_of(st: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

/// Runs the play; returns the command's exit code.
pub fn run(g: &Global, a: Args) -> Result<i32, Fail> {
    let rt = Arc::new(mount::open_runtime(g, &a.launch, a.manifest_url.as_deref(), true)?);
    let dir = std::env::temp_dir().join(format!("rockit-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Fail::new(format!("{}: {e}", dir.display())))?;
    let mounted = match mount::mount(rt.clone(), &dir, false, a.direct_io) {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir(&dir);
            return Err(e);
        }
    };
    let mut status = StatusLine::new(a.progress);
    // The preload first (a signal meanwhile ends the play before the game starts).
    let interrupted = if !a.no_wait && !a.launch.no_prefetch {
        mount::wait(
            || rt.wait_preload(Duration::ZERO) || !rt.progress().streaming,
            || status.tick(&rt),
        )
    } else {
        Ok(false)
    };
    let outcome = match interrupted {
        Err(e) => Err(e),
        Ok(true) => Err(Fail::new("interrupted before the game started")),
        Ok(false) => play(&a, &dir, &rt, &mut status),
    };
    status.clear();
    mounted.unmount();
    let _ = std::fs::remove_dir(&dir);
    if let Some(p) = &a.trace_out {
        std::fs::write(p, rt.trace().to_json())
            .map_err(|e| Fail::new(format!("{}: {e}", p.display())))?;
    }
    let reported = mount::finish(&rt);
    let code = outcome?;
    let (s, id) = reported?;
    if g.json {
        let mut v = mount::summary_json(&s, &id);
        v["exitCode"] = json!(code);
        eprintln!("{v}");
    } else {
        let end = s.session_end();
        eprintln!(
            "rockit run: {} exited with {code} after {} s; {} stalls ({} s), downloaded {}{}",
            a.command[0],
            end.play_seconds,
            s.stalls,
            end.stall_seconds,
            crate::report::bytes(s.downloaded_bytes),
            id.map(|i| format!("; trace {i} sent")).unwrap_or_default()
        );
    }
    Ok(code)
}

/// Runs the game in `dir` until it ends (a signal for us is passed on to it); its exit code.
fn play(
    a: &Args,
    dir: &std::path::Path,
    rt: &Runtime,
    status: &mut StatusLine,
) -> Result<i32, Fail> {
    // Relative program paths are looked up in the game directory.
    let mut program = PathBuf::from(&a.command[0]);
    if program.components().count() > 1 && program.is_relative() {
        program = dir.join(program);
    }
    rt.start_clock();
    let started = Command::new(&program)
        .args(&a.command[1..])
        .current_dir(dir)
        .env("ROCKIT_GAME_DIR", dir)
        .spawn();
    match started {
        Err(e) => Err(Fail::new(format!("cannot run {}: {e}", a.command[0]))),
        Ok(mut child) => {
            let pid = child.id();
            let mut exited = None;
            let waited = mount::wait(
                || match child.try_wait() {
                    Ok(Some(st)) => {
                        exited = Some(st);
                        true
                    }
                    Ok(None) => false,
                    Err(_) => true,
                },
                || status.tick(rt),
            );
            if exited.is_none() {
                // A signal for us: the game gets it too, and we wait for it to end.
                let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
                exited = child.wait().ok();
            }
            waited.map(|_| exited.map(code_of).unwrap_or(1))
        }
    }
}
