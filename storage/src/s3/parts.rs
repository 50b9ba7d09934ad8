//! Multipart uploads: parts uploaded with bounded concurrency, then completed (or aborted).

use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use memmap2::MmapMut;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::Inner;
use super::client::{backend_err, map_err};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::layout;

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
/// Every multipart upload started here is recorded first (`_multipart/<id>`: its key, then its
/// id), so a process killed at any moment leaves something [`sweep`] finds and aborts; the record
/// goes when the upload is completed or aborted (or, for an appendable upload, once its own
/// state names it: [`PartUploader::forget_record`]). When `abort_on_drop` is set and the
/// uploader is dropped before [`PartUploader::complete`] succeeded (an error, a cancelled
/// request), the multipart upload is aborted in the background, so S3 does not keep the parts.
pub(super) struct PartUploader {
    inner: Arc<Inner>,
    key: String,
    upload_id: String,
    tasks: JoinSet<Result<Part>>,
    finished: Vec<Part>,
    abort_on_drop: bool,
    /// The S3 key of this upload's record, while it has one.
    record: Option<Key>,
}

/// What `_multipart/<id>` holds.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    key: String,
    upload_id: Option<String>,
}

impl PartUploader {
    /// Starts a new multipart upload for `key` (an S3 key, prefix included), recorded before it
    /// starts.
    pub(super) async fn create(inner: Arc<Inner>, key: String, abort_on_drop: bool) -> Result<Self> {
        let record = layout::multipart_record(&uuid::Uuid::new_v4().simple().to_string());
        let record_s3 = inner.s3_key(&record);
        let write = |upload_id: Option<&str>| {
            let json = serde_json::to_vec(&Record {
                key: key.clone(),
                upload_id: upload_id.map(str::to_owned),
            })
            .expect("record serializes");
            inner.put_small(&record_s3, Bytes::from(json))
        };
        write(None).await?;
        let created = inner
            .client
            .create_multipart_upload()
            .bucket(&inner.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| map_err("CreateMultipartUpload", &key, e))
            .and_then(|out| {
                out.upload_id.ok_or_else(|| {
                    backend_err(
                        "CreateMultipartUpload",
                        &key,
                        std::io::Error::other("response has no upload id"),
                    )
                })
            });
        // On an error it may have started anyway: the record stays for the sweep.
        let upload_id = created?;
        write(Some(&upload_id)).await?;
        let mut uploader = Self::resume(inner, key, upload_id, abort_on_drop);
        uploader.record = Some(record);
        Ok(uploader)
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
            record: None,
        }
    }

    /// Removes this upload's record: what it recorded is kept elsewhere now (an appendable
    /// upload's state).
    pub(super) async fn forget_record(&mut self) {
        if let Some(record) = self.record.take() {
            self.inner.delete_quietly(&record).await;
        }
    }

    pub(super) fn upload_id(&self) -> &str {
        &self.upload_id
    }

    /// Queues part `number`; waits while `upload_concurrency` parts are in flight.
    pub(super) async fn upload(&mut self, number: i32, part: Held) -> Result<()> {
        while self.tasks.len() >= self.inner.upload_concurrency {
            self.join_one().await?;
        }
        let (inner, key, upload_id) = (self.inner.clone(), self.key.clone(), self.upload_id.clone());
        self.tasks.spawn(async move {
            // The part's share of the budget goes back when the request is done.
            let Held {
                bytes: data,
                permit: _permit,
            } = part;
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
        self.forget_record().await;
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
        let record = self.record.take();
        runtime.spawn(async move {
            if abort(&inner, &key, &upload_id).await.is_ok()
                && let Some(record) = record
            {
                inner.delete_quietly(&record).await;
            }
        });
    }
}

/// Aborts the multipart uploads recorded before `cutoff` (whatever killed their writers) and
/// removes their records; returns how many. A record without an id (its writer died between
/// recording and starting) is looked up with `ListMultipartUploads` on its key, where the service
/// has it.
pub(super) async fn sweep(inner: &Arc<Inner>, backend: &super::S3Backend, cutoff: SystemTime) -> Result<u64> {
    use crate::backend::Backend;
    let mut listing = backend.list(&layout::multipart_records(), None);
    let mut old = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta?;
        if meta.modified < cutoff {
            old.push(meta.key);
        }
    }
    let mut aborted = 0;
    for record_key in old {
        let record_s3 = inner.s3_key(&record_key);
        let record: Record = match inner.get_small(&record_s3).await {
            Ok((raw, _)) => match serde_json::from_slice(&raw) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(record = %record_s3, error = %e, "unreadable multipart record removed");
                    inner.delete_quietly(&record_key).await;
                    continue;
                }
            },
            Err(Error::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let ids = match record.upload_id {
            Some(id) => vec![id],
            None => match inner.uploads_on(&record.key, cutoff).await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(key = %record.key, error = %e,
                        "a multipart upload may have been started without its id recorded; \
                         this S3 service cannot list them (a bucket lifecycle rule will abort it)");
                    Vec::new()
                }
            },
        };
        for id in &ids {
            abort(inner, &record.key, id).await?;
        }
        inner.delete_quietly(&record_key).await;
        aborted += 1;
    }
    Ok(aborted)
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

/// Bytes for S3 and the share of the buffer budget they hold until they are sent.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) bytes: Bytes,
    permit: Option<OwnedSemaphorePermit>,
}

impl Held {
    /// Bytes outside the budget (small objects read whole: upload tails).
    pub(super) fn free(bytes: Bytes) -> Self {
        Held { bytes, permit: None }
    }
}

