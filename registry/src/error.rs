//! [`ApiError`]: every failure the API reports, rendered as the OCI error body
//! `{"errors":[{"code","message","detail"}]}` with the spec's status code. Internal detail never
//! reaches the client: it rides in the response's extensions to the `finish_response` middleware
//! (`app.rs`), which logs it once.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use strata_storage::Error as StorageError;

/// The error codes of the OCI Distribution spec, plus the Docker ones clients know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Blob unknown to the repository.
    BlobUnknown,
    /// Upload invalid (bad chunk, out-of-order range).
    BlobUploadInvalid,
    /// Upload session unknown.
    BlobUploadUnknown,
    /// Digest invalid or not matching the content.
    DigestInvalid,
    /// A manifest references a blob or manifest the repository does not have.
    ManifestBlobUnknown,
    /// Manifest invalid.
    ManifestInvalid,
    /// Manifest unknown.
    ManifestUnknown,
    /// Repository name invalid.
    NameInvalid,
    /// Repository unknown.
    NameUnknown,
    /// Content length does not match.
    SizeInvalid,
    /// Operation not supported (for example deletes when disabled).
    Unsupported,
    /// `n` out of range (Docker's code).
    PaginationNumberInvalid,
    /// Tag invalid (Docker's code).
    TagInvalid,
    /// Range header invalid or unsatisfiable.
    RangeInvalid,
    /// Too many requests (retry later).
    TooManyRequests,
    /// The registry cannot answer in time (retry later).
    Unavailable,
    /// Credentials are missing or wrong.
    Unauthorized,
    /// The caller may not do this.
    Denied,
    /// Something went wrong inside the registry.
    Unknown,
}

impl Code {
    /// The code as the spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unsupported => "UNSUPPORTED",
            Code::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Code::TagInvalid => "TAG_INVALID",
            Code::RangeInvalid => "RANGE_INVALID",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::Unavailable => "UNAVAILABLE",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unknown => "UNKNOWN",
        }
    }

    fn default_status(self) -> StatusCode {
        match self {
            Code::BlobUnknown | Code::BlobUploadUnknown | Code::ManifestUnknown | Code::NameUnknown => {
                StatusCode::NOT_FOUND
            }
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An API failure (boxed: handlers return it in every `Result`, so it is kept one pointer wide).
#[derive(Debug)]
pub struct ApiError(Box<ErrorBody>);

/// What an [`ApiError`] holds.
#[derive(Debug)]
pub struct ErrorBody {
    /// The OCI error code.
    pub code: Code,
    /// HTTP status.
    pub status: StatusCode,
    /// Message for the client.
    pub message: String,
    /// Structured detail for the client.
    pub detail: Option<serde_json::Value>,
    /// Extra response headers (`Range`, `Content-Range`, `Retry-After`).
    pub headers: HeaderMap,
    /// What went wrong inside, for the log only.
    pub internal: Option<String>,
}

/// The internal cause of a 5xx, handed to the `finish_response` middleware (`app.rs`) through
/// response extensions.
#[derive(Debug, Clone)]
pub struct InternalCause(pub String);

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl std::ops::Deref for ApiError {
    type Target = ErrorBody;

    fn deref(&self) -> &ErrorBody {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ErrorBody {
        &mut self.0
    }
}

impl ApiError {
    /// An error with `code`'s usual status.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError(Box::new(ErrorBody {
            code,
            status: code.default_status(),
            message: message.into(),
            detail: None,
            headers: HeaderMap::new(),
            internal: None,
        }))
    }

    /// The same error with another status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The same error with structured detail.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// The same error with a response header.
    pub fn with_header(mut self, name: HeaderName, value: impl AsRef<str>) -> Self {
        if let Ok(value) = HeaderValue::from_str(value.as_ref()) {
            self.headers.insert(name, value);
        }
        self
    }

    /// A 500 whose cause is logged but not shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut error = ApiError::new(Code::Unknown, "internal error");
        error.internal = Some(format!("{cause:#}"));
        error
    }

    /// 405 UNSUPPORTED for a disabled or absent operation.
    pub fn unsupported(what: &str) -> Self {
        ApiError::new(Code::Unsupported, format!("{what} is not supported"))
    }
}

