//! What every request handler and background task shares: [`AppState`].

use std::sync::Arc;

use regex::Regex;
use strata_storage::{Backend, BlobStore};

use crate::auth::Auth;
use crate::cache::ManifestCache;
use crate::config::{Config, ForeignLayers};
use crate::limits::BodyBudget;
use crate::meta::Metadata;
use crate::metrics::Metrics;
use crate::tls::TlsState;

/// Memory for cached manifest bytes.
const MANIFEST_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Everything a request handler needs. Built once per process; replicas share only storage.
#[derive(Debug)]
pub struct AppState {
    /// The configuration the registry runs with.
    pub config: Config,
    /// Blob content.
    pub blobs: BlobStore,
    /// Repository metadata.
    pub meta: Metadata,
    /// Compiled foreign-layer URL policy.
    pub foreign: ForeignPolicy,
    /// Request and upload metrics.
    pub metrics: Arc<Metrics>,
    /// Recently read or written manifests, by digest.
    pub manifests: ManifestCache,
    /// What manifest references resolved to lately (bounded staleness across replicas).
    pub references: crate::cache::ReferenceCache,
    /// Memory for request bodies held whole (manifests), across all requests.
    pub bodies: BodyBudget,
    /// Access control (`None`: everyone may do everything).
    pub auth: Option<Arc<Auth>>,
    /// TLS for the listener (`None`: plain HTTP).
    pub tls: Option<Arc<TlsState>>,
    /// What the last storage probe found (`/readyz`).
    pub readiness: crate::health::Readiness,
    /// Web UI sign-ins and CSRF tokens.
    pub sessions: crate::auth::session::Sessions,
    /// The registries this one caches.
    pub upstreams: crate::upstream::Upstreams,
}

/// Shared state handle.
pub type SharedState = Arc<AppState>;

/// Compiled `[foreign_layers]` patterns.
#[derive(Debug, Clone)]
pub struct ForeignPolicy {
    allow: Vec<Regex>,
    deny: Vec<Regex>,
    fetch: Vec<Regex>,
}

impl ForeignPolicy {
    /// Compiles the patterns; an invalid one is a configuration error naming it.
    pub fn new(config: &ForeignLayers) -> Result<Self, String> {
        let compile = |patterns: &[String]| {
            patterns
                .iter()
                .map(|p| Regex::new(p).map_err(|e| format!("foreign_layers pattern {p:?}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(ForeignPolicy {
            allow: compile(&config.allow)?,
            deny: compile(&config.deny)?,
            fetch: compile(&config.fetch)?,
        })
    }

    /// Whether a layer with these URLs may be referenced without its blob.
    pub fn allows(&self, urls: &[String]) -> bool {
        !urls.is_empty()
            && urls
                .iter()
                .all(|u| self.allow.iter().any(|r| r.is_match(u)) && !self.denies(u))
    }

    /// Whether the pull-through cache may download a foreign layer from `url`.
    pub fn fetches(&self, url: &str) -> bool {
        self.fetch.iter().any(|r| r.is_match(url)) && !self.denies(url)
    }

    /// Whether the pull-through cache may download foreign layers at all.
    pub fn fetches_any(&self) -> bool {
        !self.fetch.is_empty()
    }

    fn denies(&self, url: &str) -> bool {
        self.deny.iter().any(|r| r.is_match(url))
    }
}

impl AppState {
    /// State over an already opened backend.
    pub fn new(config: Config, backend: Arc<dyn Backend>) -> Result<SharedState, String> {
        let foreign = ForeignPolicy::new(&config.foreign_layers)?;
        let auth = Auth::open(&config)?;
        let tls = config.tls.as_ref().map(TlsState::open).transpose()?.map(Arc::new);
        let secret = auth.as_ref().and_then(|a| a.tokens()).and_then(|t| t.derived_secret());
        let sessions = crate::auth::session::Sessions::new(secret, config.ui.session_ttl);
        let upstreams = crate::upstream::Upstreams::new(&config.upstreams)?;
        Ok(Arc::new(AppState {
            auth,
            tls,
            blobs: BlobStore::new(backend.clone()),
            meta: Metadata::new(backend),
            foreign,
            metrics: Arc::default(),
            manifests: ManifestCache::new(MANIFEST_CACHE_BYTES),
            references: crate::cache::ReferenceCache::new(config.server.reference_cache_ttl),
            bodies: BodyBudget::new(config.limits.buffered_body_bytes),
            readiness: Default::default(),
            sessions,
            upstreams,
            config,
        }))
    }

    /// Opens the configured storage and builds the state.
    pub async fn open(config: Config) -> anyhow::Result<SharedState> {
        let backend = config.storage.open().await?;
        AppState::new(config, backend).map_err(anyhow::Error::msg)
    }
}
