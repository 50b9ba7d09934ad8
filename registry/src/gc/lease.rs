//! Leases: an object that names who runs a task and until when, so replicas take turns.
//!
//! The cycle lease `_gc/lease` (storage clock) is renewed while a collection cycle runs and
//! released at its end, so one that dies holds the others off for `[gc] lease` at most. Two
//! collectors that both take it (a race, or an expired lease) stay correct: the deletion protocol
//! does not rest on it, they only repeat work. The upkeep leases `_upkeep/<task>` are held for one
//! interval of a periodic task (purge, sweep), so one replica does each round.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strata_storage::{BackendExt, Error, Key, Result, layout};

use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize)]
struct Lease {
    holder: String,
    /// Milliseconds since the epoch, storage clock.
    until_ms: u64,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

async fn current(state: &AppState, key: &Key) -> Result<Option<Lease>> {
    match state.blobs.backend().get_bytes(key).await {
        Ok(raw) => Ok(serde_json::from_slice(&raw).ok()),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn write(state: &AppState, key: &Key, holder: &str, until: SystemTime) -> Result<()> {
    let lease = Lease {
        holder: holder.to_owned(),
        until_ms: millis(until),
    };
    let raw = Bytes::from(serde_json::to_vec(&lease).expect("json"));
    state.blobs.backend().put_bytes(key, raw).await?;
    Ok(())
}

/// Takes lease `key` at time `now` for `length`, unless another holder's is still valid.
pub(crate) async fn take(state: &AppState, key: &Key, holder: &str, now: SystemTime, length: Duration) -> Result<bool> {
    if let Some(lease) = current(state, key).await?
        && lease.holder != holder
        && lease.until_ms > millis(now)
    {
        return Ok(false);
    }
    write(state, key, holder, now + length).await?;
    Ok(true)
}

/// Renews the cycle lease taken at storage time `taken` (local instant `since`) every third of
/// its length; never returns (run it beside the cycle).
pub(crate) async fn renew(state: &AppState, holder: &str, taken: SystemTime, since: Instant) {
    let length = state.config.gc.lease;
    loop {
        tokio::time::sleep((length / 3).max(Duration::from_millis(10))).await;
        if let Err(e) = write(state, &layout::gc_lease(), holder, taken + since.elapsed() + length).await {
            tracing::warn!(error = %e, "gc: could not renew the lease");
        }
    }
}

/// Gives the cycle lease up if `holder` still has it.
pub(crate) async fn release(state: &AppState, holder: &str) {
    if let Ok(Some(lease)) = current(state, &layout::gc_lease()).await
        && lease.holder == holder
    {
        let _ = state.blobs.backend().delete(&layout::gc_lease()).await;
    }
}
