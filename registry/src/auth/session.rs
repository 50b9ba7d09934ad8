//! Browser sign-ins for the web UI: a cookie that names the user and when the sign-in ends,
//! signed (HMAC-SHA256) with a key every replica derives from the token service's signing key
//! (or, without the built-in token service, a random key of this process), and the CSRF token
//! that forms must carry, derived from the cookie.
//!
//! The cookie is `HttpOnly`, `SameSite=Strict` and, over TLS, `Secure`; its value is
//! `<base64url user>.<expiry seconds>.<base64url mac>`. A user removed from the htpasswd file
//! is signed out at once (the caller checks that the user still exists).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;

/// The name of the session cookie.
pub const COOKIE: &str = "strata_session";

/// Signs and checks session cookies and CSRF tokens.
pub struct Sessions {
    key: hmac::Key,
    ttl: Duration,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Sessions {
    /// Sessions signed with a key derived from `secret` (shared by replicas), or a random one.
    pub fn new(secret: Option<[u8; 32]>, ttl: Duration) -> Self {
        let secret = secret.unwrap_or_else(rand::random);
        let mut material = b"strata ui sessions\0".to_vec();
        material.extend_from_slice(&secret);
        Sessions {
            key: hmac::Key::new(hmac::HMAC_SHA256, &material),
            ttl,
        }
    }

    /// How long a sign-in lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A cookie value for `user`, good for the session lifetime.
    pub fn issue(&self, user: &str) -> String {
        let payload = format!("{}.{}", B64.encode(user), now() + self.ttl.as_secs());
        let mac = hmac::sign(&self.key, payload.as_bytes());
        format!("{payload}.{}", B64.encode(mac.as_ref()))
    }

    /// The user a cookie value names, if it is ours, intact and not expired.
    pub fn verify(&self, value: &str) -> Option<String> {
        if value.len() > 1024 {
            return None;
        }
        let (payload, mac) = value.rsplit_once('.')?;
        let mac = B64.decode(mac).ok()?;
        hmac::verify(&self.key, payload.as_bytes(), &mac).ok()?;
        let (user, expiry) = payload.split_once('.')?;
        let expiry: u64 = expiry.parse().ok()?;
        if now() >= expiry {
            return None;
        }
        String::from_utf8(B64.decode(user).ok()?).ok()
    }

    /// The CSRF token of a session (none: of anonymous visitors). Only a page the browser
    /// loaded from the registry can know it.
    pub fn csrf(&self, session: Option<&str>) -> String {
        B64.encode(hmac::sign(&self.key, &csrf_message(session)).as_ref())
    }

    /// Whether `token` is the CSRF token of `session` (checked in constant time).
    pub fn csrf_matches(&self, session: Option<&str>, token: &str) -> bool {
        B64.decode(token)
            .is_ok_and(|mac| hmac::verify(&self.key, &csrf_message(session), &mac).is_ok())
    }

    /// The `Set-Cookie` value that signs in with `value` (`secure` over TLS).
    pub fn set_cookie(&self, value: &str, secure: bool) -> String {
        format!(
            "{COOKIE}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
            self.ttl.as_secs(),
            if secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that signs out.
    pub fn clear_cookie(secure: bool) -> String {
        format!(
            "{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
            if secure { "; Secure" } else { "" }
        )
    }
}

fn csrf_message(session: Option<&str>) -> Vec<u8> {
    format!("csrf\0{}", session.unwrap_or("")).into_bytes()
}

/// The session cookie's value among a request's `Cookie` headers.
pub fn cookie(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_name_their_user_until_they_expire_and_cannot_be_forged() {
        let sessions = Sessions::new(Some([7; 32]), Duration::from_secs(60));
        let value = sessions.issue("alice.b");
        assert_eq!(sessions.verify(&value).as_deref(), Some("alice.b"));
        // Another replica with the same key accepts it; one with another key does not.
        assert!(
            Sessions::new(Some([7; 32]), Duration::from_secs(60))
                .verify(&value)
                .is_some()
        );
        assert!(
            Sessions::new(Some([8; 32]), Duration::from_secs(60))
                .verify(&value)
                .is_none()
        );
        // A changed user or expiry breaks the signature.
        let (_, rest) = value.split_once('.').unwrap();
        assert!(sessions.verify(&format!("{}.{rest}", B64.encode("admin"))).is_none());
        let parts: Vec<&str> = value.split('.').collect();
        assert!(
            sessions
                .verify(&format!("{}.{}.{}", parts[0], u64::MAX, parts[2]))
                .is_none()
        );
        // Expired.
        let short = Sessions::new(Some([7; 32]), Duration::ZERO);
        assert!(short.verify(&short.issue("alice")).is_none());
        assert!(sessions.verify("garbage").is_none());
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let sessions = Sessions::new(None, Duration::from_secs(60));
        let a = sessions.issue("alice");
        let token = sessions.csrf(Some(&a));
        assert!(sessions.csrf_matches(Some(&a), &token));
        assert!(!sessions.csrf_matches(None, &token));
        assert!(!sessions.csrf_matches(Some(&sessions.issue("bob")), &token));
        assert!(!sessions.csrf_matches(Some(&a), ""));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = http::HeaderMap::new();
        headers.append(http::header::COOKIE, "a=1; strata_session=xyz; b=2".parse().unwrap());
        assert_eq!(cookie(&headers), Some("xyz"));
    }
}
