//! The filesystem backend: objects are files under a root directory.
//!
//! - A key maps to `root/<key>`; [`Key`] validation guarantees the path stays below the root (no
//!   `..`, no absolute paths, no NUL). Nothing under the root is expected to be a symlink; the
//!   backend never creates one.
//! - Writes go to a uniquely named file in `root/.tmp/`, are fsynced, renamed into place, and the
//!   parent directory is fsynced. A crash leaves the old object or the new one, plus at worst a
//!   stray temp file that [`FsBackend::new`] and [`Backend::sweep`] remove once it is a day old.
//! - All file work runs on tokio's blocking pool.
//! - Uploads (see [`upload`]) keep `data` and `state` files in the home directory.

mod io;
mod list;
mod upload;

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use crate::backend::{Backend, Checkpoint, GetResult, ListStream, ObjectMeta, UploadStatus};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::range::ByteRange;
use crate::stream::ByteStream;
use io::{TempFile, blocking, not_found_or};

/// Name of the directory below the root that holds temp files (keys cannot start with `.`).
const TMP_DIR: &str = ".tmp";
/// Reads up to this size are done in one blocking call, without a reader thread.
const SMALL_READ: u64 = 256 * 1024;
/// Temp files older than this are debris from a crashed process.
const STALE_TEMP_AGE: Duration = Duration::from_secs(24 * 3600);

/// The filesystem backend. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FsBackend {
    root: Arc<PathBuf>,
}

impl FsBackend {
    /// Opens (creating if needed) a store rooted at `root`, and sweeps stale temp files.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        std::fs::create_dir_all(root.join(TMP_DIR)).map_err(|e| Error::io("create directory", root.display(), e))?;
        let root = root
            .canonicalize()
            .map_err(|e| Error::io("resolve", root.display(), e))?;
        let backend = FsBackend { root: Arc::new(root) };
        backend.sweep_temp_files(SystemTime::now() - STALE_TEMP_AGE);
        Ok(backend)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.root.join(key.as_str())
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join(TMP_DIR)
    }

    /// Removes temp files last written before `cutoff`; returns how many.
    fn sweep_temp_files(&self, cutoff: SystemTime) -> u64 {
        let Ok(entries) = std::fs::read_dir(self.tmp_dir()) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < cutoff);
            if old && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Removes now-empty directories from `path`'s parent up to (not including) the root. Best
    /// effort: a directory that is not empty, or gone, simply ends the walk.
    fn prune_empty_parents(&self, path: &Path) {
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root.as_path() || std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
}

