//! Pull-through: manifest and blob GETs of a repository that mirrors an upstream
//! (`crate::upstream`) are answered from storage, fetching what is missing first.
//!
//! - **Manifests by digest** are fetched once (the upstream client verifies the bytes against
//!   the digest) and never asked for again.
//! - **Tags** are served from the cache for `tag_ttl` after they were last checked; then one
//!   HEAD upstream says whether they moved. When the upstream cannot be reached (or refuses,
//!   or rate-limits), the cached tag is served anyway (stale-if-error) and the log says so.
//! - **Blobs** stream to the client while they are stored: each chunk is written to a
//!   `BlobWriter` and then sent, except the last one, which is sent only once the stored blob's
//!   digest and size have been verified, so a client of a corrupt upstream gets an error, not a
//!   complete-looking wrong blob, and nothing is stored. The store goes on if the client leaves.
//!   One fetch per blob at a time in this process: other pulls of it wait, then read the stored
//!   blob.
//! - **Foreign layers** the upstream lacks come from their URLs when the policy allows
//!   ([`foreign`]).
//! - Every stored object is claimed under the GC protocol first, like a push.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{StatusCode, header};
use strata_storage::oci::Manifest;
use strata_storage::{Digest, RepositoryName, Tag, stream};

use super::{Ctx, blobs, manifests};
use crate::error::{ApiError, ApiResult, Code};
use crate::gc;
use crate::meta::Revision;
use crate::route::Reference;
use crate::state::AppState;
use crate::upstream::Upstream;

mod foreign;

/// Chunks in flight between the fetch and the client.
const CLIENT_CHUNKS: usize = 16;

/// An upstream failure, for a client that asked for something not cached.
fn upstream_error(upstream: &Upstream, e: strata_distribution::DistributionError) -> ApiError {
    use strata_distribution::DistributionError as D;
    match e {
        D::NotFound(what) => ApiError::new(Code::ManifestUnknown, format!("not found upstream: {what}")),
        D::Registry { status: 404, .. } => ApiError::new(Code::ManifestUnknown, "not found upstream"),
        D::Registry { status: 401 | 403, .. } | D::Auth(_) => ApiError::new(
            Code::Denied,
            format!("the upstream {} refused the request", upstream.name),
        ),
        other => ApiError::new(
            Code::Unavailable,
            format!("the upstream {} cannot be reached: {}", upstream.name, other.chain()),
        )
        .with_status(StatusCode::BAD_GATEWAY),
    }
}

fn busy() -> ApiError {
    ApiError::new(Code::Unavailable, "garbage collection holds this object; retry")
        .with_header(header::RETRY_AFTER, "1")
}

/// `GET`/`HEAD` of a manifest of a mirroring repository.
pub(crate) async fn manifest(
    ctx: Ctx,
    upstream: &Upstream,
    name: RepositoryName,
    remote: RepositoryName,
    reference: Reference,
    head: bool,
) -> ApiResult<Response> {
    let state = ctx.state.clone();
    // Without on-demand fetches, what sync cached is all there is.
    if upstream.on_demand {
        match &reference {
            Reference::Digest(digest) => {
                if state.meta.revision(&name, digest).await?.is_none() {
                    fetch_manifest(&state, upstream, &name, &remote, digest.as_ref()).await?;
                }
            }
            Reference::Tag(tag) => {
                refresh_tag(&state, upstream, &name, &remote, tag, false).await?;
            }
        }
    }
    manifests::get(ctx, name, reference, head).await
}

/// Fetches a manifest (and, for an index, nothing more: children come when asked) and stores
/// it as a revision of `name`.
async fn fetch_manifest(
    state: &AppState,
    upstream: &Upstream,
    name: &RepositoryName,
    remote: &RepositoryName,
    reference: &str,
) -> ApiResult<Digest> {
    let fetched = upstream.client.manifest(remote, reference).await.map_err(|e| {
        state.metrics.upstream(&upstream.name, "manifest", "error", 0);
        upstream_error(upstream, e)
    })?;
    state.metrics.upstream(&upstream.name, "manifest", "fetched", 0);
    let digest = fetched.digest.clone();
    if !gc::guard::prepare(state, name, &digest).await? {
        return Err(busy());
    }
    let size = fetched.bytes.len() as u64;
    let subject = Manifest::parse(&fetched.bytes, Some(&fetched.media_type))
        .ok()
        .and_then(|m| m.subject.map(|s| s.digest));
    state
        .blobs
        .put(&digest, Some(size), stream::once(fetched.bytes))
        .await?;
    state.meta.ensure_repository(name).await?;
    let revision = Revision {
        media_type: fetched.media_type,
        size,
        subject,
    };
    state.meta.put_revision(name, &digest, &revision).await?;
    tracing::info!(repository = %name, upstream = upstream.name, %digest, "cached a manifest");
    Ok(digest)
}

