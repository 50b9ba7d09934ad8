//! Reading a docker-archive into a layout.

use super::*;

/// Imports the image `wanted` from docker-archive `file` into `layout`, naming it `name`, and
/// returns the digest of the Docker schema 2 manifest it writes.
///
/// `wanted` is a `RepoTags` entry, compared after docker normalization (`busybox:latest` finds
/// `docker.io/library/busybox:latest` and the other way round), or `@N` for the N-th image (from
/// 0, as skopeo spells it); `None` takes the only image and is a usage error listing the images
/// when there are several. Layer blobs keep the bytes of the archive, so a compressed layer stays
/// compressed and its digest is that of the file.
pub async fn import(file: &Path, wanted: Option<&str>, layout: &OciLayout, name: &str) -> Result<Digest> {
    let index = Arc::new(
        blocking({
            let file = file.to_owned();
            move || TarIndex::scan(&file)
        })
        .await?,
    );
    let raw = read_small(&index, "manifest.json").await?;
    let items: Vec<ManifestItem> = serde_json::from_slice(&raw)
        .map_err(|e| ClientError::Usage(format!("manifest.json in {} does not parse: {e}", file.display())))?;
    let item = choose(&items, wanted, file)?;

    let config_bytes = read_small(&index, &item.config).await?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| ClientError::Usage(format!("image config {} does not parse: {e}", item.config)))?;
    let diff_ids = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| parse_digest(d).map_err(|e| ClientError::Usage(format!("image config {}: {e}", item.config))))
        .collect::<Result<Vec<_>>>()?;
    if diff_ids.len() != item.layers.len() {
        return Err(ClientError::Integrity(format!(
            "{} lists {} layers but its config has {} diff_ids",
            file.display(),
            item.layers.len(),
            diff_ids.len()
        )));
    }

    // The same file may serve as several layers (docker links identical layers together).
    let mut imported: HashMap<u64, LayerBlob> = HashMap::new();
    let mut layers = Vec::with_capacity(item.layers.len());
    for (path, diff_id) in item.layers.iter().zip(&diff_ids) {
        let region = index.locate(path)?;
        let blob = match imported.get(&region.offset) {
            Some(blob) => {
                check_diff_id(&index.file, path, blob.diff_id.as_ref(), diff_id)?;
                blob.clone()
            }
            None => import_layer(&index, region, path, diff_id, layout).await?,
        };
        layers.push(blob.descriptor.clone());
        imported.insert(region.offset, blob);
    }

    check_named_digest(&item.config, &strata_storage::digest::sha256(&config_bytes))?;
    let config_size = config_bytes.len() as u64;
    let config_digest = layout.blobs().put_bytes(config_bytes).await?;
    let manifest = OutManifest {
        schema_version: 2,
        media_type: DOCKER_MANIFEST,
        config: OutDescriptor {
            media_type: DOCKER_CONFIG,
            size: config_size,
            digest: config_digest.to_string(),
        },
        layers,
    };
    let manifest = Bytes::from(serde_json::to_vec(&manifest).expect("a manifest serializes"));
    let size = manifest.len() as u64;
    let digest = layout.blobs().put_bytes(manifest).await?;
    layout.set_ref(name, &Descriptor::new(DOCKER_MANIFEST, digest.clone(), size))?;
    Ok(digest)
}

