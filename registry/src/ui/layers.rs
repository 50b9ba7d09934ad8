//! The file lists of layer blobs: built by streaming the blob from storage once through the
//! shared layer reader (`strata_storage::layer`, bounded against hostile tars), kept beside the
//! blob (`_index/layers/<digest>`, zstd-compressed JSON, deleted with the blob by garbage
//! collection) and in memory, so a second visit reads no layer. One build per layer at a time in
//! this process; two replicas may both build one, and write the same bytes.
//!
//! Memory stays flat whatever the layer's size: the blob streams through a small channel into
//! the reader on a blocking thread, content is skipped, and only the entries are kept (bounded
//! by the reader's entry limit). A file's bytes are read the same way: the layer streams again
//! up to the file's offset, then the file's bytes stream to the client.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use strata_storage::layer::{Compression, EntryHeader, Kind, Sink, TarError, TarLimits, read_layer};
use strata_storage::{BackendExt, BlobStore, ByteStream, Digest, layout};

use crate::error::{ApiError, ApiResult, Code};

/// Entries one layer's list may hold.
const MAX_ENTRIES: u64 = 1_000_000;
/// Entries all lists in memory may hold together (older lists are dropped past it).
const CACHED_ENTRIES: usize = 2_000_000;
/// The largest stored list read back.
const MAX_STORED_BYTES: u64 = 256 << 20;
/// Chunks in flight between the storage stream and the blocking reader.
const CHANNEL_CHUNKS: usize = 4;

/// What an entry is, in a layer's file list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EntryKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Device,
    Fifo,
    /// `.wh.NAME`: NAME of lower layers is deleted.
    Whiteout,
    /// `.wh..wh..opq`: the directory hides everything lower layers put in it.
    Opaque,
}

/// One entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The path, `/`-separated, without a leading `/` or `./` (the whiteout's target for
    /// whiteouts; the directory for opaque markers).
    #[serde(rename = "p")]
    pub(crate) path: String,
    #[serde(rename = "k")]
    pub(crate) kind: EntryKind,
    #[serde(rename = "s", default)]
    pub(crate) size: u64,
    #[serde(rename = "m", default)]
    pub(crate) mode: u32,
    #[serde(rename = "u", default)]
    pub(crate) uid: u32,
    #[serde(rename = "g", default)]
    pub(crate) gid: u32,
    #[serde(rename = "t", default)]
    pub(crate) mtime: i64,
    /// Link target (symbolic and hard links).
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub(crate) link: Option<String>,
    /// Where the content starts in the uncompressed tar.
    #[serde(rename = "o", default)]
    pub(crate) offset: u64,
}

/// A layer's file list, sorted by path.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct LayerIndex {
    pub(crate) entries: Vec<Entry>,
    /// Entries left out: names with `..`, or not valid paths.
    #[serde(default)]
    pub(crate) refused: u64,
}

impl LayerIndex {
    /// The entry at `path` (the last one the layer wrote there).
    pub(crate) fn get(&self, path: &str) -> Option<&Entry> {
        let at = self.entries.partition_point(|e| e.path.as_str() < path);
        self.entries[at..].iter().take_while(|e| e.path == path).last()
    }
}