/// Makes the cached `tag` current: kept while younger than the TTL (unless `force`), else
/// checked upstream; the digest it names now.
async fn refresh_tag(
    state: &AppState,
    upstream: &Upstream,
    name: &RepositoryName,
    remote: &RepositoryName,
    tag: &Tag,
    force: bool,
) -> ApiResult<Digest> {
    let cached = state.meta.tag_written(name, tag).await?;
    if let Some((digest, written)) = &cached
        && !force
        && written.elapsed().is_ok_and(|age| age < upstream.tag_ttl)
    {
        return Ok(digest.clone());
    }
    let now = match upstream.client.head_manifest(remote, tag.as_str()).await {
        Ok(Some((digest, _, _))) => {
            state.metrics.upstream(&upstream.name, "tag_check", "fetched", 0);
            digest
        }
        Ok(None) => {
            return Err(ApiError::new(
                Code::ManifestUnknown,
                format!("{remote}:{tag} is not upstream"),
            ));
        }
        Err(e) if cached.is_some() => {
            state.metrics.upstream(&upstream.name, "tag_check", "stale", 0);
            tracing::warn!(repository = %name, %tag, upstream = upstream.name, error = %e.chain(),
                "the upstream cannot be checked: serving the cached tag");
            return Ok(cached.map(|(digest, _)| digest).expect("cached"));
        }
        Err(e) => {
            state.metrics.upstream(&upstream.name, "tag_check", "error", 0);
            return Err(upstream_error(upstream, e));
        }
    };
    if state.meta.revision(name, &now).await?.is_none() {
        let fetched = fetch_manifest(state, upstream, name, remote, now.as_ref()).await?;
        if fetched != now {
            return Err(ApiError::new(
                Code::ManifestInvalid,
                format!("the upstream named {now} for {tag} but served {fetched}"),
            ));
        }
    }
    // Written even when unchanged: its time is when it was last checked.
    state.meta.set_tag(name, tag, &now).await?;
    state.references.forget(name.as_str(), tag.as_str());
    if cached.as_ref().is_some_and(|(before, _)| *before != now) {
        tracing::info!(repository = %name, %tag, digest = %now, "the upstream moved a tag");
    }
    Ok(now)
}

/// `GET`/`HEAD` of a blob of a mirroring repository.
pub(crate) async fn blob(
    ctx: Ctx,
    upstream: &Upstream,
    name: RepositoryName,
    remote: RepositoryName,
    digest: Digest,
    head: bool,
) -> ApiResult<Response> {
    let state = ctx.state.clone();
    if state.meta.blob_linked(&name, &digest).await? || !upstream.on_demand {
        return blobs::get(ctx, name, digest, head).await;
    }
    if head {
        // A HEAD does not fetch: it says what the upstream (or a foreign layer's URL) has.
        let size = locate(&state, upstream, &name, &remote, &digest).await?.size();
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .header("docker-content-digest", digest.to_string())
            .header(header::CONTENT_LENGTH, size)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::empty())
            .expect("response"));
    }
    let gate = upstream.gate(&digest);
    let fetching = gate.clone().lock_owned().await;
    // Fetched meanwhile by another pull, or stored already for another repository.
    if state.blobs.exists(&digest).await? {
        drop(fetching);
        upstream.done(&digest);
        if !gc::guard::prepare(&state, &name, &digest).await? {
            return Err(busy());
        }
        state.meta.link_blob(&name, &digest).await?;
        return blobs::get(ctx, name, digest, false).await;
    }
    let (size, body) = match start_fetch(&state, upstream, &name, &remote, &digest).await {
        Ok(started) => started,
        Err(e) => {
            drop(fetching);
            upstream.done(&digest);
            return Err(e);
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<strata_storage::Result<Bytes>>(CLIENT_CHUNKS);
    let (repository, wanted) = (name.clone(), digest.clone());
    let upstream_name = upstream.name.clone();
    tokio::spawn(async move {
        let stored = store_and_send(&state, &upstream_name, &repository, &wanted, size, body, &tx).await;
        match stored {
            Ok(()) => {
                tracing::info!(repository = %repository, upstream = upstream_name, digest = %wanted, size, "cached a blob");
            }
            Err(e) => {
                tracing::warn!(repository = %repository, upstream = upstream_name, digest = %wanted, error = %e, "a blob from the upstream was not stored");
                let _ = tx.send(Err(e)).await;
            }
        }
        drop(fetching);
        if let Some((upstream, _)) = state.upstreams.route(&repository) {
            upstream.done(&wanted);
        }
    });
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("docker-content-digest", digest.to_string())
        .header(header::CONTENT_LENGTH, size)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(body)
        .expect("response"))
}

