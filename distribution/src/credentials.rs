//! A username and a secret, as docker's config and credential helpers hold them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// A username and a secret. A username of `<token>` means the secret is an identity (refresh)
/// token for the OAuth2 token flow.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name (or `<token>`).
    pub username: String,
    /// Password or token.
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("secret", &"***")
            .finish()
    }
}

impl Credentials {
    /// The `Authorization: Basic` value.
    pub fn basic(&self) -> String {
        format!("Basic {}", BASE64.encode(format!("{}:{}", self.username, self.secret)))
    }
}
