//! One repository's part of a cycle: mark what its tags reach, then delete (under the intent
//! protocol) the tags retention drops, and the revisions and links nothing reaches that are
//! old and unclaimed. Returns every digest the repository still links afterwards.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::time::SystemTime;

use futures::StreamExt;
use globset::{GlobBuilder, GlobSetBuilder};
use regex::Regex;
use strata_storage::{Digest, RepositoryName, Result, Tag, layout};

use super::intent::{claimed_since, delete_under_intent, ignore_missing, older_than};
use super::set::DigestSet;
use super::{Report, RepositoryReport, parallel};
use crate::config::Retention;
use crate::state::AppState;
use strata_storage::oci::Manifest;

/// Listed objects under a prefix: digest (or tag) → modification time.
async fn listing<T: std::hash::Hash + Eq>(
    state: &AppState,
    prefix: &strata_storage::Key,
    name_of: impl Fn(&strata_storage::Key) -> Option<T>,
) -> Result<HashMap<T, SystemTime>> {
    let mut out = HashMap::new();
    let mut list = state.blobs.backend().list(prefix, None);
    while let Some(meta) = list.next().await {
        let meta = meta?;
        if let Some(name) = name_of(&meta.key) {
            out.insert(name, meta.modified);
        }
    }
    Ok(out)
}

/// The first retention rule whose globs match `repository`.
fn retention_for<'a>(rules: &'a [Retention], repository: &RepositoryName) -> Option<&'a Retention> {
    rules.iter().find(|rule| {
        let mut set = GlobSetBuilder::new();
        for pattern in &rule.repositories {
            if let Ok(glob) = GlobBuilder::new(pattern).literal_separator(true).build() {
                set.add(glob);
            }
        }
        set.build().is_ok_and(|s| s.is_match(repository.as_str()))
    })
}

/// The tags `rule` drops, given each tag's push time, at `now`.
pub(crate) fn dropped_tags(rule: &Retention, tags: &HashMap<Tag, SystemTime>, now: SystemTime) -> Vec<Tag> {
    let keep = rule.keep_tags.as_deref().and_then(|p| Regex::new(p).ok());
    let mut candidates: Vec<(&Tag, &SystemTime)> = tags
        .iter()
        .filter(|(tag, _)| !keep.as_ref().is_some_and(|k| k.is_match(tag.as_str())))
        .collect();
    // Newest first; ties broken by name for a stable answer.
    candidates.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let mut dropped = Vec::new();
    for (rank, (tag, pushed)) in candidates.into_iter().enumerate() {
        let beyond_last = rule.keep_last.is_some_and(|n| rank >= n);
        let too_old = rule
            .delete_older_than
            .is_some_and(|age| now.duration_since(*pushed).is_ok_and(|a| a > age));
        let drop = match (rule.keep_last.is_some(), rule.delete_older_than.is_some()) {
            (true, true) => beyond_last && too_old,
            (true, false) => beyond_last,
            (false, true) => too_old,
            (false, false) => false,
        };
        if drop {
            dropped.push((*tag).clone());
        }
    }
    dropped
}

/// Manifests read at once while marking.
const READS: usize = 16;

/// What a live manifest references: its blobs (config, layers, itself) and child manifests.
async fn references(
    state: &AppState,
    repository: &RepositoryName,
    digest: Digest,
) -> Result<(Digest, Vec<Digest>, Vec<Digest>)> {
    let media_type = state.meta.revision(repository, &digest).await?.map(|r| r.media_type);
    let bytes = match state
        .blobs
        .read_limited(&digest, state.config.limits.max_manifest_bytes)
        .await
    {
        Ok(bytes) => bytes,
        // The revision outlived its bytes (a crash between deletes): it references nothing.
        Err(strata_storage::Error::NotFound { .. }) => return Ok((digest, Vec::new(), Vec::new())),
        Err(e) => return Err(e),
    };
    // A manifest the registry accepted parses; one that does not references nothing we could
    // name, and keeps only itself.
    let (blobs, children) = match Manifest::parse(&bytes, media_type.as_deref()) {
        Ok(manifest) => (
            manifest
                .config
                .iter()
                .chain(&manifest.layers)
                .map(|d| d.digest.clone())
                .collect(),
            manifest.manifests.iter().map(|d| d.digest.clone()).collect(),
        ),
        Err(_) => (Vec::new(), Vec::new()),
    };
    Ok((digest, blobs, children))
}

