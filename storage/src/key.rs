//! [`Key`]: a validated object key, the only thing a backend turns into a path or an S3 key.

use std::fmt;

use crate::error::{Error, Result};

/// Longest key we accept, in bytes (S3's limit is 1024, and a backend may add a prefix).
pub const MAX_KEY_LEN: usize = 900;
/// Longest segment we accept, in bytes (a filesystem's `NAME_MAX`).
pub const MAX_SEGMENT_LEN: usize = 255;

/// An object key: `/`-separated segments, each non-empty, at most 255 bytes, made of
/// `[A-Za-z0-9._~+=@,-]` and not starting with `.`; at most 900 bytes in all.
///
/// These rules make a key safe to join under a directory (no `..`, no absolute path, no NUL, no
/// backslash) and portable between backends. Segments starting with `.` are reserved for a
/// backend's own use (the filesystem backend's temp files). Build keys with
/// [`crate::layout`]; parse untrusted text with [`Key::parse`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    /// Validates `value` as a key.
    pub fn parse(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        validate(&value).map_err(|reason| Error::invalid("key", &value, reason))?;
        Ok(Key(value))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This key followed by more segments (each validated).
    pub fn join(&self, rest: &str) -> Result<Self> {
        Key::parse(format!("{}/{rest}", self.0))
    }

    /// The segments of the key.
    pub fn segments(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }

    /// Whether `other` lies strictly below this key (`self/...`).
    pub fn is_prefix_of(&self, other: &Key) -> bool {
        other.0.len() > self.0.len() && other.0.starts_with(&self.0) && other.0.as_bytes()[self.0.len()] == b'/'
    }

    /// The part of `other` below this key, if `other` lies below it.
    pub fn relative<'a>(&self, other: &'a Key) -> Option<&'a str> {
        self.is_prefix_of(other).then(|| &other.0[self.0.len() + 1..])
    }
}

fn validate(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("empty");
    }
    if value.len() > MAX_KEY_LEN {
        return Err("longer than 900 bytes");
    }
    for segment in value.split('/') {
        if segment.is_empty() {
            return Err("empty segment (leading, trailing or double '/')");
        }
        if segment.len() > MAX_SEGMENT_LEN {
            return Err("segment longer than 255 bytes");
        }
        if segment.starts_with('.') {
            return Err("segment starts with '.'");
        }
        if !segment.bytes().all(is_key_byte) {
            return Err("character outside [A-Za-z0-9._~+=@,-]");
        }
    }
    Ok(())
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._~+=@,-".contains(&b)
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_keys_parse() {
        for k in [
            "blobs/sha256/ab/abcd",
            "repositories/library/busybox/_manifests/tags/v1.2-rc_3",
            "a",
        ] {
            assert_eq!(Key::parse(k).unwrap().as_str(), k);
        }
    }

    #[test]
    fn hostile_keys_are_rejected() {
        let long_segment = "a".repeat(256);
        let long_key = vec!["a"; 500].join("/");
        for k in [
            "",
            "..",
            "../etc/passwd",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            "a/",
            "a/./b",
            ".hidden",
            "a\0b",
            "a\\b",
            "a b",
            "é",
            long_segment.as_str(),
            long_key.as_str(),
        ] {
            assert!(Key::parse(k).is_err(), "{k:?} should be rejected");
        }
    }

    #[test]
    fn prefix_relation_respects_segment_boundaries() {
        let a = Key::parse("a/b").unwrap();
        assert!(a.is_prefix_of(&Key::parse("a/b/c").unwrap()));
        assert!(!a.is_prefix_of(&Key::parse("a/bc").unwrap()));
        assert!(!a.is_prefix_of(&a));
        assert_eq!(a.relative(&Key::parse("a/b/c/d").unwrap()), Some("c/d"));
    }
}
