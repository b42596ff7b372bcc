//! The one error type of the CLI: a message for the `rockit: <message>` line.

use std::fmt;

/// What failed, said in one line.
#[derive(Debug)]
pub struct Fail(String);

impl Fail {
    /// A failure with this message (newlines are folded so the report stays one line).
    pub fn new(msg: impl fmt::Display) -> Fail {
        Fail(msg.to_string().trim().replace(['\r', '\n'], " "))
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Fail {
        Fail::new(e)
    }
}
