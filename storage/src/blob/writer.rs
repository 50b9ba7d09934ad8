//! [`BlobWriter`]: push bytes in, then commit under the digest they must have.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::BlobStore;
use crate::backend::{ObjectMeta, UploadStatus};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::names::UploadId;
use crate::stream::ByteStream;

/// Chunks buffered between [`BlobWriter::write`] and the storage task.
const CHANNEL_DEPTH: usize = 4;

/// Writes one blob whose digest is known only at the end: [`write`](BlobWriter::write) bytes,
/// then [`commit`](BlobWriter::commit) with the expected digest and size, which verifies and
/// publishes, or [`abort`](BlobWriter::abort).
///
/// Bytes stream to storage as they are written, through an upload session, while being hashed.
/// Nothing is published unless `commit` succeeds; a writer dropped without committing aborts its
/// session in the background, and a crashed process leaves only a session that
/// [`BlobStore::purge_uploads`] removes.
#[derive(Debug)]
pub struct BlobWriter {
    store: BlobStore,
    id: UploadId,
    tx: Option<mpsc::Sender<Bytes>>,
    task: Option<JoinHandle<Result<UploadStatus>>>,
    aborted: Arc<AtomicBool>,
    written: u64,
    /// Set once commit or abort has cleaned up; otherwise dropping the writer aborts the session.
    done: bool,
}

impl BlobWriter {
    pub(super) async fn start(store: BlobStore) -> Result<Self> {
        let id = UploadId::random();
        store.upload_start(&id).await?;
        let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
        let aborted = Arc::new(AtomicBool::new(false));
        let flag = aborted.clone();
        // The stream ends normally only when the writer closed the channel to commit; if the
        // writer was dropped or aborted, it ends with an error so the append commits nothing.
        let data: ByteStream = Box::pin(futures::stream::unfold(Some(rx), move |rx| {
            let flag = flag.clone();
            async move {
                let mut rx = rx?;
                match rx.recv().await {
                    Some(chunk) => Some((Ok(chunk), Some(rx))),
                    None if flag.load(Ordering::SeqCst) => Some((Err(Error::input("blob writer aborted")), None)),
                    None => None,
                }
            }
        }));
        let (task_store, task_id) = (store.clone(), id.clone());
        let task = tokio::spawn(async move { task_store.upload_append(&task_id, 0, data).await });
        Ok(BlobWriter {
            store,
            id,
            tx: Some(tx),
            task: Some(task),
            aborted,
            written: 0,
            done: false,
        })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes a chunk. Waits while earlier chunks are still on their way to storage.
    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let len = chunk.len() as u64;
        let tx = self.tx.as_ref().expect("not committed");
        if tx.send(chunk).await.is_err() {
            // The storage task ended early: report its error.
            return Err(self
                .finish_task()
                .await
                .err()
                .unwrap_or_else(|| Error::input("blob writer closed")));
        }
        self.written += len;
        Ok(())
    }

    /// Writes every chunk of a stream.
    pub async fn write_stream(&mut self, mut data: ByteStream) -> Result<()> {
        while let Some(chunk) = data.next().await {
            self.write(chunk?).await?;
        }
        Ok(())
    }

    async fn finish_task(&mut self) -> Result<UploadStatus> {
        self.tx = None;
        let task = self.task.take().expect("finished once");
        task.await
            .map_err(|e| Error::input(format!("blob writer task failed: {e}")))?
    }

    /// Verifies that what was written has `digest` (and `size`, when given) and publishes it.
    /// On a mismatch nothing is published and the session is discarded.
    pub async fn commit(mut self, digest: &Digest, size: Option<u64>) -> Result<ObjectMeta> {
        let result = match self.finish_task().await {
            Ok(_) => self.store.upload_commit(&self.id, digest, size).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ = self.store.upload_abort(&self.id).await;
        }
        self.done = true;
        result
    }

    /// Discards everything written.
    pub async fn abort(mut self) -> Result<()> {
        self.aborted.store(true, Ordering::SeqCst);
        let _ = self.finish_task().await;
        self.done = true;
        self.store.upload_abort(&self.id).await
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.aborted.store(true, Ordering::SeqCst);
        self.tx = None;
        let (task, store, id) = (self.task.take(), self.store.clone(), self.id.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Some(task) = task {
                    let _ = task.await;
                }
                let _ = store.upload_abort(&id).await;
            });
        }
    }
}
