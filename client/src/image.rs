//! The parts of OCI / Docker manifests the client reads: descriptors, platforms, image manifests
//! and indexes (manifest lists).
//!
//! Our own types rather than `oci-spec`'s: oci-spec 0.10 (de)serializes `Platform.os_version` as
//! `os_version` instead of `os.version`, which would lose exactly the field Windows selection
//! needs. Manifests are never re-serialized from these types; copies move the original bytes.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;
use strata_storage::Digest;

use crate::error::{ClientError, Result};

/// The OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the content is.
    #[serde(default)]
    pub media_type: String,
    /// Its digest, as written (parse with [`Descriptor::digest`]).
    #[serde(rename = "digest")]
    pub digest_str: String,
    /// Its size in bytes.
    pub size: u64,
    /// Where a foreign layer can be fetched.
    #[serde(default)]
    pub urls: Vec<String>,
    /// The platform of an index entry.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// The digest, validated.
    pub fn digest(&self) -> Result<Digest> {
        Ok(strata_storage::digest::parse_digest(&self.digest_str)?)
    }

    /// Whether this is a foreign layer: one with `urls` it can be fetched from, which copies
    /// leave out unless asked (`--include-foreign`) and pulls fetch from there when the
    /// registry does not have it. The media type alone does not make a layer foreign: a
    /// non-distributable layer without URLs exists nowhere else, so it is always copied.
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty()
    }
}

/// The platform of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`).
    pub architecture: String,
    /// Operating system (`linux`, `windows`).
    pub os: String,
    /// OS version (`10.0.20348.2113` on Windows).
    #[serde(rename = "os.version", default)]
    pub os_version: Option<String>,
    /// Required OS features (`win32k`).
    #[serde(rename = "os.features", default)]
    pub os_features: Vec<String>,
    /// CPU variant (`v8`).
    #[serde(default)]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        if let Some(v) = self.os_version.as_deref().filter(|v| !v.is_empty()) {
            write!(f, ":{v}")?;
        }
        Ok(())
    }
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Media type, when the manifest states it.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (artifacts, signatures).
    #[serde(default)]
    pub subject: Option<Descriptor>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Media type, when the index states it.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The entries.
    pub manifests: Vec<Descriptor>,
}

/// Whether a manifest of `media_type` with `bytes` is an index / manifest list.
pub fn is_index(media_type: &str, bytes: &[u8]) -> bool {
    if media_type.contains("index") || media_type.contains("manifest.list") {
        return true;
    }
    #[derive(Deserialize)]
    struct Shape {
        manifests: Option<serde::de::IgnoredAny>,
        config: Option<serde::de::IgnoredAny>,
    }
    let generic = matches!(media_type, "" | "application/json" | "application/octet-stream");
    generic && serde_json::from_slice::<Shape>(bytes).is_ok_and(|s| s.manifests.is_some() && s.config.is_none())
}

/// Parses an image manifest, naming it in the error.
pub fn parse_manifest(bytes: &Bytes, digest: &Digest) -> Result<ImageManifest> {
    serde_json::from_slice(bytes).map_err(|e| ClientError::Other(format!("manifest {digest} does not parse: {e}")))
}

/// Parses an index, naming it in the error.
pub fn parse_index(bytes: &Bytes, digest: &Digest) -> Result<ImageIndex> {
    serde_json::from_slice(bytes).map_err(|e| ClientError::Other(format!("index {digest} does not parse: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_platform_fields_are_read() {
        let d: Descriptor = serde_json::from_str(
            r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":3,
                "platform":{"os":"windows","architecture":"amd64","os.version":"10.0.20348.2113","os.features":["win32k"]}}"#,
        )
        .unwrap();
        let p = d.platform.unwrap();
        assert_eq!(p.os_version.as_deref(), Some("10.0.20348.2113"));
        assert_eq!(p.os_features, ["win32k"]);
        assert_eq!(p.to_string(), "windows/amd64:10.0.20348.2113");
    }

    #[test]
    fn negative_sizes_are_refused() {
        assert!(serde_json::from_str::<Descriptor>(r#"{"digest":"sha256:aa","size":-1}"#).is_err());
    }

    #[test]
    fn indexes_are_recognised() {
        assert!(is_index("application/vnd.oci.image.index.v1+json", b"{}"));
        assert!(is_index(
            "application/vnd.docker.distribution.manifest.list.v2+json",
            b"{}"
        ));
        assert!(is_index("", br#"{"manifests":[]}"#));
        assert!(!is_index(
            "application/vnd.oci.image.manifest.v1+json",
            br#"{"manifests":[]}"#
        ));
        assert!(!is_index("", br#"{"config":{},"layers":[]}"#));
    }
}
