//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::response::Response;
use http::{StatusCode, header};
use strata_storage::{Algorithm, Digest, RepositoryName, Tag, stream};

use super::read_small_body;

use super::{Ctx, check_delete_enabled, empty};
use crate::error::{ApiError, ApiResult, Code};
use crate::gc::{self, guard::Use};
use crate::meta::Revision;
use crate::route::Reference;
use crate::state::AppState;
use bytes::Bytes;
use strata_storage::oci::{Descriptor, Manifest};

fn manifest_unknown(reference: &Reference) -> ApiError {
    ApiError::new(Code::ManifestUnknown, "manifest unknown to registry")
        .with_detail(serde_json::json!({ "reference": reference.to_string() }))
}

/// The digest a reference names in `name`, if any.
async fn resolve(state: &AppState, name: &RepositoryName, reference: &Reference) -> ApiResult<Option<Digest>> {
    match reference {
        Reference::Digest(d) => Ok(Some(d.clone())),
        Reference::Tag(t) => Ok(state.meta.tag(name, t).await?),
    }
}

/// The digest and revision of the manifest `reference` names in `name` (`MANIFEST_UNKNOWN`
/// when none), through the reference cache.
pub(crate) async fn lookup(
    state: &AppState,
    name: &RepositoryName,
    reference: &Reference,
) -> ApiResult<(Digest, Revision)> {
    let reference_text = reference.to_string();
    if let Some(hit) = state.references.get(name.as_str(), &reference_text) {
        return Ok(hit);
    }
    let digest = resolve(state, name, reference)
        .await?
        .ok_or_else(|| manifest_unknown(reference))?;
    let revision = state
        .meta
        .revision(name, &digest)
        .await?
        .ok_or_else(|| manifest_unknown(reference))?;
    state
        .references
        .insert(name.as_str(), &reference_text, digest.clone(), revision.clone());
    Ok((digest, revision))
}

/// The bytes of a manifest [`lookup`] found, through the manifest cache.
pub(crate) async fn read(
    state: &AppState,
    digest: &Digest,
    revision: &Revision,
    reference: &Reference,
) -> ApiResult<Bytes> {
    if let Some(bytes) = state.manifests.get(digest) {
        return Ok(bytes);
    }
    let bytes = state
        .blobs
        .read_limited(digest, revision.size)
        .await
        .map_err(|e| match e {
            strata_storage::Error::NotFound { .. } => manifest_unknown(reference),
            other => other.into(),
        })?;
    state.manifests.insert(digest.clone(), bytes.clone());
    Ok(bytes)
}

/// Whether an `If-None-Match` header names `digest`.
fn matches_etag(ctx: &Ctx, digest: &Digest) -> bool {
    let Some(value) = ctx.header(header::IF_NONE_MATCH) else {
        return false;
    };
    let digest = digest.to_string();
    value
        .split(',')
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|v| v == digest || v == "*")
}

/// Serves a manifest with its stored media type, digest and length; 304 for a matching
/// `If-None-Match`.
pub(crate) async fn get(ctx: Ctx, name: RepositoryName, reference: Reference, head: bool) -> ApiResult<Response> {
    let state = &ctx.state;
    let (digest, revision) = lookup(state, &name, &reference).await?;
    let builder = Response::builder()
        .header("docker-content-digest", digest.to_string())
        .header(header::ETAG, format!("\"{digest}\""));
    if matches_etag(&ctx, &digest) {
        return Ok(builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .expect("response"));
    }
    let builder = builder
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, &revision.media_type)
        .header(header::CONTENT_LENGTH, revision.size);
    if head {
        return Ok(builder.body(Body::empty()).expect("response"));
    }
    let bytes = read(state, &digest, &revision, &reference).await?;
    Ok(builder.body(Body::from(bytes)).expect("response"))
}