/// Marks and sweeps `repository` at cycle start `m`; the digests it still links.
pub(crate) async fn collect(
    state: &AppState,
    repository: &RepositoryName,
    m: SystemTime,
    dry_run: bool,
    report: &mut Report,
) -> Result<DigestSet> {
    use futures::FutureExt;
    let gc = &state.config.gc;
    let meta = &state.meta;
    // Listed in push order's reverse (tags are written last, links first), so whatever a
    // listed tag reaches is in the later listings.
    let tags = listing(state, &layout::tags(repository), layout::tag_name).await?;
    let mut referrers_of: HashMap<Digest, Vec<Digest>> = HashMap::new();
    let mut list = state.blobs.backend().list(&layout::all_referrers(repository), None);
    while let Some(entry) = list.next().await {
        if let Some((subject, referrer)) = layout::referrer_pair(&entry?.key) {
            referrers_of.entry(subject).or_default().push(referrer);
        }
    }
    drop(list);
    let is_referrer: HashSet<Digest> = referrers_of.values().flatten().cloned().collect();
    let revisions = listing(state, &layout::manifest_revisions(repository), layout::linked_digest).await?;
    let links = listing(state, &layout::layer_links(repository), layout::linked_digest).await?;
    let mut entry = RepositoryReport::default();

    // Retention.
    let dropped = match retention_for(&gc.retention, repository) {
        Some(rule) => dropped_tags(rule, &tags, m),
        None => Vec::new(),
    };
    let mut tag_targets: Vec<(Tag, Digest)> = Vec::new();
    let jobs = tags
        .keys()
        .map(|tag| async move { Ok(meta.tag(repository, tag).await?.map(|digest| (tag.clone(), digest))) }.boxed())
        .collect();
    parallel::each(jobs, |target| {
        tag_targets.extend(target);
        ControlFlow::Continue(())
    })
    .await?;
    tag_targets.sort_by(|a, b| a.0.cmp(&b.0));
    let mut roots: Vec<Digest> = tag_targets
        .iter()
        .filter(|(tag, _)| !dropped.contains(tag))
        .map(|(_, digest)| digest.clone())
        .collect();
    // Manifests only dropped tags pointed at are released: retention frees them even when
    // untagged manifests are otherwise kept.
    let kept_targets: HashSet<&Digest> = tag_targets
        .iter()
        .filter(|(t, _)| !dropped.contains(t))
        .map(|(_, d)| d)
        .collect();
    let released: HashSet<Digest> = tag_targets
        .iter()
        .filter(|(t, d)| dropped.contains(t) && !kept_targets.contains(d))
        .map(|(_, d)| d.clone())
        .collect();
    // With untagged manifests kept, every revision is a root, except the released and the
    // referrers: those live only through their subject ("referrers follow their subject").
    // A revision within the grace period is a root too, so what it references stays with it.
    let collectable = |digest: &Digest| gc.delete_untagged || released.contains(digest) || is_referrer.contains(digest);
    roots.extend(
        revisions
            .iter()
            .filter(|(d, modified)| !collectable(d) || !older_than(**modified, m, gc.grace))
            .map(|(d, _)| d.clone()),
    );

    // Mark, a wave at a time: manifests reachable from the roots (children, referrers of live
    // subjects), and the blobs they reference.
    let mut live_manifests: HashSet<Digest> = HashSet::new();
    let mut live_blobs = DigestSet::default();
    let mut wave = roots;
    while !wave.is_empty() {
        let mut todo = std::mem::take(&mut wave)
            .into_iter()
            .filter(|d| revisions.contains_key(d) && live_manifests.insert(d.clone()));
        let mut running = futures::stream::FuturesUnordered::new();
        loop {
            while running.len() < READS {
                let Some(digest) = todo.next() else { break };
                running.push(references(state, repository, digest).boxed());
            }
            let Some(read) = running.next().await else { break };
            let (digest, blobs, children) = read?;
            live_blobs.insert(&digest);
            for blob in &blobs {
                live_blobs.insert(blob);
            }
            wave.extend(children);
            wave.extend(referrers_of.get(&digest).into_iter().flatten().cloned());
        }
    }
    live_blobs.seal();
    report.live_manifests += live_manifests.len() as u64;

    let since = m.checked_sub(gc.claim_ttl).unwrap_or(std::time::UNIX_EPOCH);
    let mut still_linked = live_blobs.clone();

    // Tags retention drops (their manifests then follow when unreachable and untagged
    // collection is on, or stay as untagged revisions).
    for (tag, digest) in &tag_targets {
        if !dropped.contains(tag) {
            continue;
        }
        // Re-pushed since the mark: keep.
        if meta.tag(repository, tag).await?.as_ref() != Some(digest) {
            continue;
        }
        if !dry_run {
            ignore_missing(meta.delete_tag(repository, tag).await)?;
            state.references.forget(repository.as_str(), tag.as_str());
        }
        report.tags_deleted += 1;
        entry.deleted += 1;
    }

    // Revisions nothing reaches, then blob links nothing references: kept when young or
    // claimed, else deleted under the intent protocol.
    let mut settle = |digest: &Digest, fate: Fate, deleted: &mut u64| {
        match fate {
            Fate::Young => {}
            Fate::Claimed => report.kept_claimed += 1,
            Fate::Gone => {
                *deleted += 1;
                entry.deleted += 1;
                return;
            }
        }
        still_linked.insert(digest);
    };
    let mut manifests_deleted = 0;
    let mut jobs = Vec::new();
    for (digest, modified) in &revisions {
        if live_manifests.contains(digest) {
            continue;
        }
        if !collectable(digest) || !older_than(*modified, m, gc.grace) {
            settle(digest, Fate::Young, &mut manifests_deleted);
            continue;
        }
        jobs.push(
            async move {
                let fate = judge(state, repository, digest, since, dry_run, || async {
                    if let Some(subject) = meta.revision(repository, digest).await?.and_then(|r| r.subject) {
                        meta.remove_referrer(repository, &subject, digest).await?;
                    }
                    meta.delete_revision(repository, digest).await?;
                    state.references.forget_digest(repository.as_str(), digest);
                    meta.drop_tag_index(repository, digest).await
                })
                .await?;
                Ok((digest, fate))
            }
            .boxed(),
        );
    }
    parallel::each(jobs, |(digest, fate)| {
        settle(digest, fate, &mut manifests_deleted);
        ControlFlow::Continue(())
    })
    .await?;
    let mut links_deleted = 0;
    let mut jobs = Vec::new();
    for (digest, modified) in &links {
        if live_blobs.contains(digest) {
            continue;
        }
        if !older_than(*modified, m, gc.grace) {
            settle(digest, Fate::Young, &mut links_deleted);
            continue;
        }
        jobs.push(
            async move {
                let fate = judge(state, repository, digest, since, dry_run, || {
                    meta.unlink_blob(repository, digest)
                })
                .await?;
                Ok((digest, fate))
            }
            .boxed(),
        );
    }
    parallel::each(jobs, |(digest, fate)| {
        settle(digest, fate, &mut links_deleted);
        ControlFlow::Continue(())
    })
    .await?;
    report.manifests_deleted += manifests_deleted;
    report.links_deleted += links_deleted;
    still_linked.seal();
    report.by_repository.insert(repository.to_string(), entry);
    Ok(still_linked)
}

