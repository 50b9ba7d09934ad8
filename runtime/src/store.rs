//! The layer store under `STRATA_HOME/layers`, modeled on the Windows container layer store:
//!
//! ```text
//! layers/
//!   <chain id hex>/            one directory per layer, named by chain id
//!     Files/                   the layer's files (for Linux layers in overlayfs form:
//!                              whiteouts are 0:0 character devices, opaque directories carry
//!                              trusted.overlay.opaque=y), ready to be an overlayfs lower dir
//!     layerchain.json          JSON array of parent layer directories, nearest first; null for a base
//!     layer.json               diff_id, chain_id, blob digest, media type, size, parent, os
//!   images/<sha256 of name>.json   which layers (base first) an image name uses
//!   .tmp/                      imports in progress
//!   .lock                      shared by importers, exclusive for gc
//!   .locks/<chain id hex>      held while that layer is imported
//! ```
//!
//! Processes share the store: importers hold `.lock` shared, and a layer being imported is
//! locked by its chain id, so a second importer of the same layer waits and then finds it.
//! [`LayerStore::gc`] holds `.lock` exclusively, so it never removes a layer an import is about
//! to record, and only it sweeps `.tmp/` and `.locks/` (whose owners are gone by then).
//!
//! Imports are atomic: a layer is unpacked into `.tmp/`, its diff_id checked against the image
//! config, and only then renamed into place, so a crash or an error leaves no layer and no
//! debris. Layers are shared by every image whose chain contains them and removed by
//! [`LayerStore::gc`] once no image names them.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strata_storage::Digest;
use strata_storage::digest::{parse_digest, sha256};
use strata_storage::lock::FileLock;

use crate::unpack::{self, Compression, UnpackError};

/// What can go wrong in the layer store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A layer did not unpack.
    #[error("layer {digest}: {source}")]
    Unpack {
        /// The layer blob.
        digest: String,
        /// Why.
        #[source]
        source: UnpackError,
    },
    /// The unpacked content is not what the image config says.
    #[error("layer {digest}: diff_id is {actual}, the image config says {expected}")]
    DiffIdMismatch {
        /// The layer blob.
        digest: String,
        /// From the config.
        expected: String,
        /// Computed while unpacking.
        actual: String,
    },
    /// The image's manifest and config disagree, or name something malformed.
    #[error("{0}")]
    Invalid(String),
    /// No such image or layer.
    #[error("not in the layer store: {0}")]
    NotFound(String),
}

/// A [`StoreError::Io`] for `op` on `path`.
pub(crate) fn io_error(op: &'static str, path: impl Into<PathBuf>, source: impl Into<std::io::Error>) -> StoreError {
    StoreError::Io {
        op,
        path: path.into(),
        source: source.into(),
    }
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// `layer.json`: what a layer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
    /// Chain id: the diff_id for a base layer, else sha256 of "<parent chain id> <diff_id>".
    pub chain_id: String,
    /// Digest of the (compressed) blob it came from; none for a tar imported from a file.
    pub digest: Option<String>,
    /// The blob's media type; none for a tar imported from a file.
    pub media_type: Option<String>,
    /// The blob's size.
    pub size: u64,
    /// Chain id of the parent layer.
    pub parent: Option<String>,
    /// `linux` or `windows`.
    pub os: String,
}

/// One layer of an image to import: where its blob is and what it must unpack to.
#[derive(Debug, Clone)]
pub struct LayerSource {
    /// The compressed blob on disk (the local store keeps it, so the image can be pushed again).
    pub blob: PathBuf,
    /// Its digest, when it is a blob of the local store.
    pub digest: Option<Digest>,
    /// Its media type; without one the compression is recognised from the first bytes.
    pub media_type: Option<String>,
    /// Its size.
    pub size: u64,
    /// The diff_id the image config gives it, checked after unpacking.
    pub diff_id: Option<Digest>,
}

