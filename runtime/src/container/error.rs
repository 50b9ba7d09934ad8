//! What can go wrong operating a container.

use crate::image::ImageError;
use crate::store::StoreError;

/// A container operation's error.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// What was asked for cannot be done (already running, not running, a bad `-v`, an unknown
    /// signal, starting a Windows container here).
    #[error("{0}")]
    Usage(String),
    /// No such container, volume or path in a container.
    #[error("not found: {0}")]
    NotFound(String),
    /// A record on disk that does not parse.
    #[error("{0}")]
    Invalid(String),
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, on what.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The layer store (a container's layers, the union).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The container's image.
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl ContainerError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ContainerError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<strata_storage::oci::LayoutError> for ContainerError {
    fn from(e: strata_storage::oci::LayoutError) -> Self {
        ContainerError::Image(e.into())
    }
}

impl From<strata_storage::Error> for ContainerError {
    fn from(e: strata_storage::Error) -> Self {
        ContainerError::Image(e.into())
    }
}

/// Result alias for container operations.
pub type Result<T, E = ContainerError> = std::result::Result<T, E>;
