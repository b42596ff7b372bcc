//! Delivery: what happens to a build between upload and CDN — the depot (data directory or S3),
//! publishing targets, the pipeline's task runners, purges.

pub mod depot;
pub mod dispatch;
pub mod download;
pub mod pipeline;
pub mod preingest;
pub mod purge;
pub mod seq;
pub mod targets;
