//! The rockit-edge engine: everything that turns a game build into published bytes, with
//! no I/O beyond local files. Synchronous and streaming: memory stays bounded whatever the
//! build size. The formats are documented byte for byte in `docs/FORMAT.md`.

pub mod cutter;
pub mod diff;
pub mod hash;
pub mod image;
pub mod ingest;
pub mod patch;
pub mod patch_apply;
pub mod patch_ops;
mod patch_stream;
pub mod play;
pub mod reader;
pub mod safepath;
pub mod seq;
pub mod settle;
pub mod similar;
pub mod store;
pub mod tree;

pub use hash::Hash;

/// Content-defined chunking window, bytes.
#[derive(Debug, Clone, Copy)]
pub struct ChunkParams {
    /// Smallest chunk (except a file's last).
    pub min: u32,
    /// Average chunk.
    pub avg: u32,
    /// Largest chunk.
    pub max: u32,
}

impl Default for ChunkParams {
    fn default() -> Self {
        ChunkParams { min: 64 << 10, avg: 256 << 10, max: 1 << 20 }
    }
}

/// Engine parameters shared by ingest and the writers.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Chunking window.
    pub chunk: ChunkParams,
    /// zstd level for stored chunks.
    pub zstd_level: i32,
    /// Largest pack file, bytes.
    pub pack_limit: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params { chunk: ChunkParams::default(), zstd_level: 3, pack_limit: 64 << 20 }
    }
}

/// Wraps an I/O error with what was being done.
pub(crate) fn io_ctx(what: impl std::fmt::Display, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod patch_tests;
#[cfg(test)]
mod roundtrip_tests;
