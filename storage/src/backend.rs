//! The [`Backend`] contract: the small object store every storage implementation provides, and
//! [`BackendExt`], the conveniences built on top of it.

use std::fmt;
use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::key::Key;
use crate::range::ByteRange;
use crate::stream::{self, ByteStream};

/// What a backend knows about one stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key.
    pub key: Key,
    /// Size in bytes.
    pub size: u64,
    /// When the object was last written.
    pub modified: SystemTime,
}

/// The result of [`Backend::get`]: metadata of the whole object, the byte range being returned,
/// and the bytes of that range as a stream.
pub struct GetResult {
    /// Metadata of the whole object (`meta.size` is the full size, not the range length).
    pub meta: ObjectMeta,
    /// The half-open range of the object that `body` yields.
    pub range: Range<u64>,
    /// The bytes of `range`.
    pub body: ByteStream,
}

impl fmt::Debug for GetResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetResult")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// The committed state of an appendable upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// Bytes committed so far; the next append must start here.
    pub length: u64,
    /// The caller's checkpoint saved with the last append (empty before the first one).
    pub checkpoint: Bytes,
    /// When the upload was created or last appended to.
    pub updated: SystemTime,
}

/// Produces the caller's checkpoint once an append's data has been fully consumed; the backend
/// stores it atomically with the new length (the blob layer keeps its running hash here).
pub type Checkpoint = Box<dyn FnOnce() -> Vec<u8> + Send>;

/// What [`Backend::upload_append_after`] asks of its caller once it has read an upload's
/// committed status: the data to append there and its checkpoint, or a refusal.
pub type Prepare = Box<dyn FnOnce(&UploadStatus) -> Result<(ByteStream, Checkpoint)> + Send>;

/// A stream of object metadata, in ascending byte order of keys.
pub type ListStream = BoxStream<'static, Result<ObjectMeta>>;

