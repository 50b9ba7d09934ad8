//! Registry configuration: plain data with defaults that need no file, loaded from TOML, then
//! `STRATA_*` environment variables, then command-line flags (each overriding the one before).
//! `deploy/registry.example.toml` documents every key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use strata_storage::{FsConfig, StorageConfig};

/// Everything the registry can be told.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:5000`.
    pub listen: SocketAddr,
    /// Log line format.
    pub log_format: LogFormat,
    /// Whether manifests, tags and blobs may be deleted through the API. Default on.
    pub delete_enabled: bool,
    /// Upload sessions untouched this long are purged. Default 7 days.
    #[serde(with = "humantime_serde")]
    pub upload_purge_age: Duration,
    /// How often the purge runs. Default 1 hour.
    #[serde(with = "humantime_serde")]
    pub upload_purge_interval: Duration,
    /// Where blobs and metadata live.
    pub storage: StorageConfig,
    /// Which foreign-layer URLs a manifest may reference without the blob being pushed.
    pub foreign_layers: ForeignLayers,
    /// Request limits.
    pub limits: Limits,
    /// Connections, timeouts and shutdown.
    pub server: Server,
    /// TLS for the listener (none: plain HTTP).
    pub tls: Option<Tls>,
    /// Authentication (none: everyone may do everything, which is allowed only on loopback).
    pub auth: Option<Auth>,
    /// Who may do what where: the first rule that matches both the repository and the caller
    /// gives its actions.
    pub access: Vec<AccessRule>,
    /// Online garbage collection and retention.
    pub gc: Gc,
    /// The web UI at `/ui/`.
    pub ui: Ui,
    /// Registries this one caches (pull-through): `[[upstream]]` tables.
    #[serde(rename = "upstream")]
    pub upstreams: Vec<Upstream>,
}

/// One registry this one mirrors: requests for `<prefix>/<name>` (or for `<name>` with
/// `?ns=<name of this upstream>`) are answered from the cache, fetching what is missing from
/// `url`. Cached repositories are read-only to clients.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// The registry's name in references and in containerd's `?ns=` (`docker.io`).
    pub name: String,
    /// Its API (`https://registry-1.docker.io`; `http://` for plain HTTP).
    pub url: String,
    /// The first path component of the repositories that mirror it here (`dockerhub`).
    pub prefix: String,
    /// Upstream user (with `password_file`); none: anonymous (tokens are still fetched).
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the upstream password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// How long a cached tag is served before it is checked upstream again (digests are
    /// immutable and never checked). Default 10 minutes.
    #[serde(default = "default_tag_ttl", with = "humantime_serde")]
    pub tag_ttl: Duration,
    /// Whether pulls fetch what is not cached (default on); off: only what `sync` fetched
    /// is served.
    #[serde(default = "default_on_demand")]
    pub on_demand: bool,
    /// Repositories and tags fetched ahead of pulls, on a schedule.
    #[serde(default)]
    pub sync: Vec<SyncRule>,
}

/// Tags of upstream repositories to keep cached: checked every `every` (one replica per
/// round), with everything their images need.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRule {
    /// Upstream repository names (`library/busybox`).
    pub repositories: Vec<String>,
    /// A regular expression tags must match; none: every tag.
    #[serde(default)]
    pub tags: Option<String>,
    /// How often.
    #[serde(with = "humantime_serde")]
    pub every: Duration,
}

fn default_tag_ttl() -> Duration {
    Duration::from_secs(600)
}

fn default_on_demand() -> bool {
    true
}

/// The web UI (`/ui/`, and `/` redirects there).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ui {
    /// Whether the registry serves it. Default on.
    pub enabled: bool,
    /// How long a sign-in lasts. Default 12 hours.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
}

