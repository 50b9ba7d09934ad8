//! `strata-client`: the library behind the `strata` CLI — references, authentication, a registry
//! client, OCI image layouts, platform selection and the transfer engine that pulls, pushes and
//! copies images between registries and layouts. The image model (manifests, configs, platforms
//! and choosing an index entry) is `strata_storage::oci`.
//!
//! - [`reference`]: docker-style image references and normalization.
//! - [`auth`]: docker `config.json`, credential helpers, Basic and Bearer token flows.
//! - [`registry`]: [`registry::RegistryClient`], one registry host with retries and auth.
//! - [`progress`]: progress bars and summary lines on stderr.
//! - [`archive`]: docker-archive tarballs (`docker save` / `docker load`) to and from layouts.
//! - [`transfer`]: [`transfer::copy`] between [`transfer::Endpoint`]s.
//! - [`layers`]: pulled images unpacked into the runtime's layer store (feature `runtime`).
//! - [`containers`]: containers run from the layer store (feature `runtime`).
//!
//! The feature `runtime` (default, needed by the `strata` binary) brings in `strata-runtime`;
//! without it the library is the registry client alone.

pub mod archive;
pub mod auth;
pub mod commands;
#[cfg(feature = "runtime")]
pub mod containers;
pub mod error;
#[cfg(feature = "runtime")]
pub mod hives;
#[cfg(feature = "runtime")]
pub mod layers;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod settings;
pub mod transfer;

pub use error::{ClientError, Result};
pub use reference::Reference;