/// What became of a revision or link nothing reaches.
enum Fate {
    /// Within the grace period (or not collectable): kept.
    Young,
    /// Claimed by a push since the claim window began: kept.
    Claimed,
    /// Deleted (or, in a dry run, would be).
    Gone,
}

/// Deletes `digest`'s revision or link in `repository` with `delete`, under the intent
/// protocol, unless a push claimed it after `since`.
async fn judge<F, Fut>(
    state: &AppState,
    repository: &RepositoryName,
    digest: &Digest,
    since: SystemTime,
    dry_run: bool,
    delete: F,
) -> Result<Fate>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    if claimed_since(state, digest, since).await? {
        return Ok(Fate::Claimed);
    }
    if dry_run {
        return Ok(Fate::Gone);
    }
    let intent = layout::link_intent(repository, digest)?;
    Ok(if delete_under_intent(state, &intent, digest, since, delete).await? {
        Fate::Gone
    } else {
        Fate::Claimed
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn tags(ages_secs: &[(&str, u64)], now: SystemTime) -> HashMap<Tag, SystemTime> {
        ages_secs
            .iter()
            .map(|(t, age)| (Tag::parse(t).unwrap(), now - Duration::from_secs(*age)))
            .collect()
    }

    fn names(v: Vec<Tag>) -> Vec<String> {
        let mut v: Vec<String> = v.into_iter().map(|t| t.as_str().to_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn retention_keeps_the_newest_the_matching_and_the_young() {
        let now = SystemTime::now();
        let t = tags(&[("a", 10), ("b", 20), ("c", 30), ("v1", 40), ("d", 50_000)], now);
        let rule = |keep_last, keep_tags: Option<&str>, older: Option<u64>| Retention {
            repositories: vec!["**".into()],
            keep_last,
            keep_tags: keep_tags.map(str::to_owned),
            delete_older_than: older.map(Duration::from_secs),
        };
        assert_eq!(
            names(dropped_tags(&rule(Some(2), None, None), &t, now)),
            ["c", "d", "v1"]
        );
        assert_eq!(
            names(dropped_tags(&rule(Some(2), Some("^v"), None), &t, now)),
            ["c", "d"]
        );
        assert_eq!(
            names(dropped_tags(&rule(None, None, Some(25)), &t, now)),
            ["c", "d", "v1"]
        );
        assert_eq!(names(dropped_tags(&rule(Some(1), None, Some(1000)), &t, now)), ["d"]);
        assert!(dropped_tags(&rule(None, None, None), &t, now).is_empty());
    }
}