impl Default for Ui {
    fn default() -> Self {
        Ui {
            enabled: true,
            session_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

/// Online garbage collection (see the `gc` module for how it stays safe beside pushes).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gc {
    /// How often a cycle runs; `0s` turns the background collector off. Default 1 hour.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Nothing younger than this is ever deleted. Default 24 hours.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// A digest a push used (uploaded, mounted, found with HEAD, referenced) stays protected
    /// this long, so a push in progress keeps what it relies on. Default 1 hour.
    #[serde(with = "humantime_serde")]
    pub claim_ttl: Duration,
    /// A cycle holds a lease in storage so replicas take turns; it renews it while it runs,
    /// so a collector that dies holds the others off this long at most. Default 1 minute.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Delete manifests that no tag, index or live subject reaches (after the grace period).
    /// Default off: only what deletes and retention released is collected.
    pub delete_untagged: bool,
    /// Tag retention per repository glob; the first rule whose glob matches applies.
    pub retention: Vec<Retention>,
}

impl Gc {
    /// The shortest `claim_ttl`: storage times may be whole seconds (S3), and a push must finish
    /// holding its references within half the window.
    pub const MIN_CLAIM_TTL: Duration = Duration::from_secs(4);

    /// Checks what the file cannot express: the claim window's floor, retention globs and
    /// patterns that compile, rules that keep something.
    pub fn validate(&self) -> Result<(), String> {
        if self.claim_ttl < Self::MIN_CLAIM_TTL {
            return Err(format!(
                "[gc] claim_ttl = {} is too short: at least {} (pushes are protected for that long)",
                humantime::format_duration(self.claim_ttl),
                humantime::format_duration(Self::MIN_CLAIM_TTL)
            ));
        }
        for (i, rule) in self.retention.iter().enumerate() {
            if rule.repositories.is_empty() {
                return Err(format!("[[gc.retention]] #{}: repositories is empty", i + 1));
            }
            for pattern in &rule.repositories {
                globset::GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| format!("[[gc.retention]] #{}: repository glob {pattern:?}: {e}", i + 1))?;
            }
            if let Some(pattern) = &rule.keep_tags {
                regex::Regex::new(pattern)
                    .map_err(|e| format!("[[gc.retention]] #{}: keep_tags {pattern:?}: {e}", i + 1))?;
            }
            if rule.keep_last.is_none() && rule.delete_older_than.is_none() {
                return Err(format!(
                    "[[gc.retention]] #{}: give keep_last or delete_older_than (otherwise the rule keeps every tag)",
                    i + 1
                ));
            }
        }
        Ok(())
    }
}

/// Which tags of matching repositories to keep.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Repository globs (`ci/**`).
    pub repositories: Vec<String>,
    /// Keep the N most recently pushed tags.
    pub keep_last: Option<usize>,
    /// Keep every tag matching this regular expression.
    pub keep_tags: Option<String>,
    /// Delete tags pushed longer ago than this (among those not kept above).
    #[serde(default, with = "humantime_serde")]
    pub delete_older_than: Option<Duration>,
}

impl Default for Gc {
    fn default() -> Self {
        Gc {
            interval: Duration::from_secs(3600),
            grace: Duration::from_secs(24 * 3600),
            claim_ttl: Duration::from_secs(3600),
            lease: Duration::from_secs(60),
            delete_untagged: false,
            retention: Vec::new(),
        }
    }
}

/// TLS: PEM files, reloaded on SIGHUP and when they change.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) for client certificates: mutual TLS; a verified certificate's
    /// common name is the user. Optional.
    pub client_ca: Option<PathBuf>,
}

/// How callers prove who they are.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// Users: an htpasswd file with bcrypt entries (`htpasswd -B`), reloaded when it changes.
    pub htpasswd: Option<PathBuf>,
    /// Groups: a file of `group: user, user` lines, reloaded when it changes.
    pub groups: Option<PathBuf>,
    /// What callers without credentials may do on every repository: `pull` or nothing.
    pub anonymous: Vec<Action>,
    /// The realm of `Basic` challenges.
    pub realm: String,
    /// Bearer tokens: the built-in token service, or an existing issuer's.
    pub token: Option<Token>,
    /// Failed logins allowed per client address and per user in `login_window`, after which
    /// attempts get 429 until the window passes. Default 10.
    pub max_failed_logins: u32,
    /// The window for `max_failed_logins`. Default 1 minute.
    #[serde(with = "humantime_serde")]
    pub login_window: Duration,
    /// Users who may use the admin endpoints (`/admin/gc`).
    pub admin_users: Vec<String>,
    /// Groups whose members may use the admin endpoints.
    pub admin_groups: Vec<String>,
}

