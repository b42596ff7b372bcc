//! What a task is and where it stands: closed sets, stored as the contract's names.

use std::fmt;

/// `Display` as the contract's name, `TryFrom<String>` (how rows decode it) and comparison
/// with a name, for an enum with `as_str` and `parse`.
macro_rules! named {
    ($t:ident, $what:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl TryFrom<String> for $t {
            type Error = UnknownName;
            fn try_from(s: String) -> Result<Self, UnknownName> {
                $t::parse(&s).ok_or(UnknownName { what: $what, name: s })
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

/// A stored name outside its closed set (a row of a newer release, or a damaged one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// The set (`task type`, `task status`).
    pub what: &'static str,
    /// The name found.
    pub name: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}", self.what, self.name)
    }
}

impl std::error::Error for UnknownName {}

/// What a task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Downloads the archive, or waits for its upload.
    Dltar,
    /// Ingests the archive into the app's chunk store.
    Mkraw,
    /// Writes the build's image.
    Mkdxf,
    /// Writes patches from the kept builds.
    Mkpat,
    /// Publishes the image and patches.
    Deploy,
    /// Learns a new read order from traces.
    Mkseq,
    /// Removes what a deleted app, deployment or organization published.
    Purge,
    /// The operator's test task.
    Hello,
}

impl TaskKind {
    /// Every kind, in pipeline order, then the others.
    pub const ALL: [TaskKind; 8] = [
        TaskKind::Dltar,
        TaskKind::Mkraw,
        TaskKind::Mkdxf,
        TaskKind::Mkpat,
        TaskKind::Deploy,
        TaskKind::Mkseq,
        TaskKind::Purge,
        TaskKind::Hello,
    ];

    /// The contract's name (`type` of a task).
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskKind::Dltar => "dltar",
            TaskKind::Mkraw => "mkraw",
            TaskKind::Mkdxf => "mkdxf",
            TaskKind::Mkpat => "mkpat",
            TaskKind::Deploy => "deploy",
            TaskKind::Mkseq => "mkseq",
            TaskKind::Purge => "purge",
            TaskKind::Hello => "hello",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<TaskKind> {
        TaskKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

named!(TaskKind, "task type");

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    /// Waiting to be claimed (or, for an upload-mode `dltar`, for its upload).
    Submitted,
    /// Claimed by a worker under a lease.
    Running,
    /// Ended well.
    Done,
    /// Failed; may be retried.
    Error,
    /// Ended because an earlier step of its group failed or was expired.
    Canceled,
    /// An upload that never came.
    Expired,
}

impl TaskStatus {
    /// Every status.
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Submitted,
        TaskStatus::Running,
        TaskStatus::Done,
        TaskStatus::Error,
        TaskStatus::Canceled,
        TaskStatus::Expired,
    ];

    /// The contract's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Submitted => "submitted",
            TaskStatus::Running => "running",
            TaskStatus::Done => "done",
            TaskStatus::Error => "error",
            TaskStatus::Canceled => "canceled",
            TaskStatus::Expired => "expired",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

named!(TaskStatus, "task status");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in TaskKind::ALL {
            assert_eq!(TaskKind::parse(k.as_str()), Some(k));
        }
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(TaskKind::parse("mkfoo"), None);
        let e = TaskStatus::try_from("waiting".to_string()).unwrap_err();
        assert_eq!(e.to_string(), r#"unknown task status "waiting""#);
    }
}
