//! Parsing `/v2/<rest>` into an [`Endpoint`].
//!
//! Repository names contain `/` and axum allows a wildcard only at the end of a route, so one
//! `/v2/{*rest}` route hands the tail here, which reads it from the right: the last segments say
//! which endpoint it is, everything before them is the repository name. Names, tags, digests and
//! upload ids are validated here, before anything touches storage.

use strata_storage::{Digest, RepositoryName, Tag, UploadId, digest::parse_digest};

use crate::error::{ApiError, ApiResult, Code};

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// By tag.
    Tag(Tag),
    /// By digest.
    Digest(Digest),
}

impl Reference {
    /// A digest (anything with a `:`) or a tag.
    pub fn parse(value: &str) -> ApiResult<Self> {
        if value.contains(':') {
            return Ok(Reference::Digest(digest_of(value)?));
        }
        Tag::parse(value).map(Reference::Tag).map_err(|_| {
            ApiError::new(Code::TagInvalid, "invalid tag").with_detail(serde_json::json!({ "tag": value }))
        })
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

/// Everything under `/v2/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/` itself.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags(RepositoryName),
    /// `/v2/<name>/manifests/<reference>`.
    Manifest(RepositoryName, Reference),
    /// `/v2/<name>/blobs/<digest>`.
    Blob(RepositoryName, Digest),
    /// `/v2/<name>/blobs/uploads/`.
    UploadStart(RepositoryName),
    /// `/v2/<name>/blobs/uploads/<id>`.
    Upload(RepositoryName, UploadId),
    /// `/v2/<name>/referrers/<digest>`.
    Referrers(RepositoryName, Digest),
}

impl Endpoint {
    /// The same endpoint on repository `name` (a mirror's `?ns=` names the local repository).
    pub fn renamed(self, name: RepositoryName) -> Self {
        match self {
            Endpoint::Tags(_) => Endpoint::Tags(name),
            Endpoint::Manifest(_, r) => Endpoint::Manifest(name, r),
            Endpoint::Blob(_, d) => Endpoint::Blob(name, d),
            Endpoint::UploadStart(_) => Endpoint::UploadStart(name),
            Endpoint::Upload(_, id) => Endpoint::Upload(name, id),
            Endpoint::Referrers(_, d) => Endpoint::Referrers(name, d),
            other => other,
        }
    }

    /// Parses the path after `/v2/` of a request with `method`: a `GET` or `HEAD` of a
    /// manifest whose reference is neither a valid tag nor a digest is 404 `MANIFEST_UNKNOWN`
    /// (nothing can exist there, and clients and the conformance tests expect that), while a
    /// `PUT` there stays 400 `TAG_INVALID` / `DIGEST_INVALID`.
    pub fn parse_for(method: &http::Method, rest: &str) -> ApiResult<Self> {
        Endpoint::parse(rest).map_err(|e| {
            let reading = matches!(*method, http::Method::GET | http::Method::HEAD);
            let bad_reference = matches!(e.code, Code::TagInvalid | Code::DigestInvalid);
            let manifest = rest
                .rsplit_once('/')
                .is_some_and(|(head, _)| head.ends_with("/manifests"));
            if reading && bad_reference && manifest {
                ApiError::new(Code::ManifestUnknown, "manifest unknown to registry")
            } else {
                e
            }
        })
    }

    /// Parses the path after `/v2/`.
    pub fn parse(rest: &str) -> ApiResult<Self> {
        if rest.is_empty() {
            return Ok(Endpoint::Base);
        }
        if rest == "_catalog" {
            return Ok(Endpoint::Catalog);
        }
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return Ok(Endpoint::Tags(name_of(name)?));
        }
        if let Some(name) = rest
            .strip_suffix("/blobs/uploads")
            .or_else(|| rest.strip_suffix("/blobs/uploads/"))
        {
            return Ok(Endpoint::UploadStart(name_of(name)?));
        }
        let (head, last) = rest.rsplit_once('/').ok_or_else(not_found)?;
        if let Some(name) = head.strip_suffix("/blobs/uploads") {
            let id = UploadId::parse(last)
                .map_err(|_| ApiError::new(Code::BlobUploadUnknown, "blob upload unknown to registry"))?;
            return Ok(Endpoint::Upload(name_of(name)?, id));
        }
        if let Some(name) = head.strip_suffix("/blobs") {
            return Ok(Endpoint::Blob(name_of(name)?, digest_of(last)?));
        }
        if let Some(name) = head.strip_suffix("/referrers") {
            return Ok(Endpoint::Referrers(name_of(name)?, digest_of(last)?));
        }
        if let Some(name) = head.strip_suffix("/manifests") {
            let name = name_of(name)?;
            return Ok(Endpoint::Manifest(name, Reference::parse(last)?));
        }
        Err(not_found())
    }