/// Bearer tokens (the Docker token authentication specification).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Token {
    /// `iss` of the tokens.
    pub issuer: String,
    /// `aud` of the tokens: the name of this registry as the token service knows it.
    pub service: String,
    /// Where clients get tokens; default: `/token` on the host the client addressed.
    pub realm: Option<String>,
    /// Built-in service: the ES256 signing key (PKCS#8 PEM), generated there on first start
    /// when absent.
    pub key: Option<PathBuf>,
    /// An existing issuer's verification keys instead: a JWKS file ...
    pub jwks: Option<PathBuf>,
    /// ... or PEM certificates or public keys.
    pub certificates: Option<PathBuf>,
    /// The signing algorithm tokens must use (`ES256` or `RS256`); never taken from a token.
    pub algorithm: String,
    /// Lifetime of issued access tokens. Default 5 minutes.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Lifetime of refresh tokens (`access_type=offline`). Default 1 day.
    #[serde(with = "humantime_serde")]
    pub refresh_ttl: Duration,
    /// Clock skew tolerated on `exp` and `nbf`. Default 30 seconds.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
}

/// An action on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Read manifests, blobs, tags, referrers.
    Pull,
    /// Upload blobs and manifests (and overwrite tags).
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
}

impl Action {
    /// The name tokens and scopes use.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    /// Parses a scope action (`*` is every action).
    pub fn parse_all(value: &str) -> Vec<Action> {
        match value {
            "pull" => vec![Action::Pull],
            "push" => vec![Action::Push],
            "delete" => vec![Action::Delete],
            "*" => vec![Action::Pull, Action::Push, Action::Delete],
            _ => Vec::new(),
        }
    }
}

/// One `[[access]]` rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// Repository globs (`team-a/**`, `*/base`, `**` for all).
    pub repositories: Vec<String>,
    /// Users it applies to (`*`: every authenticated user).
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups it applies to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// What they may do.
    pub actions: Vec<Action>,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            htpasswd: None,
            groups: None,
            anonymous: Vec::new(),
            realm: "strata".into(),
            token: None,
            max_failed_logins: 10,
            login_window: Duration::from_secs(60),
            admin_users: Vec::new(),
            admin_groups: Vec::new(),
        }
    }
}

impl Default for Token {
    fn default() -> Self {
        Token {
            issuer: "strata".into(),
            service: "strata-registry".into(),
            realm: None,
            key: None,
            jwks: None,
            certificates: None,
            algorithm: "ES256".into(),
            ttl: Duration::from_secs(300),
            refresh_ttl: Duration::from_secs(86_400),
            leeway: Duration::from_secs(30),
        }
    }
}

/// How connections are served: how many, how long each may take, and how shutdown ends them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// Connections served at once; more wait in the listen backlog. Default 4096 (the soft
    /// open-file limit is raised to the hard limit at start, so this is the real cap).
    pub max_connections: usize,
    /// How long a client has to send a request's head, counted from when the connection starts
    /// waiting for it; this also closes idle keep-alive connections. Default 30 seconds.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long a connection may move no byte in either direction (a stalled reader or writer)
    /// before it is closed. Default 5 minutes.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long a request without a streamed body (everything but blob uploads) may take to
    /// produce its response head; past it: 503 `UNAVAILABLE`. Default 1 minute.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Request bodies (uploads, manifests) must average at least this many bytes per second
    /// over each `body_rate_window`, or they are cut. Default 1024.
    pub min_body_rate_bytes: u64,
    /// The window over which `min_body_rate_bytes` is measured. Default 30 seconds.
    #[serde(with = "humantime_serde")]
    pub body_rate_window: Duration,
    /// On SIGTERM, how long in-flight requests get to finish before they are cut. Default 30
    /// seconds.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// How often stale temporary files and upload debris are swept. Default 1 hour.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// How old debris must be for the sweep to remove it (a temporary file, a multipart upload
    /// no request finished): longer than any write takes. Default 1 day.
    #[serde(with = "humantime_serde")]
    pub sweep_age: Duration,
    /// How long what a manifest tag (or digest) resolved to is reused without asking storage:
    /// another replica's push or delete shows at most this late (this replica's at once).
    /// Default 1 second; 0 turns it off.
    #[serde(with = "humantime_serde")]
    pub reference_cache_ttl: Duration,
    /// How often storage is probed for `/readyz` (each probe gets as long to answer). Default 1
    /// second.
    #[serde(with = "humantime_serde")]
    pub readiness_interval: Duration,
}

