//! Image → layers: a named image of the local store (an OCI layout) resolved to the manifest
//! for this platform, its config, and its layers as sources for the layer store; and unpacking
//! it there; and images made here ([`build`]: import, the image half of commit). `strata pull`,
//! `import`, `commit`, `create` and `run` go through here.

mod build;
mod changes;
mod layer;

use std::path::PathBuf;

use bytes::Bytes;
use strata_storage::Digest;
use strata_storage::oci::media::{OCI_MANIFEST, is_image_config, is_index};
use strata_storage::oci::{
    ImageConfig, ImageIndex, ImageManifest, LayoutError, OciError, OciLayout, PlatformSpec, select_present,
};

pub use build::{History, ImportOptions, append_layer, import, name_image};
pub use changes::ConfigChanges;
pub use layer::{NewLayer, store_layer_file, write_layer};

use crate::store::{ImageLayers, LayerSource, LayerStore, StoreError};

/// Largest manifest or config read.
const MAX_DOCUMENT: u64 = 8 * 1024 * 1024;

/// What can go wrong between an image and its layers.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The local store.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The layer store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A manifest, index or config that does not parse, or no entry for the platform.
    #[error(transparent)]
    Image(#[from] OciError),
    /// A layer the image needs is not in the local store.
    #[error("not found: {0}")]
    NotFound(String),
    /// A layer-store task did not finish (it panicked or was cancelled).
    #[error("layer store task failed: {0}")]
    Task(String),
    /// What was asked for cannot be done (a bad `--change`, a Windows directory import, a
    /// layer for another OS than its parent's).
    #[error("{0}")]
    Usage(String),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, on what.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl From<strata_storage::Error> for ImageError {
    fn from(e: strata_storage::Error) -> Self {
        ImageError::Layout(LayoutError::Storage(e))
    }
}

impl ImageError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ImageError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias for images.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Which image of an index: the platform wanted and the Windows host build to select for.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// The platform (the host's by default).
    pub platform: PlatformSpec,
    /// The Windows host build.
    pub os_version: Option<String>,
}

impl Default for Wanted {
    fn default() -> Self {
        Wanted {
            platform: PlatformSpec::host(),
            os_version: None,
        }
    }
}

/// An image of a layout, down to one platform: its manifest and config, each read once.
#[derive(Debug, Clone)]
pub struct LocalImage {
    /// The manifest, as stored.
    pub bytes: Bytes,
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Parsed.
    pub manifest: ImageManifest,
    /// The image config; `None` for an artifact (its config is not an image config).
    pub config: Option<ImageConfig>,
}

impl LocalImage {
    /// Reads the config of the manifest stored as `bytes` (`media_type`, `digest`) from `layout`.
    async fn load(layout: &OciLayout, bytes: Bytes, media_type: String, digest: Digest) -> Result<Self> {
        let manifest = ImageManifest::parse(&bytes, &digest)?;
        let config = match is_image_config(&manifest.config.media_type) {
            true => {
                let d = &manifest.config.digest;
                Some(ImageConfig::parse(&layout.read_blob(d, MAX_DOCUMENT).await?, d)?)
            }
            false => None,
        };
        let media_type = match media_type.is_empty() {
            true => manifest.media_type.clone().unwrap_or_else(|| OCI_MANIFEST.to_owned()),
            false => media_type,
        };
        Ok(LocalImage {
            bytes,
            media_type,
            digest,
            manifest,
            config,
        })
    }

    /// The image config; an artifact has none to run or build on (`name` is for the message).
    pub fn config(&self, name: &str) -> Result<&ImageConfig> {
        self.config.as_ref().ok_or_else(|| {
            ImageError::Usage(format!(
                "{name} is not a container image (config {})",
                self.manifest.config.media_type
            ))
        })
    }
}

/// Runs a blocking layer-store operation off the async threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::result::Result<T, StoreError> + Send + 'static,
) -> Result<T> {
    Ok(tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ImageError::Task(e.to_string()))??)
}

/// The manifest image `name` of `layout` names: for an index, the entry `wanted` picks among
/// those the layout holds.
pub async fn resolve(layout: &OciLayout, name: &str, wanted: &Wanted) -> Result<LocalImage> {
    let (descriptor, bytes) = layout.named(name, MAX_DOCUMENT).await?;
    select(layout, name, bytes, descriptor.media_type, descriptor.digest, wanted).await
}

/// The image a manifest or index of `layout` (`bytes`, read as `digest`) stands for: the
/// manifest itself, or the index entry `wanted` picks among those the layout holds (the only
/// one, when just one is there). `name` is for messages.
pub async fn select(
    layout: &OciLayout,
    name: &str,
    bytes: Bytes,
    media_type: String,
    digest: Digest,
    wanted: &Wanted,
) -> Result<LocalImage> {
    if !is_index(&media_type, &bytes) {
        return LocalImage::load(layout, bytes, media_type, digest).await;
    }
    let index = ImageIndex::parse(&bytes, &digest)?;
    let mut present = Vec::new();
    for d in &index.manifests {
        if layout.has_blob(&d.digest).await? {
            present.push(d.clone());
        }
    }
    let chosen = select_present(&present, &wanted.platform, wanted.os_version.as_deref())?.clone();
    let bytes = layout.read_blob(&chosen.digest, MAX_DOCUMENT).await?;
    if is_index(&chosen.media_type, &bytes) {
        return Err(OciError::Invalid(format!("{name}: nested indexes cannot be unpacked")).into());
    }
    LocalImage::load(layout, bytes, chosen.media_type, chosen.digest).await
}

/// Unpacks `image` (one platform's manifest, in `layout`) into `store` as image `name`; `None`
/// for an artifact.
pub async fn unpack_image(
    layout: &OciLayout,
    store: &LayerStore,
    name: &str,
    image: &LocalImage,
) -> Result<Option<ImageLayers>> {
    let Some(config) = &image.config else {
        tracing::warn!(
            "{name} is not a container image (config {}); nothing to unpack",
            image.manifest.config.media_type
        );
        return Ok(None);
    };
    let os = config.os().to_owned();
    let layers = sources(layout, name, &image.manifest, config).await?;
    let store = store.clone();
    let name = name.to_owned();
    blocking(move || store.import_image(&name, &os, &layers))
        .await
        .map(Some)
}

/// The layers (with their diff_ids) of an image manifest and its config.
async fn sources(
    layout: &OciLayout,
    name: &str,
    manifest: &ImageManifest,
    config: &ImageConfig,
) -> Result<Vec<LayerSource>> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(OciError::Invalid(format!(
            "{name}: the manifest has {} layers but the config lists {} diff_ids",
            manifest.layers.len(),
            diff_ids.len()
        ))
        .into());
    }
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (d, diff_id) in manifest.layers.iter().zip(diff_ids.iter().cloned()) {
        if !layout.has_blob(&d.digest).await? {
            return Err(ImageError::NotFound(format!(
                "{name}: layer {} is not in the local store{}",
                d.digest,
                if d.is_foreign() {
                    " (a foreign layer that was not fetched)"
                } else {
                    ""
                }
            )));
        }
        let blob: PathBuf = layout.blob_path(&d.digest);
        layers.push(LayerSource {
            blob,
            digest: Some(d.digest.clone()),
            media_type: Some(d.media_type.clone()),
            size: d.size,
            diff_id: Some(diff_id),
        });
    }
    Ok(layers)
}
