//! Advisory locks between processes that share a directory (the local image store, the layer
//! store): `flock(2)` on a lock file. The kernel releases a lock when its holder exits, however
//! it exits, so a lock never outlives its owner and nothing has to be cleaned up after a crash.
//!
//! Locks taken through two opens of the same file conflict even inside one process, so an
//! owner must not ask for an exclusive lock while it holds a shared one on the same file.

use std::fs::File;
use std::path::{Path, PathBuf};

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
    path: PathBuf,
}

fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

impl FileLock {
    /// Waits for a shared lock on `path` (created if missing). Blocking.
    pub fn shared(path: &Path) -> std::io::Result<Self> {
        let file = open(path)?;
        file.lock_shared()?;
        Ok(FileLock {
            _file: file,
            path: path.to_owned(),
        })
    }

    /// Waits for an exclusive lock on `path` (created if missing). Blocking.
    pub fn exclusive(path: &Path) -> std::io::Result<Self> {
        let file = open(path)?;
        file.lock()?;
        Ok(FileLock {
            _file: file,
            path: path.to_owned(),
        })
    }

    /// An exclusive lock on `path` if nobody holds one, else `None`. Does not wait.
    pub fn try_exclusive(path: &Path) -> std::io::Result<Option<Self>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FileLock {
                _file: file,
                path: path.to_owned(),
            })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// [`FileLock::shared`] without blocking the async threads.
    pub async fn shared_async(path: PathBuf) -> std::io::Result<Self> {
        tokio::task::spawn_blocking(move || Self::shared(&path))
            .await
            .map_err(std::io::Error::other)?
    }

    /// [`FileLock::exclusive`] without blocking the async threads.
    pub async fn exclusive_async(path: PathBuf) -> std::io::Result<Self> {
        tokio::task::spawn_blocking(move || Self::exclusive(&path))
            .await
            .map_err(std::io::Error::other)?
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_locks_coexist_and_exclude_an_exclusive_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/.lock");
        let a = FileLock::shared(&path).unwrap();
        let b = FileLock::shared(&path).unwrap();
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        drop((a, b));
        let held = FileLock::try_exclusive(&path)
            .unwrap()
            .expect("free once the shared locks went");
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        drop(held);
        assert!(FileLock::try_exclusive(&path).unwrap().is_some());
    }

    #[test]
    fn a_waiter_gets_the_lock_when_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let held = FileLock::exclusive(&path).unwrap();
        let waiter = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let _lock = FileLock::exclusive(&path).unwrap();
            start.elapsed()
        });
        std::thread::sleep(std::time::Duration::from_millis(150));
        drop(held);
        assert!(waiter.join().unwrap() >= std::time::Duration::from_millis(100));
    }
}
