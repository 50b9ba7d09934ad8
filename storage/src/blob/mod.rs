//! [`BlobStore`]: content-addressed blobs on any [`Backend`]. Content is published at
//! `blobs/<alg>/..` only after its digest and size were verified, so a blob that exists is always
//! whole and correct.
//!
//! Three ways in:
//! - [`BlobStore::put`] when the digest is known up front: bytes are verified while they stream
//!   straight to the final key, and the backend's atomic `put` publishes only a verified stream.
//! - [`BlobStore::writer`] when the digest is known only at the end: a [`BlobWriter`].
//! - Resumable upload sessions ([`BlobStore::upload_start`] and friends, in [`upload`]) for the
//!   registry's chunked uploads: bytes and the running SHA-256 state live in storage, so any
//!   process can continue a session and the final check needs no re-read.

mod upload;
mod writer;

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};

pub use writer::BlobWriter;

use crate::backend::{Backend, BackendExt, GetResult, ObjectMeta};
use crate::digest::{Algorithm, Digest, VerifyingStream};
use crate::error::Result;
use crate::layout;
use crate::range::ByteRange;
use crate::stream::{self, ByteStream};

/// How blob keys are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobLayout {
    /// `blobs/<alg>/<hh>/<hex>` ([`layout::blob`]): the registry's store.
    Sharded,
    /// `blobs/<alg>/<hex>` ([`layout::oci_layout_blob`]): an OCI image layout other tools read.
    OciImageLayout,
}

/// Content-addressed blob storage over a backend. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobStore {
    backend: Arc<dyn Backend>,
    layout: BlobLayout,
}

impl BlobStore {
    /// A blob store over `backend` with the registry's (sharded) key layout.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        BlobStore {
            backend,
            layout: BlobLayout::Sharded,
        }
    }

    /// A blob store whose blobs sit where an OCI image layout puts them.
    pub fn with_layout(backend: Arc<dyn Backend>, layout: BlobLayout) -> Self {
        BlobStore { backend, layout }
    }

    /// The key blob `digest` is stored under.
    pub fn key(&self, digest: &Digest) -> Result<crate::Key> {
        match self.layout {
            BlobLayout::Sharded => layout::blob(digest),
            BlobLayout::OciImageLayout => layout::oci_layout_blob(digest),
        }
    }

    /// The backend underneath, for the metadata that lives beside the blobs.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Whether the blob exists.
    pub async fn exists(&self, digest: &Digest) -> Result<bool> {
        self.backend.exists(&self.key(digest)?).await
    }

    /// Size and time of the blob; [`crate::Error::NotFound`] if absent.
    pub async fn stat(&self, digest: &Digest) -> Result<ObjectMeta> {
        self.backend.head(&self.key(digest)?).await
    }

    /// Streams the blob, or a range of it.
    pub async fn open(&self, digest: &Digest, range: Option<ByteRange>) -> Result<GetResult> {
        self.backend.get(&self.key(digest)?, range).await
    }

    /// Where a client may fetch blob `digest` from the object store directly (a presigned URL),
    /// when the backend is configured for that.
    pub async fn redirect(&self, digest: &Digest) -> Result<Option<String>> {
        self.backend.presigned_get(&self.key(digest)?).await
    }

    /// Deletes the blob; [`crate::Error::NotFound`] if absent.
    pub async fn delete(&self, digest: &Digest) -> Result<()> {
        self.backend.delete(&self.key(digest)?).await
    }

    /// Stores `data` as blob `digest`, verifying digest (and `size`, when given) while it streams.
    /// On a mismatch nothing is published and the error says what was wrong. Storing a blob that
    /// exists rewrites it with identical bytes, which is harmless and refreshes its time.
    pub async fn put(&self, digest: &Digest, size: Option<u64>, data: ByteStream) -> Result<ObjectMeta> {
        let key = self.key(digest)?;
        let verified = VerifyingStream::new(data, digest.clone(), size)?;
        self.backend.put(&key, Box::pin(verified)).await
    }

    /// Stores small in-memory content (a manifest, a config) and returns its SHA-256 digest.
    pub async fn put_bytes(&self, data: Bytes) -> Result<Digest> {
        let digest = Algorithm::Sha256.digest_of(&data);
        self.backend.put(&self.key(&digest)?, stream::once(data)).await?;
        Ok(digest)
    }

    /// Reads a whole blob of at most `limit` bytes into memory.
    pub async fn read_limited(&self, digest: &Digest, limit: u64) -> Result<Bytes> {
        let blob = self.open(digest, None).await?;
        stream::collect_limited(blob.body, limit).await
    }

    /// A writer for a blob whose digest will be known when it is committed.
    pub async fn writer(&self) -> Result<BlobWriter> {
        BlobWriter::start(self.clone()).await
    }

    /// Every blob in the store with its metadata, in key order (for garbage collection).
    pub fn list(&self) -> impl Stream<Item = Result<(Digest, ObjectMeta)>> + Send + 'static {
        self.backend.list(&layout::blobs(), None).filter_map(|item| async move {
            match item {
                Ok(meta) => layout::blob_digest(&meta.key).map(|d| Ok((d, meta))),
                Err(e) => Some(Err(e)),
            }
        })
    }
}
