//! Where the destination registry may already hold a local image's blobs: every image of the
//! source layout named after a repository of that registry (pulled from it, or pushed to it)
//! is a place to mount its blobs from. A committed or imported image shares its parent's
//! layers, so its push mounts them from the repository the parent came from.

use std::collections::HashMap;

use strata_storage::RepositoryName;

use crate::error::Result;
use crate::image::{self, is_index};
use crate::layout::{MAX_SMALL_BLOB, OciLayout};
use crate::reference::Reference;

/// Blob digest → repositories of one registry that hold it, per the layout's named images.
pub(super) type Origins = HashMap<String, Vec<RepositoryName>>;

/// The repositories of registry `host` (other than `except`) that the named images of `layout`
/// came from, for each blob those images use.
pub(super) async fn origins(layout: &OciLayout, host: &str, except: &RepositoryName) -> Result<Origins> {
    let mut found: Origins = HashMap::new();
    for (name, descriptor) in layout.refs()? {
        let Ok(reference) = Reference::parse(&name) else {
            continue;
        };
        if reference.registry != host || reference.repository == *except {
            continue;
        }
        let Some(top) = descriptor.get("digest").and_then(|d| d.as_str()) else {
            continue;
        };
        let mut todo = vec![top.to_owned()];
        while let Some(d) = todo.pop() {
            let Ok(digest) = strata_storage::digest::parse_digest(&d) else {
                continue;
            };
            // Children an index names but the layout lacks were not pulled: skip them.
            let Ok(bytes) = layout.read_blob(&digest, MAX_SMALL_BLOB).await else {
                continue;
            };
            let mut blobs = vec![d.clone()];
            if is_index("", &bytes) {
                if let Ok(index) = image::parse_index(&bytes, &digest) {
                    todo.extend(index.manifests.into_iter().map(|m| m.digest_str));
                }
            } else if let Ok(manifest) = image::parse_manifest(&bytes, &digest) {
                blobs.push(manifest.config.digest_str);
                blobs.extend(manifest.layers.into_iter().map(|l| l.digest_str));
            }
            for blob in blobs {
                let repos = found.entry(blob).or_default();
                if !repos.contains(&reference.repository) {
                    repos.push(reference.repository.clone());
                }
            }
        }
    }
    Ok(found)
}
