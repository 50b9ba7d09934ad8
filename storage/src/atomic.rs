//! Replacing a file atomically: the one way every crate writes its records, journals and
//! indexes (`index.json`, docker's `config.json`, container records, upload state, …) and, through
//! [`Replacement`], files too large to hold in memory (a docker-archive being exported).
//!
//! The bytes go to a temporary file in the target's directory whose name no other writer uses
//! (process id, a per-process counter, random bits), are fsynced, renamed over the target, and
//! the directory is fsynced. A reader sees the old file or the new one, never a mix; concurrent
//! writers each publish a whole file (the last rename wins); a crash leaves at most a `.tmp-`
//! file behind.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A temporary name beside `path` that no other writer (in this or another process) uses.
fn temporary(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = format!(
        ".{name}.tmp-{}-{}-{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    path.with_file_name(unique)
}

/// Replaces `path` with `data` (file mode 0644 when it is created).
pub fn write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, data, 0o644)
}

/// Replaces `path` with `data`, the new file having permission bits `mode` (before umask).
pub fn write_with_mode(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    publish(path, data, mode, |temp, path| std::fs::rename(temp, path))
}

/// Creates `path` with `data` unless it exists: a file that another process creates at the same
/// time, or created earlier and has changed since, is never replaced. Whether this call created
/// it.
pub fn create(path: &Path, data: &[u8]) -> std::io::Result<bool> {
    let mut created = true;
    publish(path, data, 0o644, |temp, path| {
        // A hard link fails where rename would replace; the temporary goes either way.
        let linked = std::fs::hard_link(temp, path);
        std::fs::remove_file(temp)?;
        match linked {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                created = false;
                Ok(())
            }
            other => other,
        }
    })?;
    Ok(created)
}

/// Writes `data` to a temporary beside `path`, fsyncs it, `place`s it at `path` and fsyncs the
/// directory; the temporary is removed if anything fails.
fn publish(
    path: &Path,
    data: &[u8],
    mode: u32,
    place: impl FnOnce(&Path, &Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut replacement = Replacement::create(path, mode)?;
    replacement.file().write_all(data)?;
    replacement.finish(place)
}

/// A file written under a temporary name beside `target` that replaces `target` only when
/// [`Replacement::commit`] succeeds; dropped before that, it is removed.
#[derive(Debug)]
pub struct Replacement {
    file: std::fs::File,
    temp: PathBuf,
    target: PathBuf,
    done: bool,
}

impl Replacement {
    /// Starts a replacement of `target` (permission bits `mode`, before umask).
    pub fn create(target: &Path, mode: u32) -> std::io::Result<Self> {
        let temp = temporary(target);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        Ok(Replacement {
            file,
            temp,
            target: target.to_owned(),
            done: false,
        })
    }

    /// The file to write.
    pub fn file(&mut self) -> &mut std::fs::File {
        &mut self.file
    }

    /// Fsyncs the file, renames it over the target and fsyncs the directory.
    pub fn commit(self) -> std::io::Result<()> {
        self.finish(|temp, target| std::fs::rename(temp, target))
    }

    fn finish(mut self, place: impl FnOnce(&Path, &Path) -> std::io::Result<()>) -> std::io::Result<()> {
        self.file.sync_all()?;
        place(&self.temp, &self.target)?;
        self.done = true;
        let dir = self
            .target
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()
    }
}

impl Drop for Replacement {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.json");
        write(&path, b"first").unwrap();
        write(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        write_with_mode(&dir.path().join("secret"), b"x", 0o600).unwrap();
        let mode = std::fs::metadata(dir.path().join("secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn concurrent_writers_each_publish_a_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared");
        let contents: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 64 * 1024]).collect();
        let all = &contents;
        std::thread::scope(|scope| {
            for content in all {
                let path = &path;
                scope.spawn(move || {
                    for _ in 0..20 {
                        write(path, content).unwrap();
                        let read = std::fs::read(path).unwrap();
                        assert!(all.contains(&read), "a torn file");
                    }
                });
            }
        });
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left");
    }

    #[test]
    fn a_replacement_appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archive.tar");
        write(&path, b"old").unwrap();
        let mut dropped = Replacement::create(&path, 0o644).unwrap();
        dropped.file().write_all(b"half").unwrap();
        drop(dropped);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let mut kept = Replacement::create(&path, 0o644).unwrap();
        kept.file().write_all(b"whole").unwrap();
        kept.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left");
    }

    #[test]
    fn create_never_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        assert!(create(&path, b"first").unwrap());
        assert!(!create(&path, b"second").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kept");
        write(&path, b"old").unwrap();
        // A directory cannot be renamed over by a file.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("inside"), b"").unwrap();
        assert!(write(&blocked, b"new").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no temporary left");
    }
}
