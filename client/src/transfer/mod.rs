//! The transfer engine: copies an image (or a whole index) from a source to a destination, each a
//! registry repository or an OCI image layout. Blobs move concurrently, children before indexes,
//! manifests last, tag at the very end.
//!
//! - To a registry: HEAD first; a blob already in the same registry under another repository is
//!   mounted; otherwise one streamed monolithic `PUT`, falling back to chunked `PATCH`es when the
//!   registry refuses a whole blob (413). Foreign layers are skipped unless asked for.
//! - To a layout: from a registry, resumable downloads ([`download`]); from a layout, a verified
//!   local copy. Source bytes are always verified against their digest on the way.

mod download;
mod origins;
mod upload;

pub use upload::Journal;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde_json::Value;
use strata_storage::{ByteStream, Digest, VerifyingStream};

use crate::error::{ClientError, Result};
use crate::progress::{Progress, counted};
use crate::reference::Reference;
use crate::registry::{RegistryClient, UploadLocation};
use strata_storage::oci::PlatformSpec;
use strata_storage::oci::layout::{Lease, OciLayout};
use strata_storage::oci::media::is_index;
use strata_storage::oci::{Descriptor, ImageIndex, ImageManifest};

/// Largest manifest or config we read into memory.
const MAX_SMALL: u64 = 8 * 1024 * 1024;
/// Default size of upload chunks: blobs larger than this go up in resumable chunks.
pub const DEFAULT_CHUNK: u64 = 64 * 1024 * 1024;
/// Chunk size after a registry refused a whole blob (413), unless it asks for larger.
const FALLBACK_CHUNK: u64 = 8 * 1024 * 1024;

/// One end of a transfer.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A repository on a registry, at a tag or digest.
    Registry {
        /// The client for the registry host.
        client: Arc<RegistryClient>,
        /// The reference (registry, repository, tag/digest).
        reference: Reference,
    },
    /// An OCI image layout, at a named entry of its `index.json` (or its only one).
    Layout {
        /// The layout.
        layout: OciLayout,
        /// The `org.opencontainers.image.ref.name` to read or write.
        name: Option<String>,
    },
}

/// Which images of an index to transfer.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every platform (the index is copied as it is).
    All,
    /// The best match for each platform; one platform transfers just that image.
    Platforms(Vec<PlatformSpec>),
}

/// Transfer settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which platforms.
    pub selection: Selection,
    /// Windows host build to select for.
    pub os_version: Option<String>,
    /// Blobs in flight at once.
    pub jobs: usize,
    /// Push foreign / non-distributable layers too.
    pub include_foreign: bool,
    /// Blobs larger than this are pushed in chunks of this size, resumably; smaller ones in one
    /// streamed `PUT` (falling back to chunks on 413).
    pub chunk_size: u64,
    /// Where unfinished pushes are recorded, so that a later run resumes them.
    pub journal: Option<Journal>,
    /// Where progress goes.
    pub progress: Option<Arc<dyn Progress>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            selection: Selection::Platforms(vec![PlatformSpec::host()]),
            os_version: None,
            jobs: 4,
            include_foreign: false,
            chunk_size: DEFAULT_CHUNK,
            journal: None,
            progress: None,
        }
    }
}

impl Options {
    /// Which image of an index a local operation (unpack, run) takes: the first platform asked
    /// for, else the host's.
    #[cfg(feature = "runtime")]
    pub fn wanted(&self) -> strata_runtime::image::Wanted {
        let platform = match &self.selection {
            Selection::Platforms(p) if !p.is_empty() => p[0].clone(),
            _ => PlatformSpec::host(),
        };
        strata_runtime::image::Wanted {
            platform,
            os_version: self.os_version.clone(),
        }
    }
}

/// What a transfer did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    /// Digest of the manifest (or index) the destination now names.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Blobs copied.
    pub blobs_copied: u64,
    /// Blobs the destination already had.
    pub blobs_existing: u64,
    /// Blobs mounted from another repository.
    pub blobs_mounted: u64,
    /// Foreign layers left out.
    pub blobs_skipped: u64,
    /// Bytes moved.
    pub bytes: u64,
}

#[derive(Default)]
struct Counters {
    copied: AtomicU64,
    existing: AtomicU64,
    mounted: AtomicU64,
    skipped: AtomicU64,
    bytes: AtomicU64,
}

