//! One connection per task at a time.
//!
//! The pool is small (8 connections on SQLite, 16 on PostgreSQL). A task that holds a
//! connection (or a transaction) and then asks the pool for another waits for some other
//! task to give one back; when every connection is held by such a task, they all wait,
//! and the whole server stalls until the acquire timeout (30 s) fails them. That is what a
//! burst of ten logins did. So the rule is: while a task holds a connection it takes no
//! other, and it does no slow work (password hashing) either.
//!
//! The rule is checked, not only followed: requests and worker steps run inside [`scope`],
//! which counts the connections the task holds. Taking a second one, or hashing a password
//! while holding one, is a bug: debug builds (the test suite) panic with the place, release
//! builds log an error and go on.

use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static HELD: Cell<u32>;
}

/// Runs `f` with connection accounting for the current task.
pub async fn scope<F: Future>(f: F) -> F::Output {
    HELD.scope(Cell::new(0), f).await
}

fn held_now() -> u32 {
    HELD.try_with(Cell::get).unwrap_or(0)
}

/// Reports a task that holds a connection and is about to `what` (take another, hash …).
#[track_caller]
pub fn assert_not_holding(what: &str) {
    if held_now() > 0 {
        let at = std::panic::Location::caller();
        if cfg!(debug_assertions) {
            panic!("a task holding a database connection asked for {what} at {at}: under load such tasks wait for each other");
        }
        tracing::error!(at = %at, "a task holding a database connection asked for {what}");
    }
}

/// A connection counted against the current task while it lives.
pub(super) struct Held {
    counted: bool,
}

impl Held {
    /// Checks the rule and counts one more connection held.
    #[track_caller]
    pub(super) fn take(what: &str) -> Held {
        assert_not_holding(what);
        let counted = HELD.try_with(|h| h.set(h.get() + 1)).is_ok();
        Held { counted }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.counted {
            let _ = HELD.try_with(|h| h.set(h.get().saturating_sub(1)));
        }
    }
}