/// Picks the image `wanted` names (see [`import`]).
fn choose<'a>(items: &'a [ManifestItem], wanted: Option<&str>, file: &Path) -> Result<&'a ManifestItem> {
    let tags = |item: &'a ManifestItem| item.repo_tags.iter().flatten();
    let listing = || {
        let names = items.iter().enumerate().map(|(i, item)| match tags(item).next() {
            None => format!("@{i} (untagged)"),
            Some(_) => tags(item).cloned().collect::<Vec<_>>().join(", "),
        });
        names.collect::<Vec<_>>().join("; ")
    };
    let Some(wanted) = wanted else {
        return match items {
            [one] => Ok(one),
            [] => Err(ClientError::Usage(format!("{} holds no images", file.display()))),
            _ => Err(ClientError::Usage(format!(
                "{} holds {} images; name one of: {}",
                file.display(),
                items.len(),
                listing()
            ))),
        };
    };
    if let Some(n) = wanted.strip_prefix('@') {
        return n.parse::<usize>().ok().and_then(|n| items.get(n)).ok_or_else(|| {
            ClientError::Usage(format!(
                "{} holds {} images; {wanted} is not one",
                file.display(),
                items.len()
            ))
        });
    }
    let normalized = |s: &str| Reference::parse(s).ok().map(|r| r.to_string());
    let want = normalized(wanted);
    items
        .iter()
        .find(|item| tags(item).any(|t| t == wanted || (want.is_some() && normalized(t) == want)))
        .ok_or_else(|| ClientError::NotFound(format!("image {wanted} in {}; it holds: {}", file.display(), listing())))
}

/// Where a file's bytes sit in the archive.
#[derive(Debug, Clone, Copy)]
struct Region {
    offset: u64,
    size: u64,
}

/// What a tar entry is, as far as resolving paths goes.
#[derive(Debug)]
enum Node {
    File(Region),
    Symlink(String),
    HardLink(String),
    Unsupported(tar::EntryType),
}

/// Every entry of an archive by cleaned path; the last entry of a path wins, as on extraction.
#[derive(Debug)]
struct TarIndex {
    file: PathBuf,
    nodes: HashMap<String, Node>,
}

impl TarIndex {
    fn scan(file: &Path) -> Result<Self> {
        let context = || format!("read docker-archive {}", file.display());
        let mut reader = BufReader::new(File::open(file).map_err(|e| ClientError::io(context(), e))?);
        // `docker load` also takes a compressed archive; we need to seek in it.
        if !matches!(
            Compression::sniff(reader.fill_buf().map_err(|e| ClientError::io(context(), e))?),
            Ok(Compression::None)
        ) {
            return Err(ClientError::Usage(format!(
                "docker-archive {} is compressed; decompress it to a plain tar first",
                file.display()
            )));
        }
        let mut archive = tar::Archive::new(reader);
        let mut nodes = HashMap::new();
        for entry in archive.entries_with_seek().map_err(|e| ClientError::io(context(), e))? {
            let entry = entry.map_err(|e| ClientError::io(context(), e))?;
            // Entries whose names leave the archive root can never be named by a clean path.
            let Some(path) = entry.path().ok().and_then(|p| p.to_str().and_then(clean_path)) else {
                continue;
            };
            let link = || {
                let target = entry.link_name().ok().flatten();
                target.and_then(|t| t.to_str().map(str::to_owned)).unwrap_or_default()
            };
            let node = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => Node::File(Region {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                }),
                tar::EntryType::Symlink => Node::Symlink(link()),
                tar::EntryType::Link => Node::HardLink(link()),
                tar::EntryType::Directory => continue,
                other => Node::Unsupported(other),
            };
            nodes.insert(path, node);
        }
        Ok(TarIndex {
            file: file.to_owned(),
            nodes,
        })
    }

    /// The bytes of the file `path` (from `manifest.json`) names, following links inside the
    /// archive. A path that is absolute or climbs out with `..` is a usage error.
    fn locate(&self, path: &str) -> Result<Region> {
        let outside = || {
            ClientError::Usage(format!(
                "{path:?} in {} points outside the archive",
                self.file.display()
            ))
        };
        let mut current = clean_path(path).ok_or_else(outside)?;
        for _ in 0..MAX_LINK_HOPS {
            current = match self.nodes.get(&current) {
                Some(Node::File(region)) => return Ok(*region),
                Some(Node::Symlink(target)) => {
                    let dir = current.rsplit_once('/').map_or("", |(dir, _)| dir);
                    resolve_link(dir, target).ok_or_else(outside)?
                }
                Some(Node::HardLink(target)) => clean_path(target).ok_or_else(outside)?,
                Some(Node::Unsupported(kind)) => {
                    return Err(ClientError::Usage(format!(
                        "{current} in {} is a {kind:?} entry, not a file",
                        self.file.display()
                    )));
                }
                None => {
                    return Err(ClientError::NotFound(format!(
                        "{current} in docker-archive {}",
                        self.file.display()
                    )));
                }
            };
        }
        Err(ClientError::Usage(format!(
            "{path} in {} is a link loop",
            self.file.display()
        )))
    }

    /// A reader of exactly the bytes of `region`.
    fn open(&self, region: Region) -> Result<io::Take<File>> {
        let context = || format!("read docker-archive {}", self.file.display());
        let mut file = File::open(&self.file).map_err(|e| ClientError::io(context(), e))?;
        file.seek(SeekFrom::Start(region.offset))
            .map_err(|e| ClientError::io(context(), e))?;
        Ok(file.take(region.size))
    }
}

