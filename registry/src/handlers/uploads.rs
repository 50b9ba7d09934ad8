//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic `?digest=`, cross-repository
//! `?mount=&from=`), then `PATCH` (chunked with `Content-Range`, or streamed), `PUT ?digest=`,
//! `GET` (status) and `DELETE` (cancel) on the session's `Location`.
//!
//! Sessions live in storage (bytes, running hash, and a record naming the repository), so any
//! replica, or this one after a restart, continues a session at the same `Location`.

use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use http::{StatusCode, header};
use strata_storage::{Digest, Error as StorageError, RepositoryName, UploadId, UploadStatus, digest::parse_digest};

use super::{Ctx, body_stream, empty};
use crate::config::Action;
use crate::error::{ApiError, ApiResult, Code, upload_range};
use crate::gc::{self, guard::Use};
use crate::metrics::SessionEvent;
use crate::state::AppState;

fn location(name: &RepositoryName, id: &UploadId) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

fn upload_unknown() -> ApiError {
    ApiError::new(Code::BlobUploadUnknown, "blob upload unknown to registry")
}

fn or_upload_unknown(e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound { .. } => upload_unknown(),
        other => other.into(),
    }
}

/// `202` describing an open session.
fn session_response(status: StatusCode, name: &RepositoryName, id: &UploadId, length: u64) -> http::response::Builder {
    empty(status)
        .header(header::LOCATION, location(name, id))
        .header(header::RANGE, upload_range(length))
        .header("docker-upload-uuid", id.as_str())
}

/// `201` for a blob now in `name`.
fn blob_created(name: &RepositoryName, digest: &Digest) -> Response {
    empty(StatusCode::CREATED)
        .header(header::LOCATION, format!("/v2/{name}/blobs/{digest}"))
        .header("docker-content-digest", digest.to_string())
        .body(Body::empty())
        .expect("response")
}

/// The blob-size limit left for a session at `offset`, if there is a limit.
fn remaining_limit(ctx: &Ctx, offset: u64) -> ApiResult<Option<u64>> {
    limit_left(ctx.state.config.limits.max_blob_bytes, offset, ctx.content_length())
}

/// What `max_blob_bytes` (`max`, 0: none) leaves at `offset`, refusing a `content_length` that
/// does not fit.
fn limit_left(max: u64, offset: u64, content_length: Option<u64>) -> ApiResult<Option<u64>> {
    if max == 0 {
        return Ok(None);
    }
    match max.checked_sub(offset) {
        Some(left) if content_length.is_none_or(|n| n <= left) => Ok(Some(left)),
        _ => Err(
            ApiError::new(Code::SizeInvalid, format!("blob larger than the limit of {max} bytes"))
                .with_status(StatusCode::PAYLOAD_TOO_LARGE),
        ),
    }
}

/// Before a push stores or mounts `digest`: claimed, and no collector is deleting the stored
/// copy (see [`gc::guard::prepare`]). Returns when, for [`link`].
async fn prepare(state: &AppState, name: &RepositoryName, digest: &Digest) -> ApiResult<Instant> {
    let started = Instant::now();
    if gc::guard::prepare(state, name, digest).await? {
        return Ok(started);
    }
    Err(ApiError::new(
        Code::Unavailable,
        "garbage collection is deleting this blob; try again shortly",
    )
    .with_detail(serde_json::json!({ "digest": digest.to_string() })))
}

/// Links `digest` into `name` and records the repository. The claim [`prepare`] made protects
/// the blob and the link for `claim_ttl`; when storing took more than half of that, the blob
/// is held again (claimed, confirmed there and not being deleted) before the push is told it
/// is stored.
async fn link(state: &AppState, name: &RepositoryName, digest: &Digest, prepared: Instant) -> ApiResult<()> {
    state.meta.link_blob(name, digest).await?;
    state.meta.ensure_repository(name).await?;
    if prepared.elapsed() < state.config.gc.claim_ttl / 2 || gc::guard::hold(state, name, digest, Use::Blob).await? {
        return Ok(());
    }
    Err(ApiError::new(
        Code::Unavailable,
        "garbage collection removed this blob while it was being stored; upload it again",
    )
    .with_detail(serde_json::json!({ "digest": digest.to_string() })))
}

