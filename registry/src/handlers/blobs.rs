//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::response::Response;
use http::{StatusCode, header};
use strata_storage::{ByteRange, Digest, Error as StorageError, RepositoryName};

use super::{Ctx, check_delete_enabled, empty};
use crate::config::Action;
use crate::error::{ApiError, ApiResult, Code};
use crate::gc;

fn blob_unknown(digest: &Digest) -> ApiError {
    ApiError::new(Code::BlobUnknown, "blob unknown to registry")
        .with_detail(serde_json::json!({ "digest": digest.to_string() }))
}

/// Maps "not found" from storage to `BLOB_UNKNOWN` for `digest`.
pub(crate) fn or_blob_unknown(digest: &Digest) -> impl FnOnce(StorageError) -> ApiError + '_ {
    move |e| match e {
        StorageError::NotFound { .. } => blob_unknown(digest),
        other => other.into(),
    }
}

/// Serves a blob of `name`: whole, or one `Range` (206), with its digest, length and ETag.
pub(crate) async fn get(ctx: Ctx, name: RepositoryName, digest: Digest, head: bool) -> ApiResult<Response> {
    let state = &ctx.state;
    if !state.meta.blob_linked(&name, &digest).await? {
        return Err(blob_unknown(&digest));
    }
    let builder = Response::builder()
        .header("docker-content-digest", digest.to_string())
        .header(header::ETAG, format!("\"{digest}\""))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "max-age=31536000")
        .header(header::CONTENT_TYPE, "application/octet-stream");
    if head {
        // A push that finds a blob here skips uploading it: protect it until the manifest
        // lands (the manifest PUT holds it again and fails cleanly if it went meanwhile).
        // Only pushers claim: a reader cannot keep deleted content alive.
        if ctx.may(&name, Action::Push) {
            gc::guard::claim(state, &digest).await?;
        }
        let meta = state.blobs.stat(&digest).await.map_err(or_blob_unknown(&digest))?;
        return Ok(builder
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, meta.size)
            .body(Body::empty())
            .expect("response"));
    }
    // Straight from the object store, when it is configured so (ranges included: the client
    // sends its Range header there).
    if let Some(url) = state.blobs.redirect(&digest).await? {
        return Ok(Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header("docker-content-digest", digest.to_string())
            .header(header::LOCATION, url)
            .body(Body::empty())
            .expect("response"));
    }
    // A Range header we cannot parse is ignored, as RFC 9110 says.
    let range = ctx.header(header::RANGE).and_then(|v| ByteRange::parse_header(v).ok());
    let blob = state
        .blobs
        .open(&digest, range)
        .await
        .map_err(or_blob_unknown(&digest))?;
    let length = blob.range.end - blob.range.start;
    let mut builder = builder.header(header::CONTENT_LENGTH, length);
    builder = if range.is_some() {
        let content_range = format!("bytes {}-{}/{}", blob.range.start, blob.range.end - 1, blob.meta.size);
        builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, content_range)
    } else {
        builder.status(StatusCode::OK)
    };
    Ok(builder.body(Body::from_stream(blob.body)).expect("response"))
}

/// Removes the blob from `name` (the content stays for other repositories and GC).
pub(crate) async fn delete(ctx: Ctx, name: RepositoryName, digest: Digest) -> ApiResult<Response> {
    check_delete_enabled(&ctx.state)?;
    ctx.state
        .meta
        .unlink_blob(&name, &digest)
        .await
        .map_err(or_blob_unknown(&digest))?;
    Ok(empty(StatusCode::ACCEPTED).body(Body::empty()).expect("response"))
}