/// `raw` as `a/b/c`, or `None` if it is absolute or has a `..` component.
fn clean_path(raw: &str) -> Option<String> {
    if raw.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// The archive path a symlink in `dir` pointing at `target` names, if it stays inside the archive.
fn resolve_link(dir: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Whether a layer's uncompressed content (when known) is what the config says.
fn check_diff_id(file: &Path, path: &str, found: Option<&Digest>, expected: &Digest) -> Result<()> {
    match found {
        Some(found) if found != expected => Err(ClientError::Integrity(format!(
            "layer {path} in {} has content {found}, but the config says {expected}",
            file.display()
        ))),
        _ => Ok(()),
    }
}

/// A path of the form `blobs/<alg>/<hex>` promises its content's digest: hold it to that.
fn check_named_digest(path: &str, digest: &Digest) -> Result<()> {
    let Some(named) = clean_path(path).and_then(|p| p.strip_prefix("blobs/").map(|p| p.replacen('/', ":", 1))) else {
        return Ok(());
    };
    if parse_digest(&named).is_ok() && named != digest.to_string() {
        return Err(ClientError::Integrity(format!(
            "{path} in the archive has content {digest}"
        )));
    }
    Ok(())
}

/// Reads a small file (`manifest.json`, a config) from the archive.
async fn read_small(index: &Arc<TarIndex>, path: &str) -> Result<Bytes> {
    let index = index.clone();
    let path = path.to_owned();
    blocking(move || {
        let region = index.locate(&path)?;
        if region.size > MAX_JSON {
            return Err(ClientError::Usage(format!(
                "{path} in {} is {} bytes, more than the {MAX_JSON} allowed",
                index.file.display(),
                region.size
            )));
        }
        let mut bytes = Vec::with_capacity(region.size as usize);
        index
            .open(region)?
            .read_to_end(&mut bytes)
            .map_err(|e| ClientError::io(format!("read {path} from {}", index.file.display()), e))?;
        if bytes.len() as u64 != region.size {
            return Err(truncated(&index.file));
        }
        Ok(Bytes::from(bytes))
    })
    .await
}

fn truncated(file: &Path) -> ClientError {
    ClientError::Usage(format!("docker-archive {} is truncated", file.display()))
}

/// A layer stored in the layout.
#[derive(Debug, Clone)]
struct LayerBlob {
    descriptor: OutDescriptor,
    /// The digest of the uncompressed tar, when we could compute it (not for zstd).
    diff_id: Option<Digest>,
}

/// How a layer file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Sniffs the magic numbers `docker load` looks for; anything else is taken as tar.
    fn sniff(head: &[u8]) -> std::result::Result<Self, &'static str> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Ok(Compression::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Ok(Compression::Zstd)
        } else if head.starts_with(b"BZh") {
            Err("bzip2")
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Err("xz")
        } else {
            Ok(Compression::None)
        }
    }

    fn media_type(self) -> &'static str {
        match self {
            Compression::None => DOCKER_LAYER_TAR,
            Compression::Gzip => DOCKER_LAYER_GZIP,
            Compression::Zstd => OCI_LAYER_ZSTD,
        }
    }
}

