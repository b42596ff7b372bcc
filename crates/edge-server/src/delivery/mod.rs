//! Delivery: what happens to a build between upload and CDN — the pipeline (`pipeline`
//! dispatches a task to its step in `steps`, `commit` records the outcome), the build's
//! working data (`builds`), downloads, ingest during upload, learning from traces (`seq`),
//! purges, and the event dispatcher.

pub mod builds;
pub mod commit;
pub mod dispatch;
pub mod download;
pub mod error;
pub mod outcome;
pub mod pipeline;
pub mod preingest;
pub mod purge;
pub mod seq;
pub mod steps;

pub use error::StepError;
