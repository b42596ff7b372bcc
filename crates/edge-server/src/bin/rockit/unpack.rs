//! `rockit unpack <image> <out>`: rebuilds a build's tree from its published DxF image.

use crate::fail::Fail;
use crate::outdir::OutDir;
use crate::report;
use crate::source::{self, What};
use std::path::PathBuf;
use std::time::Instant;

/// Unpack a published DxF image into a directory tree.
///
/// Streams the packs in order, as a launcher does, and checks the index and every pack
/// against the hashes manifest.json pins and every chunk against its BLAKE3 name. With
/// --public-key, manifest.sig must verify first (RSA PKCS#1 v1.5, SHA-256), which
/// covers everything else. The tree is identical to the tar the publisher uploaded:
/// paths, bytes, modes, symlinks. On failure the output directory is emptied again.
#[derive(clap::Args)]
pub struct Args {
    /// The image: a directory holding manifest.json, or its http(s) base URL
    /// (…/dxf/<org>/<app>/<NNNN>/<dxfName>/).
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// The directory to create; an existing one must be empty.
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// The organization's RSA public key in PEM (publicKeyPem of GET /adm/v1/orgs/{name});
    /// the image must carry a manifest.sig that verifies with it.
    #[arg(long, value_name = "PEM_FILE")]
    pub public_key: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<(), Fail> {
    let pem = a.public_key.as_deref().map(crate::key::load_public).transpose()?;
    let src = source::open(&a.image, What::Image)?;
    let out = OutDir::claim(&a.out)?;
    let t0 = Instant::now();
    let stats =
        edge_engine::reader::unpack(&src, &a.out, pem.as_deref()).map_err(|e| src.explain(e))?;
    let took = t0.elapsed();
    let m = src.manifest();
    // Every chunk row must have come out of a pack: the file bytes add up to the build.
    if Some(stats.bytes) != m["sizeBytes"].as_u64()
        || Some(stats.files as u64) != m["fileCount"].as_u64()
    {
        return Err(Fail::new(format!(
            "image incomplete: wrote {} files, {} bytes; the manifest says {} files, {} bytes",
            stats.files, stats.bytes, m["fileCount"], m["sizeBytes"]
        )));
    }
    out.keep();
    report::clear_progress();
    println!(
        "unpacked {} build {} {} ({}) into {}",
        m["appName"].as_str().unwrap_or("?"),
        m["buildId"],
        m["buildName"],
        m["dxfName"].as_str().unwrap_or("?"),
        a.out.display()
    );
    let sig = match &a.public_key {
        Some(k) => format!("signature verified with {}", k.display()),
        None => "signature not checked (no --public-key)".into(),
    };
    println!(
        "  {} files, {}; read {} in {:.2} s ({}); {sig}",
        stats.files,
        report::bytes(stats.bytes),
        report::bytes(src.bytes_read()),
        took.as_secs_f64(),
        report::rate(src.bytes_read(), took)
    );
    Ok(())
}
