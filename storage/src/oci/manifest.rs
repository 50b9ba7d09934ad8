//! Image manifests, indexes, and a manifest of either kind as a registry receives it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::media::{self, OCI_INDEX, OCI_MANIFEST};
use super::{Descriptor, OciError, parse_json};
use crate::Digest;

/// An image manifest (OCI or Docker schema 2), read leniently: what a client pulls is used if
/// it can be.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Media type, when the manifest states it.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The artifact type of an artifact manifest.
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (artifacts, signatures).
    #[serde(default)]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// Parses manifest `digest` (named in the error).
    pub fn parse(bytes: &[u8], digest: &Digest) -> Result<Self, OciError> {
        parse_json(bytes, &format!("manifest {digest}"))
    }

    /// The config and the layers: every blob the manifest needs.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.config).chain(&self.layers)
    }
}

/// An image index (OCI) or manifest list (Docker); also an OCI layout's `index.json`, which is
/// rewritten, so unknown fields are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    #[serde(default = "two")]
    pub schema_version: u32,
    /// Media type, when the index states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The entries.
    pub manifests: Vec<Descriptor>,
    /// Fields this model does not know, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn two() -> u32 {
    2
}

impl ImageIndex {
    /// Parses index `digest` (named in the error).
    pub fn parse(bytes: &[u8], digest: &Digest) -> Result<Self, OciError> {
        parse_json(bytes, &format!("index {digest}"))
    }
}

/// The fields of either kind, as pushed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A manifest or an index, checked strictly, with the media type it is stored and served with:
/// what a registry accepts.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The media type.
    pub media_type: String,
    /// An image manifest's config.
    pub config: Option<Descriptor>,
    /// An image manifest's layers.
    pub layers: Vec<Descriptor>,
    /// An index's child manifests.
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (signatures, SBOMs, attestations).
    pub subject: Option<Descriptor>,
    /// The artifact type, when stated.
    pub artifact_type: Option<String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

fn invalid(message: impl Into<String>) -> OciError {
    OciError::Invalid(message.into())
}

impl Manifest {
    /// Reads `bytes` sent with `content_type` (parameters stripped; may be absent). Accepts OCI
    /// and Docker schema 2 manifests and indexes whose media type, shape and descriptors agree.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Self, OciError> {
        let raw: Raw =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("manifest is not valid JSON: {e}")))?;
        if raw.schema_version != Some(2) {
            return Err(invalid("schemaVersion must be 2"));
        }
        let content_type = content_type.filter(|ct| media::is_manifest(ct));
        let media_type = match (content_type, raw.media_type.as_deref()) {
            (Some(ct), Some(mt)) if ct != mt => {
                return Err(invalid(format!("Content-Type {ct} does not match mediaType {mt}")));
            }
            (Some(ct), _) => ct.to_owned(),
            (None, Some(mt)) => mt.to_owned(),
            // Early OCI manifests carried no mediaType; the shape says which it is.
            (None, None) if raw.manifests.is_some() => OCI_INDEX.to_owned(),
            (None, None) => OCI_MANIFEST.to_owned(),
        };
        if !media::is_manifest(&media_type) {
            return Err(invalid(format!("unsupported manifest media type {media_type}")));
        }
        let is_index = media::is_index(&media_type, b"");
        if is_index && raw.config.is_some() {
            return Err(invalid("an index has no config"));
        }
        if !is_index && (raw.config.is_none() || raw.manifests.is_some()) {
            return Err(invalid("an image manifest needs a config and no manifests"));
        }
        Ok(Manifest {
            media_type,
            config: raw.config,
            layers: raw.layers,
            manifests: raw.manifests.unwrap_or_default(),
            subject: raw.subject,
            artifact_type: raw.artifact_type,
            annotations: raw.annotations,
        })
    }

    /// Whether this is an index.
    pub fn is_index(&self) -> bool {
        self.config.is_none()
    }

    /// Everything it references: config, layers, child manifests (not the subject).
    pub fn references(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(&self.layers).chain(&self.manifests)
    }

    /// The descriptor of this manifest (stored as `digest`, `size` bytes) in a referrers list:
    /// `artifactType` is the manifest's, else an image manifest's config media type.
    pub fn referrer(&self, digest: &Digest, size: u64) -> Descriptor {
        let mut d = Descriptor::new(&self.media_type, digest.clone(), size);
        d.artifact_type = self
            .artifact_type
            .clone()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.clone()))
            .filter(|t| !t.is_empty());
        d.annotations = self.annotations.clone();
        d
    }
}

#[cfg(test)]
mod tests {
    use super::super::media::DOCKER_MANIFEST;
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D}","size":0}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{D}","size":0}}]{extra}}}"#
        )
    }

    #[test]
    fn image_manifests_and_indexes_parse() {
        let m = Manifest::parse(image("").as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!((m.media_type.as_str(), m.layers.len()), (OCI_MANIFEST, 1));
        assert_eq!(m.references().count(), 2);
        let index =
            format!(r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":1}}]}}"#);
        let m = Manifest::parse(index.as_bytes(), None).unwrap();
        assert_eq!((m.media_type.as_str(), m.manifests.len()), (OCI_INDEX, 1));
        assert!(m.is_index());
        let lenient = ImageManifest::parse(image("").as_bytes(), &D.parse().unwrap()).unwrap();
        assert_eq!(lenient.blobs().count(), 2);
    }

    #[test]
    fn invalid_manifests_are_refused() {
        for (body, ct) in [
            ("not json".to_string(), None),
            (image("").replace("\"schemaVersion\":2", "\"schemaVersion\":1"), None),
            (image(""), Some(DOCKER_MANIFEST)),
            (
                image("").replace(
                    OCI_MANIFEST,
                    "application/vnd.docker.distribution.manifest.v1+prettyjws",
                ),
                None,
            ),
            (image("").replace(D, "sha256:short"), None),
            (image("").replace("\"size\":0}]", "\"size\":-1}]"), None),
            (image(r#","annotations":{"a":1}"#), None),
        ] {
            let err = Manifest::parse(body.as_bytes(), ct).unwrap_err();
            assert!(matches!(err, OciError::Invalid(_)), "{body}");
        }
    }

    #[test]
    fn referrer_descriptors_carry_artifact_type_and_annotations() {
        let subject =
            format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":5}},"annotations":{{"a":"b"}}"#);
        let m = Manifest::parse(image(&subject).as_bytes(), None).unwrap();
        assert!(m.subject.is_some());
        let d = serde_json::to_value(m.referrer(&D.parse().unwrap(), 10)).unwrap();
        assert_eq!(d["artifactType"], "application/vnd.oci.image.config.v1+json");
        assert_eq!(d["annotations"]["a"], "b");
        assert_eq!(d["size"], 10);
    }
}
