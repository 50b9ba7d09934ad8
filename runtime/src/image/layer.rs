//! Layer blobs made on this machine, written into the local store through the blob store's
//! [`BlobWriter`](strata_storage::BlobWriter) (verified, atomic, nothing left on failure): a tar
//! produced on the fly (a directory, a container's scratch layer) gzip-compressed, or a layer file
//! kept byte for byte. The diff_id (SHA-256 of the tar) and the digest (of the blob) are computed
//! on the way, in one pass.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use strata_storage::Digest;
use strata_storage::digest::{Algorithm, Hasher};
use strata_storage::oci::layout::OciLayout;
use tokio::sync::mpsc;

use super::{ImageError, Result};
use crate::store::StoreError;
use crate::unpack::{Compression, decompress};

/// Bytes handed to the blob writer at a time.
const CHUNK: usize = 1 << 20;

/// A layer blob now in the local store.
#[derive(Debug, Clone)]
pub struct NewLayer {
    /// Digest of the blob as stored.
    pub digest: Digest,
    /// Digest of the uncompressed tar (what the image config lists).
    pub diff_id: Digest,
    /// Size of the blob.
    pub size: u64,
    /// How the blob is compressed.
    pub compression: Compression,
}

/// Writes the tar that `produce` writes, gzip-compressed, as a blob of `store`.
pub async fn write_layer<F>(store: &OciLayout, produce: F) -> Result<NewLayer>
where
    F: FnOnce(&mut dyn Write) -> std::result::Result<(), StoreError> + Send + 'static,
{
    stream_into(store, move |sink| {
        let compressed = Hashing::new(sink);
        let gz = flate2::write::GzEncoder::new(compressed, flate2::Compression::fast());
        let mut raw = Hashing::new(gz);
        produce(&mut raw)?;
        let (gz, diff_id, _) = raw.finish();
        let compressed = gz.finish().map_err(write_error)?;
        let (mut sink, digest, size) = compressed.finish();
        sink.flush().map_err(write_error)?;
        Ok(NewLayer {
            digest,
            diff_id,
            size,
            compression: Compression::Gzip,
        })
    })
    .await
}

/// Stores the layer file at `path` (a plain, gzip or zstd tar) as it is; its diff_id comes from
/// decompressing it on the way.
pub async fn store_layer_file(store: &OciLayout, path: &Path) -> Result<NewLayer> {
    let path = path.to_owned();
    stream_into(store, move |sink| {
        let open_error = |e| StoreError::Io {
            op: "read",
            path: path.clone(),
            source: e,
        };
        let file = std::fs::File::open(&path).map_err(open_error)?;
        let mut input = BufReader::with_capacity(CHUNK, file);
        let compression = Compression::sniff(input.fill_buf().map_err(open_error)?);
        let mut tee = Tee {
            input,
            copy: Hashing::new(sink),
        };
        let mut tar = Hashing::new(std::io::sink());
        {
            let mut decoder = decompress(&mut tee, compression).map_err(|source| StoreError::Unpack {
                digest: path.display().to_string(),
                source: source.into(),
            })?;
            std::io::copy(&mut decoder, &mut tar).map_err(|e| {
                StoreError::Invalid(format!(
                    "{} is not a {compression:?}-compressed tar: {e}",
                    path.display()
                ))
            })?;
        }
        // Whatever follows the compressed stream belongs to the blob too.
        std::io::copy(&mut tee, &mut std::io::sink()).map_err(open_error)?;
        let (_, diff_id, _) = tar.finish();
        let (mut sink, digest, size) = tee.copy.finish();
        sink.flush().map_err(write_error)?;
        Ok(NewLayer {
            digest,
            diff_id,
            size,
            compression,
        })
    })
    .await
}

/// Runs `work` on a blocking thread with a writer whose bytes stream into a new blob of
/// `store`, published under the digest `work` reports.
async fn stream_into<F>(store: &OciLayout, work: F) -> Result<NewLayer>
where
    F: FnOnce(ChannelWriter) -> std::result::Result<NewLayer, StoreError> + Send + 'static,
{
    let mut writer = store.blobs().writer().await?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    let worker = tokio::task::spawn_blocking(move || work(ChannelWriter::new(tx)));
    let mut failed = None;
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = writer.write(chunk).await {
            failed = Some(e);
            break;
        }
    }
    // The worker sees a closed channel if the writer failed, and stops.
    drop(rx);
    let produced = worker
        .await
        .map_err(|e| ImageError::Task(format!("layer writer: {e}")))?;
    let layer = match (failed, produced) {
        (Some(e), _) => {
            let _ = writer.abort().await;
            return Err(e.into());
        }
        (None, Err(e)) => {
            let _ = writer.abort().await;
            return Err(e.into());
        }
        (None, Ok(layer)) => layer,
    };
    writer.commit(&layer.digest, Some(layer.size)).await?;
    Ok(layer)
}

fn write_error(e: std::io::Error) -> StoreError {
    StoreError::Io {
        op: "write",
        path: PathBuf::from("the layer blob"),
        source: e,
    }
}

/// A writer that sends what it is given, in [`CHUNK`]s, to an async receiver.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buffer: BytesMut,
}

impl ChannelWriter {
    fn new(tx: mpsc::Sender<Bytes>) -> Self {
        ChannelWriter {
            tx,
            buffer: BytesMut::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = self.buffer.split().freeze();
        self.buffer.reserve(CHUNK);
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the blob writer stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Reads `input` and copies every byte it reads into `copy`.
struct Tee<R, W> {
    input: R,
    copy: Hashing<W>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.input.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// A writer that hashes (SHA-256) and counts what passes through.
struct Hashing<W> {
    inner: W,
    hasher: Hasher,
    count: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Hasher::new(Algorithm::Sha256),
            count: 0,
        }
    }

    /// The inner writer, the digest and the byte count.
    fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.count)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
