//! Images made on this machine: `strata import DIR|TAR IMAGE`, `strata layer import` and the
//! image half of `strata commit`. Each writes one layer blob into the local store
//! ([`super::layer`]), then a config and a manifest that put it on top of a parent image or
//! start a new one ([`append_layer`]); the image is unpacked into the layer store and only then
//! named, so a failure leaves no half-made image. Every image is in the local store, so
//! `images`, `run`, `push`, `inspect --local` and `fs` all see it.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::{Value, json};
use strata_storage::oci::layout::OciLayout;
use strata_storage::oci::{Descriptor, ImageConfig, ImageManifest, OciError, PlatformSpec, media};

use super::layer::NewLayer;
use super::{
    ConfigChanges, ImageError, LocalImage, Result, Wanted, blocking, resolve, store_layer_file, unpack_image,
    write_layer,
};
use crate::container::diff::write_diff;
use crate::container::now;
use crate::store::{ImageLayers, LayerStore};
use crate::unpack::Compression;

/// The history entry a new layer gets.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// What made the layer (`created_by`).
    pub created_by: String,
    /// `author`, also the config's author.
    pub author: Option<String>,
    /// `comment`.
    pub comment: Option<String>,
}

/// What `strata import` / `strata layer import` were asked for.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The image the layer goes on top of (default: a new base image).
    pub parent: Option<String>,
    /// `linux` or `windows` (default: detected from the tar; a directory is `linux`).
    pub os: Option<String>,
    /// `--change` instructions.
    pub changes: Vec<String>,
    /// The history comment.
    pub message: Option<String>,
}

/// The image config's name for each OCI and Docker layer compression.
fn layer_media_type(docker: bool, compression: Compression) -> &'static str {
    match (docker, compression) {
        (true, Compression::Gzip) => media::DOCKER_LAYER_GZIP,
        (true, Compression::None) => media::DOCKER_LAYER_TAR,
        // Docker schema 2 has no zstd type; registries and runtimes take the OCI one.
        (_, Compression::Zstd) => media::OCI_LAYER_ZSTD,
        (false, Compression::Gzip) => media::OCI_LAYER_GZIP,
        (false, Compression::None) => media::OCI_LAYER,
    }
}

/// Writes the config and manifest of a new image: `parent`'s (or an empty `os` image's) with
/// `layer` appended, a history entry, and `changes` applied. The manifest keeps the parent's
/// family (OCI or Docker schema 2) and everything else it says. Nothing is named.
pub async fn append_layer(
    store: &OciLayout,
    parent: Option<&LocalImage>,
    layer: &NewLayer,
    history: &History,
    changes: &ConfigChanges,
    os: &str,
) -> Result<LocalImage> {
    let created = now();
    // The manifest is rewritten as JSON so that whatever else the parent's says survives.
    let (mut config, mut manifest, media_type) = match parent {
        Some(p) => {
            let manifest: Value = serde_json::from_slice(&p.bytes).map_err(|e| {
                ImageError::Image(OciError::Invalid(format!("manifest {} does not parse: {e}", p.digest)))
            })?;
            (p.config(p.digest.as_ref())?.clone(), manifest, p.media_type.clone())
        }
        None => (
            ImageConfig {
                architecture: PlatformSpec::host().arch,
                os: os.to_owned(),
                config: Some(Default::default()),
                ..Default::default()
            },
            json!({ "schemaVersion": 2, "mediaType": media::OCI_MANIFEST, "config": {}, "layers": [] }),
            media::OCI_MANIFEST.to_owned(),
        ),
    };
    let docker = media_type.contains("docker");
    config.created = Some(created.clone());
    if let Some(a) = &history.author {
        config.author = Some(a.clone());
    }
    config.history.push(strata_storage::oci::History {
        created: Some(created),
        created_by: Some(history.created_by.clone()),
        author: history.author.clone(),
        comment: history.comment.clone(),
        ..Default::default()
    });
    config.rootfs.diff_ids.push(layer.diff_id.clone());
    changes.apply(&mut config);
    let config_bytes = Bytes::from(serde_json::to_vec(&config).expect("json"));
    let config_digest = strata_storage::digest::sha256(&config_bytes);
    store.put_blob_bytes(&config_digest, config_bytes.clone()).await?;

    let config_type = if docker {
        media::DOCKER_CONFIG
    } else {
        media::OCI_CONFIG
    };
    manifest["config"] =
        json!({ "mediaType": config_type, "digest": config_digest.to_string(), "size": config_bytes.len() });
    let descriptor = json!({
        "mediaType": layer_media_type(docker, layer.compression),
        "digest": layer.digest.to_string(),
        "size": layer.size,
    });
    match manifest.get_mut("layers").and_then(Value::as_array_mut) {
        Some(l) => l.push(descriptor),
        None => manifest["layers"] = json!([descriptor]),
    }
    let bytes = Bytes::from(serde_json::to_vec(&manifest).expect("json"));
    let digest = strata_storage::digest::sha256(&bytes);
    store.put_blob_bytes(&digest, bytes.clone()).await?;
    let parsed = ImageManifest::parse(&bytes, &digest)?;
    Ok(LocalImage {
        bytes,
        media_type,
        digest,
        manifest: parsed,
        config: Some(config),
    })
}

