//! Online garbage collection: frees what no tag reaches any more, while pushes go on, on
//! filesystem and S3 storage, with several replicas collecting at once.
//!
//! # A cycle
//! 1. **Lease and clock.** The cycle takes `_gc/lease` unless another collector holds it
//!    ([`lease`]: renewed while the cycle runs, so a dead collector's expires; two collectors
//!    running anyway stay correct, they only repeat work). It touches `_gc/clock` and takes that
//!    object's modification time as `M`, the start of the cycle *in the storage's clock*, which
//!    claims and object ages are compared with.
//! 2. **Mark and sweep each repository** ([`repo`]): its tags (less those retention drops) are
//!    the roots — with `delete_untagged` off, every manifest revision that is not a referrer is a
//!    root too, and so is every revision within the grace period. From the roots it walks index
//!    children and referrers of live manifests (referrers follow their subject), reading each
//!    manifest once, and collects the blobs they reference. Then, in that repository only: tags retention drops
//!    are deleted; revisions and `_layers` links that are not live, older than `grace` and not
//!    claimed within `claim_ttl` are deleted under the intent protocol below. Everything still
//!    linked afterwards — live or merely young — is kept in a compact global set.
//! 3. **Sweep blobs** ([`blobs`]): the blob listing is streamed; a blob no remaining link or
//!    revision names, older than `grace` and unclaimed, is deleted under the intent protocol.
//!    If any repository could not be read completely, no blob is deleted this cycle.
//! 4. **Tidy**: claims of digests no longer stored, and intents a dead collector left, are
//!    removed; abandoned upload sessions (with their S3 multipart parts) are purged; the report
//!    is written to `_gc/report`.
//!
//! # Why a push is never broken ([`guard`])
//! Deleting an object (a link, a revision, a blob) is: write an *intent* marker → read the
//! digest's *claim* → delete only if the claim is not newer than `M - claim_ttl` → remove the
//! intent. A push *claims* every digest it relies on and *then* confirms that no intent is open
//! (an open intent is waited out and the claim made again) and that the object is there
//! ([`guard::prepare`], [`guard::hold`]):
//! - an upload or mount prepares (claims, waits out intents) *before* it stores or looks for the
//!   blob, so storing a blob that is already stored cannot race a delete of the stored copy;
//! - a `HEAD` by a pusher claims;
//! - a manifest `PUT` holds (claims, waits out intents, confirms) every reference, prepares its
//!   own digest, stores the manifest and its revision, and writes its tags — all within
//!   `claim_ttl / 2` of the hold, or it holds everything again.
//!
//! Take a collector that deletes an object the push relies on. Storage is read-after-write
//! consistent (S3 is, so is the filesystem), so of the collector's claim read and the push's
//! intent check, one sees the other's write:
//! - the push's intent check came first, so its claim was written before the collector's read.
//!   The collector's listing did not see the push's tag (or link), so `M` is before it was
//!   written, which is less than `claim_ttl / 2` after the claim: the claim is newer than
//!   `M - claim_ttl` and the collector keeps the object (storage times in whole seconds cost at
//!   most two seconds of that margin; hence `claim_ttl` ≥ 4 s);
//! - or the collector's claim read came first, so its intent was written before the push's
//!   check: the push waits it out, and then finds the object gone (an upload writes it anew; a
//!   mount becomes an upload; a manifest fails with `MANIFEST_BLOB_UNKNOWN`) or kept.
//!
//! Either way no acknowledged image lacks a blob. A collector that dies leaves intents behind;
//! pushes ignore intents older than [`guard::INTENT_TTL`], and a collector never deletes after
//! half of that has passed since it wrote its intent. A blob a push uploaded or mounted stays
//! protected for at least `claim_ttl / 2` after the push was answered (a `HEAD` for `claim_ttl`),
//! and for `grace` after it was stored; a manifest that arrives later than that for a blob
//! nothing else references fails cleanly, and the client pushes the blob again.
//!
//! # Cost
//! Memory: one repository's live manifests and links at a time, plus a compact set of the
//! digests still linked anywhere (32 bytes a SHA-256 digest). Time: one listing of each
//! repository's tags, revisions, links and referrers, one read per live manifest, one listing of
//! the blobs — it grows with what is stored, which collection keeps close to what is live.
//! Deletions run [`parallel::WIDTH`] at a time. A push pays three more storage requests per blob
//! it uploads or mounts (a claim, two intent checks) and four more per manifest reference.