/// A manifest in hand: bytes, media type, digest.
#[derive(Debug, Clone)]
struct Manifest {
    bytes: Bytes,
    media_type: String,
    digest: Digest,
}

fn descriptor_of(m: &Manifest) -> Descriptor {
    Descriptor::new(&m.media_type, m.digest.clone(), m.bytes.len() as u64)
}

struct Engine<'a> {
    src: &'a Endpoint,
    dst: &'a Endpoint,
    options: &'a Options,
    counters: Counters,
    /// For a layout source: which repositories of the destination registry hold which blobs.
    origins: tokio::sync::OnceCell<origins::Origins>,
    /// For a layout destination: what is copied into it is not pruned before it is named.
    lease: Option<Lease>,
}

/// Copies the image `src` names to `dst`.
pub async fn copy(src: &Endpoint, dst: &Endpoint, options: &Options) -> Result<Report> {
    let lease = match dst {
        Endpoint::Layout { layout, .. } => Some(layout.lease().await?),
        Endpoint::Registry { .. } => None,
    };
    let engine = Engine {
        src,
        dst,
        options,
        counters: Counters::default(),
        origins: tokio::sync::OnceCell::new(),
        lease,
    };
    let top = engine.top_manifest().await?;
    let written = if is_index(&top.media_type, &top.bytes) {
        engine.copy_index(top).await?
    } else {
        engine.copy_image(&top).await?;
        top
    };
    engine.name(&written).await?;
    let c = &engine.counters;
    Ok(Report {
        digest: written.digest.to_string(),
        media_type: written.media_type,
        blobs_copied: c.copied.load(Ordering::Relaxed),
        blobs_existing: c.existing.load(Ordering::Relaxed),
        blobs_mounted: c.mounted.load(Ordering::Relaxed),
        blobs_skipped: c.skipped.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
    })
}

/// Reads the manifest (or index) an endpoint names, without copying anything.
pub async fn resolve(src: &Endpoint) -> Result<(Bytes, String, Digest)> {
    let engine = Engine {
        src,
        dst: src,
        options: &Options::default(),
        counters: Counters::default(),
        origins: tokio::sync::OnceCell::new(),
        lease: None,
    };
    let m = engine.top_manifest().await?;
    Ok((m.bytes, m.media_type, m.digest))
}

/// Reads a blob an endpoint holds into memory (a config).
pub async fn read_small_blob(src: &Endpoint, digest: &Digest) -> Result<Bytes> {
    match src {
        Endpoint::Registry { client, reference } => {
            let download = client.get_blob(&reference.repository, digest, 0).await?;
            let verified = VerifyingStream::new(download.body, digest.clone(), None)?;
            Ok(strata_storage::stream::collect_limited(Box::pin(verified), MAX_SMALL).await?)
        }
        Endpoint::Layout { layout, .. } => Ok(layout.read_blob(digest, MAX_SMALL).await?),
    }
}

