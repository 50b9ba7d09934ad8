//! Validated names from the OCI Distribution grammar: [`RepositoryName`], [`Tag`], and our own
//! [`UploadId`]. Parsed once at the edge; [`crate::layout`] builds keys only from these.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Longest repository name we accept.
pub const MAX_NAME_LEN: usize = 255;

/// A repository name: `/`-separated components matching
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, at most 255 characters in all.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Validates a repository name.
    pub fn parse(value: &str) -> Result<Self> {
        let invalid = |reason| Error::invalid("repository name", value, reason);
        if value.is_empty() {
            return Err(invalid("empty"));
        }
        if value.len() > MAX_NAME_LEN {
            return Err(invalid("longer than 255 characters"));
        }
        for component in value.split('/') {
            if !is_path_component(component) {
                return Err(invalid(
                    "a path component does not match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*",
                ));
            }
        }
        Ok(RepositoryName(value.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        let sep_start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[sep_start..i];
        let dashes = !sep.is_empty() && sep.bytes().all(|c| c == b'-');
        if !(sep == "." || sep == "_" || sep == "__" || dashes) {
            return false;
        }
    }
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(String);

impl Tag {
    /// Validates a tag.
    pub fn parse(value: &str) -> Result<Self> {
        let b = value.as_bytes();
        let word = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
        let ok = !b.is_empty()
            && b.len() <= 128
            && word(&b[0])
            && b[1..].iter().all(|c| word(c) || *c == b'.' || *c == b'-');
        if !ok {
            return Err(Error::invalid(
                "tag",
                value,
                "does not match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}",
            ));
        }
        Ok(Tag(value.to_owned()))
    }

    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id of an upload session: what a registry puts in `Location`, so it arrives back from the
/// network and is validated like any other name (`[A-Za-z0-9_-]{1,64}`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UploadId(String);

impl UploadId {
    /// A fresh random id (a UUID v4).
    pub fn random() -> Self {
        UploadId(uuid::Uuid::new_v4().to_string())
    }

    /// Validates an upload id.
    pub fn parse(value: &str) -> Result<Self> {
        let ok = !value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if !ok {
            return Err(Error::invalid("upload id", value, "does not match [A-Za-z0-9_-]{1,64}"));
        }
        Ok(UploadId(value.to_owned()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype_impls {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
        impl FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    )*};
}
string_newtype_impls!(RepositoryName, Tag, UploadId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_spec_grammar() {
        for ok in [
            "a",
            "library/busybox",
            "a.b/c__d/e---f/g_h",
            "0/1/2",
            "windows/servercore",
        ] {
            assert!(RepositoryName::parse(ok).is_ok(), "{ok}");
        }
        let long = format!("a/{}", "b".repeat(254));
        for bad in [
            "", "A", "a//b", "/a", "a/", "a..b", "a___b", "-a", "a-", "a_.b", "../x", "a b", &long,
        ] {
            assert!(RepositoryName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(RepositoryName::parse(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn tags_follow_the_spec_grammar() {
        for ok in ["latest", "v1.2.3", "_x", "A-b_c.d", &"t".repeat(128)] {
            assert!(Tag::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", &"t".repeat(129)] {
            assert!(Tag::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn upload_ids_are_safe_path_segments() {
        let id = UploadId::random();
        assert_eq!(UploadId::parse(id.as_str()).unwrap(), id);
        for bad in ["", "..", "a/b", "a.b", &"x".repeat(65)] {
            assert!(UploadId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