/// `POST /v2/<name>/blobs/uploads/`.
pub(crate) async fn start(ctx: Ctx, name: RepositoryName) -> ApiResult<Response> {
    if let Some(mount) = ctx.query("mount") {
        let digest = parse_digest(mount)?;
        let from = ctx.query("from").map(RepositoryName::parse).transpose()?;
        // Claimed first, so the blob found is not one a collector is deleting; a mount that
        // loses it anyway (a collector that had begun) becomes an upload.
        let prepared = prepare(&ctx.state, &name, &digest).await?;
        if mountable(&ctx, &digest, from.as_ref()).await? {
            link(&ctx.state, &name, &digest, prepared).await?;
            return Ok(blob_created(&name, &digest));
        }
        // Not mountable: the spec says to answer with a normal upload session.
    } else if let Some(digest) = ctx.query("digest") {
        let digest = parse_digest(digest)?;
        return monolithic(ctx, name, digest).await;
    }
    let state = &ctx.state;
    let id = UploadId::random();
    state.blobs.upload_start(&id).await?;
    state.meta.put_upload(&id, &name, ctx.principal.user()).await?;
    state.metrics.session(SessionEvent::Started);
    let mut response = session_response(StatusCode::ACCEPTED, &name, &id, 0);
    if let Some(min) = state.blobs.backend().min_append_size() {
        response = response.header("oci-chunk-min-length", min);
    }
    Ok(response.body(Body::empty()).expect("response"))
}

/// Whether `digest` may be mounted: it is linked in `from` and the caller may pull `from`; or,
/// with no `from` (automatic content discovery), it is linked in some repository the caller may
/// pull (without access control every repository is readable: it exists at all). Either way a
/// mount reveals nothing a pull could not.
async fn mountable(ctx: &Ctx, digest: &Digest, from: Option<&RepositoryName>) -> ApiResult<bool> {
    let state = &ctx.state;
    match from {
        Some(from) if !ctx.may(from, Action::Pull) => Ok(false),
        Some(from) if !state.meta.blob_linked(from, digest).await? => Ok(false),
        None if state.auth.is_some() => readable_somewhere(ctx, digest).await,
        _ => Ok(state.blobs.exists(digest).await?),
    }
}

/// Repositories looked at when searching for a blob to mount without `from`.
const MOUNT_SEARCH: usize = 1000;

/// Whether `digest` is linked in a repository the caller may pull (among the first
/// [`MOUNT_SEARCH`] such repositories).
async fn readable_somewhere(ctx: &Ctx, digest: &Digest) -> ApiResult<bool> {
    let page = ctx
        .state
        .meta
        .catalog(None, MOUNT_SEARCH, MOUNT_SEARCH * 10, |name| {
            ctx.may(name, Action::Pull)
        })
        .await?;
    for repository in &page.names {
        if ctx.state.meta.blob_linked(repository, digest).await? {
            return Ok(ctx.state.blobs.exists(digest).await?);
        }
    }
    Ok(false)
}

/// `POST ?digest=` with the whole blob as the body.
async fn monolithic(ctx: Ctx, name: RepositoryName, digest: Digest) -> ApiResult<Response> {
    let limit = remaining_limit(&ctx, 0)?;
    let size = ctx.content_length();
    let state = ctx.state.clone();
    let _in_flight = state.metrics.upload_in_flight();
    let prepared = prepare(&state, &name, &digest).await?;
    let data = body_stream(ctx.take_body(), limit, None);
    state.blobs.put(&digest, size, data).await?;
    link(&state, &name, &digest, prepared).await?;
    Ok(blob_created(&name, &digest))
}

