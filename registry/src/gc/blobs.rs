//! The global part of a cycle: the blob sweep, and tidying claims, stale intents and abandoned
//! uploads.

use std::ops::ControlFlow;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::{FutureExt, StreamExt};
use strata_storage::{Digest, Key, RepositoryName, Result, layout};

use super::guard::INTENT_TTL;
use super::intent::{claimed_since, delete_under_intent, ignore_missing, older_than};
use super::set::{DigestSet, Sizes};
use super::{Report, parallel};
use crate::state::AppState;

/// Deletion candidates judged at once: the blob listing streams on while each batch's
/// claims are read and its deletions run [`parallel::WIDTH`] at a time.
const BATCH: usize = 1000;

/// Deletes (when `allowed`) every blob not in `kept` that is older than the grace period and
/// unclaimed. Returns the sizes of the blobs still present.
pub(crate) async fn sweep(
    state: &AppState,
    kept: &DigestSet,
    m: SystemTime,
    dry_run: bool,
    allowed: bool,
    report: &mut Report,
) -> Result<Sizes> {
    let gc = &state.config.gc;
    let since = m.checked_sub(gc.claim_ttl).unwrap_or(UNIX_EPOCH);
    let mut present = Sizes::default();
    let mut batch = Vec::new();
    let mut list = state.blobs.backend().list(&layout::blobs(), None);
    loop {
        let next = list.next().await;
        let listed = next.is_none();
        if let Some(meta) = next {
            let meta = meta?;
            let Some(digest) = layout::blob_digest(&meta.key) else {
                continue;
            };
            if kept.contains(&digest) || !allowed || !older_than(meta.modified, m, gc.grace) {
                present.insert(&digest, meta.size);
                continue;
            }
            batch.push((digest, meta.key, meta.size));
            if batch.len() < BATCH {
                continue;
            }
        }
        let jobs = std::mem::take(&mut batch)
            .into_iter()
            .map(|(digest, key, size)| judge(state, digest, key, size, since, dry_run).boxed())
            .collect();
        parallel::each(jobs, |(digest, size, deleted)| {
            if deleted {
                report.blobs_deleted += 1;
                report.bytes_freed += size;
            } else {
                report.kept_claimed += 1;
                present.insert(&digest, size);
            }
            ControlFlow::Continue(())
        })
        .await?;
        if listed {
            break;
        }
    }
    present.seal();
    Ok(present)
}

/// Deletes one unreferenced, old blob at `key` unless it is claimed after `since` (a dry run
/// only decides). Returns it with its size and whether it is (or would be) gone.
async fn judge(
    state: &AppState,
    digest: Digest,
    key: Key,
    size: u64,
    since: SystemTime,
    dry_run: bool,
) -> Result<(Digest, u64, bool)> {
    if claimed_since(state, &digest, since).await? {
        return Ok((digest, size, false));
    }
    if dry_run {
        return Ok((digest, size, true));
    }
    let backend = state.blobs.backend();
    let intent = layout::blob_intent(&digest)?;
    let claim = layout::claim(&digest)?;
    let index = layout::layer_index(&digest)?;
    let deleted = delete_under_intent(state, &intent, &digest, since, || async {
        backend.delete(&key).await?;
        // What the web UI derived from the blob goes with it.
        ignore_missing(backend.delete(&index).await)?;
        // The claim goes with the blob (still under the intent: a push that claims now sees
        // the intent, claims again once it is gone, and finds the blob gone).
        ignore_missing(backend.delete(&claim).await)
    })
    .await?;
    Ok((digest, size, deleted))
}

/// Removes what no longer protects anything: claims of digests that are not stored (under the
/// intent protocol, as a push may be claiming again right now), intents a dead collector left
/// (in `_gc` and in every repository), and abandoned upload sessions with their parts.
pub(crate) async fn tidy(
    state: &AppState,
    present: &Sizes,
    m: SystemTime,
    dry_run: bool,
    report: &mut Report,
) -> Result<()> {
    let cutoff = m.checked_sub(state.config.upload_purge_age).unwrap_or(UNIX_EPOCH);
    if dry_run {
        return Ok(());
    }
    let backend = state.blobs.backend();
    let since = m.checked_sub(state.config.gc.claim_ttl).unwrap_or(UNIX_EPOCH);
    let stale = m.checked_sub(INTENT_TTL).unwrap_or(UNIX_EPOCH);
    let mut orphans = Vec::new();
    let mut claims = backend.list(&layout::claims(), None);
    while let Some(meta) = claims.next().await {
        let meta = meta?;
        // A claim lives as long as its blob (it goes with it); one for a digest that is not
        // stored (a push that failed) goes once it is old.
        if let Some(digest) = layout::linked_digest(&meta.key)
            && meta.modified <= since
            && present.get(&digest).is_none()
        {
            orphans.push(digest);
        }
    }
    let jobs = orphans
        .iter()
        .map(|digest| {
            async move {
                let (intent, claim) = (layout::blob_intent(digest)?, layout::claim(digest)?);
                delete_under_intent(state, &intent, digest, since, || async {
                    ignore_missing(backend.delete(&claim).await)
                })
                .await
            }
            .boxed()
        })
        .collect();
    parallel::each(jobs, |_| ControlFlow::Continue(())).await?;
    let mut stale_intents = Vec::new();
    let mut intents = backend.list(&layout::blob_intents(), None);
    while let Some(meta) = intents.next().await {
        let meta = meta?;
        if meta.modified < stale {
            stale_intents.push(meta.key);
        }
    }
    for name in report.by_repository.keys() {
        let Ok(repository) = RepositoryName::parse(name) else {
            continue;
        };
        let mut intents = backend.list(&layout::link_intents(&repository), None);
        while let Some(meta) = intents.next().await {
            let meta = meta?;
            if meta.modified < stale {
                stale_intents.push(meta.key);
            }
        }
    }
    let jobs = stale_intents
        .iter()
        .map(|key| async move { ignore_missing(backend.delete(key).await) }.boxed())
        .collect();
    parallel::each(jobs, |()| ControlFlow::Continue(())).await?;
    report.uploads_purged += state.blobs.purge_uploads(cutoff).await? as u64;
    Ok(())
}
