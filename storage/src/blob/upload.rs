//! Resumable blob upload sessions: a backend upload at [`layout::upload_data`] whose checkpoint is
//! the running SHA-256 state, so the digest of a session is known the moment its last byte lands,
//! in whichever process that happens.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::SystemTime;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::BlobStore;
use crate::backend::{ObjectMeta, UploadStatus};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, Result};
use crate::layout;
use crate::names::UploadId;
use crate::stream::ByteStream;

/// Checkpoint format version; the byte after it is the algorithm (1 = SHA-256).
const CHECKPOINT_V1: u8 = 1;
const SHA256_TAG: u8 = 1;

fn encode_checkpoint(hasher: &Hasher) -> Vec<u8> {
    let mut out = vec![CHECKPOINT_V1, SHA256_TAG];
    out.extend_from_slice(&hasher.state());
    out
}

fn decode_checkpoint(status: &UploadStatus) -> Result<Hasher> {
    match &status.checkpoint[..] {
        [] if status.length == 0 => Ok(Hasher::new(Algorithm::Sha256)),
        [CHECKPOINT_V1, SHA256_TAG, state @ ..] => Hasher::resume(Algorithm::Sha256, state),
        _ => Err(Error::Invalid {
            what: "upload checkpoint",
            value: format!("{} bytes at length {}", status.checkpoint.len(), status.length),
            reason: "unknown format",
        }),
    }
}

/// Hashes the bytes that pass through into a hasher shared with the checkpoint closure.
struct Hashing {
    inner: ByteStream,
    hasher: Arc<Mutex<Hasher>>,
}

impl Stream for Hashing {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = ready!(self.inner.as_mut().poll_next(cx));
        if let Some(Ok(chunk)) = &item {
            self.hasher.lock().expect("hasher lock").update(chunk);
        }
        Poll::Ready(item)
    }
}

impl BlobStore {
    /// Starts an empty upload session.
    pub async fn upload_start(&self, id: &UploadId) -> Result<UploadStatus> {
        self.backend.upload_create(&layout::upload_data(id)).await
    }

    /// The committed length of a session ([`Error::NotFound`] for an unknown or finished one).
    pub async fn upload_status(&self, id: &UploadId) -> Result<UploadStatus> {
        self.backend.upload_status(&layout::upload_data(id)).await
    }

    /// Appends `data` at `offset`, which must be the committed length; returns the new status.
    /// Hashing happens as the bytes stream to storage; an error commits nothing of this append.
    pub async fn upload_append(&self, id: &UploadId, offset: u64, data: ByteStream) -> Result<UploadStatus> {
        self.upload_append_after(id, move |status| {
            if status.length != offset {
                return Err(Error::UploadOffset {
                    length: status.length,
                    offset,
                });
            }
            Ok(data)
        })
        .await
    }

    /// Appends at the committed length what `prepare` returns once it has seen the session's
    /// status (it may refuse: an offset that is not the length, a size limit); the status is
    /// read once. Hashing happens as the bytes stream to storage; an error commits nothing.
    pub async fn upload_append_after(
        &self,
        id: &UploadId,
        prepare: impl FnOnce(&UploadStatus) -> Result<ByteStream> + Send + 'static,
    ) -> Result<UploadStatus> {
        let home = layout::upload_data(id);
        let prepare: crate::backend::Prepare = Box::new(move |status| {
            let hasher = Arc::new(Mutex::new(decode_checkpoint(status)?));
            let hashing = Hashing {
                inner: prepare(status)?,
                hasher: hasher.clone(),
            };
            let checkpoint: crate::backend::Checkpoint =
                Box::new(move || encode_checkpoint(&hasher.lock().expect("hasher lock")));
            Ok((Box::pin(hashing) as ByteStream, checkpoint))
        });
        self.backend.upload_append_after(&home, prepare).await
    }

    /// Finishes a session: checks `size` (when given) and `digest` against what was uploaded and
    /// publishes the blob. On a mismatch nothing is published and the session stays as it was,
    /// except for a non-SHA-256 digest, which is checked by reading the content back and ends the
    /// session either way.
    pub async fn upload_commit(&self, id: &UploadId, digest: &Digest, size: Option<u64>) -> Result<ObjectMeta> {
        let home = layout::upload_data(id);
        let target = self.key(digest)?;
        let status = self.backend.upload_status(&home).await?;
        if let Some(expected) = size
            && expected != status.length
        {
            return Err(Error::SizeMismatch {
                expected,
                actual: status.length,
            });
        }
        if Algorithm::of(digest)? == Algorithm::Sha256 {
            let actual = decode_checkpoint(&status)?.finish();
            if &actual != digest {
                return Err(Error::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
            return self.backend.upload_complete(&home, &target).await;
        }
        // Rare: the client named another algorithm. Stage, re-hash, then publish.
        let staged = layout::upload_staged(id);
        self.backend.upload_complete(&home, &staged).await?;
        let result = self.publish_staged(&staged, digest, status.length).await;
        let _ = self.backend.delete(&staged).await;
        result
    }

    async fn publish_staged(&self, staged: &crate::Key, digest: &Digest, size: u64) -> Result<ObjectMeta> {
        let mut hasher = Hasher::new(Algorithm::of(digest)?);
        let mut body = self.backend.get(staged, None).await?.body;
        while let Some(chunk) = body.next().await {
            hasher.update(&chunk?);
        }
        let actual = hasher.finish();
        if &actual != digest {
            return Err(Error::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let target = self.key(digest)?;
        self.backend.copy(staged, &target).await?;
        let meta = self.backend.head(&target).await?;
        debug_assert_eq!(meta.size, size);
        Ok(meta)
    }

    /// Discards a session.
    pub async fn upload_abort(&self, id: &UploadId) -> Result<()> {
        self.backend.upload_abort(&layout::upload_data(id)).await
    }

    /// Removes every upload session (bytes and records under [`layout::uploads`]) untouched since
    /// `cutoff`. Returns how many sessions were removed.
    pub async fn purge_uploads(&self, cutoff: SystemTime) -> Result<usize> {
        // Keys come sorted, so one session's objects are adjacent.
        let mut listing = self.backend.list(&layout::uploads(), None);
        let mut current: Option<(UploadId, SystemTime)> = None;
        let mut stale = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            let Some(id) = layout::upload_id(&meta.key) else {
                continue;
            };
            match &mut current {
                Some((cur, newest)) if *cur == id => *newest = (*newest).max(meta.modified),
                _ => {
                    if let Some((done, newest)) = current.replace((id, meta.modified))
                        && newest < cutoff
                    {
                        stale.push(done);
                    }
                }
            }
        }
        if let Some((done, newest)) = current
            && newest < cutoff
        {
            stale.push(done);
        }
        for id in &stale {
            match self.backend.upload_abort(&layout::upload_data(id)).await {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            self.backend.delete_prefix(&layout::upload_session(id)).await?;
        }
        Ok(stale.len())
    }
}
