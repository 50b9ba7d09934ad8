//! Image references with docker's grammar and normalization: `busybox` is
//! `docker.io/library/busybox:latest`, the first component is a registry when it has a `.` or a
//! `:` or is `localhost`, and a digest wins over a tag. Errors name the part that is wrong.

use std::fmt;
use std::str::FromStr;

use strata_storage::{Digest, RepositoryName, Tag, digest::parse_digest};

use crate::error::{ClientError, Result};

pub use strata_distribution::{DOCKER_HUB, DOCKER_HUB_API};

/// A fully qualified image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host, with port if any (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// Repository (`library/busybox`).
    pub repository: RepositoryName,
    /// Tag, if one was given (or `latest` when neither tag nor digest was).
    pub tag: Option<Tag>,
    /// Digest, if one was given; it wins over the tag.
    pub digest: Option<Digest>,
}

fn bad(input: &str, part: &str, why: impl fmt::Display) -> ClientError {
    ClientError::Usage(format!("invalid reference {input:?}: {part}: {why}"))
}

fn is_registry(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(']') || host.starts_with('[') => (n, Some(p)),
        _ => (host, None),
    };
    let name_ok = if name.starts_with('[') && name.ends_with(']') {
        name[1..name.len() - 1].parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !name.is_empty()
            && name
                .split('.')
                .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    name_ok && port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok())
}

impl Reference {
    /// Parses and normalizes a docker-style reference.
    pub fn parse(input: &str) -> Result<Self> {
        if input.is_empty() {
            return Err(bad(input, "reference", "empty"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => (rest, Some(parse_digest(d).map_err(|e| bad(input, "digest", e))?)),
            None => (input, None),
        };
        // A tag follows the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if is_registry(first) => (first.to_owned(), path.to_owned()),
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_owned(),
            _ => registry,
        };
        if !valid_host(&registry) {
            return Err(bad(input, "registry", format!("{registry:?} is not a host[:port]")));
        }
        let path = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad(input, "repository", "must be lowercase"));
        }
        let repository = RepositoryName::parse(&path).map_err(|e| bad(input, "repository", e))?;
        let tag = match tag {
            Some(t) => Some(Tag::parse(t).map_err(|e| bad(input, "tag", e))?),
            None if digest.is_none() => Some(Tag::parse("latest").expect("valid tag")),
            None => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the digest if there is one, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".into(),
        }
    }

    /// The host to send API requests to (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: Tag) -> Self {
        Reference {
            tag: Some(tag),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository at `digest`.
    pub fn with_digest(&self, digest: Digest) -> Self {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Self> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_normalization() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("library/busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(norm("index.docker.io/user/app"), "docker.io/user/app:latest");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("localhost:5000/a/b:v1"), "localhost:5000/a/b:v1");
        assert_eq!(norm("127.0.0.1:5000/app"), "127.0.0.1:5000/app:latest");
        assert_eq!(norm("[::1]:5000/app:v"), "[::1]:5000/app:v");
        assert_eq!(
            norm("mcr.microsoft.com/windows/servercore:ltsc2022"),
            "mcr.microsoft.com/windows/servercore:ltsc2022"
        );
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = Reference::parse(&format!("ghcr.io/a/b:v1@{d}")).unwrap();
        assert_eq!(r.manifest_reference(), d, "digest wins over tag");
        assert_eq!(Reference::parse(&format!("b@{d}")).unwrap().tag, None);
        assert_eq!(Reference::parse("busybox").unwrap().api_host(), "registry-1.docker.io");
    }

    #[test]
    fn errors_name_the_bad_part() {
        for (input, part) in [
            ("", "reference"),
            ("Busybox", "repository"),
            ("a/b:-tag", "tag"),
            ("a@sha256:xyz", "digest"),
            ("bad_host:99999/a", "registry"),
            ("a//b", "repository"),
        ] {
            let err = Reference::parse(input).unwrap_err().to_string();
            assert!(err.contains(part), "{input:?}: {err}");
        }
    }
}