mod blobs;
pub mod guard;
mod intent;
pub(crate) mod lease;
mod parallel;
mod repo;
mod set;

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strata_storage::{BackendExt, Error, RepositoryName, Result, layout};

use crate::state::AppState;
use set::DigestSet;

/// What one cycle found and freed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Report {
    /// Nothing was deleted: the report says what would be.
    pub dry_run: bool,
    /// Another collector held the lease: this cycle did nothing.
    pub skipped: bool,
    /// When the cycle started (RFC 3339, storage clock).
    pub started: String,
    /// How long it took.
    pub duration_ms: u64,
    /// Repositories looked at.
    pub repositories: u64,
    /// Manifests reachable from tags (and kept revisions).
    pub live_manifests: u64,
    /// Blobs still linked anywhere after the cycle.
    pub live_blobs: u64,
    /// Tags dropped by retention rules.
    pub tags_deleted: u64,
    /// Manifest revisions deleted.
    pub manifests_deleted: u64,
    /// Repository blob links deleted.
    pub links_deleted: u64,
    /// Blobs deleted.
    pub blobs_deleted: u64,
    /// Bytes of the blobs deleted.
    pub bytes_freed: u64,
    /// Abandoned upload sessions removed.
    pub uploads_purged: u64,
    /// Objects kept because a push claimed them lately or an intent protocol said so.
    pub kept_claimed: u64,
    /// A repository could not be read completely, so no blob was deleted.
    pub incomplete: bool,
    /// Per repository: bytes of the blobs it links (shared blobs count in each), and what it
    /// freed.
    pub by_repository: BTreeMap<String, RepositoryReport>,
}

/// One repository's part of a [`Report`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RepositoryReport {
    /// Bytes of the blobs (and manifests) it still links.
    pub bytes: u64,
    /// Tags, revisions and links it lost.
    pub deleted: u64,
}

/// The storage's current time: the modification time of an object written now.
async fn storage_now(state: &AppState) -> Result<SystemTime> {
    let backend = state.blobs.backend();
    backend.touch(&layout::gc_clock()).await?;
    Ok(backend.head(&layout::gc_clock()).await?.modified)
}

/// Runs one cycle (`dry_run`: decide, delete nothing). `holder` names this collector for the
/// lease; a cycle that finds another collector's lease does nothing (`skipped`).
pub async fn cycle(state: &AppState, holder: &str, dry_run: bool) -> Result<Report> {
    let clock = Instant::now();
    let m = storage_now(state).await?;
    let mut report = Report {
        dry_run,
        started: humantime::format_rfc3339_seconds(m).to_string(),
        ..Report::default()
    };
    if dry_run {
        run(state, m, &mut report).await?;
    } else {
        if !lease::take(state, &layout::gc_lease(), holder, m, state.config.gc.lease).await? {
            report.skipped = true;
            return Ok(report);
        }
        let outcome = tokio::select! {
            outcome = run(state, m, &mut report) => outcome,
            () = lease::renew(state, holder, m, clock) => unreachable!("renewal never ends"),
        };
        lease::release(state, holder).await;
        outcome?;
    }
    report.duration_ms = clock.elapsed().as_millis() as u64;
    if !dry_run {
        state
            .blobs
            .backend()
            .put_bytes(
                &layout::gc_report(),
                Bytes::from(serde_json::to_vec(&report).expect("json")),
            )
            .await?;
    }
    state.metrics.gc(&report);
    Ok(report)
}

