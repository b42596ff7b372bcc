//! `rockit apply <patch> <from tree> <out>`: rebuilds the newer build from the older
//! tree and a published patch, never from the newer image.

use crate::fail::Fail;
use crate::outdir::OutDir;
use crate::report;
use crate::source::{self, What};
use std::path::PathBuf;
use std::time::Instant;

/// Apply a published patch to an unpacked older build, giving the newer build exactly.
///
/// The older tree must hold exactly the older build (its file list is checked first).
/// Unchanged files are copied from it; changed and new files are rebuilt from the patch's
/// stream of copies of older bytes and literal bytes. Every pack is checked against the
/// hash patch.json pins, and the rebuilt tree against the patch's digest of the newer
/// build. The older tree is only read. On failure the output directory is emptied again.
#[derive(clap::Args)]
pub struct Args {
    /// The patch: a directory holding patch.json, or its http(s) base URL
    /// (…/pat/<org>/<app>/<to>/<from>/).
    #[arg(value_name = "PATCH")]
    pub patch: String,
    /// The older build's tree, as `rockit unpack` (or a launcher) left it, with nothing added.
    #[arg(value_name = "FROM")]
    pub from: PathBuf,
    /// The directory to create for the newer build; an existing one must be empty.
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
}

pub fn run(a: Args) -> Result<(), Fail> {
    let src = source::open(&a.patch, What::Patch)?;
    if !a.from.is_dir() {
        let why = if a.from.exists() { "is not a directory" } else { "does not exist" };
        return Err(Fail::new(format!("older build tree {} {why}", a.from.display())));
    }
    let out = OutDir::claim(&a.out)?;
    let t0 = Instant::now();
    let stats = edge_engine::reader::apply(&src, &a.from, &a.out).map_err(|e| src.explain(e))?;
    let took = t0.elapsed();
    let m = src.manifest();
    // Every chunk row must have been written: the file bytes add up to the newer build.
    if Some(stats.bytes) != m["toSizeBytes"].as_u64() {
        return Err(Fail::new(format!(
            "patch incomplete: wrote {} bytes; patch.json says the build has {}",
            stats.bytes, m["toSizeBytes"]
        )));
    }
    out.keep();
    report::clear_progress();
    println!(
        "applied {} patch {} -> {} onto {} into {}",
        m["appName"].as_str().unwrap_or("?"),
        m["fromBuildId"],
        m["toBuildId"],
        a.from.display(),
        a.out.display()
    );
    println!(
        "  {} files, {}; chunks {} reused, {} sent, {} as deltas; read {} in {:.2} s ({})",
        stats.files,
        report::bytes(stats.bytes),
        m["reusedChunks"],
        m["sentChunks"],
        m["deltaChunks"],
        report::bytes(src.bytes_read()),
        took.as_secs_f64(),
        report::rate(src.bytes_read(), took)
    );
    Ok(())
}
