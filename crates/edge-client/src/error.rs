//! The one error type of the runtime: what went wrong, in words a player or a launcher
//! developer can act on, and a kind a file system layer maps to an errno.

use std::fmt;
use std::io;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The image failed a check (signature, a pin, the file table, names): it is refused
    /// whole and nothing of it is served.
    Refused,
    /// Bytes from the origin did not match their hash, again after a refetch.
    Corrupt,
    /// The origin or the server could not be reached, or the connection broke.
    Network,
    /// Data did not arrive within the read deadline.
    Timeout,
    /// The server answered with an error (its envelope's code and message are in the text).
    Server,
    /// The cache directory is in use by another runtime.
    Locked,
    /// No such file in the image, or no such file on the origin.
    NotFound,
    /// A local file system failure (the cache).
    Io,
    /// An argument out of range (a read of a directory, a bad URL).
    Invalid,
}

/// A runtime failure.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// A failure of this kind (newlines folded: a message stays one line).
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Error {
        Error { kind, message: message.to_string().trim().replace(['\r', '\n'], " ") }
    }

    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The Linux errno a file system reports for it: `ENOENT` (2) for [`ErrorKind::NotFound`],
    /// `EINVAL` (22) for [`ErrorKind::Invalid`], `EIO` (5) for every other failure (network,
    /// timeout, corruption, a refused image, the cache).
    pub fn errno(&self) -> i32 {
        match self.kind {
            ErrorKind::NotFound => 2,
            ErrorKind::Invalid => 22,
            _ => 5,
        }
    }

    pub(crate) fn refused(m: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Refused, m)
    }
    pub(crate) fn io(what: impl fmt::Display, e: io::Error) -> Error {
        Error::new(ErrorKind::Io, format!("{what}: {e}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The runtime's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