/// Where a blob that is not cached comes from.
enum Source {
    /// The upstream has it; its size.
    Upstream(u64),
    /// A foreign layer of a cached manifest, from a URL the policy lets the cache fetch.
    Foreign(Box<strata_storage::oci::Descriptor>),
}

impl Source {
    fn size(&self) -> u64 {
        match self {
            Source::Upstream(size) => *size,
            Source::Foreign(layer) => layer.size,
        }
    }
}

/// Finds where blob `digest` of `name` can be fetched from.
async fn locate(
    state: &AppState,
    upstream: &Upstream,
    name: &RepositoryName,
    remote: &RepositoryName,
    digest: &Digest,
) -> ApiResult<Source> {
    if let Some(size) = upstream
        .client
        .blob_size(remote, digest)
        .await
        .map_err(|e| upstream_error(upstream, e))?
    {
        return Ok(Source::Upstream(size));
    }
    // Without URLs to fetch from, nothing more to look for: a miss costs no manifest reads.
    if !state.foreign.fetches_any() {
        return Err(blob_unknown(digest));
    }
    match foreign::descriptor(state, name, digest).await? {
        Some(layer) if layer.urls.iter().any(|u| state.foreign.fetches(u)) => Ok(Source::Foreign(Box::new(layer))),
        Some(_) => Err(ApiError::new(
            Code::BlobUnknown,
            "a foreign layer the upstream does not have, and [foreign_layers] fetch allows none of its URLs",
        )
        .with_detail(serde_json::json!({ "digest": digest.to_string() }))),
        None => Err(blob_unknown(digest)),
    }
}

/// Starts fetching blob `digest` for `name`: its size (within `limits.max_blob_bytes`), the
/// download (from the upstream, or a foreign layer's URL), and the claim under the GC
/// protocol that keeps what is stored.
async fn start_fetch(
    state: &AppState,
    upstream: &Upstream,
    name: &RepositoryName,
    remote: &RepositoryName,
    digest: &Digest,
) -> ApiResult<(u64, strata_storage::ByteStream)> {
    let source = locate(state, upstream, name, remote, digest).await?;
    let size = source.size();
    let max = state.config.limits.max_blob_bytes;
    if max > 0 && size > max {
        return Err(ApiError::new(
            Code::SizeInvalid,
            format!("the upstream's blob is {size} bytes, over the limit of {max}"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE));
    }
    let body = match &source {
        Source::Upstream(_) => {
            upstream
                .client
                .get_blob(remote, digest, 0)
                .await
                .map_err(|e| upstream_error(upstream, e))?
                .body
        }
        Source::Foreign(layer) => {
            let opened = foreign::open(state, layer).await.map_err(|e| {
                state.metrics.upstream(&upstream.name, "foreign", "error", 0);
                ApiError::new(
                    Code::Unavailable,
                    format!("the foreign layer cannot be fetched: {}", e.chain()),
                )
                .with_status(StatusCode::BAD_GATEWAY)
            })?;
            tracing::info!(repository = %name, %digest, url = opened.url, "fetching a foreign layer");
            opened.body
        }
    };
    if !gc::guard::prepare(state, name, digest).await? {
        return Err(busy());
    }
    Ok((size, body))
}

fn blob_unknown(digest: &Digest) -> ApiError {
    ApiError::new(Code::BlobUnknown, "blob unknown to registry or upstream")
        .with_detail(serde_json::json!({ "digest": digest.to_string() }))
}

/// Writes the upstream's chunks to storage and passes each on to the client after it is
/// written; the last one only after the blob verified. A client that went away stops nothing.
async fn store_and_send(
    state: &AppState,
    upstream: &str,
    name: &RepositoryName,
    digest: &Digest,
    size: u64,
    body: strata_storage::ByteStream,
    tx: &tokio::sync::mpsc::Sender<strata_storage::Result<Bytes>>,
) -> strata_storage::Result<()> {
    let stored = store_and_send_inner(state, name, digest, size, body, tx).await;
    let result = if stored.is_ok() { "fetched" } else { "error" };
    state.metrics.upstream(upstream, "blob", result, size);
    stored
}

async fn store_and_send_inner(
    state: &AppState,
    name: &RepositoryName,
    digest: &Digest,
    size: u64,
    mut body: strata_storage::ByteStream,
    tx: &tokio::sync::mpsc::Sender<strata_storage::Result<Bytes>>,
) -> strata_storage::Result<()> {
    let mut writer = state.blobs.writer().await?;
    let mut held: Option<Bytes> = None;
    let mut client = true;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) if writer.written() + chunk.len() as u64 <= size => chunk,
            Ok(chunk) => {
                let actual = writer.written() + chunk.len() as u64;
                let _ = writer.abort().await;
                return Err(strata_storage::Error::SizeMismatch { expected: size, actual });
            }
            Err(e) => {
                let _ = writer.abort().await;
                return Err(e);
            }
        };
        writer.write(chunk.clone()).await?;
        if let Some(previous) = held.replace(chunk)
            && client
        {
            client = tx.send(Ok(previous)).await.is_ok();
        }
    }
    writer.commit(digest, Some(size)).await?;
    state.meta.link_blob(name, digest).await?;
    if let Some(last) = held
        && client
    {
        let _ = tx.send(Ok(last)).await;
    }
    Ok(())
}

