//! Foreign layers through the cache: a blob its upstream does not have, that a manifest the
//! cache holds names by URL, is downloaded from those URLs when `[foreign_layers] fetch`
//! allows them (and `deny` does not). The URLs come from upstream manifests, so nothing is
//! fetched by default: the operator names the hosts.

use std::sync::Arc;
use std::time::SystemTime;

use futures::StreamExt;
use strata_storage::oci::{Descriptor, Manifest};
use strata_storage::{Digest, RepositoryName, layout};

use crate::error::ApiResult;
use crate::state::AppState;

/// Newest manifests of the repository searched for the layer's descriptor.
const MANIFESTS_SEARCHED: usize = 256;

/// The descriptor naming foreign layer `digest` in the newest manifests cached for `name`.
pub(super) async fn descriptor(
    state: &AppState,
    name: &RepositoryName,
    digest: &Digest,
) -> ApiResult<Option<Descriptor>> {
    let mut revisions: Vec<(SystemTime, Digest)> = Vec::new();
    let mut list = state.blobs.backend().list(&layout::manifest_revisions(name), None);
    while let Some(meta) = list.next().await {
        let meta = meta?;
        if let Some(d) = layout::linked_digest(&meta.key) {
            revisions.push((meta.modified, d));
        }
    }
    revisions.sort_by_key(|r| std::cmp::Reverse(r.0));
    let limit = state.config.limits.max_manifest_bytes;
    for (_, manifest) in revisions.into_iter().take(MANIFESTS_SEARCHED) {
        // Through the manifest cache: a repeated search reads no manifest again.
        let bytes = match state.manifests.get(&manifest) {
            Some(bytes) => bytes,
            None => match state.blobs.read_limited(&manifest, limit).await {
                Ok(bytes) => {
                    state.manifests.insert(manifest.clone(), bytes.clone());
                    bytes
                }
                Err(_) => continue,
            },
        };
        let Ok(parsed) = Manifest::parse(&bytes, None) else {
            continue;
        };
        if let Some(layer) = parsed
            .layers
            .into_iter()
            .find(|l| l.digest == *digest && !l.urls.is_empty())
        {
            return Ok(Some(layer));
        }
    }
    Ok(None)
}

/// Opens the download of `layer` from the first of its URLs the policy lets the cache fetch.
pub(super) async fn open(
    state: &AppState,
    layer: &Descriptor,
) -> Result<strata_distribution::foreign::ForeignBody, strata_distribution::DistributionError> {
    let policy = state.foreign.clone();
    let allowed: strata_distribution::foreign::UrlPolicy = Arc::new(move |url: &str| policy.fetches(url));
    strata_distribution::foreign::open(&layer.urls, &allowed).await
}