/// A small object store: the contract every storage backend implements.
///
/// # Keys
/// Keys are validated [`Key`]s. Keys form a tree: a key that names an object is never also a
/// prefix (`key/...`) of another object's key. [`crate::layout`] never builds such keys; a
/// backend may reject a write that would break the rule.
///
/// # Promises
/// - **Atomic writes.** [`put`](Backend::put), [`copy`](Backend::copy) and
///   [`upload_complete`](Backend::upload_complete) replace the object whole: a concurrent or
///   later reader sees the old object or the complete new one, never a part. If `put`'s input
///   stream yields an error, nothing is written and that error is returned; the same holds when
///   the call is cancelled (its future dropped).
/// - **Snapshot reads.** A [`get`](Backend::get) stream keeps yielding the object as it was when
///   the call returned, even if the object is replaced meanwhile.
/// - **Not found is distinct.** `get`, `head`, `delete`, `copy` (of a missing source) and the
///   upload calls on an unknown upload fail with [`Error::NotFound`], nothing else.
/// - **Ranges.** `get` accepts an optional [`ByteRange`]; a range that selects nothing fails with
///   [`Error::RangeNotSatisfiable`] carrying the object's size.
/// - **Listing.** [`list`](Backend::list) yields every object strictly below a prefix, in
///   ascending byte order of keys, starting after `start_after` when given; it streams, fetching
///   pages inside the backend, so listing a million keys holds one page in memory.
/// - **Appendable uploads**, identified by a home key that any process using the same storage can
///   name: [`upload_create`](Backend::upload_create), then any number of
///   [`upload_append`](Backend::upload_append) calls (each must start at the committed length),
///   then [`upload_complete`](Backend::upload_complete) (publishes the bytes at a key, atomically)
///   or [`upload_abort`](Backend::upload_abort). An append is atomic: after a crash the upload has
///   the length and checkpoint of the last append that returned `Ok`. Appends of any size work;
///   appends smaller than [`min_append_size`](Backend::min_append_size) cost extra. The backend
///   keeps its own objects below the home key (they show up in `list` and are removed by
///   complete and abort); callers put nothing there. Appends to one upload must not run
///   concurrently; the filesystem backend detects it ([`Error::UploadBusy`]), S3 cannot.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and errors (`fs`, `s3`).
    fn name(&self) -> &'static str;

    /// Appends smaller than this many bytes work but cost extra work (S3: 5 MiB); `None` if every
    /// size is as cheap. Registries advertise it as `OCI-Chunk-Min-Length`.
    fn min_append_size(&self) -> Option<u64>;

    /// Writes `data` to `key`, replacing any object there, atomically.
    async fn put(&self, key: &Key, data: ByteStream) -> Result<ObjectMeta>;

    /// Streams the object at `key`, or the part of it selected by `range`.
    async fn get(&self, key: &Key, range: Option<ByteRange>) -> Result<GetResult>;

    /// Metadata of the object at `key`.
    async fn head(&self, key: &Key) -> Result<ObjectMeta>;

    /// Deletes the object at `key`; [`Error::NotFound`] if there is none.
    async fn delete(&self, key: &Key) -> Result<()>;

    /// Every object strictly below `prefix`, in ascending key order, after `start_after`.
    fn list(&self, prefix: &Key, start_after: Option<&Key>) -> ListStream;

    /// Copies the object at `from` to `to`, replacing any object there, atomically.
    async fn copy(&self, from: &Key, to: &Key) -> Result<()>;

    /// Starts an empty appendable upload at `home`; [`Error::AlreadyExists`] if one is there.
    async fn upload_create(&self, home: &Key) -> Result<UploadStatus>;

    /// The committed state of the upload at `home`.
    async fn upload_status(&self, home: &Key) -> Result<UploadStatus>;

    /// Appends `data` to the upload at `home`. `offset` must equal the committed length
    /// ([`Error::UploadOffset`] otherwise). Once `data` ended without error, `checkpoint` is
    /// called and its bytes are committed together with the new length. On any error nothing of
    /// this append is committed.
    async fn upload_append(
        &self,
        home: &Key,
        offset: u64,
        data: ByteStream,
        checkpoint: Checkpoint,
    ) -> Result<UploadStatus>;

    /// Publishes the upload's bytes at `to` (atomically, like `put`) and removes the upload.
    async fn upload_complete(&self, home: &Key, to: &Key) -> Result<ObjectMeta>;

    /// Discards the upload and everything stored for it.
    async fn upload_abort(&self, home: &Key) -> Result<()>;

    /// Creates an empty marker object at `key`, or renews the modification time of the one
    /// there (garbage-collection claims and intents). Cheaper than [`Backend::put`] where the
    /// backend can make it so: a marker need not survive a crash of the storage host. Default:
    /// an empty `put`.
    async fn touch(&self, key: &Key) -> Result<ObjectMeta> {
        self.put(key, stream::once(Bytes::new())).await
    }

    /// Removes debris that writers which crashed left outside the registry's keys and older
    /// than `cutoff` (temporary files; multipart uploads the S3 backend recorded before starting
    /// them); returns how many items went. Safe while others write, as long as no write takes
    /// from `cutoff` until now. Default: nothing to remove.
    async fn sweep(&self, cutoff: std::time::SystemTime) -> Result<u64> {
        let _ = cutoff;
        Ok(0)
    }

    /// Appends to upload `home` at its committed length, after `prepare` has seen its status
    /// (to check an offset or a limit, and resume a hash) and returned the data and checkpoint;
    /// the status is read once. Default: [`Backend::upload_status`], then
    /// [`Backend::upload_append`].
    async fn upload_append_after(&self, home: &Key, prepare: Prepare) -> Result<UploadStatus> {
        let status = self.upload_status(home).await?;
        let (data, checkpoint) = prepare(&status)?;
        self.upload_append(home, status.length, data, checkpoint).await
    }

    /// Deletes `key` if it is there, in one request where the backend can (absent is not an
    /// error). Default: [`Backend::delete`], absent ignored.
    async fn remove(&self, key: &Key) -> Result<()> {
        match self.delete(key).await {
            Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes every object below `prefix` (objects that vanish meanwhile are not an error).
    async fn delete_prefix(&self, prefix: &Key) -> Result<u64> {
        let mut listing = self.list(prefix, None);
        let mut deleted = 0;
        while let Some(meta) = listing.next().await {
            match self.delete(&meta?.key).await {
                Ok(()) => deleted += 1,
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    /// A URL that serves object `key` to anyone who has it for a while (a presigned URL), so
    /// clients can fetch large content from the object store directly; `None` when the backend
    /// has no such thing or is not configured to (default).
    async fn presigned_get(&self, key: &Key) -> Result<Option<String>> {
        let _ = key;
        Ok(None)
    }

    /// Checks that the storage answers (readiness): one cheap request, bounded by `within`.
    /// Backends with several endpoints check each and record which answer, so requests avoid
    /// the others, and fail fast ([`Error::Unavailable`]) while none does. Default: a `head` of
    /// `_health` (absent is fine).
    async fn probe(&self, within: std::time::Duration) -> Result<()> {
        let key = Key::parse("_health")?;
        match tokio::time::timeout(within, self.head(&key)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_not_found() => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Unavailable {
                backend: self.name(),
                reason: format!("no answer within {within:?}"),
            }),
        }
    }
}

/// Conveniences on top of [`Backend`], for every backend.
#[async_trait]
pub trait BackendExt: Backend {
    /// Writes a small in-memory object.
    async fn put_bytes(&self, key: &Key, data: Bytes) -> Result<ObjectMeta> {
        self.put(key, stream::once(data)).await
    }

    /// Reads a whole object into memory. Only for small objects (metadata, manifests).
    async fn get_bytes(&self, key: &Key) -> Result<Bytes> {
        stream::collect(self.get(key, None).await?.body).await
    }

    /// Whether an object exists at `key`.
    async fn exists(&self, key: &Key) -> Result<bool> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Collects a listing into memory.
    async fn list_all(&self, prefix: &Key) -> Result<Vec<ObjectMeta>> {
        self.list(prefix, None).try_collect().await
    }
}

impl<T: Backend + ?Sized> BackendExt for T {}
