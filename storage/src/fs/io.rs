//! Blocking file I/O for the filesystem backend, run off the async threads.
//!
//! Writes are a two-stage pipeline: the async task pulls chunks from the input stream (which is
//! where callers hash, see [`crate::digest::VerifyingStream`]) and hands them over a small bounded
//! channel to a blocking thread that writes them. Hashing and writing thus overlap on two cores,
//! and memory is bounded by the channel, not by the object size.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::stream::ByteStream;

/// Chunks in flight between the async task and a blocking writer or reader thread.
const CHANNEL_DEPTH: usize = 4;
/// Writes smaller than this are gathered before they go to the writer thread.
const WRITE_CHUNK: usize = 256 * 1024;
/// Size of the chunks a reader thread produces.
const READ_CHUNK: usize = 1024 * 1024;

/// Runs blocking work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::io("join blocking task", "-", std::io::Error::other(e)))?
}

/// Writes the whole of `data` to `file` at its current position and fsyncs it. Returns the file
/// and the number of bytes written. A stream error is returned as is, after the writer stopped.
pub(crate) async fn write_stream(file: File, path: PathBuf, mut data: ByteStream) -> Result<(File, u64)> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let writer_path = path.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<(File, u64)> {
        let io_err = |op| {
            let path = writer_path.display().to_string();
            move |e| Error::io(op, path, e)
        };
        let mut file = file;
        let flusher = Flusher::start(&file).map_err(io_err("clone file handle"))?;
        let mut written = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            file.write_all(&chunk).map_err(io_err("write"))?;
            let before = written;
            written += chunk.len() as u64;
            if before / FLUSH_WINDOW != written / FLUSH_WINDOW {
                flusher.kick();
            }
        }
        flusher.finish().map_err(io_err("fsync"))?;
        file.sync_all().map_err(io_err("fsync"))?;
        Ok((file, written))
    });

    let mut input_error = None;
    // Network bodies arrive in chunks of a few KiB; handing each to the writer thread would cost
    // a wake-up and a syscall per chunk, so small chunks are gathered into larger writes.
    let mut pending = BytesMut::new();
    while let Some(item) = data.next().await {
        let chunk = match item {
            Ok(chunk) if pending.is_empty() && chunk.len() >= WRITE_CHUNK => chunk,
            Ok(chunk) => {
                if pending.is_empty() {
                    pending.reserve(WRITE_CHUNK);
                }
                pending.extend_from_slice(&chunk);
                if pending.len() < WRITE_CHUNK {
                    continue;
                }
                pending.split().freeze()
            }
            Err(e) => {
                input_error = Some(e);
                break;
            }
        };
        if tx.send(chunk).await.is_err() {
            break; // the writer failed; its error is reported below
        }
    }
    if input_error.is_none() && !pending.is_empty() {
        let _ = tx.send(pending.freeze()).await;
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| Error::io("join writer", path.display(), std::io::Error::other(e)))?;
    match input_error {
        Some(e) => Err(e),
        None => written,
    }
}

/// Bytes written between two background flushes.
const FLUSH_WINDOW: u64 = 32 * 1024 * 1024;

