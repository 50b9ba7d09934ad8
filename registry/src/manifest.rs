//! What the registry needs to know about a pushed manifest: its media type, what it references,
//! its subject, and the descriptor it contributes to the referrers API. The bytes themselves are
//! stored exactly as received; this is only a reading of them.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use strata_storage::Digest;

use crate::error::{ApiError, ApiResult, Code};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Layer media types that are not meant to be pushed (the bytes live at their `urls`).
const NON_DISTRIBUTABLE: &[&str] = &[
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// A content descriptor inside a manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(default)]
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size of the referenced content.
    pub size: i64,
    /// Where else the content can be fetched (foreign layers).
    #[serde(default)]
    pub urls: Vec<String>,
}

impl Descriptor {
    /// Whether this layer is foreign / non-distributable: it has URLs or a non-distributable
    /// media type, so the registry may not have its bytes.
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty() || NON_DISTRIBUTABLE.contains(&self.media_type.as_str())
    }
}

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
    annotations: Option<Map<String, Value>>,
}

/// A manifest, read.
#[derive(Debug)]
pub struct Manifest {
    /// The media type it is stored and served with.
    pub media_type: String,
    /// An image manifest's config.
    pub config: Option<Descriptor>,
    /// An image manifest's layers.
    pub layers: Vec<Descriptor>,
    /// An index's child manifests.
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (signatures, SBOMs, attestations).
    pub subject: Option<Descriptor>,
    artifact_type: Option<String>,
    annotations: Option<Map<String, Value>>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(Code::ManifestInvalid, message)
}

impl Manifest {
    /// Reads `bytes` pushed with `content_type` (the request's `Content-Type`, parameters
    /// stripped; may be absent). Accepts OCI and Docker schema 2 manifests and indexes.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> ApiResult<Self> {
        let raw: Raw =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("manifest is not valid JSON: {e}")))?;
        if raw.schema_version != Some(2) {
            return Err(invalid("schemaVersion must be 2"));
        }
        let content_type = content_type.filter(|ct| is_manifest_type(ct));
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
        if !is_manifest_type(&media_type) {
            return Err(invalid(format!("unsupported manifest media type {media_type}")));
        }
        let is_index = media_type == OCI_INDEX || media_type == DOCKER_LIST;
        if is_index && raw.config.is_some() {
            return Err(invalid("an index has no config"));
        }
        if !is_index && (raw.config.is_none() || raw.manifests.is_some()) {
            return Err(invalid("an image manifest needs a config and no manifests"));
        }
        let all = raw
            .config
            .iter()
            .chain(&raw.layers)
            .chain(raw.manifests.iter().flatten())
            .chain(&raw.subject);
        if all.into_iter().any(|d| d.size < 0) {
            return Err(invalid("descriptor size is negative"));
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

    /// The descriptor of this manifest (stored as `digest`, `size` bytes) in a referrers list:
    /// `artifactType` is the manifest's, else an image manifest's config media type.
    pub fn referrer_descriptor(&self, digest: &Digest, size: u64) -> Value {
        let mut d = json!({ "mediaType": self.media_type, "digest": digest.to_string(), "size": size });
        let artifact_type = self
            .artifact_type
            .clone()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.clone()));
        if let Some(t) = artifact_type.filter(|t| !t.is_empty()) {
            d["artifactType"] = Value::String(t);
        }
        if let Some(a) = &self.annotations {
            d["annotations"] = Value::Object(a.clone());
        }
        d
    }
}

/// Whether we store manifests of this media type.
pub fn is_manifest_type(media_type: &str) -> bool {
    [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].contains(&media_type)
}

#[cfg(test)]
mod tests {
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
        let index =
            format!(r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":1}}]}}"#);
        let m = Manifest::parse(index.as_bytes(), None).unwrap();
        assert_eq!((m.media_type.as_str(), m.manifests.len()), (OCI_INDEX, 1));
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
        ] {
            let err = Manifest::parse(body.as_bytes(), ct).unwrap_err();
            assert_eq!(err.code, Code::ManifestInvalid, "{body}");
        }
    }

    #[test]
    fn referrer_descriptors_carry_artifact_type_and_annotations() {
        let subject =
            format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":5}},"annotations":{{"a":"b"}}"#);
        let m = Manifest::parse(image(&subject).as_bytes(), None).unwrap();
        assert!(m.subject.is_some());
        let d = m.referrer_descriptor(&D.parse().unwrap(), 10);
        assert_eq!(d["artifactType"], "application/vnd.oci.image.config.v1+json");
        assert_eq!(d["annotations"]["a"], "b");
        assert_eq!(d["size"], 10);
    }

    #[test]
    fn foreign_layers_are_recognised() {
        let d = |mt: &str, urls: Vec<String>| Descriptor {
            media_type: mt.into(),
            digest: D.parse().unwrap(),
            size: 1,
            urls,
        };
        assert!(d("application/vnd.oci.image.layer.v1.tar", vec!["https://x".into()]).is_foreign());
        assert!(d("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", vec![]).is_foreign());
        assert!(!d("application/vnd.oci.image.layer.v1.tar+gzip", vec![]).is_foreign());
    }
}