impl Engine<'_> {
    fn begin(&self, digest: &Digest, size: u64) {
        if let Some(p) = &self.options.progress {
            p.begin(digest, size);
        }
    }

    fn say(&self, what: &str, digest: &Digest) {
        tracing::debug!(%digest, "{what}");
        if let Some(p) = &self.options.progress {
            p.end(digest, what);
        }
    }

    async fn top_manifest(&self) -> Result<Manifest> {
        match self.src {
            Endpoint::Registry { client, reference } => {
                let m = client
                    .manifest(&reference.repository, &reference.manifest_reference())
                    .await?;
                Ok(Manifest {
                    bytes: m.bytes,
                    media_type: m.media_type,
                    digest: m.digest,
                })
            }
            Endpoint::Layout { layout, name } => {
                let (descriptor, bytes) = match name {
                    Some(n) => layout.named(n, MAX_SMALL).await?,
                    None => {
                        let refs = layout.refs()?;
                        let [(_, only)] = refs.as_slice() else {
                            return Err(ClientError::Usage(format!(
                                "{} holds {} images; name one (oci:DIR:NAME)",
                                layout.root().display(),
                                refs.len()
                            )));
                        };
                        (only.clone(), layout.read_blob(&only.digest, MAX_SMALL).await?)
                    }
                };
                let digest = descriptor.digest;
                let media_type = Some(descriptor.media_type)
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| strata_storage::oci::media::OCI_MANIFEST.to_owned());
                Ok(Manifest {
                    bytes,
                    media_type,
                    digest,
                })
            }
        }
    }

    async fn child_manifest(&self, d: &Descriptor) -> Result<Manifest> {
        let digest = d.digest.clone();
        let media_type = d.media_type.clone();
        let bytes = match self.src {
            Endpoint::Registry { client, reference } => {
                client.manifest(&reference.repository, digest.as_ref()).await?.bytes
            }
            Endpoint::Layout { layout, .. } => layout.read_blob(&digest, MAX_SMALL).await?,
        };
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    async fn copy_index(&self, top: Manifest) -> Result<Manifest> {
        let index = ImageIndex::parse(&top.bytes, &top.digest)?;
        // Positions of the chosen entries in `manifests`.
        let chosen: Vec<usize> = match &self.options.selection {
            Selection::All => (0..index.manifests.len()).collect(),
            Selection::Platforms(wanted) => {
                let mut chosen = Vec::new();
                for want in wanted {
                    let d = strata_storage::oci::select(&index.manifests, want, self.options.os_version.as_deref())?;
                    let at = index
                        .manifests
                        .iter()
                        .position(|e| std::ptr::eq(e, d))
                        .expect("selected from the slice");
                    if !chosen.contains(&at) {
                        chosen.push(at);
                    }
                }
                chosen
            }
        };
        for d in chosen.iter().map(|&i| &index.manifests[i]) {
            let child = self.child_manifest(d).await?;
            if is_index(&child.media_type, &child.bytes) {
                Box::pin(self.copy_index(child.clone())).await?;
            } else {
                self.copy_image(&child).await?;
            }
            self.put_manifest(&child, None).await?;
        }
        match (&self.options.selection, chosen.as_slice()) {
            (Selection::All, _) => Ok(top),
            // One platform: the destination names that image, as `docker pull --platform` does.
            (Selection::Platforms(_), [one]) => self.child_manifest(&index.manifests[*one]).await,
            // Several: a new index of just those entries, each kept exactly as it was.
            (Selection::Platforms(_), _) => {
                let mut value: Value = serde_json::from_slice(&top.bytes).expect("parsed above");
                let entries = value["manifests"].as_array().cloned().unwrap_or_default();
                value["manifests"] = Value::Array(chosen.iter().filter_map(|&i| entries.get(i).cloned()).collect());
                let bytes = Bytes::from(serde_json::to_vec(&value).expect("json"));
                let digest = strata_storage::digest::sha256(&bytes);
                Ok(Manifest {
                    bytes,
                    media_type: top.media_type,
                    digest,
                })
            }
        }
    }

    async fn copy_image(&self, m: &Manifest) -> Result<()> {
        let manifest = ImageManifest::parse(&m.bytes, &m.digest)?;
        let blobs: Vec<Descriptor> = std::iter::once(manifest.config).chain(manifest.layers).collect();
        futures::stream::iter(blobs.iter().map(|d| self.copy_blob(d)))
            .buffer_unordered(self.options.jobs.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Streams blob `d` from the source, counted as progress. Into a layout it is verified
    /// against its digest and size here; into a registry only its size is checked here, because
    /// the registry verifies the digest before it accepts the blob (a mismatch comes back as
    /// `DIGEST_INVALID`, an integrity error) and hashing twice would cost a core on every push.
    async fn source_blob(&self, d: &Descriptor, digest: &Digest) -> Result<ByteStream> {
        let body = match self.src {
            Endpoint::Registry { client, reference } => client.get_blob(&reference.repository, digest, 0).await?.body,
            Endpoint::Layout { layout, .. } => layout.open_blob(digest).await?.1,
        };
        let checked: ByteStream = match self.dst {
            Endpoint::Layout { .. } => Box::pin(VerifyingStream::new(body, digest.clone(), Some(d.size))?),
            Endpoint::Registry { .. } => exact_size(body, d.size),
        };
        Ok(counted(checked, self.options.progress.clone(), digest))
    }

    /// Streams blob `d` from byte `offset` (to resume an upload). From 0 it is verified; from
    /// further on the destination's digest check at the end is what protects it.
    async fn source_blob_from(&self, d: &Descriptor, digest: &Digest, offset: u64) -> Result<ByteStream> {
        if offset == 0 {
            return self.source_blob(d, digest).await;
        }
        let body = match self.src {
            Endpoint::Registry { client, reference } => {
                let download = client.get_blob(&reference.repository, digest, offset).await?;
                if download.start > offset {
                    return Err(ClientError::Protocol(format!(
                        "the registry answered from byte {}",
                        download.start
                    )));
                }
                skip_bytes(download.body, offset - download.start)
            }
            Endpoint::Layout { layout, .. } => {
                let range = strata_storage::ByteRange::From { first: offset };
                layout.blobs().open(digest, Some(range)).await?.body
            }
        };
        Ok(counted(body, self.options.progress.clone(), digest))
    }

    async fn copy_blob(&self, d: &Descriptor) -> Result<()> {
        let digest = d.digest.clone();
        let size = d.size;
        let foreign = d.is_foreign();
        match self.dst {
            Endpoint::Layout { layout, .. } => {
                if layout.has_blob(&digest).await? {
                    self.counters.existing.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                let fetched = match self.src {
                    Endpoint::Registry { client, reference } => {
                        // Another pull may be fetching the same blob: wait for it, then use it.
                        let lease = self.lease.as_ref().expect("a layout destination is leased");
                        let _fetching = layout.lock_blob(lease, &digest).await?;
                        if layout.has_blob(&digest).await? {
                            self.counters.existing.fetch_add(1, Ordering::Relaxed);
                            return Ok(());
                        }
                        self.begin(&digest, size);
                        let progress = self.options.progress.clone();
                        match download::download(client, &reference.repository, &digest, size, layout, progress).await {
                            Ok(n) => n,
                            Err(ClientError::NotFound(_)) if foreign => self.fetch_foreign(d, &digest, layout).await?,
                            Err(e) => return Err(e),
                        }
                    }
                    Endpoint::Layout { .. } => {
                        self.begin(&digest, size);
                        let stream = self.source_blob(d, &digest).await?;
                        layout.blobs().put(&digest, Some(size), stream).await?;
                        size
                    }
                };
                self.counters.bytes.fetch_add(fetched, Ordering::Relaxed);
                self.counters.copied.fetch_add(1, Ordering::Relaxed);
                self.say("copied", &digest);
            }
            Endpoint::Registry { client, reference } => {
                let repo = &reference.repository;
                if client.blob_size(repo, &digest).await?.is_some() {
                    self.counters.existing.fetch_add(1, Ordering::Relaxed);
                    self.say("exists", &digest);
                    return Ok(());
                }
                if foreign && !self.options.include_foreign {
                    self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                    self.say("skipped foreign layer", &digest);
                    return Ok(());
                }
                // Within one registry, a mount moves nothing.
                let mut offered = None;
                for from in self.mount_sources(client.host(), repo, &digest).await? {
                    match client.mount(repo, &digest, &from).await? {
                        None => {
                            self.counters.mounted.fetch_add(1, Ordering::Relaxed);
                            self.say("mounted", &digest);
                            return Ok(());
                        }
                        Some(session) => offered = Some(session),
                    }
                }
                self.begin(&digest, size);
                let chunked = |chunk: u64, session: Option<UploadLocation>| upload::ChunkedUpload {
                    client,
                    repo,
                    digest: &digest,
                    size,
                    chunk,
                    journal: self.options.journal.as_ref(),
                    session,
                };
                let open = |offset| self.source_blob_from(d, &digest, offset);
                if size > self.options.chunk_size {
                    chunked(self.options.chunk_size, offered).run(open).await?;
                } else {
                    let session = match offered {
                        Some(session) => session,
                        None => client.start_upload(repo).await?,
                    };
                    let stream = self.source_blob(d, &digest).await?;
                    match client
                        .put_blob(repo, &session, &digest, size, stream)
                        .await
                        .map_err(ClientError::from)
                    {
                        Ok(()) => {}
                        Err(ClientError::Registry { status: 413, .. }) => {
                            tracing::info!(%digest, "the registry refused the blob whole (413); sending chunks");
                            chunked(FALLBACK_CHUNK, None).run(open).await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                self.counters.bytes.fetch_add(size, Ordering::Relaxed);
                self.counters.copied.fetch_add(1, Ordering::Relaxed);
                self.say("pushed", &digest);
            }
        }
        Ok(())
    }

    /// The repository of the destination's registry that may already hold the source's blobs:
    /// the source repository itself, or the one a local-store image was pulled from.
    fn mount_source(
        &self,
        host: &str,
        repo: &strata_storage::RepositoryName,
    ) -> Option<strata_storage::RepositoryName> {
        let origin = match self.src {
            Endpoint::Registry { client, reference } => (client.host() == host).then(|| reference.clone())?,
            Endpoint::Layout { name: Some(name), .. } => Reference::parse(name).ok().filter(|r| r.registry == host)?,
            Endpoint::Layout { name: None, .. } => return None,
        };
        (origin.repository != *repo).then_some(origin.repository)
    }

    /// Where to try mounting blob `digest` from, best first (at most three: each refused mount
    /// opens an upload session): [`Engine::mount_source`], then the repositories other images
    /// of a layout source came from that use the blob.
    async fn mount_sources(
        &self,
        host: &str,
        repo: &strata_storage::RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<strata_storage::RepositoryName>> {
        let mut sources: Vec<_> = self.mount_source(host, repo).into_iter().collect();
        if let Endpoint::Layout { layout, .. } = self.src {
            let origins = self
                .origins
                .get_or_try_init(|| origins::origins(layout, host, repo))
                .await?;
            for r in origins.get(digest.as_ref()).into_iter().flatten() {
                if !sources.contains(r) {
                    sources.push(r.clone());
                }
            }
        }
        sources.truncate(3);
        Ok(sources)
    }

    /// Fetches a foreign layer from its URLs (https only, without credentials).
    async fn fetch_foreign(&self, d: &Descriptor, digest: &Digest, layout: &OciLayout) -> Result<u64> {
        // https all the way, redirects included.
        let https: strata_distribution::foreign::UrlPolicy = Arc::new(|u: &str| u.starts_with("https://"));
        let opened = strata_distribution::foreign::open(&d.urls, &https).await?;
        let verified = VerifyingStream::new(opened.body, digest.clone(), Some(d.size))?;
        layout.blobs().put(digest, Some(d.size), Box::pin(verified)).await?;
        Ok(d.size)
    }

    async fn put_manifest(&self, m: &Manifest, tag: Option<&str>) -> Result<()> {
        match self.dst {
            Endpoint::Layout { layout, .. } => {
                if !layout.has_blob(&m.digest).await? {
                    layout.put_blob_bytes(&m.digest, m.bytes.clone()).await?;
                }
            }
            Endpoint::Registry { client, reference } => {
                let reference_str = tag.map(String::from).unwrap_or_else(|| m.digest.to_string());
                client
                    .put_manifest(&reference.repository, &reference_str, &m.media_type, m.bytes.clone())
                    .await?;
            }
        }
        Ok(())
    }

    /// Writes the top manifest and names it at the destination.
    async fn name(&self, m: &Manifest) -> Result<()> {
        match self.dst {
            Endpoint::Layout { layout, name } => {
                self.put_manifest(m, None).await?;
                if let Some(name) = name {
                    layout.set_ref(name, &descriptor_of(m))?;
                }
            }
            Endpoint::Registry { reference, .. } => {
                let tag = reference
                    .tag
                    .as_ref()
                    .filter(|_| reference.digest.is_none())
                    .map(|t| t.to_string());
                self.put_manifest(m, tag.as_deref()).await?;
            }
        }
        Ok(())
    }
}

/// Drops the first `n` bytes of `stream`.
fn skip_bytes(stream: ByteStream, n: u64) -> ByteStream {
    if n == 0 {
        return stream;
    }
    let skipped = stream.scan(n, |left, item| {
        let out = item.map(|mut b| {
            let drop = (*left).min(b.len() as u64) as usize;
            *left -= drop as u64;
            b = b.slice(drop..);
            b
        });
        futures::future::ready(Some(out))
    });
    Box::pin(skipped.try_filter(|b| futures::future::ready(!b.is_empty())))
}

/// Passes `stream` through, failing if it is longer or shorter than `size`.
fn exact_size(stream: ByteStream, size: u64) -> ByteStream {
    let checked = futures::stream::unfold((stream, 0u64, false), move |(mut stream, seen, done)| async move {
        if done {
            return None;
        }
        let mismatch = |actual| strata_storage::Error::SizeMismatch { expected: size, actual };
        match stream.next().await {
            Some(Ok(chunk)) => {
                let seen = seen + chunk.len() as u64;
                if seen > size {
                    Some((Err(mismatch(seen)), (stream, seen, true)))
                } else {
                    Some((Ok(chunk), (stream, seen, false)))
                }
            }
            Some(Err(e)) => Some((Err(e), (stream, seen, true))),
            None if seen != size => Some((Err(mismatch(seen)), (stream, seen, true))),
            None => None,
        }
    });
    Box::pin(checked)
}
