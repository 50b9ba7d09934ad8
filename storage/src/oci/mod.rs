//! The OCI image model, shared by the registry, the client and the runtime: media types,
//! descriptors and platforms, image manifests and indexes, image configs, choosing an index
//! entry for a platform, and OCI image layouts on disk (the local store, `oci:DIR`).
//!
//! Typed views of documents whose bytes are kept: a manifest is parsed to be read and is never
//! re-serialized (copies move the original bytes, so digests hold). Descriptors and configs keep
//! fields this model does not know in `extra`, so a document built from them (an `index.json`
//! entry, a committed image's config) loses nothing.
//!
//! Our own types rather than `oci-spec`'s: oci-spec 0.10 (de)serializes `Platform.os_version`
//! as `os_version` instead of `os.version`, which would lose exactly the field Windows
//! selection needs.

mod config;
mod descriptor;
pub mod layout;
mod manifest;
pub mod media;
mod platform;

pub use config::{ContainerConfig, History, ImageConfig, RootFs};
pub use descriptor::{Descriptor, Platform};
pub use layout::{LayoutError, OciLayout};
pub use manifest::{ImageIndex, ImageManifest, Manifest};
pub use platform::{PlatformSpec, select, select_present, windows_host_builds};

/// What is wrong with a document or a platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OciError {
    /// The bytes are not a valid document of the kind asked for.
    #[error("{0}")]
    Invalid(String),
    /// A platform (`--platform os/arch[/variant][:os.version]`) that does not parse.
    #[error("invalid platform {value:?}: {why}")]
    Platform {
        /// As given.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// No entry of an index matches the wanted platform.
    #[error("no image in the index matches platform {want}:\n{rejected}")]
    NoMatch {
        /// The platform wanted.
        want: String,
        /// Every entry and why it was rejected, one per line.
        rejected: String,
    },
}

/// Parses JSON document `what` (a manifest, an index, a config; named in the error).
pub(crate) fn parse_json<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, OciError> {
    serde_json::from_slice(bytes).map_err(|e| OciError::Invalid(format!("{what} does not parse: {e}")))
}
