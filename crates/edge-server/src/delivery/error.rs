//! Why a task's work failed: one type for the pipeline steps, purges and the maintenance
//! sweep. Its message is the task exception's `message`, word for word what these failures
//! always said; the exception's `code` is chosen by whoever records it (the pipeline says
//! `internal` for every failure of a step, a purge names the part that failed: [`StepError::code`]).

use crate::depot::DepotError;
use crate::error::{from_causes, About};
use crate::store::tasks::PayloadError;
use edge_origin::OriginError;
use serde_json::{json, Value};
use std::fmt;

/// A failed step, purge or sweep.
#[derive(Debug)]
pub enum StepError {
    /// The database failed.
    Db(sqlx::Error),
    /// The depot failed, or lacks what the step needs.
    Depot(DepotError),
    /// A publishing target failed (named when the message names it).
    Origin(About<OriginError>),
    /// The engine failed: the chunk store, an image or a patch being written.
    Engine(std::io::Error),
    /// A file of this process (named when the message names it).
    Io(About<std::io::Error>),
    /// A document that does not parse or serialize (named when the message names it).
    Json(About<serde_json::Error>),
    /// The blocking thread of a step panicked or was cancelled.
    Join(tokio::task::JoinError),
    /// The task's parameters cannot be read.
    Payload(PayloadError),
    /// Anything else: the exception's code and message.
    Internal {
        /// The code a purge or the pipeline's own checks record (`internal` for a step's).
        code: &'static str,
        /// The message.
        message: String,
    },
}

impl StepError {
    /// A failure the step itself detects, coded `internal`.
    pub fn internal(message: impl Into<String>) -> StepError {
        StepError::coded("internal", message)
    }

    /// A failure recorded under `code`.
    pub fn coded(code: &'static str, message: impl Into<String>) -> StepError {
        StepError::Internal { code, message: message.into() }
    }

    /// The code naming the part that failed: `database`, `depot`, `origin`, `local` (a
    /// file here), the code an `Internal` failure was given, else `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            StepError::Db(_) => "database",
            StepError::Depot(_) => "depot",
            StepError::Origin(_) => "origin",
            StepError::Io(_) => "local",
            StepError::Internal { code, .. } => code,
            StepError::Engine(_)
            | StepError::Json(_)
            | StepError::Join(_)
            | StepError::Payload(_) => "internal",
        }
    }

    /// The task exception of this failure under `code`: `{"error":{"code","message"}}`.
    pub fn exception(&self, code: &str) -> Value {
        exception(code, self)
    }
}

/// The task exception `{"error":{"code","message"}}`.
pub(crate) fn exception(code: &str, message: impl fmt::Display) -> Value {
    json!({"error": {"code": code, "message": message.to_string()}})
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Db(e) => e.fmt(f),
            StepError::Depot(e) => e.fmt(f),
            StepError::Origin(e) => e.fmt(f),
            StepError::Engine(e) => e.fmt(f),
            StepError::Io(e) => e.fmt(f),
            StepError::Json(e) => e.fmt(f),
            StepError::Join(e) => e.fmt(f),
            StepError::Payload(e) => e.fmt(f),
            StepError::Internal { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for StepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StepError::Db(e) => Some(e),
            StepError::Depot(e) => Some(e),
            StepError::Origin(e) => Some(e),
            StepError::Engine(e) => Some(e),
            StepError::Io(e) => Some(e),
            StepError::Json(e) => Some(e),
            StepError::Join(e) => Some(e),
            StepError::Payload(e) => Some(e),
            StepError::Internal { .. } => None,
        }
    }
}

from_causes!(StepError {
    sqlx::Error => Db,
    DepotError => Depot,
    About<OriginError> => Origin,
    OriginError => Origin,
    About<std::io::Error> => Io,
    std::io::Error => Io,
    About<serde_json::Error> => Json,
    serde_json::Error => Json,
    tokio::task::JoinError => Join,
    PayloadError => Payload,
});

/// A step's own check failing (`.ok_or("the task has no build id")?`).
impl From<&'static str> for StepError {
    fn from(message: &'static str) -> StepError {
        StepError::internal(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_codes() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let named = StepError::from(About::new("build tree /x", io()));
        assert_eq!((named.code(), named.to_string().as_str()), ("local", "build tree /x: gone"));
        assert_eq!(StepError::from(io()).to_string(), "gone");
        let missing = StepError::from(DepotError::Missing("the build tree".into()));
        assert_eq!(
            (missing.code(), missing.to_string().as_str()),
            ("depot", "the build tree is missing from the depot")
        );
        let own = StepError::from("the task has no build id");
        assert_eq!(
            own.exception(own.code()),
            json!({"error": {"code": "internal", "message": "the task has no build id"}})
        );
        assert_eq!(StepError::coded("snapshot", "no snapshot").code(), "snapshot");
    }
}
