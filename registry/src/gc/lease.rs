//! The cycle lease: `_gc/lease` names the collector running a cycle and until when (storage
//! clock). Replicas take turns with it; it is renewed while the cycle runs and released at its
//! end, so one that dies holds the others off for `[gc] lease` at most. Two collectors that
//! both take it (a race, or an expired lease) stay correct: the deletion protocol does not rest
//! on it, they only repeat work.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strata_storage::{BackendExt, Error, Result, layout};

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

async fn current(state: &AppState) -> Result<Option<Lease>> {
    match state.blobs.backend().get_bytes(&layout::gc_lease()).await {
        Ok(raw) => Ok(serde_json::from_slice(&raw).ok()),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn write(state: &AppState, holder: &str, until: SystemTime) -> Result<()> {
    let lease = Lease {
        holder: holder.to_owned(),
        until_ms: millis(until),
    };
    let raw = Bytes::from(serde_json::to_vec(&lease).expect("json"));
    state.blobs.backend().put_bytes(&layout::gc_lease(), raw).await?;
    Ok(())
}

/// Takes the lease at storage time `now` unless another holder's is still valid.
pub(crate) async fn take(state: &AppState, holder: &str, now: SystemTime) -> Result<bool> {
    if let Some(lease) = current(state).await?
        && lease.holder != holder
        && lease.until_ms > millis(now)
    {
        return Ok(false);
    }
    write(state, holder, now + state.config.gc.lease).await?;
    Ok(true)
}

/// Renews the lease taken at storage time `taken` (local instant `since`) every third of its
/// length; never returns (run it beside the cycle).
pub(crate) async fn renew(state: &AppState, holder: &str, taken: SystemTime, since: Instant) {
    let length = state.config.gc.lease;
    loop {
        tokio::time::sleep((length / 3).max(Duration::from_millis(10))).await;
        if let Err(e) = write(state, holder, taken + since.elapsed() + length).await {
            tracing::warn!(error = %e, "gc: could not renew the lease");
        }
    }
}

/// Gives the lease up if `holder` still has it.
pub(crate) async fn release(state: &AppState, holder: &str) {
    if let Ok(Some(lease)) = current(state).await
        && lease.holder == holder
    {
        let _ = state.blobs.backend().delete(&layout::gc_lease()).await;
    }
}
