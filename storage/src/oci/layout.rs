//! OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/<hex>`): the local store under
//! `STRATA_HOME`, and any `oci:DIR` a user names. Blobs are written through strata-storage, so
//! they land only after their digest is verified, atomically; `index.json` is rewritten under a
//! lock, atomically. skopeo and umoci read what this writes, and the other way round.
//!
//! Processes sharing a layout coordinate through locks in it (see [`OciLayout::lease`]): every
//! writer holds a shared lease while it works, [`OciLayout::prune`] needs the exclusive one, and
//! a blob being downloaded is locked by its digest, so a second process waits for it and then
//! finds it instead of downloading it again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::media::OCI_INDEX;
use super::{Descriptor, ImageIndex, ImageManifest, OciError};
use crate::lock::FileLock;
use crate::{BlobLayout, BlobStore, ByteStream, Digest, FsBackend};
use bytes::Bytes;

/// What can go wrong with a layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, on what.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No such blob or name.
    #[error("not found: {0}")]
    NotFound(String),
    /// The blob store.
    #[error(transparent)]
    Storage(#[from] crate::Error),
    /// `index.json` or a manifest that is not what it should be.
    #[error(transparent)]
    Image(#[from] OciError),
}

impl LayoutError {
    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LayoutError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias for layouts.
pub type Result<T, E = LayoutError> = std::result::Result<T, E>;

/// Largest manifest, index or config read into memory.
pub const MAX_SMALL_BLOB: u64 = 8 * 1024 * 1024;

/// The annotation that names an image in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The layout's lock file (shared by writers, exclusive for pruning).
const LOCK: &str = ".lock";
/// Per-blob lock files, taken under a lease; removed by [`OciLayout::prune`].
const BLOB_LOCKS: &str = ".locks";

/// Whether index entry `d` is named `name`.
fn is_named(d: &Descriptor, name: &str) -> bool {
    d.annotations.get(REF_NAME).map(String::as_str) == Some(name)
}

/// A shared lease on a layout ([`OciLayout::lease`]).
#[derive(Debug)]
pub struct Lease {
    _lock: FileLock,
}

/// The exclusive lock of a layout ([`OciLayout::exclusive`]).
#[derive(Debug)]
pub struct Exclusive {
    _lock: FileLock,
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
    blobs: BlobStore,
}

impl OciLayout {
    /// Opens the layout at `root`, creating an empty one if the directory has none.
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root.join("blobs/sha256"))
            .map_err(|e| LayoutError::io(format!("create {}", root.display()), e))?;
        // Another process may be creating the same layout, or have written to it already.
        let marker = root.join("oci-layout");
        if !marker.exists() {
            crate::atomic::create(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)
                .map_err(|e| LayoutError::io(format!("write {}", marker.display()), e))?;
        }
        let index = root.join("index.json");
        if !index.exists() {
            crate::atomic::create(
                &index,
                format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#).as_bytes(),
            )
            .map_err(|e| LayoutError::io(format!("write {}", index.display()), e))?;
        }
        let backend = Arc::new(FsBackend::new(root)?);
        Ok(OciLayout {
            root: root.to_owned(),
            blobs: BlobStore::with_layout(backend, BlobLayout::OciImageLayout),
        })
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A shared lease on the layout: blobs written while it is held are not pruned before the
    /// writer has named what uses them. Every writer holds one while it works.
    pub async fn lease(&self) -> Result<Lease> {
        let path = self.root.join(LOCK);
        FileLock::shared_async(path.clone())
            .await
            .map(|lock| Lease { _lock: lock })
            .map_err(|e| LayoutError::io(format!("lock {}", path.display()), e))
    }

    /// The layout to oneself: waits until no writer holds a lease. Needed to prune.
    pub async fn exclusive(&self) -> Result<Exclusive> {
        let path = self.root.join(LOCK);
        FileLock::exclusive_async(path.clone())
            .await
            .map(|lock| Exclusive { _lock: lock })
            .map_err(|e| LayoutError::io(format!("lock {}", path.display()), e))
    }

    /// Waits until no other process (or task) fetches blob `digest` into this layout, and keeps
    /// others out until the guard is dropped. Only under a [`Lease`].
    pub async fn lock_blob(&self, _lease: &Lease, digest: &Digest) -> Result<FileLock> {
        let path = self
            .root
            .join(BLOB_LOCKS)
            .join(format!("{}-{}", digest.algorithm(), digest.digest()));
        FileLock::exclusive_async(path.clone())
            .await
            .map_err(|e| LayoutError::io(format!("lock {}", path.display()), e))
    }

    /// The blob store (writes verify digests; upload sessions keep partial downloads).
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Where the layout keeps blob `digest` (for readers that need a file, like the unpacker).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().to_string())
            .join(digest.digest())
    }

    /// The entry named `name` and the manifest (or index) it points at, up to `limit` bytes.
    pub async fn named(&self, name: &str, limit: u64) -> Result<(Descriptor, Bytes)> {
        let descriptor = self
            .find(name)?
            .ok_or_else(|| LayoutError::NotFound(format!("{name} in {}", self.root.display())))?;
        let bytes = self.read_blob(&descriptor.digest, limit).await?;
        Ok((descriptor, bytes))
    }

    /// Whether the layout has blob `digest`.
    pub async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        Ok(self.blobs.exists(digest).await?)
    }

    /// Reads a small blob (a manifest, a config).
    pub async fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Bytes> {
        self.blobs.read_limited(digest, limit).await.map_err(|e| match e {
            crate::Error::NotFound { .. } => LayoutError::NotFound(format!("blob {digest} in {}", self.root.display())),
            other => other.into(),
        })
    }

    /// Streams blob `digest`.
    pub async fn open_blob(&self, digest: &Digest) -> Result<(u64, ByteStream)> {
        let blob = self.blobs.open(digest, None).await.map_err(|e| match e {
            crate::Error::NotFound { .. } => LayoutError::NotFound(format!("blob {digest} in {}", self.root.display())),
            other => other.into(),
        })?;
        Ok((blob.meta.size, blob.body))
    }

    /// Stores bytes already in memory as blob `digest` (verified).
    pub async fn put_blob_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        let size = bytes.len() as u64;
        self.blobs.put(digest, Some(size), crate::stream::once(bytes)).await?;
        Ok(())
    }

    fn read_index(&self) -> Result<ImageIndex> {
        let path = self.root.join("index.json");
        let raw = std::fs::read(&path).map_err(|e| LayoutError::io(format!("read {}", path.display()), e))?;
        serde_json::from_slice(&raw).map_err(|e| {
            LayoutError::Image(OciError::Invalid(format!(
                "{} is not an image index: {e}",
                path.display()
            )))
        })
    }

    /// Every named entry of `index.json`: (name, descriptor).
    pub fn refs(&self) -> Result<Vec<(String, Descriptor)>> {
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .filter_map(|d| Some((d.annotations.get(REF_NAME)?.clone(), d)))
            .collect())
    }

    /// The descriptor named `name`, if any.
    pub fn find(&self, name: &str) -> Result<Option<Descriptor>> {
        Ok(self.refs()?.into_iter().find(|(n, _)| n == name).map(|(_, d)| d))
    }

    /// Points `name` at `descriptor` (replacing an entry of that name).
    pub fn set_ref(&self, name: &str, descriptor: &Descriptor) -> Result<()> {
        let mut descriptor = descriptor.clone();
        descriptor.annotations.insert(REF_NAME.to_owned(), name.to_owned());
        self.update_index(|manifests| {
            manifests.retain(|d| !is_named(d, name));
            manifests.push(descriptor);
        })
    }

    /// Removes the entry named `name`; returns it.
    pub fn remove_ref(&self, name: &str) -> Result<Option<Descriptor>> {
        let mut removed = None;
        self.update_index(|manifests| {
            if let Some(i) = manifests.iter().position(|d| is_named(d, name)) {
                removed = Some(manifests.remove(i));
            }
        })?;
        Ok(removed)
    }

    /// Removes every blob no named image references, and the per-blob lock files (nobody holds
    /// one without a lease). Returns how many blobs went.
    pub async fn prune(&self, _exclusive: &Exclusive) -> Result<u64> {
        use futures::TryStreamExt;
        let mut keep = std::collections::HashSet::new();
        let mut todo: Vec<Descriptor> = self.refs()?.into_iter().map(|(_, d)| d).collect();
        while let Some(d) = todo.pop() {
            if !keep.insert(d.digest.clone()) {
                continue;
            }
            // What is not a readable manifest (a layer, a config, a blob the layout lacks)
            // keeps only itself.
            let Ok(bytes) = self.read_blob(&d.digest, MAX_SMALL_BLOB).await else {
                continue;
            };
            if super::media::is_index(&d.media_type, &bytes) {
                if let Ok(index) = ImageIndex::parse(&bytes, &d.digest) {
                    todo.extend(index.manifests);
                }
            } else if let Ok(manifest) = ImageManifest::parse(&bytes, &d.digest) {
                todo.extend(manifest.blobs().cloned());
            }
        }
        let all: Vec<_> = self.blobs.list().try_collect().await?;
        let mut removed = 0;
        for (digest, _) in all {
            if !keep.contains(&digest) {
                self.blobs.delete(&digest).await?;
                removed += 1;
            }
        }
        let locks = self.root.join(BLOB_LOCKS);
        if let Err(e) = std::fs::remove_dir_all(&locks)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(LayoutError::io(format!("remove {}", locks.display()), e));
        }
        Ok(removed)
    }

    /// Read-modify-writes `index.json` under an exclusive lock, replacing it atomically.
    fn update_index(&self, change: impl FnOnce(&mut Vec<Descriptor>)) -> Result<()> {
        let lock_path = self.root.join(".index.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| LayoutError::io(format!("open {}", lock_path.display()), e))?;
        lock.lock().map_err(|e| LayoutError::io("lock index.json", e))?;
        let mut index = self.read_index()?;
        change(&mut index.manifests);
        let path = self.root.join("index.json");
        let bytes = serde_json::to_vec(&index).expect("json");
        crate::atomic::write(&path, &bytes).map_err(|e| LayoutError::io(format!("write {}", path.display()), e))?;
        Ok(())
    }
}
