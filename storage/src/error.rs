//! The error type of the storage crate.
//!
//! Callers match on a handful of variants that mean something to them (`NotFound`,
//! `DigestMismatch`, `RangeNotSatisfiable`, ...). What went wrong inside a backend is kept in the
//! `source` chain of [`Error::Io`] and [`Error::Backend`], never in the message a registry client
//! sees.

use std::fmt;

use crate::Digest;

/// A boxed error from below us (an SDK, a caller's stream).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the storage layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No object (or upload) exists at this key.
    #[error("not found: {key}")]
    NotFound {
        /// The key that was looked up.
        key: String,
    },

    /// A key, name, tag or id failed validation; nothing was touched.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What was being validated ("key", "repository name", "tag", ...).
        what: &'static str,
        /// The offending input, truncated for display.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A digest string that does not parse, or uses an algorithm we do not store.
    #[error("invalid digest {value:?}: {reason}")]
    InvalidDigest {
        /// The offending input.
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A `Range` value that does not parse (a syntax error, not an unsatisfiable range).
    #[error("invalid range {value:?}")]
    InvalidRange {
        /// The offending input.
        value: String,
    },

    /// The range does not overlap the object (HTTP 416).
    #[error("range not satisfiable for an object of {size} bytes")]
    RangeNotSatisfiable {
        /// Size of the whole object.
        size: u64,
    },

    /// Content hashed to a different digest than announced; nothing was published.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the caller announced.
        expected: Digest,
        /// The digest of the bytes actually received.
        actual: Digest,
    },

    /// Content had a different length than announced; nothing was published.
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The size the caller announced.
        expected: u64,
        /// The number of bytes actually received (a lower bound when the stream was cut short).
        actual: u64,
    },

    /// An append to an upload did not start at the upload's current length.
    #[error("upload offset mismatch: upload has {length} bytes, append started at {offset}")]
    UploadOffset {
        /// Current committed length of the upload.
        length: u64,
        /// Offset the caller tried to append at.
        offset: u64,
    },

    /// Another writer is appending to this upload right now.
    #[error("upload {key} is busy: another append is in progress")]
    UploadBusy {
        /// Home key of the upload.
        key: String,
    },

    /// An object or upload already exists where a new one was to be created.
    #[error("already exists: {key}")]
    AlreadyExists {
        /// The key that is taken.
        key: String,
    },

    /// The storage configuration is unusable.
    #[error("storage configuration: {0}")]
    Config(String),

    /// The caller's input stream failed; nothing was published.
    #[error("input stream failed")]
    Input(#[source] BoxError),

    /// A local filesystem operation failed.
    #[error("{op} {path}")]
    Io {
        /// What we were doing, as a verb phrase ("create temp file").
        op: &'static str,
        /// The path involved.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The caller refused to go on after seeing an upload's state (its own reason is with it).
    #[error("refused: {reason}")]
    Refused {
        /// Why.
        reason: String,
    },

    /// The storage does not answer: every endpoint failed its last health probe (requests fail
    /// at once instead of waiting out retries), or a probe got no answer in time.
    #[error("{backend} storage unavailable: {reason}")]
    Unavailable {
        /// Which backend ("s3").
        backend: &'static str,
        /// What the probes saw.
        reason: String,
    },

    /// A remote backend operation failed.
    #[error("{backend} {op} {key}")]
    Backend {
        /// Which backend ("s3").
        backend: &'static str,
        /// The operation ("PutObject").
        op: &'static str,
        /// The key involved.
        key: String,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Whether this error means "there is nothing at this key".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    pub(crate) fn invalid(what: &'static str, value: &str, reason: &'static str) -> Self {
        Error::Invalid {
            what,
            value: truncate(value),
            reason,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.to_string(),
            source,
        }
    }

    /// Wraps a failure of a caller's input stream (a dropped HTTP body, a read error).
    pub fn input(source: impl Into<BoxError>) -> Self {
        Error::Input(source.into())
    }
}

/// Keeps hostile inputs from flooding logs.
fn truncate(value: &str) -> String {
    const MAX: usize = 80;
    if value.len() <= MAX {
        return value.to_owned();
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &value[..end])
}
