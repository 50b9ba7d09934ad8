//! Multipart uploads: parts uploaded with bounded concurrency, then completed (or aborted).

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::Inner;
use super::client::{backend_err, map_err};
use crate::error::{Error, Result};

/// S3's minimum size of every part but the last.
pub(super) const MIN_PART: u64 = 5 * 1024 * 1024;

/// One uploaded part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct Part {
    pub(super) number: i32,
    pub(super) etag: String,
    pub(super) size: u64,
}

/// Parts being uploaded into one multipart upload.
///
/// When `abort_on_drop` is set and the uploader is dropped before [`PartUploader::complete`]
/// succeeded (an error, a cancelled request), the multipart upload is aborted in the background,
/// so S3 does not keep the parts.
pub(super) struct PartUploader {
    inner: Arc<Inner>,
    key: String,
    upload_id: String,
    tasks: JoinSet<Result<Part>>,
    finished: Vec<Part>,
    abort_on_drop: bool,
}

impl PartUploader {
    /// Starts a new multipart upload for `key` (an S3 key, prefix included).
    pub(super) async fn create(inner: Arc<Inner>, key: String, abort_on_drop: bool) -> Result<Self> {
        let out = inner
            .client
            .create_multipart_upload()
            .bucket(&inner.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| map_err("CreateMultipartUpload", &key, e))?;
        let upload_id = out.upload_id.ok_or_else(|| {
            backend_err(
                "CreateMultipartUpload",
                &key,
                std::io::Error::other("response has no upload id"),
            )
        })?;
        Ok(Self::resume(inner, key, upload_id, abort_on_drop))
    }

    /// Continues an existing multipart upload.
    pub(super) fn resume(inner: Arc<Inner>, key: String, upload_id: String, abort_on_drop: bool) -> Self {
        PartUploader {
            inner,
            key,
            upload_id,
            tasks: JoinSet::new(),
            finished: Vec::new(),
            abort_on_drop,
        }
    }

    pub(super) fn upload_id(&self) -> &str {
        &self.upload_id
    }

    /// Queues part `number`; waits while `upload_concurrency` parts are in flight.
    pub(super) async fn upload(&mut self, number: i32, data: Bytes) -> Result<()> {
        while self.tasks.len() >= self.inner.upload_concurrency {
            self.join_one().await?;
        }
        let (inner, key, upload_id) = (self.inner.clone(), self.key.clone(), self.upload_id.clone());
        self.tasks.spawn(async move {
            let size = data.len() as u64;
            let out = inner
                .client
                .upload_part()
                .bucket(&inner.bucket)
                .key(&key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(size as i64)
                .body(SdkByteStream::from(data))
                .send()
                .await
                .map_err(|e| map_err("UploadPart", &key, e))?;
            let etag = out
                .e_tag
                .ok_or_else(|| backend_err("UploadPart", &key, std::io::Error::other("no ETag")))?;
            Ok(Part { number, etag, size })
        });
        Ok(())
    }

    async fn join_one(&mut self) -> Result<()> {
        if let Some(joined) = self.tasks.join_next().await {
            let part = joined.map_err(|e| backend_err("UploadPart", &self.key, e))??;
            self.finished.push(part);
        }
        Ok(())
    }

    /// Waits for every queued part; returns the parts uploaded through this uploader, in order.
    pub(super) async fn wait(&mut self) -> Result<Vec<Part>> {
        while !self.tasks.is_empty() {
            self.join_one().await?;
        }
        let mut parts = std::mem::take(&mut self.finished);
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    /// Completes the upload with `parts` (all of them, in order), publishing the object.
    pub(super) async fn complete(mut self, parts: &[Part]) -> Result<()> {
        let completed = parts
            .iter()
            .map(|p| CompletedPart::builder().part_number(p.number).e_tag(&p.etag).build())
            .collect();
        self.inner
            .client
            .complete_multipart_upload()
            .bucket(&self.inner.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
            .send()
            .await
            .map_err(|e| map_err("CompleteMultipartUpload", &self.key, e))?;
        self.abort_on_drop = false;
        Ok(())
    }
}

impl Drop for PartUploader {
    fn drop(&mut self) {
        if !self.abort_on_drop {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (inner, key, upload_id) = (self.inner.clone(), self.key.clone(), self.upload_id.clone());
        runtime.spawn(async move { abort(&inner, &key, &upload_id).await });
    }
}

/// Aborts a multipart upload; one that is already gone is not an error.
pub(super) async fn abort(inner: &Inner, key: &str, upload_id: &str) -> Result<()> {
    let res = inner
        .client
        .abort_multipart_upload()
        .bucket(&inner.bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await;
    match res.map_err(|e| map_err("AbortMultipartUpload", key, e)) {
        Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Collects stream chunks into parts of exactly `part_size` bytes (copying each byte once).
#[derive(Debug)]
pub(super) struct PartBuffer {
    buf: BytesMut,
    part_size: usize,
}

impl PartBuffer {
    pub(super) fn new(part_size: usize) -> Self {
        // Small objects never need a whole part's worth of memory; after the first part we know
        // the object is large and allocate whole parts.
        PartBuffer {
            buf: BytesMut::new(),
            part_size,
        }
    }

    /// Adds a chunk; returns the parts that are now full.
    pub(super) fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        let mut full = Vec::new();
        let mut rest = chunk;
        while !rest.is_empty() {
            let room = self.part_size - self.buf.len();
            let take = room.min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == self.part_size {
                let part = std::mem::replace(&mut self.buf, BytesMut::with_capacity(self.part_size));
                full.push(part.freeze());
            }
        }
        full
    }

    /// What is left (less than one part).
    pub(super) fn rest(self) -> Bytes {
        self.buf.freeze()
    }
}