/// Unpacks `image` into the layer store as `name`, then names it in the local store.
pub async fn name_image(store: &OciLayout, layers: &LayerStore, name: &str, image: &LocalImage) -> Result<ImageLayers> {
    let unpacked = unpack_image(store, layers, name, image)
        .await?
        .ok_or_else(|| ImageError::Usage(format!("{name}: not a container image")))?;
    store.set_ref(
        name,
        &Descriptor::new(&image.media_type, image.digest.clone(), image.bytes.len() as u64),
    )?;
    Ok(unpacked)
}

/// `strata import SOURCE IMAGE` and `strata layer import`: a directory (written as a gzip
/// layer) or a layer tar (plain, gzip or zstd, kept as it is) as image `name` of `store`, on top
/// of `options.parent` if given (both names as the local store spells them), unpacked into
/// `layers`. Holds a lease on `store` while it works. Returns the new image and its layers.
pub async fn import(
    store: &OciLayout,
    layers: &LayerStore,
    source: &Path,
    name: &str,
    options: &ImportOptions,
) -> Result<(LocalImage, ImageLayers)> {
    let _lease = store.lease().await?;
    let changes = ConfigChanges::parse(&options.changes)?;
    let parent = match &options.parent {
        Some(p) => Some(resolve(store, p, &Wanted::default()).await?),
        None => None,
    };
    let md = std::fs::metadata(source).map_err(|e| ImageError::io(source.display().to_string(), e))?;
    let os = match (&options.os, md.is_dir()) {
        (Some(os), true) if os != "linux" => {
            return Err(ImageError::Usage(
                "a directory imports as a Linux layer; import a Windows layer tar instead".into(),
            ));
        }
        (Some(os), _) => os.clone(),
        (None, true) => "linux".to_owned(),
        (None, false) => {
            let file = source.to_owned();
            blocking(move || LayerStore::detect_os(&file)).await?.to_owned()
        }
    };
    if let Some(p) = &parent {
        let config = p.config(options.parent.as_deref().unwrap_or_default())?;
        let parent_os = config.os();
        if parent_os != os {
            return Err(ImageError::Usage(format!(
                "a {os} layer cannot go on top of the {parent_os} image {}",
                options.parent.as_deref().unwrap_or_default()
            )));
        }
    }
    let layer = if md.is_dir() {
        let dir: PathBuf = source.to_owned();
        write_layer(store, move |out| write_diff(&dir, out).map(|_| ())).await?
    } else {
        store_layer_file(store, source).await?
    };
    let history = History {
        created_by: format!("strata import {}", source.display()),
        author: None,
        comment: options.message.clone(),
    };
    let image = append_layer(store, parent.as_ref(), &layer, &history, &changes, &os).await?;
    let layers = name_image(store, layers, name, &image).await?;
    Ok((image, layers))
}