/// Text (human) or JSON (one object per line) logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// URL patterns (regular expressions) for the `urls` of foreign / non-distributable layers.
/// A layer whose every URL matches some `allow` and no `deny` pattern need not exist in the
/// registry. Default: allow `https://` URLs (what Windows base images use).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForeignLayers {
    /// Patterns a URL must match one of.
    pub allow: Vec<String>,
    /// Patterns a URL must match none of.
    pub deny: Vec<String>,
    /// Patterns of the URLs the pull-through cache may download foreign layers from, when
    /// its upstream does not have them (and `deny` matches none). Default: none, so URLs in
    /// upstream manifests make the cache fetch nothing (they are the upstream's to choose).
    pub fetch: Vec<String>,
}

/// Size limits on requests.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest manifest accepted, in bytes (larger: 413). Default 4 MiB.
    pub max_manifest_bytes: u64,
    /// Largest blob accepted, in bytes; 0 means no limit. Default 0.
    pub max_blob_bytes: u64,
    /// Largest `n` accepted by `/v2/_catalog` (larger: 400). Default 1000.
    pub catalog_max_entries: u64,
    /// Largest page of tags returned at once (larger `n` is clamped). Default 1000.
    pub tags_max_entries: u64,
    /// Bytes of request bodies (manifests) held in memory at once, across all requests; a
    /// request that would go past it gets 429 `TOOMANYREQUESTS` with `Retry-After`. Default
    /// 256 MiB.
    pub buffered_body_bytes: u64,
    /// Most blobs and manifests one manifest may reference (larger: 400 `MANIFEST_INVALID`).
    /// Default 10000.
    pub max_manifest_references: usize,
    /// Most `tag` parameters on one manifest `PUT` (more: 400 `TAG_INVALID`). Default 100.
    pub max_tags_per_push: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            log_format: LogFormat::Text,
            delete_enabled: true,
            upload_purge_age: Duration::from_secs(7 * 24 * 3600),
            upload_purge_interval: Duration::from_secs(3600),
            storage: StorageConfig::default(),
            foreign_layers: ForeignLayers::default(),
            limits: Limits::default(),
            server: Server::default(),
            tls: None,
            auth: None,
            access: Vec::new(),
            gc: Gc::default(),
            ui: Ui::default(),
            upstreams: Vec::new(),
        }
    }
}

impl Default for Server {
    fn default() -> Self {
        Server {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            request_timeout: Duration::from_secs(60),
            min_body_rate_bytes: 1024,
            body_rate_window: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(3600),
            readiness_interval: Duration::from_secs(1),
            reference_cache_ttl: Duration::from_secs(1),
            sweep_age: Duration::from_secs(24 * 3600),
        }
    }
}

