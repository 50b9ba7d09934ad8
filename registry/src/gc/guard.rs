//! The push side of the garbage-collection protocol (see [`super`] for the whole argument):
//! claims, and the check that nothing a push just relied on is being deleted.
//!
//! A push *claims* every digest it uses — a blob it uploaded, mounted or found with HEAD, and
//! every blob and manifest a manifest references — by touching `_gc/claims/<digest>`, whose
//! modification time is the claim. After claiming, it *confirms*: no collector has an intent to
//! delete the object open (an open intent is waited out and the claim made again), and the link
//! (or revision) and the blob are still there. A collector deletes only what is unclaimed after
//! it wrote its intent; so either the collector sees the claim and keeps the object, or the push
//! sees the intent or the missing object and fails cleanly. Nothing acknowledged is then deleted.

use std::ops::ControlFlow;
use std::time::{Duration, SystemTime};

use strata_storage::{Digest, Error, Key, RepositoryName, Result, layout};

use crate::state::AppState;

/// Intents older than this belong to a collector that died; they are ignored (and swept). A
/// live collector holds one for a few storage requests.
pub const INTENT_TTL: Duration = Duration::from_secs(30);
/// How long a push waits for a collector's intents to clear before it gives up: longer than
/// an intent lives, so even a dead collector's intent only delays a push.
const INTENT_WAIT: Duration = Duration::from_secs(35);

/// What a push relies on for one digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A blob readable through the repository (`_layers` link).
    Blob,
    /// A manifest of the repository (its revision; the bytes are a blob too).
    Manifest,
}

/// Records that a push uses `digest` now.
pub async fn claim(state: &AppState, digest: &Digest) -> Result<()> {
    state.blobs.backend().touch(&layout::claim(digest)?).await?;
    Ok(())
}

/// The modification time of `key`, if it exists.
pub(crate) async fn modified(state: &AppState, key: &Key) -> Result<Option<SystemTime>> {
    match state.blobs.backend().head(key).await {
        Ok(meta) => Ok(Some(meta.modified)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether an intent at `key` is open (exists and is not stale).
async fn intent_open(state: &AppState, key: &Key) -> Result<bool> {
    Ok(modified(state, key)
        .await?
        .is_some_and(|at| SystemTime::now().duration_since(at).unwrap_or_default() < INTENT_TTL))
}

/// Claims `digest` for a push into `repository` and waits out (up to [`INTENT_WAIT`]) any open
/// intent to delete it, claiming again after each, since the collector may have removed the old
/// claim with the object. Afterwards a collector either sees the claim, or finished deleting
/// before this returned. `false`: an intent stayed open too long.
///
/// A push calls it before it stores or mounts a blob (so storing a blob that is already stored,
/// which keeps the stored copy, cannot race a delete of that copy), and through [`hold`] for
/// every reference of a manifest.
pub async fn prepare(state: &AppState, repository: &RepositoryName, digest: &Digest) -> Result<bool> {
    let intents = [layout::link_intent(repository, digest)?, layout::blob_intent(digest)?];
    let started = tokio::time::Instant::now();
    'claim: loop {
        claim(state, digest).await?;
        for intent in &intents {
            if intent_open(state, intent).await? {
                if started.elapsed() > INTENT_WAIT {
                    return Ok(false);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue 'claim;
            }
        }
        return Ok(true);
    }
}

/// [`prepare`]s `digest` and confirms that, used as `usage` in `repository`, it is there: its
/// link (or revision) and its blob.
pub async fn hold(state: &AppState, repository: &RepositoryName, digest: &Digest, usage: Use) -> Result<bool> {
    if !prepare(state, repository, digest).await? {
        return Ok(false);
    }
    let linked = match usage {
        Use::Blob => state.meta.blob_linked(repository, digest).await?,
        Use::Manifest => state.meta.revision(repository, digest).await?.is_some(),
    };
    Ok(linked && state.blobs.exists(digest).await?)
}

/// [`hold`]s every `(digest, use)`, a few at a time; the first digest that is gone or being
/// deleted, if any.
pub async fn hold_all(state: &AppState, repository: &RepositoryName, uses: &[(Digest, Use)]) -> Result<Option<Digest>> {
    use futures::FutureExt;
    let mut missing = None;
    let jobs = uses
        .iter()
        .map(|(digest, usage)| {
            hold(state, repository, digest, *usage)
                .map(move |held| held.map(|ok| (!ok).then_some(digest)))
                .boxed()
        })
        .collect();
    super::parallel::each(jobs, |gone| match gone {
        Some(digest) => {
            missing = Some(digest.clone());
            ControlFlow::Break(())
        }
        None => ControlFlow::Continue(()),
    })
    .await?;
    Ok(missing)
}
