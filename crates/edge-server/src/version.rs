//! Versions this server reports (`GET /srv/v1/versions`, metrics, the worker's hello).

/// The edge version (this crate's).
pub const EDGE_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The engine (image format) version.
pub const ENGINE_VERSION: &str = "0.1.0";