/// Streams one layer file into the blob store; publishes it only once it is fully read and its
/// content matches `diff_id` and its path.
async fn import_layer(
    index: &Arc<TarIndex>,
    region: Region,
    path: &str,
    diff_id: &Digest,
    layout: &OciLayout,
) -> Result<LayerBlob> {
    let mut writer = layout.blobs().writer().await?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let reader = tokio::task::spawn_blocking({
        let index = index.clone();
        let path = path.to_owned();
        move || read_layer(&index, region, &path, &tx)
    });
    while let Some(chunk) = rx.recv().await {
        // On error the dropped receiver stops the reader, and the dropped writer aborts.
        writer.write(chunk).await?;
    }
    let read = match reader.await {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => return abort(writer, e).await,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => return abort(writer, ClientError::stopped("layer reader", e)).await,
    };
    let checked = check_diff_id(&index.file, path, read.diff_id.as_ref(), diff_id)
        .and_then(|()| check_named_digest(path, &read.digest));
    if let Err(e) = checked {
        return abort(writer, e).await;
    }
    writer.commit(&read.digest, Some(read.size)).await?;
    Ok(LayerBlob {
        descriptor: OutDescriptor {
            media_type: read.compression.media_type(),
            size: read.size,
            digest: read.digest.to_string(),
        },
        diff_id: read.diff_id,
    })
}

async fn abort<T>(writer: BlobWriter, error: ClientError) -> Result<T> {
    let _ = writer.abort().await;
    Err(error)
}

/// What reading a layer file found.
#[derive(Debug)]
struct LayerRead {
    digest: Digest,
    size: u64,
    compression: Compression,
    diff_id: Option<Digest>,
}

/// Reads a layer file, sending its bytes to `tx` and hashing them, and for tar and gzip layers
/// also the uncompressed tar.
fn read_layer(index: &TarIndex, region: Region, path: &str, tx: &mpsc::Sender<Bytes>) -> Result<LayerRead> {
    let context = || format!("read layer {path} from {}", index.file.display());
    let mut source = BufReader::with_capacity(CHUNK, index.open(region)?);
    let head = source.fill_buf().map_err(|e| ClientError::io(context(), e))?;
    let compression = Compression::sniff(head).map_err(|kind| {
        ClientError::Usage(format!(
            "layer {path} in {} is {kind}-compressed, which is not supported",
            index.file.display()
        ))
    })?;
    let mut tee = Tee {
        inner: source,
        hasher: Hasher::new(Algorithm::Sha256),
        size: 0,
        pending: BytesMut::new(),
        tx,
    };
    let mut diff_id = None;
    if compression == Compression::Gzip {
        let mut tar = HashSink(Hasher::new(Algorithm::Sha256));
        io::copy(&mut flate2::read::MultiGzDecoder::new(&mut tee), &mut tar).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                ClientError::Integrity(format!("layer {path} in {}: bad gzip data: {e}", index.file.display()))
            }
            _ => ClientError::io(context(), e),
        })?;
        diff_id = Some(tar.0.finish());
    }
    // Whatever the decoder left (trailing bytes) is part of the blob too.
    io::copy(&mut tee, &mut io::sink()).map_err(|e| ClientError::io(context(), e))?;
    tee.send().map_err(|e| ClientError::io(context(), e))?;
    if tee.size != region.size {
        return Err(truncated(&index.file));
    }
    let digest = tee.hasher.finish();
    if compression == Compression::None {
        diff_id = Some(digest.clone());
    }
    Ok(LayerRead {
        digest,
        size: tee.size,
        compression,
        diff_id,
    })
}

/// A reader that hashes what passes through and sends it on in [`CHUNK`]s.
struct Tee<'a, R> {
    inner: R,
    hasher: Hasher,
    size: u64,
    pending: BytesMut,
    tx: &'a mpsc::Sender<Bytes>,
}

impl<R> Tee<'_, R> {
    fn send(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunk = self.pending.split().freeze();
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the blob store stopped taking the layer"))
    }
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }
}

/// A writer that only hashes.
struct HashSink(Hasher);

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