/// Caches blob `digest` of `name` without a client waiting (sync).
async fn cache_blob(
    state: &AppState,
    upstream: &Upstream,
    name: &RepositoryName,
    remote: &RepositoryName,
    digest: &Digest,
) -> ApiResult<()> {
    if state.meta.blob_linked(name, digest).await? {
        return Ok(());
    }
    let gate = upstream.gate(digest);
    let fetching = gate.lock().await;
    let result = async {
        if state.blobs.exists(digest).await? {
            if !gc::guard::prepare(state, name, digest).await? {
                return Err(busy());
            }
            return Ok(state.meta.link_blob(name, digest).await?);
        }
        let (size, body) = start_fetch(state, upstream, name, remote, digest).await?;
        // Nobody listens: every send fails and the store goes on alone.
        let (tx, _) = tokio::sync::mpsc::channel(1);
        Ok(store_and_send(state, &upstream.name, name, digest, size, body, &tx).await?)
    }
    .await;
    drop(fetching);
    upstream.done(digest);
    result
}

/// One round of `rule` of `upstream`: every matching tag of its repositories checked, and
/// everything their images need (every platform of an index) cached. How many tags.
pub(crate) async fn sync(state: &AppState, upstream: &Upstream, rule: &crate::upstream::Sync) -> ApiResult<usize> {
    let mut synced = 0;
    for remote in &rule.repositories {
        let name = RepositoryName::parse(&format!("{}/{remote}", upstream.prefix))?;
        let tags = upstream
            .client
            .tags(remote)
            .await
            .map_err(|e| upstream_error(upstream, e))?;
        for tag in tags
            .iter()
            .filter(|t| rule.tags.as_ref().is_none_or(|re| re.is_match(t)))
        {
            let Ok(tag) = Tag::parse(tag) else { continue };
            let digest = refresh_tag(state, upstream, &name, remote, &tag, true).await?;
            let mut manifests = vec![digest];
            while let Some(digest) = manifests.pop() {
                if state.meta.revision(&name, &digest).await?.is_none() {
                    fetch_manifest(state, upstream, &name, remote, digest.as_ref()).await?;
                }
                let bytes = state.blobs.read_limited(&digest, 8 << 20).await?;
                let Ok(manifest) = Manifest::parse(&bytes, None) else {
                    continue;
                };
                manifests.extend(manifest.manifests.iter().map(|d| d.digest.clone()));
                for blob in manifest
                    .config
                    .iter()
                    .chain(&manifest.layers)
                    .filter(|d| d.urls.is_empty())
                {
                    cache_blob(state, upstream, &name, remote, &blob.digest).await?;
                }
            }
            synced += 1;
        }
    }
    Ok(synced)
}

/// Runs every sync rule of every upstream on its schedule, one replica per round (leases
/// `_upkeep/sync-<prefix>-<n>`).
pub(crate) async fn sync_forever(state: crate::state::SharedState) {
    let holder = format!("{:016x}", rand::random::<u64>());
    let mut rounds = tokio::task::JoinSet::new();
    for (u, upstream) in state.upstreams.iter().enumerate() {
        for r in 0..upstream.sync.len() {
            let (state, holder) = (state.clone(), holder.clone());
            rounds.spawn(async move {
                let upstream = state.upstreams.iter().nth(u).expect("upstream");
                let rule = &upstream.sync[r];
                let key = strata_storage::layout::upkeep_lease(&format!("sync-{}-{r}", upstream.prefix));
                loop {
                    let now = std::time::SystemTime::now();
                    match gc::lease::take(&state, &key, &holder, now, rule.every.mul_f64(0.9)).await {
                        Ok(true) => match sync(&state, upstream, rule).await {
                            Ok(n) => tracing::info!(upstream = upstream.name, tags = n, "synced"),
                            Err(e) => tracing::warn!(upstream = upstream.name, error = %e.message, "sync failed"),
                        },
                        Ok(false) => {}
                        Err(e) => tracing::warn!(upstream = upstream.name, error = %e, "sync lease"),
                    }
                    tokio::time::sleep(rule.every).await;
                }
            });
        }
    }
    while rounds.join_next().await.is_some() {}
}
