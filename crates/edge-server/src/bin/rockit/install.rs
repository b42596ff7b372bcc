//! `rockit install`: a published build as a plain directory tree, every byte verified,
//! files written in load order (what the game reads first is complete first), through the
//! same runtime and cache as `rockit mount`.

use crate::api::Global;
use crate::fail::Fail;
use crate::mount::{self, LaunchArgs, StatusLine};
use crate::outdir::OutDir;
use crate::report;
use edge_client::{Kind, SessionEnd, MAX_READ};
use serde_json::json;
use std::io::Write;
use std::time::Instant;

/// Install a published build as a plain directory tree.
///
/// With --app (and --server, --org, --client-key, or their defaults) a launcher session is
/// opened for the app's current build; with a manifest URL, that image. The image is
/// checked as `rockit mount` checks it, streamed through the cache (a later mount or
/// install from the same cache downloads nothing again) and written into DIR, which must be
/// absent or empty: regular files in load order, then links, then modes. On failure DIR is
/// emptied again. Installing is not play: no trace is sent.
#[derive(clap::Args)]
pub struct Args {
    /// `MANIFEST_URL DIR`, or `DIR` with --app.
    #[arg(value_name = "MANIFEST_URL|DIR", num_args = 1..=2, required = true)]
    pub pos: Vec<String>,
    #[command(flatten)]
    pub launch: LaunchArgs,
    /// Show progress on stderr even when it is not a terminal.
    #[arg(long)]
    pub progress: bool,
}

/// `rockit install`.
pub fn run(g: &Global, a: Args) -> Result<(), Fail> {
    use std::os::unix::fs::PermissionsExt;
    let (url, dir) = mount::split_pos(&a.pos, &a.launch)?;
    let out = OutDir::claim(&dir)?;
    let t0 = Instant::now();
    let rt = mount::open_runtime(g, &a.launch, url, false)?;
    let io = |p: &std::path::Path, e: std::io::Error| Fail::new(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let entries = rt.image().entries();
    // Directories first (writable while we write), then the files in load order. The tree
    // passed the safe-tree rules and no link exists yet: nothing lands outside DIR.
    for e in entries {
        let p = dir.join(&e.path);
        let d = if e.kind == Kind::Dir { Some(p.as_path()) } else { p.parent() };
        if let Some(d) = d {
            std::fs::create_dir_all(d).map_err(|e| io(d, e))?;
        }
    }
    let mut status = StatusLine::new(a.progress);
    let (mut files, mut bytes) = (0u64, 0u64);
    for i in rt.image().load_order() {
        let e = &entries[i];
        let p = dir.join(&e.path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
            .map_err(|e| io(&p, e))?;
        let mut off = 0;
        while off < e.size {
            let data = rt
                .read(i, off, (e.size - off).min(MAX_READ.min(4 << 20)))
                .map_err(|e| Fail::new(format!("{}: {e}", p.display())))?;
            if data.is_empty() {
                return Err(Fail::new(format!(
                    "{}: the image ended at byte {off} of {}",
                    e.path, e.size
                )));
            }
            f.write_all(&data).map_err(|e| io(&p, e))?;
            off += data.len() as u64;
            status.tick(&rt);
        }
        f.sync_all().map_err(|e| io(&p, e))?;
        files += 1;
        bytes += off;
    }
    for e in entries.iter().filter(|e| e.kind == Kind::Symlink) {
        let p = dir.join(&e.path);
        std::os::unix::fs::symlink(e.target.as_deref().unwrap_or(""), &p).map_err(|e| io(&p, e))?;
    }
    for e in entries
        .iter()
        .filter(|e| e.kind == Kind::File)
        .chain(entries.iter().filter(|e| e.kind == Kind::Dir).rev())
    {
        let p = dir.join(&e.path);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(e.mode & 0o7777))
            .map_err(|e| io(&p, e))?;
    }
    status.clear();
    let m = rt.image().manifest().clone();
    if bytes != m.size_bytes || files != m.file_count {
        return Err(Fail::new(format!(
            "image incomplete: wrote {files} files, {bytes} bytes; the manifest says {} files, {} bytes",
            m.file_count, m.size_bytes
        )));
    }
    let update = rt.update().cloned();
    let s = rt.finish();
    if let Some(sess) = &s.session {
        sess.close(SessionEnd::default())
            .map_err(|e| Fail::new(format!("closing the session: {e}")))?;
    }
    out.keep();
    let took = t0.elapsed();
    if g.json {
        let v = json!({"installed": dir.display().to_string(), "appName": m.app_name, "buildId": m.build_id, "buildName": m.build_name,
                       "dxfName": m.dxf_name, "files": files, "sizeBytes": bytes, "downloadedBytes": s.downloaded_bytes,
                       "requests": s.requests, "sessionId": s.session.as_ref().map(|x| x.id.clone()),
                       "update": update.as_ref().map(|u| u.to_json())});
        println!("{v}");
    } else {
        println!(
            "installed {} build {} \"{}\" ({}) into {}",
            m.app_name,
            m.build_id,
            m.build_name,
            m.dxf_name,
            dir.display()
        );
        println!(
            "  {files} files, {}; downloaded {} in {:.2} s ({}); every chunk verified",
            report::bytes(bytes),
            report::bytes(s.downloaded_bytes),
            took.as_secs_f64(),
            report::rate(s.downloaded_bytes, took)
        );
        if let Some(u) = &update {
            println!("  {}", u.describe());
        }
    }
    Ok(())
}
