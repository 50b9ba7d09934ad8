//! docker-archive tarballs — what `docker save` writes, `docker load` reads and skopeo calls
//! `docker-archive:FILE` — to and from OCI image layouts.
//!
//! An archive is a tar whose `manifest.json` lists images as
//! `[{"Config": PATH, "RepoTags": ["repo:tag"], "Layers": [PATH, ...]}]`; the paths name files in
//! the tar: `<id>.json` and `<id>/layer.tar` (docker before 25, with legacy metadata beside them)
//! or `blobs/sha256/<hex>` (docker 25+, which puts an OCI layout inside the tar). Layer files are
//! tar, gzip or zstd.
//!
//! [`import`] indexes the tar once (seeking past file contents), then reads the config and streams
//! each layer from its offset into the layout's blob store, hashing as it goes. A layer is
//! published only after its diff_id matches the config (checked for tar and gzip layers; zstd
//! would need a decoder this crate does not have), and the image is named last, so a failed import
//! names nothing. Paths in `manifest.json` and link targets resolve only to entries inside the
//! archive, and nothing is ever written under a name the archive chose: only blobs, by digest.
//!
//! [`export`] writes `manifest.json`, the config and each layer blob as stored (docker and skopeo
//! accept compressed layer files) into `FILE.tmp-<pid>`, checking every blob's digest on the way,
//! and renames it into place when complete.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use strata_storage::digest::{Algorithm, Hasher, parse_digest};
use strata_storage::{BlobWriter, Digest};
use tokio::sync::mpsc;

use crate::error::{ClientError, Result};
use crate::reference::{DOCKER_HUB, Reference};
use strata_storage::oci::layout::OciLayout;
use strata_storage::oci::media::is_index;
use strata_storage::oci::{Descriptor, ImageManifest};

/// The largest `manifest.json`, config or manifest read into memory.
const MAX_JSON: u64 = 8 * 1024 * 1024;
/// Bytes per chunk handed from the tar reader to the blob store.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the tar reader and the blob store.
const CHANNEL_DEPTH: usize = 4;
/// Symlinks and hard links followed before giving up on a path.
const MAX_LINK_HOPS: usize = 16;

use strata_storage::oci::media::{
    DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR, DOCKER_MANIFEST, OCI_CONFIG, OCI_LAYER_ZSTD,
};

/// One image in `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    /// `null` for an untagged image, as docker writes it.
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// The part of an image config import checks.
#[derive(Debug, Deserialize)]
struct ImageConfig {
    rootfs: RootFs,
}

#[derive(Debug, Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// A descriptor in the Docker schema 2 manifest import writes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct OutDescriptor {
    media_type: &'static str,
    size: u64,
    digest: String,
}

/// A Docker schema 2 image manifest, fields in the order docker writes them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OutManifest {
    schema_version: u32,
    media_type: &'static str,
    config: OutDescriptor,
    layers: Vec<OutDescriptor>,
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(ClientError::stopped("archive worker", e)),
    }
}

mod export;
mod import;
#[cfg(test)]
mod tests;

pub use export::export;
pub use import::import;
