//! `rockit play <image> --trace T`: the launcher simulator of formats.md.

use crate::fail::Fail;
use crate::report;
use crate::source::{self, What};
use edge_engine::play::{play, PlayOptions};
use serde_json::json;
use std::path::PathBuf;

/// Replay a play trace against a published image at a bandwidth.
///
/// Reads the image as a launcher does (manifest, the index it pins; with --stream every
/// pack, hash-checked) and replays the trace against its stream order: the game may start
/// once every read finds its chunks downloaded in time (formats.md). Prints time-to-play,
/// preload bytes, full-download time and acceleration; with --start-after, the stalls a
/// launcher starting after that many bytes would meet; and the wait of the runtime's way
/// (`rockit run`): start after the manifest's preload, fetch what a read lacks at once.
#[derive(clap::Args)]
pub struct Args {
    /// The image: a directory holding manifest.json, or its http(s) base URL.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// The play trace (a rockit-trace JSON file).
    #[arg(long, value_name = "FILE")]
    pub trace: PathBuf,
    /// Download bandwidth in Mbit/s.
    #[arg(long, default_value_t = 100.0, value_name = "MBIT")]
    pub mbit: f64,
    /// Start the game after this many bytes instead of at the computed time-to-play.
    #[arg(long, value_name = "BYTES")]
    pub start_after: Option<u64>,
    /// Also download every pack and check its hash.
    #[arg(long)]
    pub stream: bool,
    /// With --stream: download at the given bandwidth in real time, as a launcher on that
    /// line would (an 8 GiB image at 100 Mbit/s takes 11 minutes).
    #[arg(long, requires = "stream")]
    pub realtime: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<(), Fail> {
    if !(a.mbit.is_finite() && a.mbit > 0.0) {
        return Err(Fail::new("--mbit must be a positive number"));
    }
    let bytes =
        std::fs::read(&a.trace).map_err(|e| Fail::new(format!("{}: {e}", a.trace.display())))?;
    let trace = edge_engine::seq::parse_trace(&bytes)
        .map_err(|e| Fail::new(format!("{}: not a valid rockit-trace: {e}", a.trace.display())))?;
    let src = source::open(&a.image, What::Image)?;
    let o = PlayOptions {
        bytes_per_s: a.mbit * 1e6 / 8.0,
        start_after: a.start_after,
        stream: a.stream,
        realtime: a.realtime,
    };
    let r = play(&src, &trace, &o).map_err(|e| src.explain(e))?;
    report::clear_progress();
    if a.json {
        let v = json!({
            "timeToPlaySeconds": r.time_to_play_s, "preloadBytes": r.preload_bytes, "totalBytes": r.total_bytes,
            "fullDownloadSeconds": r.full_download_s, "acceleration": r.acceleration, "stalls": r.stalls,
            "stallSeconds": r.stall_seconds, "events": r.events, "eventsMapped": r.events_mapped, "verifiedBytes": r.verified_bytes,
            "streamSeconds": r.stream_seconds, "onDemandSeconds": r.on_demand_seconds,
            "onDemandFetches": r.on_demand_fetches,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!("time to play   {:.2} s at {} Mbit/s", r.time_to_play_s, a.mbit);
    let share = if r.total_bytes > 0 {
        format!(" ({:.1} %)", r.preload_bytes as f64 * 100.0 / r.total_bytes as f64)
    } else {
        String::new()
    };
    println!(
        "preload        {} of {}{share}",
        report::bytes(r.preload_bytes),
        report::bytes(r.total_bytes)
    );
    println!("full download  {:.2} s", r.full_download_s);
    match r.acceleration {
        Some(x) => println!("acceleration   {x:.1}x"),
        None => println!("acceleration   - (the game starts at once)"),
    }
    if a.start_after.is_some() {
        println!("stalls         {} ({:.2} s)", r.stalls, r.stall_seconds);
    }
    println!(
        "on demand      waits {:.2} s in all ({} reads fetch at once), as `rockit run` plays it",
        r.on_demand_seconds, r.on_demand_fetches
    );
    println!("trace events   {} ({} touch the image)", r.events, r.events_mapped);
    if a.stream {
        println!(
            "verified       {} of packs in {:.2} s",
            report::bytes(r.verified_bytes),
            r.stream_seconds
        );
    }
    Ok(())
}
