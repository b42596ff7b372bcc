//! The pipeline's steps after `dltar`, one module each.

pub mod deploy;
pub mod mkdxf;
pub mod mkpat;
pub mod mkraw;
pub mod publish;
pub mod rollback;
