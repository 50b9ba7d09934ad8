//! `STRATA_HOME` as the runtime lays it out, and the one place that says so:
//!
//! ```text
//! store/        the local image store, an OCI image layout (strata_storage::oci::OciLayout)
//! layers/       the layer store (crate::store::LayerStore)
//! containers/   containers (crate::container::ContainerStore)
//! volumes/      named volumes (crate::container::volume::VolumeStore)
//! ```

use std::path::{Path, PathBuf};

use strata_storage::oci::{LayoutError, OciLayout};

use crate::container::volume::VolumeStore;
use crate::container::{ContainerError, ContainerStore};
use crate::store::{LayerStore, StoreError};

/// A `STRATA_HOME` directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home at `root` (nothing is created until a store is opened).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Home { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The local image store.
    pub fn store(&self) -> Result<OciLayout, LayoutError> {
        OciLayout::open(&self.root.join("store"))
    }

    /// The layer store, where images are unpacked.
    pub fn layers(&self) -> Result<LayerStore, StoreError> {
        LayerStore::open(&self.root.join("layers"))
    }

    /// The containers.
    pub fn containers(&self) -> Result<ContainerStore, ContainerError> {
        ContainerStore::open(&self.root.join("containers"))
    }

    /// The named volumes.
    pub fn volumes(&self) -> Result<VolumeStore, ContainerError> {
        VolumeStore::open(&self.root.join("volumes"))
    }
}
