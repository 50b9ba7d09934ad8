//! Images of the local store unpacked into the runtime's layer store (`STRATA_HOME/layers`):
//! `strata pull`, `import` and `commit` end here, `strata rmi` and `strata prune` release
//! layers, and `strata fs` reads the union.

use std::path::PathBuf;

use bytes::Bytes;
use strata_runtime::store::{ImageLayers, LayerSource, LayerStore, StoreError};
use strata_runtime::union::Union;
use strata_runtime::unpack::UnpackError;
use strata_storage::Digest;

use crate::commands::{Context, local_name};
use crate::error::{ClientError, Result};
use strata_storage::oci::layout::OciLayout;
use crate::transfer::{self, Endpoint, Options, Selection};
use strata_storage::oci::PlatformSpec;
use strata_storage::oci::media::is_index;
use strata_storage::oci::{ImageConfig, ImageIndex, ImageManifest};

/// Largest config we read.
const MAX_CONFIG: u64 = 8 * 1024 * 1024;

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ClientError::NotFound(what),
            e @ StoreError::DiffIdMismatch { .. } => ClientError::Integrity(e.to_string()),
            StoreError::Unpack {
                source: UnpackError::Io { .. } | UnpackError::DestinationNotEmpty { .. },
                ..
            } => ClientError::Other(e.to_string()),
            StoreError::Unpack { digest, source } => ClientError::BadLayer {
                digest,
                reason: source.to_string(),
            },
            other => ClientError::Other(other.to_string()),
        }
    }
}

/// Runs a blocking layer-store operation off the async threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::result::Result<T, StoreError> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ClientError::Other(format!("layer store task failed: {e}")))?
        .map_err(ClientError::from)
}

/// Unpacks image `name` of `layout` into `store`: for an index, the entry the platform
/// selection picks (the host's by default) among those the layout holds. An artifact (a manifest
/// whose config is not an image config) is left alone: `None`.
pub async fn unpack(
    layout: &OciLayout,
    store: &LayerStore,
    name: &str,
    options: &Options,
) -> Result<Option<ImageLayers>> {
    let image = resolve(layout, name, options).await?;
    unpack_image(layout, store, name, &image).await
}

/// Unpacks `image` (one platform's manifest, in `layout`) into `store` as image `name`; `None`
/// for an artifact.
pub async fn unpack_image(
    layout: &OciLayout,
    store: &LayerStore,
    name: &str,
    image: &LocalImage,
) -> Result<Option<ImageLayers>> {
    let manifest = &image.manifest;
    if !strata_storage::oci::media::is_image_config(&manifest.config.media_type) {
        tracing::warn!(
            "{name} is not a container image (config {}); nothing to unpack",
            manifest.config.media_type
        );
        return Ok(None);
    }
    let (os, layers) = sources(layout, name, manifest).await?;
    let store = store.clone();
    let name = name.to_owned();
    blocking(move || store.import_image(&name, &os, &layers))
        .await
        .map(Some)
}

/// An image of a layout, down to one platform.
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
}

impl LocalImage {
    /// The image config.
    pub async fn config(&self, layout: &OciLayout) -> Result<ImageConfig> {
        let digest = &self.manifest.config.digest;
        Ok(ImageConfig::parse(
            &layout.read_blob(digest, MAX_CONFIG).await?,
            digest,
        )?)
    }
}

/// The manifest image `name` of `layout` names: for an index, the entry the platform selection
/// picks (the host's by default) among those the layout holds.
pub async fn resolve(layout: &OciLayout, name: &str, options: &Options) -> Result<LocalImage> {
    let endpoint = Endpoint::Layout {
        layout: layout.clone(),
        name: Some(name.to_owned()),
    };
    let (bytes, media_type, digest) = transfer::resolve(&endpoint).await?;
    select(layout, name, bytes, media_type, digest, options).await
}