pub(crate) fn meta_of(key: &Key, md: &std::fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key: key.clone(),
        size: md.len(),
        modified: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

/// Opens an object file for reading; a directory is not an object.
fn open_object(path: &Path, key: &Key) -> Result<(File, std::fs::Metadata)> {
    let file = File::open(path).map_err(not_found_or("open", path, key.as_str()))?;
    let md = file.metadata().map_err(|e| Error::io("stat", path.display(), e))?;
    if !md.is_file() {
        return Err(Error::NotFound { key: key.to_string() });
    }
    Ok((file, md))
}

#[async_trait]
impl Backend for FsBackend {
    fn name(&self) -> &'static str {
        "fs"
    }

    async fn sweep(&self, cutoff: SystemTime) -> Result<u64> {
        let this = self.clone();
        blocking(move || Ok(this.sweep_temp_files(cutoff))).await
    }

    fn min_append_size(&self) -> Option<u64> {
        None
    }

    async fn put(&self, key: &Key, data: ByteStream) -> Result<ObjectMeta> {
        let tmp_dir = self.tmp_dir();
        let (temp, file) = blocking(move || TempFile::create(&tmp_dir)).await?;
        let (file, _) = io::write_stream(file, temp.path().to_owned(), data).await?;
        let (key, path) = (key.clone(), self.path(key));
        blocking(move || {
            let md = file
                .metadata()
                .map_err(|e| Error::io("stat", temp.path().display(), e))?;
            temp.publish(&path)?;
            Ok(meta_of(&key, &md))
        })
        .await
    }

    async fn touch(&self, key: &Key) -> Result<ObjectMeta> {
        let (key, path) = (key.clone(), self.path(key));
        blocking(move || io::touch(&path, &key)).await
    }

    async fn get(&self, key: &Key, range: Option<ByteRange>) -> Result<GetResult> {
        enum Opened {
            Small(Bytes),
            Large(File),
        }
        let (key, path) = (key.clone(), self.path(key));
        let opened_path = path.clone();
        let (opened, meta, range) = blocking(move || {
            let (mut file, md) = open_object(&opened_path, &key)?;
            let meta = meta_of(&key, &md);
            let range = match range {
                Some(r) => r.resolve(meta.size)?,
                None => 0..meta.size,
            };
            let len = range.end - range.start;
            // Metadata and manifests are small: read them in this same trip to the blocking
            // pool instead of starting a reader thread.
            if len <= SMALL_READ {
                let mut buf = vec![0u8; len as usize];
                file.seek(std::io::SeekFrom::Start(range.start))
                    .and_then(|_| file.read_exact(&mut buf))
                    .map_err(|e| Error::io("read", opened_path.display(), e))?;
                return Ok((Opened::Small(Bytes::from(buf)), meta, range));
            }
            Ok((Opened::Large(file), meta, range))
        })
        .await?;
        let body = match opened {
            Opened::Small(bytes) => crate::stream::once(bytes),
            Opened::Large(file) => io::read_stream(file, path, range.start, range.end - range.start),
        };
        Ok(GetResult { meta, range, body })
    }

    async fn head(&self, key: &Key) -> Result<ObjectMeta> {
        let (key, path) = (key.clone(), self.path(key));
        blocking(move || {
            let md = std::fs::metadata(&path).map_err(not_found_or("stat", &path, key.as_str()))?;
            if !md.is_file() {
                return Err(Error::NotFound { key: key.to_string() });
            }
            Ok(meta_of(&key, &md))
        })
        .await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        let (this, key) = (self.clone(), key.clone());
        blocking(move || {
            let path = this.path(&key);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
                    return Err(Error::NotFound { key: key.to_string() });
                }
                Err(e) => return Err(not_found_or("delete", &path, key.as_str())(e)),
            }
            this.prune_empty_parents(&path);
            Ok(())
        })
        .await
    }

    fn list(&self, prefix: &Key, start_after: Option<&Key>) -> ListStream {
        list::list(self.root.clone(), prefix.clone(), start_after.cloned())
    }

    async fn copy(&self, from: &Key, to: &Key) -> Result<()> {
        let (src, dst, from_key, tmp_dir) = (self.path(from), self.path(to), from.clone(), self.tmp_dir());
        blocking(move || {
            let (mut source, _) = open_object(&src, &from_key)?;
            let (temp, mut file) = TempFile::create(&tmp_dir)?;
            // std::io::copy uses copy_file_range on Linux: the kernel copies, or reflinks.
            std::io::copy(&mut source, &mut file).map_err(|e| Error::io("copy", src.display(), e))?;
            file.sync_all()
                .map_err(|e| Error::io("fsync", temp.path().display(), e))?;
            temp.publish(&dst)
        })
        .await
    }

    async fn upload_create(&self, home: &Key) -> Result<UploadStatus> {
        let (this, home) = (self.clone(), home.clone());
        blocking(move || this.upload_create_blocking(&home)).await
    }

    async fn upload_status(&self, home: &Key) -> Result<UploadStatus> {
        let (this, home) = (self.clone(), home.clone());
        blocking(move || this.read_upload_state(&home)).await
    }

    async fn upload_append(
        &self,
        home: &Key,
        offset: u64,
        data: ByteStream,
        checkpoint: Checkpoint,
    ) -> Result<UploadStatus> {
        self.upload_append_impl(home, offset, data, checkpoint).await
    }

    async fn upload_complete(&self, home: &Key, to: &Key) -> Result<ObjectMeta> {
        let (this, home, to) = (self.clone(), home.clone(), to.clone());
        blocking(move || this.upload_complete_blocking(&home, &to)).await
    }

    async fn upload_abort(&self, home: &Key) -> Result<()> {
        let (this, home) = (self.clone(), home.clone());
        blocking(move || this.upload_abort_blocking(&home)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackendExt;

    /// Deleting the last object of a directory prunes it; writes into the same directory at the
    /// same time must still land (a collector deletes intents while pushes write claims).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writes_survive_concurrent_pruning_of_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FsBackend::new(dir.path()).unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let backend = backend.clone();
                tokio::spawn(async move {
                    for i in 0..200 {
                        let key = Key::parse(format!("a/b/c/{t}-{i}")).unwrap();
                        backend.put_bytes(&key, Bytes::from_static(b"x")).await.unwrap();
                        backend
                            .touch(&Key::parse(format!("a/b/m/{t}-{i}")).unwrap())
                            .await
                            .unwrap();
                        backend.delete(&key).await.unwrap();
                        backend
                            .delete(&Key::parse(format!("a/b/m/{t}-{i}")).unwrap())
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert!(backend.list_all(&Key::parse("a").unwrap()).await.unwrap().is_empty());
    }
}
