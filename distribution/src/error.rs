//! [`DistributionError`]: why a request to a registry failed.

/// Result alias.
pub type Result<T, E = DistributionError> = std::result::Result<T, E>;

/// Why a request to a registry failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DistributionError {
    /// What was asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Signing in failed.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// Content does not match its digest or size.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// The registry answered with an error.
    #[error("{method} {url}: {status} {message}")]
    Registry {
        /// Request method.
        method: String,
        /// Request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The registry's message (its error codes and messages, or the body).
        message: String,
    },
    /// The connection failed.
    #[error("{context}: {source}")]
    Network {
        /// What was being done.
        context: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// A local file could not be read.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The registry broke the protocol.
    #[error("{0}")]
    Protocol(String),
}

impl DistributionError {
    /// The error and its causes on one line.
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

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DistributionError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn network(context: impl Into<String>, source: reqwest::Error) -> Self {
        DistributionError::Network {
            context: context.into(),
            source,
        }
    }
}
