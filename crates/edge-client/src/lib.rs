//! The rockit-edge launcher runtime: what a launcher needs to let a game run while its
//! image streams.
//!
//! - [`Session`]: a launcher session opened with the app's client key
//!   (`POST /client/v1/rte-sessions`); it says which build to play and where its image is.
//! - [`Runtime`]: one image, verified before anything is served (the manifest's signature
//!   with the organization's key, the index against the manifest's pin, the file table
//!   against the safe-tree rules, every chunk against its BLAKE3), streamed in the
//!   background into a local cache directory in stream order with range requests.
//!   [`Runtime::read`] serves any byte range of any file from the cache, fetching what is
//!   not there yet at once; every read is recorded as a play-trace event.
//! - [`Summary::report`]: at the end, the trace goes to the Edge (zstd) and the session is
//!   closed with the play time and the stalls (reads that had to wait for the network).
//!
//! ```no_run
//! use edge_client::{ImageSource, Options, Runtime, Session, SessionRequest};
//! use std::time::Duration;
//! let req = SessionRequest {
//!     server: "https://edge.example.com".into(),
//!     org: "Studio".into(),
//!     app: "MyGame".into(),
//!     client_key: "ck_…".into(),
//!     build_id: None,
//! };
//! let session = Session::open(&req, Duration::from_secs(20))?;
//! let rt = Runtime::open(ImageSource::Session(Box::new(session)), Options::new("/var/cache/mygame"))?;
//! let exe = rt.read_path("bin/game.exe", 0, 4096)?;
//! println!("{} bytes; {:?}", exe.len(), rt.progress());
//! let summary = rt.finish();
//! summary.report()?;
//! # Ok::<(), edge_client::Error>(())
//! ```
//!
//! - [`fs`] (cargo feature `fuse`): the image as a read-only FUSE file system, so any
//!   program reads the build with plain file I/O while it streams.
//!
//! The cache directory's layout and its guarantees are described in `docs/LAUNCHER.md`:
//! a kill -9 at any moment loses nothing verified and never leads to an unverified byte
//! being served; a second runtime on the same cache is refused ([`ErrorKind::Locked`]).

mod cache;
mod error;
#[cfg(feature = "fuse")]
pub mod fs;
mod http;
mod image;
mod record;
mod runtime;
mod session;
mod update;

pub use edge_engine::reader::{ChunkRow, IndexEntry, VerifiedManifest};
pub use edge_engine::seq::Trace;
pub use edge_engine::tree::Kind;
pub use error::{Error, ErrorKind, Result};
pub use http::describe as describe_http_error;
pub use image::{Image, MAX_CHUNK};
pub use record::MERGE_MS;
pub use runtime::{ImageSource, Options, Progress, Runtime, Stall, Summary, MAX_READ};
pub use session::{Session, SessionEnd, SessionRequest};
pub use update::{Update, UpdateMethod};

/// Parses a bandwidth such as `100Mbit`, `8 Mbit/s`, `2.5MB`, `500KiB`, `1Gbit` or a plain
/// number of bytes per second; returns bytes per second.
pub fn parse_bandwidth(s: &str) -> Option<u64> {
    let t = s.trim().trim_end_matches("/s").trim_end_matches("ps");
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "B" => 1.0,
        "bit" | "b" => 1.0 / 8.0,
        "kbit" | "Kbit" | "kb" => 1e3 / 8.0,
        "Mbit" | "mbit" | "Mb" => 1e6 / 8.0,
        "Gbit" | "gbit" | "Gb" => 1e9 / 8.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v >= 1.0).then(|| v.round() as u64)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit {
    use super::parse_bandwidth;

    #[test]
    fn bandwidths_parse_in_bits_and_bytes() {
        assert_eq!(parse_bandwidth("100Mbit"), Some(12_500_000));
        assert_eq!(parse_bandwidth("8 Mbit/s"), Some(1_000_000));
        assert_eq!(parse_bandwidth("1Gbit"), Some(125_000_000));
        assert_eq!(parse_bandwidth("2.5MB"), Some(2_500_000));
        assert_eq!(parse_bandwidth("500KiB"), Some(512_000));
        assert_eq!(parse_bandwidth("4096"), Some(4096));
        assert_eq!(parse_bandwidth("fast"), None);
        assert_eq!(parse_bandwidth("0Mbit"), None);
        assert_eq!(parse_bandwidth("10 parsecs"), None);
    }
}
