//! The registries this one caches (`[[upstream]]`): which local repositories mirror which
//! upstream repository, and a client for each upstream (`strata_distribution`, with its token
//! flow). The fetching itself is `handlers::proxy`'s.
//!
//! A local repository `<prefix>/<name>` mirrors `<name>` of the upstream with that prefix; a
//! request for `<name>` with `?ns=<upstream name>` (containerd and docker mirrors) is the same
//! local repository. Docker Hub's one-component names get `library/` upstream, as docker's do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_distribution::Credentials;
use strata_distribution::registry::{ClientOptions, RegistryClient};
use strata_storage::{Digest, RepositoryName};

use crate::config;

/// One upstream registry.
#[derive(Debug)]
pub struct Upstream {
    /// Its name (`docker.io`).
    pub name: String,
    /// The first component of the local repositories that mirror it.
    pub prefix: String,
    /// How long a cached tag is served before it is checked again.
    pub tag_ttl: Duration,
    /// Whether pulls fetch what is not cached.
    pub on_demand: bool,
    /// What to keep cached on a schedule.
    pub sync: Vec<Sync>,
    /// The client that reaches it.
    pub client: RegistryClient,
    /// Blobs being fetched now: one download per blob in this process.
    fetching: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

impl Upstream {
    /// The gate of blob `digest`: whoever holds it fetches the blob; the others wait and then
    /// find it stored.
    pub fn gate(&self, digest: &Digest) -> Arc<tokio::sync::Mutex<()>> {
        self.fetching
            .lock()
            .expect("fetching")
            .entry(digest.clone())
            .or_default()
            .clone()
    }

    /// Forgets the gate of `digest` once its fetch ended.
    pub fn done(&self, digest: &Digest) {
        self.fetching.lock().expect("fetching").remove(digest);
    }
}

/// A compiled `sync` rule.
#[derive(Debug)]
pub struct Sync {
    /// Upstream repository names.
    pub repositories: Vec<RepositoryName>,
    /// Tags to keep (none: all).
    pub tags: Option<regex::Regex>,
    /// How often.
    pub every: Duration,
}

/// Every configured upstream.
#[derive(Debug, Default)]
pub struct Upstreams {
    list: Vec<Upstream>,
}

impl Upstreams {
    /// Clients for `configs`; a bad entry (URL, prefix, unreadable password file) is a
    /// configuration error naming it.
    pub fn new(configs: &[config::Upstream]) -> Result<Self, String> {
        let mut list: Vec<Upstream> = Vec::new();
        for c in configs {
            let what = format!("[[upstream]] {:?}", c.name);
            let url = url::Url::parse(&c.url).map_err(|e| format!("{what}: url {:?}: {e}", c.url))?;
            let host = match (url.host_str(), url.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                (None, _) => return Err(format!("{what}: url {:?} has no host", c.url)),
            };
            if RepositoryName::parse(&c.prefix).is_err() || c.prefix.contains('/') {
                return Err(format!(
                    "{what}: prefix {:?} must be one repository-name component",
                    c.prefix
                ));
            }
            if list.iter().any(|u| u.prefix == c.prefix || u.name == c.name) {
                return Err(format!("{what}: name and prefix must be unique"));
            }
            let credentials = match (&c.username, &c.password_file) {
                (Some(user), Some(file)) => Some(Credentials {
                    username: user.clone(),
                    secret: std::fs::read_to_string(file)
                        .map_err(|e| format!("{what}: password_file {}: {e}", file.display()))?
                        .trim_end_matches(['\n', '\r'])
                        .to_owned(),
                }),
                (None, None) => None,
                _ => return Err(format!("{what}: set username and password_file together")),
            };
            let options = ClientOptions {
                plain_http: url.scheme() == "http",
                attempts: 2,
                ..ClientOptions::default()
            };
            let client = RegistryClient::new(&host, credentials, options).map_err(|e| format!("{what}: {e}"))?;
            let mut sync = Vec::new();
            for rule in &c.sync {
                let repositories = rule
                    .repositories
                    .iter()
                    .map(|r| RepositoryName::parse(r).map_err(|e| format!("{what}: sync repository {r:?}: {e}")))
                    .collect::<Result<_, _>>()?;
                let tags = rule
                    .tags
                    .as_deref()
                    .map(regex::Regex::new)
                    .transpose()
                    .map_err(|e| format!("{what}: sync tags: {e}"))?;
                sync.push(Sync {
                    repositories,
                    tags,
                    every: rule.every.max(Duration::from_secs(1)),
                });
            }
            list.push(Upstream {
                name: c.name.clone(),
                prefix: c.prefix.clone(),
                tag_ttl: c.tag_ttl,
                on_demand: c.on_demand,
                sync,
                client,
                fetching: Mutex::default(),
            });
        }
        Ok(Upstreams { list })
    }

    /// The upstream `local` mirrors, and the repository's name there.
    pub fn route(&self, local: &RepositoryName) -> Option<(&Upstream, RepositoryName)> {
        let (first, rest) = local.as_str().split_once('/')?;
        let upstream = self.list.iter().find(|u| u.prefix == first)?;
        let remote = if upstream.name == strata_distribution::DOCKER_HUB && !rest.contains('/') {
            format!("library/{rest}")
        } else {
            rest.to_owned()
        };
        Some((upstream, RepositoryName::parse(&remote).ok()?))
    }

    /// The local repository that mirrors `name` of the upstream called `ns`.
    pub fn local_name(&self, ns: &str, name: &RepositoryName) -> Option<RepositoryName> {
        let upstream = self.list.iter().find(|u| u.name == ns)?;
        RepositoryName::parse(&format!("{}/{name}", upstream.prefix)).ok()
    }

    /// Every upstream.
    pub fn iter(&self) -> impl Iterator<Item = &Upstream> {
        self.list.iter()
    }

    /// Whether any upstream is configured.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstreams() -> Upstreams {
        Upstreams::new(&[
            config::Upstream {
                name: "docker.io".into(),
                url: "https://registry-1.docker.io".into(),
                prefix: "dockerhub".into(),
                username: None,
                password_file: None,
                tag_ttl: Duration::from_secs(600),
                on_demand: true,
                sync: Vec::new(),
            },
            config::Upstream {
                name: "ghcr.io".into(),
                url: "https://ghcr.io".into(),
                prefix: "ghcr".into(),
                username: None,
                password_file: None,
                tag_ttl: Duration::from_secs(600),
                on_demand: true,
                sync: Vec::new(),
            },
        ])
        .unwrap()
    }

    fn name(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    #[test]
    fn local_repositories_map_to_upstream_ones() {
        let u = upstreams();
        let (up, remote) = u.route(&name("dockerhub/busybox")).unwrap();
        assert_eq!((up.name.as_str(), remote.as_str()), ("docker.io", "library/busybox"));
        let (up, remote) = u.route(&name("ghcr/org/app")).unwrap();
        assert_eq!((up.name.as_str(), remote.as_str()), ("ghcr.io", "org/app"));
        assert!(u.route(&name("mine/app")).is_none());
        assert!(u.route(&name("dockerhub")).is_none());
        assert_eq!(
            u.local_name("docker.io", &name("library/busybox")).unwrap().as_str(),
            "dockerhub/library/busybox"
        );
        assert!(u.local_name("quay.io", &name("x")).is_none());
    }
}