/// The image a manifest or index of `layout` (`bytes`, read as `digest`) stands for: the
/// manifest itself, or the index entry the platform selection picks among those the layout
/// holds. `name` is for messages.
pub async fn select(
    layout: &OciLayout,
    name: &str,
    bytes: Bytes,
    media_type: String,
    digest: Digest,
    options: &Options,
) -> Result<LocalImage> {
    if !is_index(&media_type, &bytes) {
        let manifest = ImageManifest::parse(&bytes, &digest)?;
        return Ok(LocalImage {
            bytes,
            media_type,
            digest,
            manifest,
        });
    }
    let index = ImageIndex::parse(&bytes, &digest)?;
    let mut present = Vec::new();
    for d in &index.manifests {
        if layout.has_blob(&d.digest.clone()).await? {
            present.push(d.clone());
        }
    }
    let want = match &options.selection {
        Selection::Platforms(p) if !p.is_empty() => p[0].clone(),
        _ => PlatformSpec::host(),
    };
    let chosen = match strata_storage::oci::select(&present, &want, options.os_version.as_deref()) {
        Ok(d) => d.clone(),
        Err(_) if present.len() == 1 => present[0].clone(),
        Err(e) => return Err(e.into()),
    };
    let d = chosen.digest.clone();
    let bytes = layout.read_blob(&d, MAX_CONFIG).await?;
    if is_index(&chosen.media_type, &bytes) {
        return Err(ClientError::Other(format!("{name}: nested indexes cannot be unpacked")));
    }
    let manifest = ImageManifest::parse(&bytes, &d)?;
    Ok(LocalImage {
        bytes,
        media_type: chosen.media_type,
        digest: d,
        manifest,
    })
}

/// The OS and the layers (with their diff_ids) of an image manifest.
async fn sources(layout: &OciLayout, name: &str, manifest: &ImageManifest) -> Result<(String, Vec<LayerSource>)> {
    let config_digest = &manifest.config.digest;
    let config = ImageConfig::parse(&layout.read_blob(config_digest, MAX_CONFIG).await?, config_digest)?;
    let os = config.os().to_owned();
    let diff_ids = config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(ClientError::Other(format!(
            "{name}: the manifest has {} layers but the config lists {} diff_ids",
            manifest.layers.len(),
            diff_ids.len()
        )));
    }
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (d, diff_id) in manifest.layers.iter().zip(diff_ids) {
        let digest = d.digest.clone();
        if !layout.has_blob(&digest).await? {
            return Err(ClientError::NotFound(format!(
                "{name}: layer {digest} is not in the local store{}",
                if d.is_foreign() {
                    " (a foreign layer that was not fetched)"
                } else {
                    ""
                }
            )));
        }
        layers.push(LayerSource {
            blob: blob_path(layout, &digest),
            digest: Some(digest),
            media_type: Some(d.media_type.clone()),
            size: d.size,
            diff_id: Some(diff_id),
        });
    }
    Ok((os, layers))
}

/// Where an OCI layout keeps blob `digest`.
fn blob_path(layout: &OciLayout, digest: &Digest) -> PathBuf {
    layout
        .root()
        .join("blobs")
        .join(digest.algorithm().to_string())
        .join(digest.digest())
}

impl Context {
    /// The layer store (`STRATA_HOME/layers`), where pulled images are unpacked.
    pub fn layers(&self) -> Result<LayerStore> {
        let root = self.home.join("layers");
        Ok(LayerStore::open(&root)?)
    }

    /// The read-only union of an unpacked image's layers.
    pub fn union(&self, image: &str) -> Result<Union> {
        Ok(Union::open(&self.layers()?, &local_name(image))?)
    }

    /// Refuses when a container uses image `name`.
    pub(crate) fn refuse_if_used(&self, name: &str) -> Result<()> {
        let users: Vec<String> = self
            .containers()?
            .list()?
            .into_iter()
            .filter(|c| c.config.image == name)
            .map(|c| c.config.name)
            .collect();
        if users.is_empty() {
            return Ok(());
        }
        Err(ClientError::Usage(format!(
            "{name} is used by container(s) {}; remove them first",
            users.join(", ")
        )))
    }

    /// Forgets unpacked image `name`; whether it was unpacked.
    pub(crate) async fn forget_unpacked(&self, name: &str) -> Result<bool> {
        let (layers, name) = (self.layers()?, name.to_owned());
        blocking(move || layers.remove_image(&name)).await
    }

    /// Removes the layers no image and no container uses; how many went.
    pub(crate) async fn gc_layers(&self) -> Result<usize> {
        let layers = self.layers()?;
        let in_use: Vec<PathBuf> = self
            .containers()?
            .list()?
            .into_iter()
            .flat_map(|c| c.config.layers)
            .collect();
        Ok(blocking(move || layers.gc_except(&in_use)).await?.len())
    }
}