impl Default for ForeignLayers {
    fn default() -> Self {
        ForeignLayers {
            allow: vec!["^https://".into()],
            deny: Vec::new(),
            fetch: Vec::new(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: 4 * 1024 * 1024,
            max_blob_bytes: 0,
            catalog_max_entries: 1000,
            tags_max_entries: 1000,
            buffered_body_bytes: 256 * 1024 * 1024,
            max_manifest_references: 10_000,
            max_tags_per_push: 100,
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid configuration.
    #[error("parse {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An environment variable has an unusable value.
    #[error("{0}")]
    Env(String),
    /// The storage section is unusable.
    #[error(transparent)]
    Storage(#[from] strata_storage::Error),
    /// A non-loopback address without authentication.
    #[error(
        "refusing to serve {0} without [auth]: anyone who can reach it could push, overwrite and \
         delete every image; configure [auth] (see deploy/registry.example.toml) or, to accept \
         that, pass --insecure-open"
    )]
    Open(SocketAddr),
    /// A setting that cannot work.
    #[error("{0}")]
    Invalid(String),
}

/// Command-line overrides (the binary fills these from its flags).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--root`: filesystem storage in this directory.
    pub root: Option<PathBuf>,
    /// `--insecure-open`: serve a non-loopback address without `[auth]`.
    pub insecure_open: bool,
}

impl Config {
    /// Parses a TOML document.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Loads the file (if any), applies `STRATA_*` variables found through `env`, then `flags`.
    pub fn load(
        path: Option<&std::path::Path>,
        env: impl Fn(&str) -> Option<String>,
        flags: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Config::from_toml(&text).map_err(|message| ConfigError::Parse {
                    path: path.to_owned(),
                    message,
                })?
            }
            None => Config::default(),
        };
        config.apply_env(&env)?;
        config.storage = config.storage.apply_env(&env)?;
        if let Some(listen) = flags.listen {
            config.listen = listen;
        }
        if let Some(root) = &flags.root {
            config.storage = StorageConfig::Fs(FsConfig { root: root.clone() });
        }
        if config.auth.is_none() && !config.listen.ip().is_loopback() && !flags.insecure_open {
            return Err(ConfigError::Open(config.listen));
        }
        config.gc.validate().map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        /// A duration variable, written as in the file (`30s`, `100ms`, `24h`, `7days`).
        fn set_duration(
            env: &impl Fn(&str) -> Option<String>,
            name: &str,
            field: &mut Duration,
        ) -> Result<(), ConfigError> {
            if let Some(value) = env(name) {
                *field =
                    strata_storage::parse_duration(&value).map_err(|e| ConfigError::Env(format!("{name}: {e}")))?;
            }
            Ok(())
        }
        fn set<T: FromStr>(
            env: &impl Fn(&str) -> Option<String>,
            name: &str,
            field: &mut T,
        ) -> Result<(), ConfigError> {
            if let Some(value) = env(name) {
                *field = value
                    .parse()
                    .map_err(|_| ConfigError::Env(format!("{name}={value:?} is not a valid value")))?;
            }
            Ok(())
        }
        set(env, "STRATA_LISTEN", &mut self.listen)?;
        set(env, "STRATA_DELETE_ENABLED", &mut self.delete_enabled)?;
        set(env, "STRATA_UI_ENABLED", &mut self.ui.enabled)?;
        set_duration(env, "STRATA_UI_SESSION_TTL", &mut self.ui.session_ttl)?;
        set_duration(env, "STRATA_UPLOAD_PURGE_AGE", &mut self.upload_purge_age)?;
        set_duration(env, "STRATA_UPLOAD_PURGE_INTERVAL", &mut self.upload_purge_interval)?;
        set_duration(env, "STRATA_GC_INTERVAL", &mut self.gc.interval)?;
        set_duration(env, "STRATA_GC_GRACE", &mut self.gc.grace)?;
        set_duration(env, "STRATA_GC_CLAIM_TTL", &mut self.gc.claim_ttl)?;
        set_duration(env, "STRATA_GC_LEASE", &mut self.gc.lease)?;
        set(env, "STRATA_GC_DELETE_UNTAGGED", &mut self.gc.delete_untagged)?;
        set(
            env,
            "STRATA_LIMITS_MAX_MANIFEST_BYTES",
            &mut self.limits.max_manifest_bytes,
        )?;
        set(env, "STRATA_LIMITS_MAX_BLOB_BYTES", &mut self.limits.max_blob_bytes)?;
        set(
            env,
            "STRATA_LIMITS_CATALOG_MAX_ENTRIES",
            &mut self.limits.catalog_max_entries,
        )?;
        set(env, "STRATA_LIMITS_TAGS_MAX_ENTRIES", &mut self.limits.tags_max_entries)?;
        set(
            env,
            "STRATA_LIMITS_BUFFERED_BODY_BYTES",
            &mut self.limits.buffered_body_bytes,
        )?;
        set(
            env,
            "STRATA_LIMITS_MAX_MANIFEST_REFERENCES",
            &mut self.limits.max_manifest_references,
        )?;
        set(
            env,
            "STRATA_LIMITS_MAX_TAGS_PER_PUSH",
            &mut self.limits.max_tags_per_push,
        )?;
        let server = &mut self.server;
        set(env, "STRATA_SERVER_MAX_CONNECTIONS", &mut server.max_connections)?;
        set(
            env,
            "STRATA_SERVER_MIN_BODY_RATE_BYTES",
            &mut server.min_body_rate_bytes,
        )?;
        for (name, field) in [
            ("STRATA_SERVER_HEADER_READ_TIMEOUT", &mut server.header_read_timeout),
            ("STRATA_SERVER_IDLE_TIMEOUT", &mut server.idle_timeout),
            ("STRATA_SERVER_REQUEST_TIMEOUT", &mut server.request_timeout),
            ("STRATA_SERVER_BODY_RATE_WINDOW", &mut server.body_rate_window),
            ("STRATA_SERVER_SHUTDOWN_TIMEOUT", &mut server.shutdown_timeout),
            ("STRATA_SERVER_SWEEP_INTERVAL", &mut server.sweep_interval),
            ("STRATA_SERVER_READINESS_INTERVAL", &mut server.readiness_interval),
            ("STRATA_SERVER_REFERENCE_CACHE_TTL", &mut server.reference_cache_ttl),
            ("STRATA_SERVER_SWEEP_AGE", &mut server.sweep_age),
        ] {
            set_duration(env, name, field)?;
        }
        if let Some(format) = env("STRATA_LOG_FORMAT") {
            self.log_format = match format.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(ConfigError::Env(format!(
                        "STRATA_LOG_FORMAT must be text or json, not {other:?}"
                    )));
                }
            };
        }
        let list = |v: String| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        if let Some(allow) = env("STRATA_FOREIGN_LAYERS_ALLOW") {
            self.foreign_layers.allow = list(allow);
        }
        if let Some(deny) = env("STRATA_FOREIGN_LAYERS_DENY") {
            self.foreign_layers.deny = list(deny);
        }
        if let Some(fetch) = env("STRATA_FOREIGN_LAYERS_FETCH") {
            self.foreign_layers.fetch = list(fetch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn no_configuration_means_loopback_5000_and_strata_data() {
        let config = Config::load(None, |_| None, &Overrides::default()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(
            config.storage,
            StorageConfig::Fs(FsConfig {
                root: "./strata-data".into()
            })
        );
        assert!(config.delete_enabled);
        assert_eq!(config.upload_purge_age, Duration::from_secs(604_800));
        assert_eq!(config.limits.max_manifest_bytes, 4 << 20);
    }

    #[test]
    fn the_example_file_parses_to_the_defaults() {
        let text = include_str!("../../deploy/registry.example.toml");
        assert_eq!(Config::from_toml(text).unwrap(), Config::default());
    }

    #[test]
    fn file_then_environment_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:6000\"\ndelete_enabled = false\n[storage]\ntype = \"fs\"\nroot = \"/a\"\n",
        )
        .unwrap();
        let env: HashMap<&str, &str> = [
            ("STRATA_LISTEN", "127.0.0.1:7000"),
            ("STRATA_LOG_FORMAT", "json"),
            ("STRATA_STORAGE_ROOT", "/b"),
            (
                "STRATA_FOREIGN_LAYERS_ALLOW",
                "^https://mcr\\.microsoft\\.com/, ^https://example\\.com/",
            ),
        ]
        .into();
        let lookup = |k: &str| env.get(k).map(|v| v.to_string());
        let config = Config::load(Some(&path), lookup, &Overrides::default()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(config.log_format, LogFormat::Json);
        assert!(!config.delete_enabled);
        assert_eq!(config.storage, StorageConfig::Fs(FsConfig { root: "/b".into() }));
        assert_eq!(config.foreign_layers.allow.len(), 2);

        let flags = Overrides {
            listen: Some("127.0.0.1:8000".parse().unwrap()),
            root: Some("/c".into()),
            ..Overrides::default()
        };
        let config = Config::load(Some(&path), lookup, &flags).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(config.storage, StorageConfig::Fs(FsConfig { root: "/c".into() }));
    }

    #[test]
    fn a_public_address_needs_auth_or_insecure_open() {
        let public = Overrides {
            listen: Some("0.0.0.0:5000".parse().unwrap()),
            ..Overrides::default()
        };
        let err = Config::load(None, |_| None, &public).unwrap_err();
        assert!(matches!(err, ConfigError::Open(_)));
        assert!(err.to_string().contains("--insecure-open") && err.to_string().contains("[auth]"));
        let open = Overrides {
            insecure_open: true,
            ..public
        };
        assert!(Config::load(None, |_| None, &open).is_ok());
        let with_auth = Config::from_toml("listen = \"0.0.0.0:5000\"\n[auth]\nanonymous = [\"pull\"]\n").unwrap();
        assert_eq!(with_auth.auth.unwrap().anonymous, [Action::Pull]);
    }

    #[test]
    fn access_rules_and_tokens_parse() {
        let text = r#"
            [auth]
            htpasswd = "/etc/strata/htpasswd"
            token.issuer = "strata"
            token.key = "/etc/strata/token.pem"
            anonymous = []
            [[access]]
            repositories = ["team-a/**"]
            users = ["alice"]
            groups = ["ci"]
            actions = ["pull", "push", "delete"]
        "#;
        let config = Config::from_toml(text).unwrap();
        let token = config.auth.unwrap().token.unwrap();
        assert_eq!(token.key.unwrap().to_str(), Some("/etc/strata/token.pem"));
        assert_eq!(token.ttl, Duration::from_secs(300));
        assert_eq!(config.access[0].actions, [Action::Pull, Action::Push, Action::Delete]);
        assert!(Config::from_toml("[[access]]\nrepositories = [\"x\"]\nactions = [\"own\"]\n").is_err());
    }

    #[test]
    fn durations_are_written_the_same_way_in_every_key() {
        let config = Config::from_toml(
            "upload_purge_age = \"2days\"\n[server]\nheader_read_timeout = \"100ms\"\n[auth]\nlogin_window = \"1h 30m\"\n[storage]\ntype = \"s3\"\nbucket = \"b\"\nread_timeout = \"0s\"\n",
        )
        .unwrap();
        assert_eq!(config.upload_purge_age, Duration::from_secs(2 * 86_400));
        assert_eq!(config.server.header_read_timeout, Duration::from_millis(100));
        assert_eq!(config.auth.unwrap().login_window, Duration::from_secs(5400));
        match config.storage {
            StorageConfig::S3(s3) => assert_eq!(s3.read_timeout, Duration::ZERO),
            other => panic!("{other:?}"),
        }
        let env = |k: &str| (k == "STRATA_SERVER_IDLE_TIMEOUT").then(|| "250ms".to_owned());
        let config = Config::load(None, env, &Overrides::default()).unwrap();
        assert_eq!(config.server.idle_timeout, Duration::from_millis(250));
        let bad = |k: &str| (k == "STRATA_SERVER_IDLE_TIMEOUT").then(|| "300".to_owned());
        let err = Config::load(None, bad, &Overrides::default()).unwrap_err().to_string();
        assert!(
            err.contains("STRATA_SERVER_IDLE_TIMEOUT") && err.contains("30s"),
            "{err}"
        );
        assert!(
            Config::from_toml("[server]\nidle_timeout = 300\n").is_err(),
            "a bare number is refused"
        );
    }

    #[test]
    fn bad_values_are_named_in_the_error() {
        let err = Config::load(
            None,
            |k| (k == "STRATA_DELETE_ENABLED").then(|| "maybe".into()),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("STRATA_DELETE_ENABLED"), "{err}");
        assert!(Config::from_toml("lisen = \"x\"").is_err());
    }
}