    /// A short name of the endpoint, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Endpoint::Base => "base",
            Endpoint::Catalog => "catalog",
            Endpoint::Tags(_) => "tags",
            Endpoint::Manifest(..) => "manifest",
            Endpoint::Blob(..) => "blob",
            Endpoint::UploadStart(_) | Endpoint::Upload(..) => "upload",
            Endpoint::Referrers(..) => "referrers",
        }
    }

    /// The repository the request is about, if any.
    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            Endpoint::Base | Endpoint::Catalog => None,
            Endpoint::Tags(n)
            | Endpoint::Manifest(n, _)
            | Endpoint::Blob(n, _)
            | Endpoint::UploadStart(n)
            | Endpoint::Upload(n, _)
            | Endpoint::Referrers(n, _) => Some(n),
        }
    }
}

fn not_found() -> ApiError {
    ApiError::new(Code::NameUnknown, "no such endpoint").with_status(http::StatusCode::NOT_FOUND)
}

fn name_of(name: &str) -> ApiResult<RepositoryName> {
    RepositoryName::parse(name).map_err(|e| {
        ApiError::new(Code::NameInvalid, "invalid repository name").with_detail(serde_json::json!({
            "name": name.chars().take(300).collect::<String>(),
            "reason": e.to_string(),
        }))
    })
}

fn digest_of(value: &str) -> ApiResult<Digest> {
    parse_digest(value).map_err(ApiError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    #[test]
    fn endpoints_parse_from_the_right() {
        let d = strata_storage::digest::sha256(b"x");
        assert_eq!(Endpoint::parse("").unwrap(), Endpoint::Base);
        assert_eq!(Endpoint::parse("_catalog").unwrap(), Endpoint::Catalog);
        assert_eq!(Endpoint::parse("a/b/tags/list").unwrap(), Endpoint::Tags(name("a/b")));
        assert_eq!(
            Endpoint::parse("a/blobs/uploads/").unwrap(),
            Endpoint::UploadStart(name("a"))
        );
        assert_eq!(
            Endpoint::parse("a/blobs/uploads").unwrap(),
            Endpoint::UploadStart(name("a"))
        );
        assert_eq!(
            Endpoint::parse(&format!("a/blobs/{d}")).unwrap(),
            Endpoint::Blob(name("a"), d.clone())
        );
        assert_eq!(
            Endpoint::parse(&format!("a/referrers/{d}")).unwrap(),
            Endpoint::Referrers(name("a"), d)
        );
        assert_eq!(
            Endpoint::parse("x/y/manifests/v1").unwrap(),
            Endpoint::Manifest(name("x/y"), Reference::Tag(Tag::parse("v1").unwrap()))
        );
        let id = UploadId::random();
        assert_eq!(
            Endpoint::parse(&format!("a/blobs/uploads/{id}")).unwrap(),
            Endpoint::Upload(name("a"), id)
        );
        // A repository may itself be called ".../blobs/uploads" or ".../manifests".
        assert_eq!(
            Endpoint::parse("x/blobs/uploads/blobs/uploads/").unwrap(),
            Endpoint::UploadStart(name("x/blobs/uploads"))
        );
        assert_eq!(
            Endpoint::parse("x/manifests/manifests/latest").unwrap(),
            Endpoint::Manifest(name("x/manifests"), Reference::Tag(Tag::parse("latest").unwrap()))
        );
    }

    #[test]
    fn bad_parts_get_the_right_error_code() {
        let code = |p: &str| Endpoint::parse(p).unwrap_err().code;
        assert_eq!(code("UPPER/tags/list"), Code::NameInvalid);
        assert_eq!(code("../x/tags/list"), Code::NameInvalid);
        assert_eq!(code("a/blobs/sha256:abc"), Code::DigestInvalid);
        assert_eq!(code("a/manifests/-bad"), Code::TagInvalid);
        assert_eq!(code("a/blobs/uploads/bad.id"), Code::BlobUploadUnknown);
        assert_eq!(code("a/whatever"), Code::NameUnknown);
        let long = format!("{}/tags/list", "a".repeat(256));
        assert_eq!(code(&long), Code::NameInvalid);
    }

    #[test]
    fn reading_an_impossible_manifest_reference_is_not_found() {
        let get = |p: &str| Endpoint::parse_for(&http::Method::GET, p).unwrap_err();
        let e = get("a/manifests/.INVALID_MANIFEST_NAME");
        assert_eq!((e.code, e.status.as_u16()), (Code::ManifestUnknown, 404));
        assert_eq!(get("a/manifests/sha256:abc").code, Code::ManifestUnknown);
        let head = Endpoint::parse_for(&http::Method::HEAD, "a/manifests/-bad").unwrap_err();
        assert_eq!(head.code, Code::ManifestUnknown);
        let put = Endpoint::parse_for(&http::Method::PUT, "a/manifests/-bad").unwrap_err();
        assert_eq!(put.code, Code::TagInvalid);
        assert_eq!(
            get("a/blobs/sha256:abc").code,
            Code::DigestInvalid,
            "blobs keep their code"
        );
    }
}
