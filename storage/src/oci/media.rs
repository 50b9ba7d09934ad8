//! Media types: the only place they are spelled.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI layer, uncompressed.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker layer, gzip (the usual one).
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker layer, uncompressed.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker foreign layer (gzip; its bytes live at its `urls`).
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// OCI non-distributable layers (deprecated in image-spec 1.1, still in Windows images).
pub const OCI_NONDISTRIBUTABLE: [&str; 3] = [
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
];

/// Every manifest media type, as a client's `Accept` header.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Manifest media types a registry stores and a client sends in `Accept`.
pub const MANIFESTS: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// Whether `media_type` is one of the [`MANIFESTS`].
pub fn is_manifest(media_type: &str) -> bool {
    MANIFESTS.contains(&media_type)
}

/// Whether `media_type` is an image config (anything else is an artifact's config).
pub fn is_image_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

/// Whether a layer of `media_type` is not meant to be pushed (its bytes live at its `urls`).
pub fn is_non_distributable(media_type: &str) -> bool {
    media_type == DOCKER_FOREIGN_LAYER || OCI_NONDISTRIBUTABLE.contains(&media_type)
}

/// Whether a manifest of `media_type` with `bytes` is an index / manifest list. A generic or
/// missing media type is decided by the shape: `manifests` and no `config`.
pub fn is_index(media_type: &str, bytes: &[u8]) -> bool {
    if media_type.contains("index") || media_type.contains("manifest.list") {
        return true;
    }
    #[derive(serde::Deserialize)]
    struct Shape {
        manifests: Option<serde::de::IgnoredAny>,
        config: Option<serde::de::IgnoredAny>,
    }
    let generic = matches!(media_type, "" | "application/json" | "application/octet-stream");
    generic && serde_json::from_slice::<Shape>(bytes).is_ok_and(|s| s.manifests.is_some() && s.config.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_recognised() {
        assert!(is_index(OCI_INDEX, b"{}"));
        assert!(is_index(DOCKER_LIST, b"{}"));
        assert!(is_index("", br#"{"manifests":[]}"#));
        assert!(!is_index(OCI_MANIFEST, br#"{"manifests":[]}"#));
        assert!(!is_index("", br#"{"config":{},"layers":[]}"#));
    }

    #[test]
    fn the_accept_header_lists_every_manifest_type() {
        let listed: Vec<&str> = MANIFEST_ACCEPT.split(", ").collect();
        assert_eq!(listed, [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST]);
    }

    #[test]
    fn non_distributable_layers_are_recognised() {
        assert!(is_non_distributable(DOCKER_FOREIGN_LAYER));
        assert!(is_non_distributable(OCI_NONDISTRIBUTABLE[1]));
        assert!(!is_non_distributable(OCI_LAYER_GZIP));
    }
}
