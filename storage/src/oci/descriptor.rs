//! Content descriptors and the platform of an index entry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Digest;

/// A content descriptor: what a manifest says about a blob or another manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the content is (empty when the descriptor does not say).
    #[serde(default)]
    pub media_type: String,
    /// Its digest (validated when parsed).
    pub digest: Digest,
    /// Its size in bytes (a negative size does not parse).
    pub size: u64,
    /// Where a foreign layer can be fetched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// The platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type of a referrer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Fields this model does not know, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Descriptor {
    /// A descriptor of `size` bytes of `media_type` with `digest`, nothing else.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            urls: Vec::new(),
            platform: None,
            artifact_type: None,
            annotations: BTreeMap::new(),
            extra: Map::new(),
        }
    }

    /// Whether this is a foreign layer: one with `urls` it can be fetched from, which copies
    /// leave out unless asked (`--include-foreign`) and pulls fetch from there when the registry
    /// does not have it. The media type alone does not make a layer foreign: a non-distributable
    /// layer without URLs exists nowhere else, so it is always copied.
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty()
    }

    /// Whether a registry may accept a manifest naming this layer without having its bytes: it
    /// is foreign or of a non-distributable media type.
    pub fn may_be_absent(&self) -> bool {
        self.is_foreign() || super::media::is_non_distributable(&self.media_type)
    }
}

/// The platform of an index entry (and of an image config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`).
    pub architecture: String,
    /// Operating system (`linux`, `windows`).
    pub os: String,
    /// OS version (`10.0.20348.2113` on Windows).
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Required OS features (`win32k`).
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn windows_platform_fields_are_read() {
        let d: Descriptor = serde_json::from_str(&format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D}","size":3,
                "platform":{{"os":"windows","architecture":"amd64","os.version":"10.0.20348.2113","os.features":["win32k"]}}}}"#,
        ))
        .unwrap();
        let p = d.platform.unwrap();
        assert_eq!(p.os_version.as_deref(), Some("10.0.20348.2113"));
        assert_eq!(p.os_features, ["win32k"]);
        assert_eq!(p.to_string(), "windows/amd64:10.0.20348.2113");
    }

    #[test]
    fn negative_sizes_and_bad_digests_are_refused() {
        assert!(serde_json::from_str::<Descriptor>(&format!(r#"{{"digest":"{D}","size":-1}}"#)).is_err());
        assert!(serde_json::from_str::<Descriptor>(r#"{"digest":"sha256:aa","size":1}"#).is_err());
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let raw = format!(r#"{{"mediaType":"x","digest":"{D}","size":1,"data":"eA==","future":{{"a":1}}}}"#);
        let d: Descriptor = serde_json::from_str(&raw).unwrap();
        let back: Value = serde_json::to_value(&d).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(&raw).unwrap());
    }

    #[test]
    fn foreign_and_non_distributable_layers() {
        let mut d = Descriptor::new(super::super::media::OCI_LAYER, D.parse().unwrap(), 1);
        assert!(!d.is_foreign() && !d.may_be_absent());
        d.urls.push("https://x".into());
        assert!(d.is_foreign() && d.may_be_absent());
        let d = Descriptor::new(super::super::media::DOCKER_FOREIGN_LAYER, D.parse().unwrap(), 1);
        assert!(!d.is_foreign() && d.may_be_absent());
    }
}