/// Stores a manifest byte for byte after checking that everything it references is here.
pub(crate) async fn put(ctx: Ctx, name: RepositoryName, reference: Reference) -> ApiResult<Response> {
    let state = ctx.state.clone();
    let content_type = ctx
        .header(header::CONTENT_TYPE)
        .map(|v| v.split(';').next().unwrap_or("").trim().to_owned());
    let limits = &state.config.limits;
    if ctx.query_all("tag").count() > limits.max_tags_per_push {
        return Err(ApiError::new(
            Code::TagInvalid,
            format!("more than {} tag parameters", limits.max_tags_per_push),
        ));
    }
    let extra_tags = ctx.query_all("tag").map(Tag::parse).collect::<Result<Vec<_>, _>>()?;
    let (bytes, _held) = read_small_body(&ctx, limits.max_manifest_bytes).await?;
    let manifest = Manifest::parse(&bytes, content_type.as_deref())?;
    let references = manifest.config.iter().count() + manifest.layers.len() + manifest.manifests.len();
    if references > limits.max_manifest_references {
        return Err(ApiError::new(
            Code::ManifestInvalid,
            format!(
                "the manifest references {references} blobs and manifests, more than the {} allowed",
                limits.max_manifest_references
            ),
        ));
    }
    let digest = match &reference {
        Reference::Digest(expected) => {
            let actual = Algorithm::of(expected)?.digest_of(&bytes);
            if &actual != expected {
                return Err(
                    ApiError::new(Code::DigestInvalid, "manifest digest does not match its content").with_detail(
                        serde_json::json!({ "expected": expected.to_string(), "actual": actual.to_string() }),
                    ),
                );
            }
            actual
        }
        Reference::Tag(_) => Algorithm::Sha256.digest_of(&bytes),
    };
    // References first, each claimed and confirmed against garbage collection; then the
    // content, the revision, and last what points at it: a tag never names a manifest that is
    // not completely stored, and no acknowledged manifest lacks a blob (see `gc`).
    let held = std::time::Instant::now();
    let mut uses = check_references(&state, &name, &manifest).await?;
    let size = bytes.len() as u64;
    // The manifest's own blob may be stored already (a re-push): claimed first, so the copy
    // kept is not one a collector is deleting.
    if !gc::guard::prepare(&state, &name, &digest).await? {
        return Err(ApiError::new(
            Code::Unavailable,
            "garbage collection is deleting this manifest; try again shortly",
        ));
    }
    let existed = state.meta.revision(&name, &digest).await?.is_some();
    state
        .blobs
        .put(&digest, Some(size), stream::once(bytes.clone()))
        .await?;
    state.manifests.insert(digest.clone(), bytes);
    let subject = manifest.subject.as_ref().map(|s| s.digest.clone());
    let revision = Revision {
        media_type: manifest.media_type.clone(),
        size,
        subject: subject.clone(),
    };
    state.meta.put_revision(&name, &digest, &revision).await?;
    if let Some(subject) = &subject {
        let descriptor = manifest.referrer(&digest, size);
        state.meta.add_referrer(&name, subject, &digest, &descriptor).await?;
    }
    // The claims protect for `claim_ttl`, counted from before the tags are written only if
    // all this took less than half of it; a slow storage makes them again.
    if held.elapsed() >= state.config.gc.claim_ttl / 2 {
        uses.push((digest.clone(), Use::Manifest));
        if let Err(e) = hold_references(&state, &name, &uses).await {
            if !existed {
                if let Some(subject) = &subject {
                    state.meta.remove_referrer(&name, subject, &digest).await?;
                }
                state.meta.delete_revision(&name, &digest).await?;
            }
            return Err(e);
        }
    }
    if let Reference::Tag(tag) = &reference {
        state.meta.set_tag(&name, tag, &digest).await?;
        state.references.forget(name.as_str(), tag.as_str());
    }
    for tag in &extra_tags {
        state.meta.set_tag(&name, tag, &digest).await?;
        state.references.forget(name.as_str(), tag.as_str());
    }
    state.meta.ensure_repository(&name).await?;

    let mut response = empty(StatusCode::CREATED)
        .header(header::LOCATION, format!("/v2/{name}/manifests/{digest}"))
        .header("docker-content-digest", digest.to_string());
    if let Some(subject) = &subject {
        response = response.header("oci-subject", subject.to_string());
    }
    for tag in &extra_tags {
        response = response.header("oci-tag", tag.as_str());
    }
    Ok(response.body(Body::empty()).expect("response"))
}

/// Storage lookups in flight at once while checking one manifest's references.
const REFERENCE_CHECKS: usize = 16;

/// Tries at holding a manifest's references again (each must finish within half the claim
/// window).
const HOLD_TRIES: usize = 3;

/// Claims and confirms again everything the manifest relies on, for a push whose first hold
/// is older than half the claim window (an overloaded storage).
async fn hold_references(
    state: &crate::state::AppState,
    name: &RepositoryName,
    uses: &[(Digest, Use)],
) -> ApiResult<()> {
    let window = state.config.gc.claim_ttl / 2;
    for _ in 0..HOLD_TRIES {
        let started = std::time::Instant::now();
        if let Some(missing) = gc::guard::hold_all(state, name, uses).await? {
            return Err(ApiError::new(
                Code::ManifestBlobUnknown,
                "manifest references a blob or manifest that garbage collection removed while this push ran; push it again",
            )
            .with_detail(serde_json::json!({ "digest": missing.to_string() })));
        }
        if started.elapsed() < window {
            return Ok(());
        }
    }
    Err(ApiError::new(
        Code::Unavailable,
        "storage too slow to hold the manifest's references within the garbage-collection claim window",
    ))
}

