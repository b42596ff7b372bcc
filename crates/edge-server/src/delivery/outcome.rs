//! What a task run ends with: its outcome (status, result, exception, warning), the state
//! change it implies once committed ([`After`]), and the progress it reports meanwhile.

use crate::ids::DeploymentId;
use crate::store::tasks;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A task's progress (0..1), shared between its runner and the lease renewal.
#[derive(Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    /// Sets the fraction done.
    pub fn set(&self, f: f64) {
        self.0.store(f.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }
    /// The fraction done.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
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