/// Bytes a buffer holds before it takes a part's share of the budget: small objects (configs,
/// manifests, small layers) never wait for it.
const SMALL: usize = 1 << 20;

/// The budget counts in KiB (a part of 5 GiB is 5 Mi permits).
const PERMIT: usize = 1024;

/// The budget for `bytes` bytes of part buffers (permits of [`PERMIT`] bytes).
pub(super) fn budget(bytes: u64) -> Semaphore {
    Semaphore::new((bytes as usize).div_ceil(PERMIT))
}

/// `bytes` of the budget if it has them now and more than half of it stays free: downloads
/// read ahead only with what uploads (which wait for the budget) are not close to needing.
pub(super) fn try_reserve(budget: &Arc<Semaphore>, total: u64, bytes: usize) -> Option<OwnedSemaphorePermit> {
    let permits = bytes.div_ceil(PERMIT);
    let half = (total as usize).div_ceil(PERMIT) / 2;
    if budget.available_permits() < permits + half {
        return None;
    }
    budget.clone().try_acquire_many_owned(permits as u32).ok()
}

/// Collects stream chunks into parts of exactly `part_size` bytes (copying each byte once).
///
/// Memory: one budget per backend bounds what all its uploads hold in parts being filled or
/// sent. A buffer past [`SMALL`] bytes reserves a whole part of it at once, which it keeps until
/// that part is sent; so every buffer holding a reservation can finish its part without asking
/// for more, and uploads that find the budget spent wait (reading their clients more slowly)
/// for sent parts to give theirs back, never for each other. A part lives in an anonymous memory
/// map of its own, which goes back to the system the moment the part is sent: large buffers from
/// the heap stayed with the allocator and left the process some 60 MiB above its budget.
#[derive(Debug)]
pub(super) struct PartBuffer {
    /// Up to [`SMALL`] bytes, before a part is reserved.
    small: BytesMut,
    /// The part being filled and how much of it is, once reserved.
    mapped: Option<(MmapMut, usize)>,
    part_size: usize,
    budget: Arc<Semaphore>,
    reserved: Option<OwnedSemaphorePermit>,
}

impl PartBuffer {
    pub(super) fn new(part_size: usize, budget: Arc<Semaphore>) -> Self {
        PartBuffer {
            small: BytesMut::new(),
            mapped: None,
            part_size,
            budget,
            reserved: None,
        }
    }

    fn len(&self) -> usize {
        self.mapped.as_ref().map_or(self.small.len(), |(_, len)| *len)
    }

    /// Adds a chunk; returns the parts that are now full.
    pub(super) async fn push(&mut self, chunk: &[u8]) -> Result<Vec<Held>> {
        let mut full = Vec::new();
        let mut rest = chunk;
        while !rest.is_empty() {
            let held = self.len();
            let take = (self.part_size - held).min(rest.len());
            if self.mapped.is_none() && held + take > SMALL {
                let permits = self.part_size.div_ceil(PERMIT) as u32;
                let reserved = self
                    .budget
                    .clone()
                    .acquire_many_owned(permits)
                    .await
                    .map_err(|e| backend_err("buffer", "", e))?;
                self.reserved = Some(reserved);
                let mut map = MmapMut::map_anon(self.part_size).map_err(|e| backend_err("buffer", "", e))?;
                map[..held].copy_from_slice(&self.small);
                self.small = BytesMut::new();
                self.mapped = Some((map, held));
            }
            match &mut self.mapped {
                Some((map, len)) => {
                    map[*len..*len + take].copy_from_slice(&rest[..take]);
                    *len += take;
                }
                None => self.small.extend_from_slice(&rest[..take]),
            }
            rest = &rest[take..];
            if self.len() == self.part_size {
                let bytes = match self.mapped.take() {
                    Some((map, _)) => Bytes::from_owner(map),
                    None => std::mem::take(&mut self.small).freeze(),
                };
                full.push(Held {
                    bytes,
                    permit: self.reserved.take(),
                });
            }
        }
        Ok(full)
    }

    /// What is left (less than one part).
    pub(super) fn rest(self) -> Held {
        let bytes = match self.mapped {
            Some((map, len)) => Bytes::from_owner(map).slice(..len),
            None => self.small.freeze(),
        };
        Held {
            bytes,
            permit: self.reserved,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_large_buffer_reserves_a_whole_part_until_it_is_sent() {
        const MIB: usize = 1 << 20;
        let budget = Arc::new(budget(4 * MIB as u64));
        let all = budget.available_permits();
        let mut buffer = PartBuffer::new(2 * MIB, budget.clone());
        // Small: nothing taken.
        assert!(buffer.push(&[1u8; 1000]).await.unwrap().is_empty());
        assert_eq!(budget.available_permits(), all);
        // Past 1 MiB: a part reserved; a full part carries it away, the next one reserves again
        // once it is past 1 MiB itself.
        let parts = buffer.push(&vec![1u8; 3 * MIB]).await.unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(
            budget.available_permits(),
            all - 2 * 2048,
            "the sent part and the filling one"
        );
        // A second upload finds the budget spent and waits until the first part is sent.
        let mut other = PartBuffer::new(2 * MIB, budget.clone());
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), other.push(&vec![2u8; MIB + 1])).await;
        assert!(waiting.is_err(), "the budget is spent");
        drop(parts);
        assert!(other.push(&vec![2u8; MIB + 1]).await.unwrap().is_empty());
        assert_eq!(buffer.rest().bytes.len(), MIB + 1000);
        assert_eq!(budget.available_permits(), all - 2048, "the other's reservation");
    }
}