impl From<strata_storage::oci::OciError> for ApiError {
    fn from(e: strata_storage::oci::OciError) -> Self {
        ApiError::new(Code::ManifestInvalid, e.to_string())
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound { .. } => ApiError::new(Code::BlobUnknown, "blob unknown to registry"),
            StorageError::Invalid { what, value, reason } => {
                let code = match what {
                    "repository name" => Code::NameInvalid,
                    "tag" => Code::TagInvalid,
                    "upload id" => Code::BlobUploadUnknown,
                    _ => Code::NameInvalid,
                };
                ApiError::new(code, format!("invalid {what}: {reason}")).with_detail(json!({ "value": value }))
            }
            StorageError::InvalidDigest { value, reason } => {
                ApiError::new(Code::DigestInvalid, format!("invalid digest: {reason}"))
                    .with_detail(json!({ "digest": value }))
            }
            StorageError::InvalidRange { value } => {
                ApiError::new(Code::RangeInvalid, format!("invalid range {value:?}"))
            }
            StorageError::RangeNotSatisfiable { size } => ApiError::new(Code::RangeInvalid, "range not satisfiable")
                .with_header(http::header::CONTENT_RANGE, format!("bytes */{size}")),
            StorageError::DigestMismatch { expected, actual } => {
                ApiError::new(Code::DigestInvalid, "provided digest did not match uploaded content")
                    .with_detail(json!({ "expected": expected.to_string(), "actual": actual.to_string() }))
            }
            StorageError::SizeMismatch { expected, actual } => {
                ApiError::new(Code::SizeInvalid, "provided length did not match content length")
                    .with_detail(json!({ "expected": expected, "actual": actual }))
            }
            StorageError::UploadOffset { length, offset } => ApiError::new(
                Code::BlobUploadInvalid,
                format!("chunk starts at {offset} but the upload has {length} bytes"),
            )
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
            .with_header(http::header::RANGE, upload_range(length)),
            StorageError::UploadBusy { .. } => {
                ApiError::new(Code::TooManyRequests, "another request is writing to this upload")
                    .with_header(http::header::RETRY_AFTER, "1")
            }
            StorageError::Input(source) => ApiError::new(Code::BlobUploadInvalid, "the request body ended early")
                .with_detail(json!({
                    "cause": source.to_string()
                })),
            // Known down: say so at once, and when to try again (another replica may answer).
            StorageError::Unavailable { .. } => {
                ApiError::new(Code::Unavailable, "storage is unavailable").with_header(http::header::RETRY_AFTER, "1")
            }
            other => ApiError::internal(ErrorChain(&other)),
        }
    }
}

/// Displays an error with its whole `source` chain.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// The `Range` value for an upload of `length` bytes: `0-<last byte>` (no `bytes=`, as Docker's
/// client parses it), `0-0` when empty.
pub fn upload_range(length: u64) -> String {
    format!("0-{}", length.saturating_sub(1))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ErrorBody {
            code,
            status,
            message,
            detail,
            headers,
            internal,
        } = *self.0;
        let mut entry = json!({ "code": code.as_str(), "message": message });
        if let Some(detail) = detail {
            entry["detail"] = detail;
        }
        let mut response = (status, Json(json!({ "errors": [entry] }))).into_response();
        response.headers_mut().extend(headers);
        if let Some(internal) = internal {
            response.extensions_mut().insert(InternalCause(internal));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_map_to_spec_codes_and_statuses() {
        let d = strata_storage::digest::sha256(b"a");
        let cases: Vec<(StorageError, &str, u16)> = vec![
            (
                StorageError::DigestMismatch {
                    expected: d.clone(),
                    actual: d,
                },
                "DIGEST_INVALID",
                400,
            ),
            (
                StorageError::SizeMismatch { expected: 1, actual: 2 },
                "SIZE_INVALID",
                400,
            ),
            (
                StorageError::UploadOffset { length: 10, offset: 3 },
                "BLOB_UPLOAD_INVALID",
                416,
            ),
            (StorageError::RangeNotSatisfiable { size: 5 }, "RANGE_INVALID", 416),
            (StorageError::Config("x".into()), "UNKNOWN", 500),
            (
                StorageError::Unavailable {
                    backend: "s3",
                    reason: "down".into(),
                },
                "UNAVAILABLE",
                503,
            ),
        ];
        for (e, code, status) in cases {
            let api = ApiError::from(e);
            assert_eq!((api.code.as_str(), api.status.as_u16()), (code, status));
        }
        let api = ApiError::from(StorageError::UploadOffset { length: 10, offset: 3 });
        assert_eq!(api.headers.get("range").unwrap(), "0-9");
        assert_eq!(upload_range(0), "0-0");
    }

    #[test]
    fn internal_detail_stays_out_of_the_body() {
        let response = ApiError::internal("disk on fire at /secret/path").into_response();
        assert_eq!(response.status(), 500);
        assert!(
            response
                .extensions()
                .get::<InternalCause>()
                .unwrap()
                .0
                .contains("/secret/path")
        );
    }
}
