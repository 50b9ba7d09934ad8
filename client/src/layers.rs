//! The runtime's layer store (`STRATA_HOME/layers`) seen from the CLI's context: `strata rmi`
//! and `strata prune` release layers, and `strata fs` reads the union. Resolving and unpacking
//! images is `strata_runtime::image`.

use std::path::PathBuf;

use strata_runtime::image::{self, ImageError, ImportOptions, LocalImage};
use strata_runtime::store::{ImageLayers, LayerStore, StoreError};
use strata_runtime::union::Union;
use strata_runtime::unpack::UnpackError;

use crate::commands::{Context, local_name};
use crate::error::{ClientError, Result};

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ClientError::NotFound(what),
            e @ StoreError::DiffIdMismatch { .. } => ClientError::Integrity(e.to_string()),
            StoreError::Unpack {
                source: UnpackError::Io { .. } | UnpackError::DestinationNotEmpty { .. },
                ..
            } => ClientError::Layers(e),
            StoreError::Unpack { digest, source } => ClientError::BadLayer {
                digest,
                reason: source.to_string(),
            },
            other => ClientError::Layers(other),
        }
    }
}

impl From<ImageError> for ClientError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Layout(e) => e.into(),
            ImageError::Store(e) => e.into(),
            ImageError::Image(e) => ClientError::Image(e),
            ImageError::NotFound(what) => ClientError::NotFound(what),
            ImageError::Usage(message) => ClientError::Usage(message),
            ImageError::Io { context, source } => ClientError::Io { context, source },
            ImageError::Task(what) => ClientError::io("layer store task", std::io::Error::other(what)),
        }
    }
}

/// Runs a blocking layer-store operation off the async threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::result::Result<T, StoreError> + Send + 'static,
) -> Result<T> {
    Ok(strata_runtime::image::blocking(work).await?)
}

impl Context {
    /// The layer store (`STRATA_HOME/layers`), where pulled images are unpacked.
    pub fn layers(&self) -> Result<LayerStore> {
        Ok(self.runtime().layers()?)
    }

    /// `STRATA_HOME` as the runtime lays it out.
    pub fn runtime(&self) -> strata_runtime::home::Home {
        strata_runtime::home::Home::new(&self.home)
    }

    /// `strata import SOURCE IMAGE` and `strata layer import`: see
    /// [`strata_runtime::image::import`]; names as the user wrote them.
    pub async fn import(
        &self,
        source: &std::path::Path,
        name: &str,
        options: &ImportOptions,
    ) -> Result<(LocalImage, ImageLayers)> {
        let options = ImportOptions {
            parent: options.parent.as_deref().map(local_name),
            ..options.clone()
        };
        let store = self.store()?;
        Ok(image::import(&store, &self.layers()?, source, &local_name(name), &options).await?)
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
