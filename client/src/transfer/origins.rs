//! Where the destination registry may already hold a local image's blobs: every image of the
//! source layout named after a repository of that registry (pulled from it, or pushed to it)
//! is a place to mount its blobs from. A committed or imported image shares its parent's
//! layers, so its push mounts them from the repository the parent came from.

use std::collections::HashMap;

use strata_storage::RepositoryName;

use crate::error::Result;
use crate::reference::Reference;
use strata_storage::oci::layout::{MAX_SMALL_BLOB, OciLayout};
use strata_storage::oci::media::is_index;
use strata_storage::oci::{ImageIndex, ImageManifest};

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
        let mut todo = vec![descriptor.digest];
        while let Some(digest) = todo.pop() {
            // Children an index names but the layout lacks were not pulled: skip them.
            let Ok(bytes) = layout.read_blob(&digest, MAX_SMALL_BLOB).await else {
                continue;
            };
            let mut blobs = vec![digest.clone()];
            if is_index("", &bytes) {
                if let Ok(index) = ImageIndex::parse(&bytes, &digest) {
                    todo.extend(index.manifests.into_iter().map(|m| m.digest));
                }
            } else if let Ok(manifest) = ImageManifest::parse(&bytes, &digest) {
                blobs.extend(manifest.blobs().map(|d| d.digest.clone()));
            }
            for blob in blobs {
                let repos = found.entry(blob.to_string()).or_default();
                if !repos.contains(&reference.repository) {
                    repos.push(reference.repository.clone());
                }
            }
        }
    }
    Ok(found)
}