/// `images/<hash>.json`: the layers an image name uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageLayers {
    /// The image name (as the local store names it).
    pub name: String,
    /// Chain ids, base first.
    pub chain: Vec<String>,
    /// `linux` or `windows`.
    pub os: String,
}

/// Chain ids of a list of diff_ids, base first (OCI image-spec config.md).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        out.push(next_chain_id(out.last(), d));
    }
    out
}

/// The chain id of a layer with `diff_id` over the layer with chain id `parent`.
pub fn next_chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(parent) => sha256(format!("{parent} {diff_id}").as_bytes()),
    }
}

/// The store's lock file: shared by importers, exclusive for gc.
const LOCK: &str = ".lock";
/// Per-layer lock files, named by chain id.
const LAYER_LOCKS: &str = ".locks";

/// The layer store.
#[derive(Debug, Clone)]
pub struct LayerStore {
    root: PathBuf,
    options: unpack::Options,
}

impl LayerStore {
    /// Opens (creating) the store at `root`. What a crashed import left in `.tmp/` is swept by
    /// the next [`LayerStore::gc`], not here: another process may be importing right now.
    pub fn open(root: &Path) -> Result<Self> {
        for dir in [root.to_owned(), root.join("images"), root.join(".tmp")] {
            std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        }
        let lock = root.join(LOCK);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&lock)
            .map_err(io("create", &lock))?;
        Ok(LayerStore {
            root: root.to_owned(),
            options: unpack::Options::default(),
        })
    }

    /// Uses `options` (limits, privilege) for imports.
    pub fn with_options(mut self, options: unpack::Options) -> Self {
        self.options = options;
        self
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of layer `chain_id`.
    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.root.join(chain_id.digest())
    }

    /// Whether layer `chain_id` is in the store.
    pub fn has_layer(&self, chain_id: &Digest) -> bool {
        self.layer_dir(chain_id).join("layer.json").is_file()
    }

    /// The `layer.json` of layer `chain_id`.
    pub fn layer(&self, chain_id: &Digest) -> Result<LayerInfo> {
        let path = self.layer_dir(chain_id).join("layer.json");
        let raw = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound(format!("layer {chain_id}")),
            _ => StoreError::Io {
                op: "read",
                path: path.clone(),
                source: e,
            },
        })?;
        serde_json::from_slice(&raw).map_err(|e| StoreError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Imports the layers of an image (base first) and records that `name` uses them. Layers
    /// already present are shared. Blocking: run it on a blocking thread.
    ///
    /// Linux layers whose diff_ids are known unpack in parallel (one thread per core): each goes
    /// into its own directory. Windows layers go one after another, base first, because a hard
    /// link may point into a parent layer.
    pub fn import_image(&self, name: &str, os: &str, layers: &[LayerSource]) -> Result<ImageLayers> {
        let _lease = self.lease()?;
        let known: Option<Vec<Digest>> = layers.iter().map(|l| l.diff_id.clone()).collect();
        if let Some(diff_ids) = known.filter(|_| os != "windows") {
            let chain = chain_ids(&diff_ids);
            let todo: Vec<usize> = (0..layers.len()).filter(|&i| !self.has_layer(&chain[i])).collect();
            self.import_parallel(layers, &chain, &todo, os)?;
            return self.record(name, os, &chain);
        }
        let mut chain: Vec<Digest> = Vec::with_capacity(layers.len());
        for layer in layers {
            let known = layer.diff_id.as_ref().map(|d| next_chain_id(chain.last(), d));
            let chain_id = match known {
                Some(c) => self.import_known(layer, &chain, &c, os)?,
                None => self.import_layer(layer, &chain, os)?,
            };
            chain.push(chain_id);
        }
        self.record(name, os, &chain)
    }

    /// Whether a layer tar (compressed or not) is a Windows layer: its first entry is `Files`,
    /// `Hives` or `UtilityVM` (or under one). Blocking; reads only the first headers.
    pub fn detect_os(tar: &Path) -> Result<&'static str> {
        let file = File::open(tar).map_err(io("open", tar))?;
        let mut input = BufReader::new(file);
        let compression = Compression::sniff(input.fill_buf().map_err(io("read", tar))?);
        let stream = crate::unpack::decompress(input, compression).map_err(|source| StoreError::Unpack {
            digest: tar.display().to_string(),
            source: source.into(),
        })?;
        let mut archive = tar::Archive::new(stream);
        let first = archive
            .entries()
            .ok()
            .and_then(|mut e| e.next())
            .and_then(|e| e.ok())
            .map(|e| e.path_bytes().into_owned());
        let windows = first.is_some_and(|name| {
            let top = name.split(|&b| b == b'/').next().unwrap_or_default();
            matches!(top, b"Files" | b"Hives" | b"UtilityVM")
        });
        Ok(if windows { "windows" } else { "linux" })
    }

    /// Imports `layers[i]` for every `i` in `todo` (their parents need not be there yet).
    fn import_parallel(&self, layers: &[LayerSource], chain: &[Digest], todo: &[usize], os: &str) -> Result<()> {
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(todo.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failure: std::sync::Mutex<Option<StoreError>> = std::sync::Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if k >= todo.len() || failure.lock().expect("lock").is_some() {
                            break;
                        }
                        let i = todo[k];
                        if let Err(e) = self.import_known(&layers[i], &chain[..i], &chain[i], os) {
                            failure.lock().expect("lock").get_or_insert(e);
                        }
                    }
                });
            }
        });
        match failure.into_inner().expect("lock") {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Imports one layer tar (compressed or not) on top of image `parent` (or as a base layer)
    /// and records the result as image `name`. Blocking.
    pub fn import_tar(&self, tar: &Path, name: &str, os: &str, parent: Option<&str>) -> Result<ImageLayers> {
        let _lease = self.lease()?;
        let mut chain = Vec::new();
        if let Some(parent) = parent {
            let image = self.image(parent)?;
            if image.os != os {
                return Err(StoreError::Invalid(format!(
                    "image {parent} is a {} image; a {os} layer cannot go on top of it",
                    image.os
                )));
            }
            for c in &image.chain {
                chain.push(parse_digest(c).map_err(|e| StoreError::Invalid(format!("{parent}: {e}")))?);
            }
        }
        let size = std::fs::metadata(tar).map_err(io("stat", tar))?.len();
        let source = LayerSource {
            blob: tar.to_owned(),
            digest: None,
            media_type: None,
            size,
            diff_id: None,
        };
        let chain_id = self.import_layer(&source, &chain, os)?;
        chain.push(chain_id);
        self.record(name, os, &chain)
    }

    fn record(&self, name: &str, os: &str, chain: &[Digest]) -> Result<ImageLayers> {
        let record = ImageLayers {
            name: name.to_owned(),
            chain: chain.iter().map(|c| c.to_string()).collect(),
            os: os.to_owned(),
        };
        write_atomic(
            &self.image_path(name),
            &serde_json::to_vec_pretty(&record).expect("json"),
        )?;
        Ok(record)
    }

    /// A shared lease on the store, held while importing.
    fn lease(&self) -> Result<FileLock> {
        let path = self.root.join(LOCK);
        FileLock::shared(&path).map_err(io("lock", &path))
    }

    /// Imports a layer whose chain id is known, unless it is there, waiting for (and then
    /// using) the same layer being imported by another process.
    fn import_known(&self, layer: &LayerSource, parents: &[Digest], chain_id: &Digest, os: &str) -> Result<Digest> {
        if self.has_layer(chain_id) {
            return Ok(chain_id.clone());
        }
        let path = self.root.join(LAYER_LOCKS).join(chain_id.digest());
        let _importing = FileLock::exclusive(&path).map_err(io("lock", &path))?;
        if self.has_layer(chain_id) {
            return Ok(chain_id.clone());
        }
        self.import_layer(layer, parents, os)
    }

    /// Unpacks one layer over `parents` (chain ids, base first) into `.tmp/`, checks it and
    /// renames it into place; returns its chain id.
    fn import_layer(&self, layer: &LayerSource, parents: &[Digest], os: &str) -> Result<Digest> {
        let shown = match &layer.digest {
            Some(d) => d.to_string(),
            None => layer.blob.display().to_string(),
        };
        let blob = File::open(&layer.blob).map_err(io("open", &layer.blob))?;
        let mut input = BufReader::with_capacity(1 << 20, blob);
        // By media type; an unknown one (or none) by the first bytes.
        let compression = match layer.media_type.as_deref().and_then(Compression::from_media_type) {
            Some(c) => c,
            None => {
                if let Some(media_type) = &layer.media_type {
                    tracing::info!(%media_type, layer = %shown, "unknown layer media type; recognising the compression from the content");
                }
                Compression::sniff(input.fill_buf().map_err(io("read", &layer.blob))?)
            }
        };
        let tmp = tempdir_in(&self.root.join(".tmp"))?;
        let result = (|| {
            let unpacked = if os == "windows" {
                let parent_dirs: Vec<PathBuf> = parents.iter().rev().map(|p| self.layer_dir(p)).collect();
                crate::windows::unpack_windows(input, compression, &tmp, &parent_dirs, &self.options)
            } else {
                let files = tmp.join("Files");
                std::fs::create_dir(&files).map_err(io("create", &files))?;
                unpack::unpack_linux(input, compression, &files, &self.options)
            }
            .map_err(|source| StoreError::Unpack {
                digest: shown.clone(),
                source,
            })?;
            if let Some(expected) = layer.diff_id.as_ref().filter(|d| **d != unpacked.diff_id) {
                return Err(StoreError::DiffIdMismatch {
                    digest: shown.clone(),
                    expected: expected.to_string(),
                    actual: unpacked.diff_id.to_string(),
                });
            }
            let chain_id = next_chain_id(parents.last(), &unpacked.diff_id);
            let nearest_first: Option<Vec<String>> = (!parents.is_empty()).then(|| {
                parents
                    .iter()
                    .rev()
                    .map(|p| self.layer_dir(p).display().to_string())
                    .collect()
            });
            write_atomic(
                &tmp.join("layerchain.json"),
                &serde_json::to_vec(&nearest_first).expect("json"),
            )?;
            let info = LayerInfo {
                diff_id: unpacked.diff_id.to_string(),
                chain_id: chain_id.to_string(),
                digest: layer.digest.as_ref().map(|d| d.to_string()),
                media_type: layer.media_type.clone(),
                size: layer.size,
                parent: parents.last().map(|p| p.to_string()),
                os: os.to_owned(),
            };
            write_atomic(
                &tmp.join("layer.json"),
                &serde_json::to_vec_pretty(&info).expect("json"),
            )?;
            if self.has_layer(&chain_id) {
                return Ok(chain_id); // the same content is already there
            }
            let target = self.layer_dir(&chain_id);
            match std::fs::rename(&tmp, &target) {
                Ok(()) => Ok(chain_id),
                // Another import finished the same layer first.
                Err(_) if self.has_layer(&chain_id) => Ok(chain_id),
                Err(e) => Err(StoreError::Io {
                    op: "rename",
                    path: target,
                    source: e,
                }),
            }
        })();
        if tmp.exists() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    fn image_path(&self, name: &str) -> PathBuf {
        self.root
            .join("images")
            .join(format!("{}.json", sha256(name.as_bytes()).digest()))
    }

    /// The layers image `name` uses.
    pub fn image(&self, name: &str) -> Result<ImageLayers> {
        let path = self.image_path(name);
        let raw = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound(format!("image {name}")),
            _ => StoreError::Io {
                op: "read",
                path: path.clone(),
                source: e,
            },
        })?;
        serde_json::from_slice(&raw).map_err(|e| StoreError::Invalid(format!("{}: {e}", path.display())))
    }

    /// The layer directories of `image` (as [`LayerStore::image`] read it), base first.
    pub fn image_dirs(&self, image: &ImageLayers) -> Result<Vec<PathBuf>> {
        image
            .chain
            .iter()
            .map(|c| {
                strata_storage::digest::parse_digest(c)
                    .map(|d| self.layer_dir(&d))
                    .map_err(|e| StoreError::Invalid(format!("image {}: chain id {c}: {e}", image.name)))
            })
            .collect()
    }

    /// Every image recorded in the store.
    pub fn images(&self) -> Result<Vec<ImageLayers>> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io("list", &dir))? {
            let path = entry.map_err(io("list", &dir))?.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Ok(raw) = std::fs::read(&path)
                && let Ok(image) = serde_json::from_slice::<ImageLayers>(&raw)
            {
                out.push(image);
            }
        }
        Ok(out)
    }

    /// Forgets image `name` (its layers stay until [`LayerStore::gc`]). Returns whether it was
    /// recorded.
    pub fn remove_image(&self, name: &str) -> Result<bool> {
        let path = self.image_path(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::Io {
                op: "remove",
                path,
                source: e,
            }),
        }
    }

    /// Removes every layer no image uses; returns their chain ids.
    pub fn gc(&self) -> Result<Vec<String>> {
        self.gc_except(&[])
    }

    /// [`LayerStore::gc`], keeping the layer directories `in_use` too (containers' layers).
    /// Waits for imports in progress to finish, then also sweeps what crashed ones left.
    pub fn gc_except(&self, in_use: &[PathBuf]) -> Result<Vec<String>> {
        let lock = self.root.join(LOCK);
        let _exclusive = FileLock::exclusive(&lock).map_err(io("lock", &lock))?;
        for dir in [self.root.join(".tmp"), self.root.join(LAYER_LOCKS)] {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(io("sweep", &dir)(e));
            }
        }
        let tmp = self.root.join(".tmp");
        std::fs::create_dir_all(&tmp).map_err(io("create", &tmp))?;
        let mut used: BTreeSet<String> = self
            .images()?
            .into_iter()
            .flat_map(|i| i.chain)
            .filter_map(|c| parse_digest(&c).ok().map(|d| d.digest().to_owned()))
            .collect();
        used.extend(
            in_use
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
        );
        let mut removed = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(io("list", &self.root))? {
            let entry = entry.map_err(io("list", &self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_layer = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
            if is_layer && !used.contains(&name) {
                // Rename first so a half-removed layer is never mistaken for a whole one.
                let doomed = self.root.join(".tmp").join(format!("gc-{name}"));
                std::fs::rename(entry.path(), &doomed).map_err(io("remove", &entry.path()))?;
                std::fs::remove_dir_all(&doomed).map_err(io("remove", &doomed))?;
                removed.push(format!("sha256:{name}"));
            }
        }
        Ok(removed)
    }
}

/// A fresh uniquely named directory under `parent`.
fn tempdir_in(parent: &Path) -> Result<PathBuf> {
    for _ in 0..16 {
        let dir = parent.join(format!("import-{}-{:016x}", std::process::id(), rand::random::<u64>()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(StoreError::Io {
                    op: "create",
                    path: dir,
                    source: e,
                });
            }
        }
    }
    Err(StoreError::Invalid(format!(
        "no free temporary name in {}",
        parent.display()
    )))
}

/// Writes `data` to `path` atomically.
fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    strata_storage::atomic::write(path, data).map_err(io("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = sha256(b"a");
        let b = sha256(b"b");
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        assert_eq!(chain[1], sha256(format!("{a} {b}").as_bytes()));
    }
}