/// Checks that session `id` exists and belongs to `name`.
async fn owned_session(ctx: &Ctx, name: &RepositoryName, id: &UploadId) -> ApiResult<()> {
    let record = ctx.state.meta.upload(id).await?.ok_or_else(upload_unknown)?;
    // Another repository's or (under access control) another caller's session is unknown.
    let foreign_owner = ctx.state.auth.is_some() && record.owner.as_deref() != ctx.principal.user();
    if record.repository != name.as_str() || foreign_owner {
        return Err(upload_unknown());
    }
    Ok(())
}

/// Checks that session `id` exists and belongs to `name`; returns its committed state.
async fn session(ctx: &Ctx, name: &RepositoryName, id: &UploadId) -> ApiResult<UploadStatus> {
    owned_session(ctx, name, id).await?;
    ctx.state.blobs.upload_status(id).await.map_err(or_upload_unknown)
}

/// `Content-Range: <start>-<end>` (inclusive), as the spec writes it; `bytes ` and `bytes=`
/// prefixes are tolerated.
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let v = value.trim();
    let v = v
        .strip_prefix("bytes=")
        .or_else(|| v.strip_prefix("bytes "))
        .unwrap_or(v);
    let (a, b) = v.split_once('-')?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

/// Appends the request body to session `id`, honouring `Content-Range` and the size limit
/// against its committed length, which is read once, by the append itself.
async fn append_body(ctx: Ctx, name: &RepositoryName, id: &UploadId) -> ApiResult<UploadStatus> {
    let out_of_order = |length: u64| {
        ApiError::new(Code::BlobUploadInvalid, "chunk does not start where the upload ends")
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
            .with_header(header::RANGE, upload_range(length))
            .with_header(header::LOCATION, location(name, id))
    };
    // `(first, length)` of a chunk with `Content-Range`; `u64::MAX` as the start of one that
    // does not parse (or would wrap: `0-18446744073709551615`), which is out of order wherever
    // the upload stands.
    let range = match ctx.header(header::CONTENT_RANGE) {
        Some(value) => match parse_content_range(value).and_then(|(a, b)| Some((a, (b - a).checked_add(1)?))) {
            Some((first, len)) => {
                if ctx.content_length().is_some_and(|n| n != len) {
                    return Err(ApiError::new(
                        Code::SizeInvalid,
                        "Content-Length does not match Content-Range",
                    ));
                }
                Some((first, len))
            }
            None => Some((u64::MAX, 0)),
        },
        None => None,
    };
    let exact = range.map(|(_, len)| len).or(ctx.content_length());
    let max = ctx.state.config.limits.max_blob_bytes;
    let content_length = ctx.content_length();
    let body = ctx.take_body();
    // A refusal the storage error cannot carry waits here for the answer.
    let refusal = std::sync::Arc::new(std::sync::Mutex::new(None::<ApiError>));
    let refused = refusal.clone();
    let state = ctx.state.clone();
    let _in_flight = state.metrics.upload_in_flight();
    let appended = state
        .blobs
        .upload_append_after(id, move |status| {
            if let Some((first, _)) = range
                && first != status.length
            {
                return Err(StorageError::UploadOffset {
                    length: status.length,
                    offset: first,
                });
            }
            match limit_left(max, status.length, content_length) {
                Ok(limit) => Ok(body_stream(body, limit, exact)),
                Err(e) => {
                    *refused.lock().expect("refusal") = Some(e);
                    Err(StorageError::Refused {
                        reason: "blob larger than the limit".into(),
                    })
                }
            }
        })
        .await;
    appended.map_err(|e| match e {
        StorageError::UploadOffset { length, .. } => out_of_order(length),
        other => match refusal.lock().expect("refusal").take() {
            Some(refused) => refused,
            None => or_upload_unknown(other),
        },
    })
}

/// `GET <location>`: where the session stands.
pub(crate) async fn status(ctx: Ctx, name: RepositoryName, id: UploadId) -> ApiResult<Response> {
    let status = session(&ctx, &name, &id).await?;
    Ok(session_response(StatusCode::NO_CONTENT, &name, &id, status.length)
        .body(Body::empty())
        .expect("response"))
}

