//! Traces, the preload model and the sequence optimiser (`mkseq`). See `docs/SEQUENCE.md`
//! and the formats spec ("Trace", "Preload, time-to-play, acceleration", "Sequence
//! optimisation").
//!
//! - [`trace`]: the `rockit-trace` v1 document a launcher uploads, parsed and validated.
//! - [`model`]: a trace mapped onto a build ([`accesses`]), the stream [`Layout`] of an
//!   order, and the exact preload / time-to-play / acceleration definitions.
//! - [`optimize`](mod@optimize): the chunk sequence minimising the 90th percentile of
//!   per-trace preload over training traces.
//! - [`tail`]: the untraced rest of the stream ordered by proximity to traced data
//!   ([`with_tail`]), instead of archive order.

pub mod model;
pub mod optimize;
pub mod tail;
pub mod trace;

pub use model::{
    acceleration, accesses, aggregate, layout, mbit_to_bytes_per_s, preload_bytes, preload_figures,
    preload_figures_at, start_ms, Layout, PRELOAD_MBITS, PRELOAD_PERCENTILE,
};
pub use optimize::{optimize, optimize_with_stats, rank_order, SeqParams, SeqStats};
pub use tail::with_tail;
pub use trace::{
    parse_trace, read_trace, Trace, TraceError, MAX_DEPTH, MAX_EVENTS, MAX_PATHS, MAX_PATH_BYTES,
    MAX_PATH_CHARS, MAX_TOKEN_BYTES,
};

#[cfg(test)]
mod tests;