/// The cycle proper, from storage time `m`.
async fn run(state: &AppState, m: SystemTime, report: &mut Report) -> Result<()> {
    let dry_run = report.dry_run;
    let mut kept = DigestSet::default();
    let mut repositories = Vec::new();
    let mut after: Option<RepositoryName> = None;
    loop {
        let page = state.meta.catalog(after.as_ref(), 1000, 10_000, |_| true).await?;
        repositories.extend(page.names.iter().cloned());
        after = page.last_seen.clone();
        if !page.more {
            break;
        }
    }
    let mut linked_by_repo: Vec<(String, DigestSet)> = Vec::new();
    for repository in &repositories {
        match repo::collect(state, repository, m, dry_run, report).await {
            Ok(linked) => {
                kept.extend(&linked);
                linked_by_repo.push((repository.to_string(), linked));
            }
            Err(e) => {
                tracing::warn!(repository = %repository, error = %e, "gc: repository not fully read; no blob is deleted this cycle");
                report.incomplete = true;
            }
        }
    }
    report.repositories = repositories.len() as u64;
    kept.seal();
    report.live_blobs = kept.len() as u64;
    let present = blobs::sweep(state, &kept, m, dry_run, !report.incomplete, report).await?;
    for (repository, linked) in &linked_by_repo {
        report.by_repository.entry(repository.clone()).or_default().bytes = present.total(linked);
    }
    blobs::tidy(state, &present, m, dry_run, report).await
}

/// Bytes in binary units, one decimal.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A report for people: what was (or would be) freed, and with `verbose` one line per
/// repository.
pub fn summary(report: &Report, verbose: bool) -> String {
    use std::fmt::Write;
    if report.skipped {
        return "another collector holds the lease; nothing done\n".into();
    }
    let verb = if report.dry_run { "would free" } else { "freed" };
    let mut out = format!(
        "{verb} {} blobs ({}), {} manifests, {} links, {} tags; {} abandoned uploads purged\n\
         {} repositories, {} live manifests, {} blobs kept; {} kept because a push claimed them; {:.1}s\n",
        report.blobs_deleted,
        bytes(report.bytes_freed),
        report.manifests_deleted,
        report.links_deleted,
        report.tags_deleted,
        report.uploads_purged,
        report.repositories,
        report.live_manifests,
        report.live_blobs,
        report.kept_claimed,
        report.duration_ms as f64 / 1000.0,
    );
    if report.incomplete {
        out.push_str("a repository could not be read completely: no blob was deleted (see the log)\n");
    }
    if verbose {
        for (name, repository) in &report.by_repository {
            let deleted = if report.dry_run { "to delete" } else { "deleted" };
            let _ = writeln!(
                out,
                "  {name}: {} stored, {} tags/manifests/links {deleted}",
                bytes(repository.bytes),
                repository.deleted
            );
        }
    }
    out
}

/// The report of the last cycle any collector finished, if any.
pub async fn last_report(state: &AppState) -> Result<Option<Report>> {
    match state.blobs.backend().get_bytes(&layout::gc_report()).await {
        Ok(raw) => Ok(serde_json::from_slice(&raw).ok()),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs a cycle every `[gc] interval` (none when it is zero).
pub(crate) async fn background(state: crate::state::SharedState) {
    let interval = state.config.gc.interval;
    if interval.is_zero() {
        return;
    }
    let holder = format!("{:016x}", rand::random::<u64>());
    loop {
        tokio::time::sleep(interval).await;
        match cycle(&state, &holder, false).await {
            Ok(r) if r.skipped => tracing::debug!("gc: another collector holds the lease"),
            Ok(r) => tracing::info!(
                blobs = r.blobs_deleted,
                bytes = r.bytes_freed,
                manifests = r.manifests_deleted,
                links = r.links_deleted,
                tags = r.tags_deleted,
                duration_ms = r.duration_ms,
                "gc cycle"
            ),
            Err(e) => tracing::warn!(error = %e, "gc cycle failed"),
        }
    }
}
