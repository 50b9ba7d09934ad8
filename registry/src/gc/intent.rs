//! The collector's side of the deletion protocol (see [`super`]): intent, claim check,
//! delete, intent removed.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use strata_storage::{Digest, Error, Key, Result, layout};

use super::guard::{INTENT_TTL, modified};
use crate::state::AppState;

/// Whether `digest` was claimed after `since` (claims at or before it do not protect).
pub(crate) async fn claimed_since(state: &AppState, digest: &Digest, since: SystemTime) -> Result<bool> {
    Ok(modified(state, &layout::claim(digest)?)
        .await?
        .is_some_and(|at| at > since))
}

/// Deletes with `delete` under an intent at `intent`, unless `digest` is claimed after
/// `since` by the time the intent is in place. Returns whether it deleted. A claim written
/// after the intent is seen here, or the claimant sees the intent: never neither.
pub(crate) async fn delete_under_intent<F, Fut>(
    state: &AppState,
    intent: &Key,
    digest: &Digest,
    since: SystemTime,
    delete: F,
) -> Result<bool>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let backend = state.blobs.backend();
    let written = Instant::now();
    backend.touch(intent).await?;
    let outcome = async {
        if claimed_since(state, digest, since).await? {
            return Ok(false);
        }
        // Pushes stop honouring an intent after INTENT_TTL; never delete near that.
        if written.elapsed() > INTENT_TTL / 2 {
            return Ok(false);
        }
        ignore_missing(delete().await).map(|()| true)
    }
    .await;
    match backend.delete(intent).await {
        Ok(()) | Err(Error::NotFound { .. }) => {}
        Err(e) => tracing::warn!(key = %intent, error = %e, "gc: could not remove an intent (it expires)"),
    }
    outcome
}

/// Whether an object written at `modified` is older than `grace` at `m`.
pub(crate) fn older_than(modified: SystemTime, m: SystemTime, grace: Duration) -> bool {
    m.duration_since(modified).is_ok_and(|age| age >= grace)
}

/// A deletion whose object is already gone succeeded.
pub(crate) fn ignore_missing(result: Result<()>) -> Result<()> {
    match result {
        Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
