//! Appendable uploads on the filesystem.
//!
//! The home directory holds `data` (the bytes) and `state` (JSON: committed length and the
//! caller's checkpoint). An append writes past the committed length, fsyncs, then replaces
//! `state` atomically; so after a crash `state` names the last complete append, and bytes past its
//! length (a torn append) are truncated away by the next append or the completion. An exclusive
//! `flock` on `data` keeps two processes from appending at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::io::{MAX_RACES, blocking, create_dirs, not_found_or, sync_dir, write_stream};
use super::{FsBackend, meta_of};
use crate::backend::{Checkpoint, ObjectMeta, UploadStatus};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::stream::ByteStream;

const DATA: &str = "data";
const STATE: &str = "state";

#[derive(Serialize, Deserialize)]
struct State {
    length: u64,
    checkpoint: String,
}

impl FsBackend {
    pub(super) fn upload_create_blocking(&self, home: &Key) -> Result<UploadStatus> {
        let dir = self.path(home);
        let parent = dir.parent().expect("keys have a parent");
        let mut attempt = 0;
        loop {
            create_dirs(parent, &mut attempt)?;
            match std::fs::create_dir(&dir) {
                Ok(()) => break,
                // A concurrent prune removed the empty parent in between.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < MAX_RACES => attempt += 1,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(Error::AlreadyExists { key: home.to_string() });
                }
                Err(e) => return Err(Error::io("create directory", dir.display(), e)),
            }
        }
        let data = dir.join(DATA);
        File::create(&data).map_err(|e| Error::io("create", data.display(), e))?;
        write_state(&dir, 0, &[])?;
        sync_dir(parent)?;
        self.read_upload_state(home)
    }

    pub(super) fn read_upload_state(&self, home: &Key) -> Result<UploadStatus> {
        let path = self.path(home).join(STATE);
        let raw = std::fs::read(&path).map_err(not_found_or("read", &path, home.as_str()))?;
        let state: State = serde_json::from_slice(&raw)
            .map_err(|e| Error::io("parse upload state", path.display(), std::io::Error::other(e)))?;
        let checkpoint = BASE64
            .decode(state.checkpoint)
            .map_err(|e| Error::io("parse upload state", path.display(), std::io::Error::other(e)))?;
        let updated = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(UploadStatus {
            length: state.length,
            checkpoint: Bytes::from(checkpoint),
            updated,
        })
    }

    /// Opens `data` for writing under an exclusive lock, with the committed state.
    fn lock_upload(&self, home: &Key) -> Result<(File, UploadStatus)> {
        let path = self.path(home).join(DATA);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(not_found_or("open", &path, home.as_str()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(Error::UploadBusy { key: home.to_string() }),
            Err(TryLockError::Error(e)) => return Err(Error::io("lock", path.display(), e)),
        }
        let status = self.read_upload_state(home)?;
        Ok((file, status))
    }

    pub(super) async fn upload_append_impl(
        &self,
        home: &Key,
        offset: u64,
        data: ByteStream,
        checkpoint: Checkpoint,
    ) -> Result<UploadStatus> {
        let (this, key) = (self.clone(), home.clone());
        let file = blocking(move || {
            let (mut file, status) = this.lock_upload(&key)?;
            if offset != status.length {
                return Err(Error::UploadOffset {
                    length: status.length,
                    offset,
                });
            }
            let path = this.path(&key).join(DATA);
            // Drop what a torn append may have left past the committed length.
            file.set_len(status.length)
                .map_err(|e| Error::io("truncate", path.display(), e))?;
            file.seek(SeekFrom::Start(status.length))
                .map_err(|e| Error::io("seek", path.display(), e))?;
            Ok(file)
        })
        .await?;

        let dir = self.path(home);
        let (file, written) = write_stream(file, dir.join(DATA), data).await?;
        let checkpoint = checkpoint();
        let (this, key) = (self.clone(), home.clone());
        blocking(move || {
            write_state(&dir, offset + written, &checkpoint)?;
            drop(file); // releases the lock only after the state is committed
            this.read_upload_state(&key)
        })
        .await
    }

    pub(super) fn upload_complete_blocking(&self, home: &Key, to: &Key) -> Result<ObjectMeta> {
        let (file, status) = self.lock_upload(home)?;
        let dir = self.path(home);
        let data = dir.join(DATA);
        let md = file.metadata().map_err(|e| Error::io("stat", data.display(), e))?;
        if md.len() != status.length {
            file.set_len(status.length)
                .map_err(|e| Error::io("truncate", data.display(), e))?;
            file.sync_all().map_err(|e| Error::io("fsync", data.display(), e))?;
        }
        let target = self.path(to);
        super::io::publish(&data, &target)?;
        let md = std::fs::metadata(&target).map_err(|e| Error::io("stat", target.display(), e))?;
        drop(file);
        self.remove_upload_dir(&dir)?;
        Ok(meta_of(to, &md))
    }

    pub(super) fn upload_abort_blocking(&self, home: &Key) -> Result<()> {
        let dir = self.path(home);
        if !dir.join(STATE).exists() {
            return Err(Error::NotFound { key: home.to_string() });
        }
        self.remove_upload_dir(&dir)
    }

    fn remove_upload_dir(&self, dir: &Path) -> Result<()> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove upload", dir.display(), e)),
        }
        self.prune_empty_parents(dir);
        Ok(())
    }
}

/// Replaces `dir/state` atomically (temp file, fsync, rename, fsync the directory).
fn write_state(dir: &Path, length: u64, checkpoint: &[u8]) -> Result<()> {
    let state = State {
        length,
        checkpoint: BASE64.encode(checkpoint),
    };
    let json = serde_json::to_vec(&state).expect("state serializes");
    crate::atomic::write(&dir.join(STATE), &json).map_err(|e| Error::io("write upload state", dir.display(), e))
}
