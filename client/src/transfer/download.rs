//! Resumable blob download from a registry into an OCI layout.
//!
//! Bytes go into an upload session of the layout's blob store named after the digest, so they
//! survive a dropped connection and a killed process: the next attempt (in this run or a later
//! one) asks for `Range: bytes=<have>-` and appends. The running SHA-256 is checkpointed with the
//! bytes, so nothing is re-read; the blob is published only when its digest and size match. A
//! server that answers 200 instead of 206 is handled by skipping what we already have.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use strata_storage::{ByteStream, Digest, Error as StorageError, RepositoryName, UploadId};

use crate::error::{ClientError, Result};
use crate::progress::{Progress, counted};
use crate::registry::RegistryClient;
use strata_storage::oci::layout::OciLayout;

/// Attempts without progress before giving up on a blob.
const MAX_STALLS: u32 = 5;

/// The session a download of `digest` resumes in.
fn session_id(digest: &Digest) -> UploadId {
    UploadId::parse(digest.digest()).unwrap_or_else(|_| UploadId::random())
}

/// Passes bytes through, drops the first `skip`, and ends cleanly on an error (kept in `error`)
/// so that everything that arrived is committed. More than `limit` bytes is an error that is
/// passed on, so that nothing of a lying answer is committed.
struct Tolerant {
    inner: ByteStream,
    skip: u64,
    limit: u64,
    seen: u64,
    error: Arc<Mutex<Option<StorageError>>>,
}

impl Stream for Tolerant {
    type Item = strata_storage::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let item = ready!(self.inner.as_mut().poll_next(cx));
            let this = &mut *self;
            match item {
                None => return Poll::Ready(None),
                Some(Err(e)) => {
                    *this.error.lock().expect("error slot") = Some(e);
                    return Poll::Ready(None);
                }
                Some(Ok(mut chunk)) => {
                    if this.skip > 0 {
                        let drop = this.skip.min(chunk.len() as u64) as usize;
                        this.skip -= drop as u64;
                        chunk = chunk.slice(drop..);
                        if chunk.is_empty() {
                            continue;
                        }
                    }
                    this.seen += chunk.len() as u64;
                    if this.seen > this.limit {
                        return Poll::Ready(Some(Err(StorageError::SizeMismatch {
                            expected: this.limit,
                            actual: this.seen,
                        })));
                    }
                    return Poll::Ready(Some(Ok(chunk)));
                }
            }
        }
    }
}

/// Downloads blob `digest` of `size` bytes from `repo` into `layout`, resuming a partial download
/// left by an earlier attempt. Returns the number of bytes fetched in this call. When a resumed
/// download does not verify, the kept part may be what was wrong (a run stopped in the middle of
/// a bad answer), so it is discarded and the blob fetched once more from the start.
pub(crate) async fn download(
    client: &RegistryClient,
    repo: &RepositoryName,
    digest: &Digest,
    size: u64,
    layout: &OciLayout,
    progress: Option<Arc<dyn Progress>>,
) -> Result<u64> {
    let had_partial = layout
        .blobs()
        .upload_status(&session_id(digest))
        .await
        .is_ok_and(|s| s.length > 0);
    match download_session(client, repo, digest, size, layout, progress.clone()).await {
        Err(ClientError::Integrity(why)) if had_partial => {
            tracing::warn!(%digest, %why, "a resumed download did not verify; fetching it again from the start");
            download_session(client, repo, digest, size, layout, progress).await
        }
        other => other,
    }
}

async fn download_session(
    client: &RegistryClient,
    repo: &RepositoryName,
    digest: &Digest,
    size: u64,
    layout: &OciLayout,
    progress: Option<Arc<dyn Progress>>,
) -> Result<u64> {
    let blobs = layout.blobs();
    let id = session_id(digest);
    let mut have = match blobs.upload_status(&id).await {
        Ok(status) if status.length <= size => status.length,
        Ok(_) => {
            blobs.upload_abort(&id).await?;
            blobs.upload_start(&id).await?;
            0
        }
        Err(StorageError::NotFound { .. }) => {
            blobs.upload_start(&id).await?;
            0
        }
        Err(e) => return Err(e.into()),
    };
    if have > 0 {
        tracing::info!(%digest, have, size, "resuming a partial download");
    }
    let fetched_before = have;
    let mut stalls = 0;
    while have < size {
        let outcome = match client.get_blob(repo, digest, have).await.map_err(ClientError::from) {
            Ok(download) if download.start <= have => {
                let error = Arc::new(Mutex::new(None));
                let stream = Tolerant {
                    inner: counted(download.body, progress.clone(), digest),
                    skip: have - download.start,
                    limit: size - have,
                    seen: 0,
                    error: error.clone(),
                };
                match blobs.upload_append(&id, have, Box::pin(stream)).await {
                    Ok(status) => {
                        let progressed = status.length > have;
                        have = status.length;
                        let failure = error.lock().expect("error slot").take();
                        match failure {
                            Some(e) => Err((progressed, ClientError::from(e))),
                            None if have < size => Err((
                                progressed,
                                ClientError::Protocol("the registry closed the blob early".into()),
                            )),
                            None => Ok(()),
                        }
                    }
                    Err(StorageError::SizeMismatch { .. }) => {
                        blobs.upload_abort(&id).await?;
                        return Err(ClientError::Integrity(format!(
                            "{digest}: the registry sent more than {size} bytes"
                        )));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(download) => Err((
                false,
                ClientError::Protocol(format!("the registry answered from byte {}", download.start)),
            )),
            Err(e @ (ClientError::NotFound(_) | ClientError::Auth(_))) => return Err(e),
            Err(e) => Err((false, e)),
        };
        if let Err((progressed, e)) = outcome {
            stalls = if progressed { 0 } else { stalls + 1 };
            if stalls >= MAX_STALLS {
                return Err(e);
            }
            tracing::warn!(%digest, have, size, error = %e, "download interrupted; resuming");
            tokio::time::sleep(Duration::from_millis(200 * (1 << stalls.min(5)))).await;
        }
    }
    match blobs.upload_commit(&id, digest, Some(size)).await {
        Ok(_) => Ok(size - fetched_before),
        Err(e @ (StorageError::DigestMismatch { .. } | StorageError::SizeMismatch { .. })) => {
            let _ = blobs.upload_abort(&id).await;
            Err(ClientError::Integrity(format!("{digest}: {e}")))
        }
        Err(e) => Err(e.into()),
    }
}
