//! The one error type of this crate: a coarse kind for callers to branch on, and a
//! one-line human reason that never carries a secret.

use std::fmt;

/// Why an origin operation failed, coarse enough to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The store refused the credentials (bad key id, bad secret, bad signature, no permission).
    Credentials,
    /// The bucket, CP code or base path does not exist.
    Bucket,
    /// The store could not be reached or the connection failed (DNS, connect, reset, timeout, redirects).
    Network,
    /// The target address is private, loopback, link-local or otherwise not allowed.
    Denied,
    /// The store answered with an unexpected HTTP status.
    Http(u16),
    /// A local file could not be read or written.
    Io,
    /// The request itself is malformed: a bad endpoint, bucket or path in the configuration,
    /// or an object key that is not a clean relative key.
    Invalid,
}

impl ErrorKind {
    /// A stable lower-case name (`credentials`, `bucket`, `network`, `denied`, `http`, `io`, `invalid`).
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::Credentials => "credentials",
            ErrorKind::Bucket => "bucket",
            ErrorKind::Network => "network",
            ErrorKind::Denied => "denied",
            ErrorKind::Http(_) => "http",
            ErrorKind::Io => "io",
            ErrorKind::Invalid => "invalid",
        }
    }
}

/// A failed origin operation. `Display` prints `message`: one line, no secrets, suitable
/// for `details.probe` and task exceptions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginError {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// One line of human text saying why.
    pub message: String,
}

/// Messages are cut to this many characters: they end up in API answers.
const MAX_MESSAGE: usize = 300;

impl OriginError {
    /// Builds an error; the message is folded onto one line and shortened if needed.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> OriginError {
        OriginError { kind, message: one_line(&message.into()) }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> OriginError {
        OriginError::new(ErrorKind::Invalid, message)
    }

    pub(crate) fn io(what: &str, err: &std::io::Error) -> OriginError {
        OriginError::new(ErrorKind::Io, format!("{what}: {err}"))
    }
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OriginError {}

/// Folds whitespace runs (newlines included) into single spaces and caps the length.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_MESSAGE + 3));
    for (n, word) in s.split_whitespace().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.chars().count() > MAX_MESSAGE {
        out = out.chars().take(MAX_MESSAGE).collect();
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_short_line() {
        let e = OriginError::new(ErrorKind::Network, "a\n  b\tc ");
        assert_eq!(e.to_string(), "a b c");
        let long = OriginError::new(ErrorKind::Io, "x".repeat(1000));
        assert_eq!(long.message.len(), MAX_MESSAGE + 3);
        assert_eq!(ErrorKind::Http(503).as_str(), "http");
    }
}
