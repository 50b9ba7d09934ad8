//! Periodic storage upkeep, one replica per round: the purge of abandoned upload sessions
//! (every `upload_purge_interval`) and the sweep of what crashed writers left outside the
//! registry's keys (every `server.sweep_interval`: temporary files, the S3 backend's orphaned
//! multipart uploads). Each round is taken under a lease (`_upkeep/<task>`, see
//! [`crate::gc`]'s leases) held for most of the interval, so however many replicas share the
//! storage, one lists and deletes per round; when it dies, another takes the next round.

use std::time::{Duration, SystemTime};

use strata_storage::layout;

use crate::gc::lease;
use crate::state::{AppState, SharedState};

/// A periodic task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Upload sessions untouched for `upload_purge_age`.
    Purge,
    /// Temporary files and recorded multipart uploads older than `server.sweep_age`.
    Sweep,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Purge => "purge",
            Task::Sweep => "sweep",
        }
    }

    fn interval(self, state: &AppState) -> Duration {
        let interval = match self {
            Task::Purge => state.config.upload_purge_interval,
            Task::Sweep => state.config.server.sweep_interval,
        };
        interval.max(Duration::from_millis(10))
    }
}

/// One round of `task` by `holder`: `None` when another replica holds this round, else how many
/// items went.
pub async fn round(state: &AppState, task: Task, holder: &str) -> strata_storage::Result<Option<u64>> {
    // Held for nine tenths of the interval: the holder's next round (or anyone's, if it died)
    // finds it expired.
    let length = task.interval(state).mul_f64(0.9);
    let key = layout::upkeep_lease(task.name());
    if !lease::take(state, &key, holder, SystemTime::now(), length).await? {
        return Ok(None);
    }
    let done = match task {
        Task::Purge => {
            let cutoff = SystemTime::now() - state.config.upload_purge_age;
            state.blobs.purge_uploads(cutoff).await? as u64
        }
        Task::Sweep => {
            let cutoff = SystemTime::now() - state.config.server.sweep_age;
            state.blobs.backend().sweep(cutoff).await?
        }
    };
    Ok(Some(done))
}

/// Runs `task` every interval (the purge at once, the sweep after one interval).
pub(crate) async fn run(state: SharedState, task: Task) {
    let holder = format!("{:016x}", rand::random::<u64>());
    let interval = task.interval(&state);
    if task == Task::Sweep {
        tokio::time::sleep(interval).await;
    }
    loop {
        match round(&state, task, &holder).await {
            Ok(None) => tracing::debug!(task = task.name(), "another replica has this round"),
            Ok(Some(0)) => {}
            Ok(Some(n)) => tracing::info!(task = task.name(), removed = n, "storage upkeep"),
            Err(e) => tracing::warn!(task = task.name(), error = %e, "storage upkeep failed"),
        }
        tokio::time::sleep(interval).await;
    }
}