/// `PATCH <location>`: one chunk (with `Content-Range`) or a stream (without).
pub(crate) async fn patch(ctx: Ctx, name: RepositoryName, id: UploadId) -> ApiResult<Response> {
    owned_session(&ctx, &name, &id).await?;
    let status = append_body(ctx, &name, &id).await?;
    Ok(session_response(StatusCode::ACCEPTED, &name, &id, status.length)
        .body(Body::empty())
        .expect("response"))
}

/// `PUT <location>?digest=`: an optional last chunk, then verify and publish.
pub(crate) async fn finish(ctx: Ctx, name: RepositoryName, id: UploadId) -> ApiResult<Response> {
    let digest = ctx
        .query("digest")
        .ok_or_else(|| ApiError::new(Code::DigestInvalid, "the digest query parameter is required"))?;
    let digest = parse_digest(digest)?;
    let status = session(&ctx, &name, &id).await?;
    let state = ctx.state.clone();
    let whole_blob_in_body = status.length == 0 && ctx.has_body() && ctx.header(header::CONTENT_RANGE).is_none();
    let prepared = prepare(&state, &name, &digest).await?;
    if whole_blob_in_body {
        // POST then PUT with everything (what containerd and `curl -T` do): the digest is known
        // up front, so the bytes go straight to the blob, verified while they stream, and the
        // empty session is dropped. On S3 this saves a server-side copy of the whole blob.
        let limit = remaining_limit(&ctx, 0)?;
        let _in_flight = state.metrics.upload_in_flight();
        let data = body_stream(ctx.take_body(), limit, ctx.content_length());
        state.blobs.put(&digest, ctx.content_length(), data).await?;
        match state.blobs.upload_abort(&id).await {
            Ok(()) | Err(StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    } else {
        if ctx.has_body() {
            append_body(ctx, &name, &id).await?;
        }
        state
            .blobs
            .upload_commit(&id, &digest, None)
            .await
            .map_err(or_upload_unknown)?;
    }
    link(&state, &name, &digest, prepared).await?;
    state.meta.finish_upload(&id).await?;
    state.metrics.session(SessionEvent::Completed);
    Ok(blob_created(&name, &digest))
}

/// `DELETE <location>`: cancel the session.
pub(crate) async fn cancel(ctx: Ctx, name: RepositoryName, id: UploadId) -> ApiResult<Response> {
    session(&ctx, &name, &id).await?;
    match ctx.state.blobs.upload_abort(&id).await {
        Ok(()) | Err(StorageError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    ctx.state.meta.delete_upload(&id).await?;
    ctx.state.metrics.session(SessionEvent::Cancelled);
    Ok(empty(StatusCode::NO_CONTENT).body(Body::empty()).expect("response"))
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_ranges_parse_in_the_spec_form_and_tolerated_variants() {
        assert_eq!(parse_content_range("0-99"), Some((0, 99)));
        assert_eq!(parse_content_range("bytes=5-9"), Some((5, 9)));
        assert_eq!(parse_content_range("bytes 5-9"), Some((5, 9)));
        assert_eq!(parse_content_range("9-5"), None);
        assert_eq!(parse_content_range("x-1"), None);
        assert_eq!(parse_content_range("5"), None);
    }

    proptest::proptest! {
        #[test]
        fn any_content_range_parses_without_panic_to_an_ordered_pair(value in "(bytes[ =])?[0-9 -]{0,45}|\\PC{0,64}") {
            if let Some((first, last)) = parse_content_range(&value) {
                proptest::prop_assert!(first <= last);
            }
        }

        #[test]
        fn numeric_content_ranges_round_trip(a in 0u64.., b in 0u64..) {
            let parsed = parse_content_range(&format!("{a}-{b}"));
            proptest::prop_assert_eq!(parsed, (a <= b).then_some((a, b)));
        }
    }
}