/// A layer path made safe to show and to key by: no leading `/` or `./`, no `.` or empty
/// components; `None` for a `..` component or nothing left.
pub(crate) fn clean(raw: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Collects entries as the reader hands them over.
#[derive(Default)]
struct Indexer {
    index: LayerIndex,
}

impl Sink for Indexer {
    type Error = TarError;

    fn apply(&mut self, h: &EntryHeader, _content: &mut dyn Read) -> Result<(), TarError> {
        let name = String::from_utf8_lossy(&h.name);
        let Some(path) = clean(&name) else {
            self.index.refused += 1;
            return Ok(());
        };
        let (path, kind) = match path.rsplit_once('/').map_or(("", path.as_str()), |(d, b)| (d, b)) {
            (dir, ".wh..wh..opq") => (dir.to_owned(), EntryKind::Opaque),
            (dir, base) if base.starts_with(".wh.") => {
                let target = &base[4..];
                if target.is_empty() {
                    self.index.refused += 1;
                    return Ok(());
                }
                (
                    if dir.is_empty() {
                        target.to_owned()
                    } else {
                        format!("{dir}/{target}")
                    },
                    EntryKind::Whiteout,
                )
            }
            _ => (
                path.clone(),
                match h.kind {
                    Kind::Regular => EntryKind::File,
                    Kind::Directory => EntryKind::Dir,
                    Kind::Symlink => EntryKind::Symlink,
                    Kind::HardLink => EntryKind::Hardlink,
                    Kind::CharDevice | Kind::BlockDevice => EntryKind::Device,
                    Kind::Fifo => EntryKind::Fifo,
                },
            ),
        };
        let link = match h.kind {
            Kind::Symlink => Some(String::from_utf8_lossy(&h.link).into_owned()),
            Kind::HardLink => clean(&String::from_utf8_lossy(&h.link)),
            _ => None,
        };
        self.index.entries.push(Entry {
            path,
            kind,
            size: if h.kind == Kind::Regular { h.size } else { 0 },
            mode: h.mode,
            uid: h.uid,
            gid: h.gid,
            mtime: h.mtime.secs,
            link,
            offset: h.offset,
        });
        Ok(())
    }
}

/// A blocking reader over chunks an async task sends.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// A blocking reader of blob `digest`, fed from storage by a task.
async fn blob_reader(blobs: &BlobStore, digest: &Digest) -> ApiResult<ChannelReader> {
    let mut body = blobs.open(digest, None).await?.body;
    let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_CHUNKS);
    tokio::spawn(async move {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(std::io::Error::other);
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    Ok(ChannelReader {
        rx,
        current: Bytes::new(),
    })
}

fn limits() -> TarLimits {
    TarLimits {
        max_entries: MAX_ENTRIES,
        ..TarLimits::default()
    }
}

/// The uncompressed tar of a blob reader.
fn tar_stream(reader: ChannelReader) -> Result<Box<dyn Read>, TarError> {
    let mut buffered = std::io::BufReader::with_capacity(64 * 1024, reader);
    let first = std::io::BufRead::fill_buf(&mut buffered).map_err(|e| TarError::Corrupt {
        entry: None,
        reason: e.to_string(),
    })?;
    let compression = Compression::sniff(first);
    strata_storage::layer::decompress(buffered, compression)
}

fn unreadable(digest: &Digest, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::Unsupported, format!("layer {digest} cannot be listed: {e}"))
        .with_status(http::StatusCode::UNPROCESSABLE_ENTITY)
}

/// File lists of layers: in memory, in storage, or built.
#[derive(Default)]
pub(crate) struct Layers {
    cached: Mutex<(HashMap<Digest, Arc<LayerIndex>>, usize)>,
    /// One build per layer at a time.
    building: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

impl Layers {
    /// The file list of layer blob `digest`.
    pub(crate) async fn index(&self, blobs: &BlobStore, digest: &Digest) -> ApiResult<Arc<LayerIndex>> {
        if let Some(index) = self.cached.lock().expect("layers").0.get(digest) {
            return Ok(index.clone());
        }
        let gate = self
            .building
            .lock()
            .expect("layers")
            .entry(digest.clone())
            .or_default()
            .clone();
        let building = gate.lock().await;
        let result = self.load_or_build(blobs, digest).await;
        drop(building);
        self.building.lock().expect("layers").remove(digest);
        result
    }

    async fn load_or_build(&self, blobs: &BlobStore, digest: &Digest) -> ApiResult<Arc<LayerIndex>> {
        if let Some(index) = self.cached.lock().expect("layers").0.get(digest) {
            return Ok(index.clone());
        }
        let index = match load(blobs, digest).await? {
            Some(index) => index,
            None => {
                let index = build(blobs, digest).await?;
                store(blobs, digest, &index).await;
                index
            }
        };
        let index = Arc::new(index);
        let mut cached = self.cached.lock().expect("layers");
        if cached.1 + index.entries.len() > CACHED_ENTRIES {
            cached.0.clear();
            cached.1 = 0;
        }
        cached.1 += index.entries.len();
        cached.0.insert(digest.clone(), index.clone());
        Ok(index)
    }
}

/// Builds the list by streaming the blob through the layer reader.
async fn build(blobs: &BlobStore, digest: &Digest) -> ApiResult<LayerIndex> {
    let reader = blob_reader(blobs, digest).await?;
    let started = std::time::Instant::now();
    let built = tokio::task::spawn_blocking(move || {
        let stream = tar_stream(reader)?;
        let mut indexer = Indexer::default();
        read_layer(stream, Compression::None, &limits(), &mut indexer)?;
        Ok::<_, TarError>(indexer.index)
    })
    .await
    .map_err(ApiError::internal)?;
    let mut index = built.map_err(|e| unreadable(digest, e))?;
    // Sorted by path; a path written twice keeps its order (the last one wins).
    index.entries.sort_by(|a, b| a.path.cmp(&b.path));
    tracing::info!(%digest, entries = index.entries.len(), elapsed = ?started.elapsed(), "indexed a layer for the web UI");
    Ok(index)
}

async fn load(blobs: &BlobStore, digest: &Digest) -> ApiResult<Option<LayerIndex>> {
    let key = layout::layer_index(digest)?;
    let got = match blobs.backend().get(&key, None).await {
        Ok(got) => got,
        Err(strata_storage::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if got.meta.size > MAX_STORED_BYTES {
        return Ok(None);
    }
    let bytes = strata_storage::stream::collect(got.body).await?;
    let decoded = zstd::decode_all(&bytes[..])
        .ok()
        .and_then(|json| serde_json::from_slice::<LayerIndex>(&json).ok());
    // A list that does not read back is rebuilt.
    Ok(decoded)
}

/// Keeps the list beside the blob (best effort: it can always be rebuilt).
async fn store(blobs: &BlobStore, digest: &Digest, index: &LayerIndex) {
    let Ok(key) = layout::layer_index(digest) else { return };
    let json = serde_json::to_vec(index).expect("index serializes");
    let Ok(compressed) = zstd::encode_all(&json[..], 3) else {
        return;
    };
    if let Err(e) = blobs.backend().put_bytes(&key, Bytes::from(compressed)).await {
        tracing::warn!(%digest, error = %e, "could not store a layer's file list");
    }
}

/// The bytes of the file at `entry` in layer `digest`: the layer streams again up to the
/// file, then the file's bytes stream out.
pub(crate) async fn file(blobs: &BlobStore, digest: &Digest, entry: &Entry) -> ApiResult<ByteStream> {
    let reader = blob_reader(blobs, digest).await?;
    let (offset, size) = (entry.offset, entry.size);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<strata_storage::Result<Bytes>>(CHANNEL_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let fail = |e: String| strata_storage::Error::Input(e.into());
        let result = (|| -> Result<(), strata_storage::Error> {
            let mut stream = tar_stream(reader).map_err(|e| fail(e.to_string()))?;
            let skipped = std::io::copy(&mut (&mut stream).take(offset), &mut std::io::sink())
                .map_err(|e| fail(e.to_string()))?;
            if skipped != offset {
                return Err(fail("the layer ends before the file".into()));
            }
            let mut left = size;
            let mut buf = vec![0u8; 64 * 1024];
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = stream.read(&mut buf[..want]).map_err(|e| fail(e.to_string()))?;
                if n == 0 {
                    return Err(fail("the layer ends inside the file".into()));
                }
                left -= n as u64;
                if tx.blocking_send(Ok(Bytes::copy_from_slice(&buf[..n]))).is_err() {
                    return Ok(());
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    Ok(Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_and_traversal_is_refused() {
        assert_eq!(clean("./usr//bin/").as_deref(), Some("usr/bin"));
        assert_eq!(clean("/etc/passwd").as_deref(), Some("etc/passwd"));
        assert_eq!(clean("a/../../etc"), None);
        assert_eq!(clean("./"), None);
    }
}