/// Flushes a file being written in the background, so that the disk works while the data is
/// still arriving and being hashed, and the final fsync has little left to do. Without it a
/// large write lands in the page cache at memory speed and only then goes to disk, one phase
/// after the other.
struct Flusher {
    kick: Option<std::sync::mpsc::SyncSender<()>>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Flusher {
    fn start(file: &File) -> std::io::Result<Self> {
        let file = file.try_clone()?;
        let (kick, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new().name("strata-flush".into()).spawn(move || {
            while rx.recv().is_ok() {
                file.sync_data()?;
            }
            Ok(())
        })?;
        Ok(Flusher {
            kick: Some(kick),
            thread,
        })
    }

    /// Asks for a flush; kicks that arrive while one is pending coalesce.
    fn kick(&self) {
        let _ = self.kick.as_ref().expect("not finished").try_send(());
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.kick = None;
        self.thread
            .join()
            .map_err(|_| std::io::Error::other("flusher thread panicked"))?
    }
}

/// Streams `len` bytes of `file` starting at `start`, read by a blocking thread.
pub(crate) fn read_stream(mut file: File, path: PathBuf, start: u64, len: u64) -> ByteStream {
    let (tx, rx) = mpsc::channel::<Result<Bytes>>(CHANNEL_DEPTH);
    tokio::task::spawn_blocking(move || {
        // `read_to_end` into spare capacity reads straight into the allocation without zeroing
        // it first: one pass over the bytes instead of two.
        let read = |file: &mut File, want: usize| -> std::io::Result<Bytes> {
            let mut buf = Vec::with_capacity(want);
            if file.take(want as u64).read_to_end(&mut buf)? < want {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok(Bytes::from(buf))
        };
        if let Err(e) = file.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(Error::io("seek", path.display(), e)));
            return;
        }
        let mut remaining = len;
        while remaining > 0 {
            let want = remaining.min(READ_CHUNK as u64) as usize;
            let item = read(&mut file, want).map_err(|e| Error::io("read", path.display(), e));
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return; // the reader went away, or we reported the error
            }
            remaining -= want as u64;
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Fsyncs a directory, making renames and creations inside it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir.display(), e))
}

/// Creates `dir` and its parents. A concurrent delete prunes empty directories, so one made a
/// moment ago may be gone before its child is made: that is retried (`attempt` counts, shared
/// with the caller's own retries).
pub(super) fn create_dirs(dir: &Path, attempt: &mut u32) -> Result<()> {
    loop {
        match std::fs::create_dir_all(dir) {
            Ok(()) => return Ok(()),
            // NotFound: a parent went after it was made; AlreadyExists: `create_dir_all` found
            // the directory there, then gone when it looked again.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::AlreadyExists
                ) && *attempt < MAX_RACES =>
            {
                *attempt += 1;
            }
            Err(e) => return Err(Error::io("create directory", dir.display(), e)),
        }
    }
}

/// How often a write retries after a concurrent delete pruned the directory it was writing into.
pub(super) const MAX_RACES: u32 = 16;

/// Renames `from` to `to` (replacing it), creating `to`'s parent directories, and fsyncs the
/// parent. A concurrent delete may remove an empty parent between creating and renaming, so the
/// rename is retried a few times.
pub(crate) fn publish(from: &Path, to: &Path) -> Result<()> {
    let parent = to.parent().expect("object paths have a parent");
    let mut attempt = 0;
    loop {
        create_dirs(parent, &mut attempt)?;
        match std::fs::rename(from, to) {
            Ok(()) => return sync_dir(parent),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < MAX_RACES && from.exists() => {
                attempt += 1;
            }
            Err(e) => return Err(Error::io("rename into place", to.display(), e)),
        }
    }
}

/// Creates the empty file at `path` (and its parents), or empties it and sets its modification
/// time to now. No fsync: markers only matter while the processes that wrote them run.
pub(crate) fn touch(path: &Path, key: &crate::key::Key) -> Result<crate::backend::ObjectMeta> {
    let parent = path.parent().expect("object paths have a parent");
    let mut attempt = 0;
    loop {
        match OpenOptions::new().create(true).write(true).truncate(true).open(path) {
            Ok(file) => {
                file.set_modified(std::time::SystemTime::now())
                    .map_err(|e| Error::io("set the time of", path.display(), e))?;
                let md = file.metadata().map_err(|e| Error::io("stat", path.display(), e))?;
                return Ok(super::meta_of(key, &md));
            }
            // The parent is missing, or a concurrent delete pruned it just now.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < MAX_RACES => {
                attempt += 1;
                create_dirs(parent, &mut attempt)?;
            }
            Err(e) => return Err(Error::io("touch", path.display(), e)),
        }
    }
}

/// A temp file that is removed when dropped unless it was published. This is what makes a
/// cancelled or failed write leave no debris.
#[derive(Debug)]
pub(crate) struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    /// Creates a new, empty, uniquely named file in `dir`.
    pub(crate) fn create(dir: &Path) -> Result<(Self, File)> {
        let path = dir.join(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create temp file", path.display(), e))?;
        Ok((TempFile { path, armed: true }, file))
    }

    /// The temp file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the file to `to` (see [`publish`]); it is no longer removed on drop.
    pub(crate) fn publish(mut self, to: &Path) -> Result<()> {
        publish(&self.path, to)?;
        self.armed = false;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Maps "no such file" to [`Error::NotFound`] for `key`, anything else to [`Error::Io`].
pub(crate) fn not_found_or(op: &'static str, path: &Path, key: &str) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.display().to_string();
    let key = key.to_owned();
    move |e| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
        ) {
            Error::NotFound { key }
        } else {
            Error::io(op, path, e)
        }
    }
}
