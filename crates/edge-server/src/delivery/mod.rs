//! Delivery: what happens to a build between upload and CDN — the depot on local disk,
//! publishing targets, the pipeline's task runners, purges.

pub mod depot;
pub mod dispatch;
pub mod download;
pub mod pipeline;
pub mod purge;
pub mod seq;
pub mod targets;
