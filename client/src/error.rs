//! [`ClientError`] and the exit code each kind maps to: 0 ok, 1 error, 2 usage, 3 not found,
//! 4 authentication, 5 integrity, 6 refused content.

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
    /// A layer verified against its digest but breaks the rules of its format or tries to write
    /// outside its directory; nothing of it was kept.
    #[error("layer {digest} is refused: {reason}")]
    BadLayer {
        /// The layer blob.
        digest: String,
        /// What is wrong with it (names the entry).
        reason: String,
    },
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
    /// A manifest, index or config that does not parse, a platform that does not, or an index
    /// with nothing for the platform.
    #[error(transparent)]
    Image(#[from] strata_storage::oci::OciError),
    /// A registry (or a foreign layer's URL) answered what the protocol does not allow.
    #[error("{0}")]
    Protocol(String),
    /// Docker's `config.json` (credentials) is malformed.
    #[error("{0}")]
    Config(String),
    /// The layer store.
    #[cfg(feature = "runtime")]
    #[error(transparent)]
    Layers(strata_runtime::store::StoreError),
    /// Containers and volumes (a record that does not parse).
    #[cfg(feature = "runtime")]
    #[error(transparent)]
    Containers(strata_runtime::container::ContainerError),
    /// A registry hive of a Windows image could not be read, or a registry path or value
    /// given is not valid.
    #[cfg(feature = "runtime")]
    #[error("registry: {0}")]
    Hive(#[from] strata_hive::HiveError),
    /// An error with every cause spelled out and advice after it ([`ClientError::advise`]).
    #[error("{message}")]
    Advised {
        /// The original message, its causes, and the advice.
        message: String,
        /// The original's exit code.
        code: i32,
    },
}

impl ClientError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Usage(_) => 2,
            ClientError::NotFound(_) => 3,
            ClientError::Auth(_) => 4,
            ClientError::Integrity(_) => 5,
            ClientError::BadLayer { .. } => 6,
            ClientError::Advised { code, .. } => *code,
            #[cfg(feature = "runtime")]
            ClientError::Hive(strata_hive::HiveError::Invalid(_)) => 2,
            ClientError::Image(strata_storage::oci::OciError::Platform { .. }) => 2,
            ClientError::Image(strata_storage::oci::OciError::NoMatch { .. }) => 3,
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

    /// The message with every underlying cause that adds something (`error sending request …:
    /// tcp connect error: Connection refused`), for one line on stderr.
    pub fn chain(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        message
    }

    /// This error followed by `advice`, keeping its exit code.
    pub fn advise(self, advice: &str) -> Self {
        ClientError::Advised {
            message: format!("{}; {advice}", self.chain()),
            code: self.exit_code(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ClientError::Io {
            context: context.into(),
            source,
        }
    }

    /// A background task that stopped without finishing (cancelled; panics are resumed).
    pub(crate) fn stopped(what: &str, e: tokio::task::JoinError) -> Self {
        ClientError::io(what, std::io::Error::other(e))
    }
}

impl From<strata_storage::oci::LayoutError> for ClientError {
    fn from(e: strata_storage::oci::LayoutError) -> Self {
        use strata_storage::oci::LayoutError;
        match e {
            LayoutError::Io { context, source } => ClientError::Io { context, source },
            LayoutError::NotFound(what) => ClientError::NotFound(what),
            LayoutError::Storage(e) => e.into(),
            LayoutError::Image(e) => ClientError::Image(e),
        }
    }
}

impl From<strata_distribution::DistributionError> for ClientError {
    fn from(e: strata_distribution::DistributionError) -> Self {
        use strata_distribution::DistributionError as D;
        match e {
            D::NotFound(what) => ClientError::NotFound(what),
            D::Auth(why) => ClientError::Auth(why),
            D::Integrity(why) => ClientError::Integrity(why),
            D::Registry {
                method,
                url,
                status,
                message,
            } => ClientError::Registry {
                method,
                url,
                status,
                message,
            },
            D::Network { context, source } => ClientError::Network { context, source },
            D::Io { context, source } => ClientError::Io { context, source },
            D::Protocol(why) => ClientError::Protocol(why),
            other => ClientError::Protocol(other.to_string()),
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
