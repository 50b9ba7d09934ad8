//! Manifest requests: fetch (verified against the digest), head, put, delete.

use bytes::Bytes;
use http::header;
use strata_storage::{Algorithm, Digest, RepositoryName, digest::parse_digest};

use super::{RegistryClient, pull_scope, push_scope};
use crate::error::{DistributionError, Result};

pub use strata_storage::oci::media::MANIFEST_ACCEPT;

/// Largest manifest we accept from a registry.
const MAX_MANIFEST: usize = 8 * 1024 * 1024;

/// A manifest as fetched: exact bytes, media type, digest (verified).
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The bytes, exactly as served.
    pub bytes: Bytes,
    /// `Content-Type` (or the `mediaType` field when the header is missing or generic).
    pub media_type: String,
    /// The digest of the bytes.
    pub digest: Digest,
}

fn media_type_of(header: Option<&str>, bytes: &[u8]) -> String {
    let from_header = header.map(|h| h.split(';').next().unwrap_or("").trim().to_owned());
    match from_header {
        Some(t) if t.contains("manifest") || t.contains("index") => t,
        _ => serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| v.get("mediaType")?.as_str().map(String::from))
            .unwrap_or_else(|| strata_storage::oci::media::OCI_MANIFEST.into()),
    }
}

impl RegistryClient {
    /// Fetches a manifest by tag or digest. By digest, the bytes must hash to it; by tag, to the
    /// `Docker-Content-Digest` the registry names, if it names one.
    pub async fn manifest(&self, repo: &RepositoryName, reference: &str) -> Result<FetchedManifest> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let response = self
            .send(&pull_scope(repo), true, |c| {
                c.get(self.url(&path)).header(header::ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        if !response.status().is_success() {
            return Err(Self::error(response, &format!("manifest {repo}:{reference}")).await);
        }
        let header_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let claimed = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_digest(v).ok());
        if response.content_length().is_some_and(|n| n as usize > MAX_MANIFEST) {
            return Err(DistributionError::Integrity(format!(
                "manifest {repo}:{reference} is larger than 8 MiB"
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| DistributionError::network("read manifest", e))?;
        if bytes.len() > MAX_MANIFEST {
            return Err(DistributionError::Integrity(format!(
                "manifest {repo}:{reference} is larger than 8 MiB"
            )));
        }
        let expected = match parse_digest(reference) {
            Ok(d) => Some(d),
            Err(_) => claimed,
        };
        let digest = match &expected {
            Some(e) => {
                let actual = Algorithm::of(e)
                    .map_err(|e| DistributionError::Protocol(e.to_string()))?
                    .digest_of(&bytes);
                if &actual != e {
                    return Err(DistributionError::Integrity(format!(
                        "manifest {repo}:{reference} hashes to {actual}, not {e}"
                    )));
                }
                actual
            }
            None => Algorithm::Sha256.digest_of(&bytes),
        };
        let media_type = media_type_of(header_type.as_deref(), &bytes);
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// The digest, media type and size of a manifest, or `None` if it does not exist.
    pub async fn head_manifest(&self, repo: &RepositoryName, reference: &str) -> Result<Option<(Digest, String, u64)>> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let response = self
            .send(&pull_scope(repo), true, |c| {
                c.head(self.url(&path)).header(header::ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        if response.status() == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(Self::error(response, &format!("manifest {repo}:{reference}")).await);
        }
        let h = response.headers();
        let digest = h
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_digest(v).ok())
            .ok_or_else(|| DistributionError::Protocol(format!("{} sent no Docker-Content-Digest", self.host())))?;
        let media_type = media_type_of(h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), b"");
        let size = response.content_length().unwrap_or(0);
        Ok(Some((digest, media_type, size)))
    }

    /// Puts a manifest under `reference` (a tag or its digest); returns the registry's digest.
    pub async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let response = self
            .send(&push_scope(repo), true, |c| {
                c.put(self.url(&path))
                    .header(header::CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        if !response.status().is_success() {
            return Err(Self::error(response, &format!("put manifest {repo}:{reference}")).await);
        }
        let ours = Algorithm::Sha256.digest_of(&bytes);
        match response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            Some(theirs)
                if theirs != ours.as_ref()
                    && parse_digest(theirs).is_ok_and(|d| Algorithm::of(&d).ok() == Some(Algorithm::Sha256)) =>
            {
                Err(DistributionError::Integrity(format!(
                    "registry stored the manifest as {theirs}, we sent {ours}"
                )))
            }
            _ => Ok(ours),
        }
    }

    /// Deletes a manifest by digest (or a tag, where the registry supports it).
    pub async fn delete_manifest(&self, repo: &RepositoryName, reference: &str) -> Result<()> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let response = self
            .send(&format!("repository:{repo}:delete"), true, |c| {
                c.delete(self.url(&path))
            })
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Self::error(response, &format!("delete {repo}@{reference}")).await)
        }
    }
}
