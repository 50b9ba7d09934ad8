//! `strata-distribution`: a client of the OCI Distribution API for one registry host
//! ([`registry::RegistryClient`]: manifests verified against their digests, streamed blobs,
//! uploads that resume, mounts), with the `Basic` and `Bearer` token challenge flow
//! ([`auth`]) and bounded retries. The `strata` client pulls and pushes with it; the registry's
//! pull-through cache fetches from its upstreams with it.

pub mod auth;
mod credentials;
mod error;
pub mod foreign;
pub mod registry;

pub use credentials::Credentials;
pub use error::{DistributionError, Result};

/// Docker Hub's registry name in references.
pub const DOCKER_HUB: &str = "docker.io";
/// The host Docker Hub's registry API answers on.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
