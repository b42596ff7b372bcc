//! What a task run ends with: its outcome (status, result, exception, warning), the state
//! change it implies once committed ([`After`]), and the progress it reports meanwhile.

use crate::ids::DeploymentId;
use crate::store::tasks;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A task's progress, shared between its runner and the worker's reporter that writes it
/// to the task row: a fraction (0..1) set outright, or bytes done of bytes to do counted
/// by the engine as it works; and a note saying what the task is doing.
#[derive(Clone, Default)]
pub struct Progress(Arc<Shared>);

#[derive(Default)]
struct Shared {
    /// The fraction set with [`Progress::set`] (`f64` bits).
    fraction: AtomicU64,
    /// Bytes done, while `total` is not 0.
    done: AtomicU64,
    /// Bytes to do; 0 when the step sets a fraction instead.
    total: AtomicU64,
    note: Mutex<Note>,
}

/// What the note says.
#[derive(Default)]
enum Note {
    #[default]
    Nothing,
    Text(String),
    /// Worded from the bytes done when read (`writing image: pack 3 of 7`): the engine
    /// only counts, and the text follows the count without the step watching it.
    OfBytes(Box<dyn Fn(u64) -> String + Send + Sync>),
}

impl Progress {
    /// Sets the fraction done (and stops counting bytes).
    pub fn set(&self, f: f64) {
        let f = if f.is_nan() { 0.0 } else { f.clamp(0.0, 1.0) };
        self.0.fraction.store(f.to_bits(), Ordering::Relaxed);
        self.0.total.store(0, Ordering::Relaxed);
    }

    /// From now on the fraction done is the bytes added to [`Progress::bytes`] (from 0)
    /// of `total`. A total of 0 leaves the fraction as it is.
    pub fn count_bytes(&self, total: u64) {
        self.0.done.store(0, Ordering::Relaxed);
        self.0.total.store(total, Ordering::Relaxed);
    }

    /// The counter of bytes done, for the engine's writers to add to.
    pub fn bytes(&self) -> &AtomicU64 {
        &self.0.done
    }

    /// The fraction done.
    pub fn get(&self) -> f64 {
        let total = self.0.total.load(Ordering::Relaxed);
        if total > 0 {
            // The engine's count can pass an estimate of the total; never past 1.
            (self.0.done.load(Ordering::Relaxed) as f64 / total as f64).min(1.0)
        } else {
            f64::from_bits(self.0.fraction.load(Ordering::Relaxed))
        }
    }

    fn lock(&self) -> MutexGuard<'_, Note> {
        // A note is only ever replaced whole: one left by a panicking writer is still whole.
        self.0.note.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Says what the task is doing now (`patching from build 1 (2 of 4)`).
    pub fn note(&self, text: impl Into<String>) {
        *self.lock() = Note::Text(text.into());
    }

    /// Says what the task is doing as `word(bytes done)`, worded whenever it is read.
    pub fn note_of_bytes(&self, word: impl Fn(u64) -> String + Send + Sync + 'static) {
        *self.lock() = Note::OfBytes(Box::new(word));
    }

    /// The note now, if any.
    pub fn note_text(&self) -> Option<String> {
        match &*self.lock() {
            Note::Nothing => None,
            Note::Text(t) => Some(t.clone()),
            Note::OfBytes(word) => Some(word(self.0.done.load(Ordering::Relaxed))),
        }
    }
}

/// The state change that goes with a finished task.
pub enum After {
    /// Nothing beyond the task row.
    Nothing,
    /// `dltar` done: the group enters its app's line.
    Downloaded,
    /// A failure that cancels the rest of the group.
    CancelRest,
    /// `mkraw` done: a new build id.
    Raw { tree_path: String, content_hash: String, size: u64 },
    /// `mkraw` found the current build again.
    Identical,
    /// `mkdxf` done.
    Dxf { dxf_name: String, image_bytes: u64 },
    /// `mkseq` wrote a better image of the current build; the group's `deploy` publishes it.
    Seq { build_id: i64, dxf_name: String, image_bytes: u64 },
    /// `mkseq` found no order better enough: the group's `deploy` is canceled.
    SeqNoGain { build_id: i64 },
    /// `deploy` done on every target: the image `dxf_name` (of `image_bytes`) is current.
    Deployed {
        targets: Vec<DeploymentId>,
        patches: Vec<(i64, u64)>,
        dxf_name: String,
        image_bytes: u64,
    },
    /// `deploy` failed on a target: the app is locked.
    DeployFailed { deployment_id: DeploymentId, message: String },
}

/// What a runner produced.
pub struct Done {
    pub outcome: tasks::Outcome,
    pub after: After,
}

pub(crate) fn ok(result: Value, after: After) -> Done {
    Done {
        outcome: tasks::Outcome {
            status: tasks::TaskStatus::Done,
            result: Some(result),
            exception: None,
            warning: None,
        },
        after,
    }
}

pub(crate) fn fail(exception: Value, after: After) -> Done {
    Done {
        outcome: tasks::Outcome {
            status: tasks::TaskStatus::Error,
            result: None,
            exception: Some(exception),
            warning: None,
        },
        after,
    }
}

/// A failed run recorded as `{"error":{"code","message"}}`, canceling the rest of its
/// group; logged, since it is the Edge's own failure.
pub(crate) fn internal(code: &str, message: impl std::fmt::Display) -> Done {
    tracing::error!(code, error = %message, "pipeline step failed");
    fail(super::error::exception(code, message), After::CancelRest)
}

#[cfg(test)]
mod tests {
    use super::Progress;
    use std::sync::atomic::Ordering;

    #[test]
    fn counted_bytes_and_notes_worded_from_them() {
        let p = Progress::default();
        assert_eq!((p.get(), p.note_text()), (0.0, None));
        p.set(0.25);
        assert_eq!(p.get(), 0.25);
        p.count_bytes(400);
        assert_eq!(p.get(), 0.0);
        p.note_of_bytes(|done| format!("{done} bytes"));
        p.bytes().fetch_add(100, Ordering::Relaxed);
        assert_eq!((p.get(), p.note_text().as_deref()), (0.25, Some("100 bytes")));
        // An engine that counts past its estimate stops at 1.
        p.bytes().fetch_add(1000, Ordering::Relaxed);
        assert_eq!(p.get(), 1.0);
        p.note("sending");
        assert_eq!(p.note_text().as_deref(), Some("sending"));
        p.set(f64::NAN);
        assert_eq!(p.get(), 0.0);
    }
}
