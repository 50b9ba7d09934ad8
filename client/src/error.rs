//! [`ClientError`] and the exit code each kind maps to: 0 ok, 1 error, 2 usage, 3 not found,
//! 4 authentication, 5 integrity.

/// Result alias for this crate.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// What can go wrong talking to registries and local stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The user asked for something malformed (a bad reference, a bad flag value).
    #[error("{0}")]
    Usage(String),
    /// The image, tag, repository or blob does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The registry refused our credentials, or we have none it accepts.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// Content did not match its digest or size; nothing was stored.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// The registry answered with an error.
    #[error("{method} {url}: {status} {message}")]
    Registry {
        /// Request method.
        method: String,
        /// Request URL (without credentials).
        url: String,
        /// HTTP status.
        status: u16,
        /// The registry's error code and message, if it sent an OCI error body.
        message: String,
    },
    /// A network failure (after retries).
    #[error("{context}: {source}")]
    Network {
        /// What we were doing.
        context: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// Local files (store, config, layouts).
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The local content store.
    #[error(transparent)]
    Storage(strata_storage::Error),
    /// Anything else, with a message.
    #[error("{0}")]
    Other(String),
}

impl ClientError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Usage(_) => 2,
            ClientError::NotFound(_) => 3,
            ClientError::Auth(_) => 4,
            ClientError::Integrity(_) => 5,
            ClientError::Registry { status: 404, .. } => 3,
            ClientError::Registry { status: 401 | 403, .. } => 4,
            ClientError::Storage(e) => match e {
                strata_storage::Error::DigestMismatch { .. } | strata_storage::Error::SizeMismatch { .. } => 5,
                strata_storage::Error::NotFound { .. } => 3,
                _ => 1,
            },
            _ => 1,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ClientError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn network(context: impl Into<String>, source: reqwest::Error) -> Self {
        ClientError::Network {
            context: context.into(),
            source,
        }
    }
}

impl From<strata_storage::Error> for ClientError {
    fn from(e: strata_storage::Error) -> Self {
        match e {
            strata_storage::Error::DigestMismatch { .. } | strata_storage::Error::SizeMismatch { .. } => {
                ClientError::Integrity(e.to_string())
            }
            other => ClientError::Storage(other),
        }
    }
}