/// Every blob and child manifest must be in the repository, except foreign layers whose URLs
/// the policy allows; each is held against garbage collection (claimed, no deletion under way,
/// there: `gc::guard::hold`). The subject need not exist (the spec says so). Returns what the
/// manifest relies on in the repository.
async fn check_references(
    state: &crate::state::AppState,
    name: &RepositoryName,
    manifest: &Manifest,
) -> ApiResult<Vec<(Digest, Use)>> {
    use futures::{FutureExt, StreamExt};
    // A few lookups at a time, stopping at the first missing one: memory and time stay bounded
    // whatever the manifest names. (A plain loop: a lazy stream of closures here trips rustc's
    // "Send is not general enough".)
    let mut seen = std::collections::HashSet::new();
    let mut todo: Vec<(&Descriptor, bool)> = manifest
        .config
        .iter()
        .chain(&manifest.layers)
        .map(|d| (d, true))
        .collect();
    todo.extend(manifest.manifests.iter().map(|d| (d, false)));
    todo.retain(|(d, _)| seen.insert(&d.digest));
    let mut next = todo.into_iter();
    let mut running = futures::stream::FuturesUnordered::new();
    let mut uses = Vec::new();
    loop {
        while running.len() < REFERENCE_CHECKS {
            match next.next() {
                Some((d, true)) => running.push(check_blob(state, name, d).boxed()),
                Some((d, false)) => running.push(check_child(state, name, d).boxed()),
                None => break,
            }
        }
        match running.next().await {
            Some(result) => uses.extend(result?),
            None => return Ok(uses),
        }
    }
}

fn unknown_reference(d: &Descriptor, why: &str) -> ApiError {
    ApiError::new(
        Code::ManifestBlobUnknown,
        format!("manifest references an unknown {why}"),
    )
    .with_detail(serde_json::json!({ "digest": d.digest.to_string() }))
}

/// A linked blob is used (and held); a foreign layer the policy allows need not be stored
/// here at all.
async fn check_blob(
    state: &crate::state::AppState,
    name: &RepositoryName,
    d: &Descriptor,
) -> ApiResult<Option<(Digest, Use)>> {
    let allowed_foreign = d.may_be_absent() && state.foreign.allows(&d.urls);
    if allowed_foreign && !state.meta.blob_linked(name, &d.digest).await? {
        return Ok(None);
    }
    if gc::guard::hold(state, name, &d.digest, Use::Blob).await? {
        return Ok(Some((d.digest.clone(), Use::Blob)));
    }
    if allowed_foreign {
        return Ok(None);
    }
    let why = if !d.urls.is_empty() {
        "blob (and its URLs are not allowed by the foreign-layer policy)"
    } else if d.may_be_absent() {
        "blob: a non-distributable layer without URLs must be pushed like any other"
    } else {
        "blob"
    };
    Err(unknown_reference(d, why))
}

async fn check_child(
    state: &crate::state::AppState,
    name: &RepositoryName,
    d: &Descriptor,
) -> ApiResult<Option<(Digest, Use)>> {
    if gc::guard::hold(state, name, &d.digest, Use::Manifest).await? {
        return Ok(Some((d.digest.clone(), Use::Manifest)));
    }
    Err(unknown_reference(d, "manifest"))
}

/// `DELETE`: a tag (the manifest stays), or a manifest with every tag pointing at it.
pub(crate) async fn delete(ctx: Ctx, name: RepositoryName, reference: Reference) -> ApiResult<Response> {
    check_delete_enabled(&ctx.state)?;
    remove(&ctx.state, &name, &reference).await?;
    Ok(empty(StatusCode::ACCEPTED).body(Body::empty()).expect("response"))
}

/// Deletes a tag (the manifest stays), or a manifest with every tag pointing at it. The caller
/// checks that deletes are enabled and allowed.
pub(crate) async fn remove(state: &AppState, name: &RepositoryName, reference: &Reference) -> ApiResult<()> {
    let meta = &state.meta;
    match reference {
        Reference::Tag(tag) => {
            state.references.forget(name.as_str(), tag.as_str());
            meta.delete_tag(name, tag).await.map_err(|e| match e {
                strata_storage::Error::NotFound { .. } => manifest_unknown(reference),
                other => other.into(),
            })?;
        }
        Reference::Digest(digest) => {
            let revision = meta
                .revision(name, digest)
                .await?
                .ok_or_else(|| manifest_unknown(reference))?;
            // What a concurrent delete removed first is gone either way.
            let gone = |result: strata_storage::Result<()>| match result {
                Ok(()) | Err(strata_storage::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            };
            state.references.forget_digest(name.as_str(), digest);
            meta.untag(name, digest).await?;
            if let Some(subject) = &revision.subject {
                meta.remove_referrer(name, subject, digest).await?;
            }
            gone(meta.delete_revision(name, digest).await)?;
            state.references.forget_digest(name.as_str(), digest);
        }
    }
    Ok(())
}
