//! Storage configuration: which backend, and its settings, from TOML with environment overrides.
//!
//! ```toml
//! [storage]
//! type = "fs"                # or "s3"
//! root = "./strata-data"
//!
//! # [storage]
//! # type = "s3"
//! # bucket = "registry"
//! # prefix = "strata"          # optional key prefix inside the bucket
//! # region = "us-east-1"
//! # endpoint = "http://127.0.0.1:3900"   # MinIO, Garage, Ceph RGW; omit for AWS
//! # path_style = true
//! # access_key_id = "..."      # omit both keys to use the standard AWS credential chain
//! # secret_access_key = "..."
//! ```
//!
//! Environment overrides (applied by [`StorageConfig::apply_env`]; the registry calls it):
//!
//! | variable | meaning |
//! |---|---|
//! | `STRATA_STORAGE_TYPE` | `fs` or `s3` (switching type starts from that type's defaults) |
//! | `STRATA_STORAGE_ROOT` | fs: root directory |
//! | `STRATA_STORAGE_S3_BUCKET`, `_PREFIX`, `_REGION`, `_ENDPOINT` | s3: where |
//! | `STRATA_STORAGE_S3_PATH_STYLE` | s3: `true` for path-style addressing |
//! | `STRATA_STORAGE_S3_ACCESS_KEY_ID`, `_SECRET_ACCESS_KEY`, `_SESSION_TOKEN` | s3: static credentials |
//! | `STRATA_STORAGE_S3_PART_SIZE`, `_UPLOAD_CONCURRENCY`, `_MAX_ATTEMPTS` | s3: tuning |
//! | `STRATA_STORAGE_S3_CONNECT_TIMEOUT`, `_READ_TIMEOUT` | s3: timeouts (`10s`, `1m`) |
//!
//! Secrets are held in [`Secret`], whose `Debug` output is redacted, so a logged config never
//! shows them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

const MIB: u64 = 1024 * 1024;

/// Which storage backend to use and how.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
// Built once per process: the size of the S3 variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum StorageConfig {
    /// Files under a local directory.
    Fs(FsConfig),
    /// An S3 bucket (AWS S3, MinIO, Garage, Ceph RGW, ...).
    S3(S3Config),
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig::Fs(FsConfig::default())
    }
}

/// Settings of the filesystem backend.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsConfig {
    /// Root directory of the store; created if missing. Default `./strata-data`.
    #[serde(default = "default_root")]
    pub root: PathBuf,
}

fn default_root() -> PathBuf {
    PathBuf::from("./strata-data")
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig { root: default_root() }
    }
}

/// Settings of the S3 backend.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Bucket name (required; the bucket must exist).
    pub bucket: String,
    /// Key prefix inside the bucket (`a/b`), so several stores can share a bucket.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Region; default `us-east-1` (most S3-compatible services ignore it).
    #[serde(default = "default_region")]
    pub region: String,
    /// Endpoint URL for S3-compatible services; `None` means AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Blob downloads are redirected (307) to presigned URLs of the object store, so the bytes
    /// go from it to the client directly; clients must reach the object store. Default off.
    #[serde(default)]
    pub redirect: bool,
    /// How long a redirect's presigned URL works; default 20 minutes.
    #[serde(default = "default_redirect_expiry", with = "humantime_serde")]
    pub redirect_expiry: Duration,
    /// Several endpoints serving the same bucket (the nodes of a cluster), in order of
    /// preference, instead of `endpoint`: each request goes to the first that answers; a failed
    /// one is passed over for a few seconds, and while every one fails the readiness probe,
    /// requests fail at once (503).
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most self-hosted services.
    #[serde(default)]
    pub path_style: bool,
    /// Static access key id; with `secret_access_key`. Unset: the standard AWS credential chain
    /// (environment, profile, web identity, ECS, instance metadata).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Static secret key.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// Session token for temporary static credentials.
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// Size of multipart upload parts in bytes (5 MiB to 5 GiB); default 16 MiB. Memory per
    /// upload is at most `part_size * (upload_concurrency + 1)`.
    #[serde(default = "default_part_size")]
    pub part_size: u64,
    /// Parts uploaded at once per upload; default 4.
    #[serde(default = "default_concurrency")]
    pub upload_concurrency: usize,
    /// The bytes all uploads together may hold in part buffers (filling or being sent), and
    /// downloads in parts read ahead; past it, uploads wait for sent parts and read their
    /// clients more slowly. Downloads read ahead only while more than half of it is free (the
    /// rest is the uploads'), otherwise they stream in one request. At least two parts;
    /// default 96 MiB (enough for one upload's parts in flight at the default part size and
    /// concurrency; more only helps many uploads to fast object stores).
    #[serde(default = "default_buffer_budget")]
    pub buffer_budget: u64,
    /// Downloads of objects larger than one read part are consecutive ranged GETs of this
    /// many bytes (at least 1 MiB, at most `buffer_budget`); default 8 MiB.
    #[serde(default = "default_read_part_size")]
    pub read_part_size: u64,
    /// Ranged GETs in flight per download (the one being sent to the client and those read
    /// ahead, whose parts are held in memory under `buffer_budget`; without room there, a
    /// download streams its rest in one request); 1 reads every object in one request; default 4.
    #[serde(default = "default_concurrency")]
    pub read_concurrency: usize,
    /// Objects larger than this are copied with multipart copy (at most, and default, 5 GiB).
    #[serde(default = "default_copy_threshold")]
    pub multipart_copy_threshold: u64,
    /// Part size of multipart copies; default 512 MiB.
    #[serde(default = "default_copy_part_size")]
    pub copy_part_size: u64,
    /// Attempts per request, including the first (bounded retries, with backoff from 100 ms up
    /// to 2 s; with several endpoints, each retry may go to another); default 5.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// TCP connect timeout; default 3 seconds (a dead endpoint costs no more than this per
    /// attempt).
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for data on a connection; default 1 minute.
    #[serde(default = "default_read_timeout", with = "humantime_serde")]
    pub read_timeout: Duration,
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_part_size() -> u64 {
    16 * MIB
}
fn default_concurrency() -> usize {
    4
}
fn default_redirect_expiry() -> Duration {
    Duration::from_secs(20 * 60)
}
fn default_buffer_budget() -> u64 {
    96 * MIB
}
fn default_read_part_size() -> u64 {
    8 * MIB
}
fn default_copy_threshold() -> u64 {
    5 * 1024 * MIB
}
fn default_copy_part_size() -> u64 {
    512 * MIB
}
fn default_max_attempts() -> u32 {
    5
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(3)
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(60)
}

/// Parses a duration as every duration key of the configuration is written: `30s`, `100ms`,
/// `24h`, `7days`, `1h 30m`.
pub fn parse_duration(value: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(value.trim())
        .map_err(|e| format!("{value:?} is not a duration (like 30s, 100ms, 24h): {e}"))
}

impl S3Config {
    /// A configuration for `bucket` with every other setting at its default.
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Config {
            bucket: bucket.into(),
            prefix: None,
            region: default_region(),
            endpoint: None,
            endpoints: Vec::new(),
            redirect: false,
            redirect_expiry: default_redirect_expiry(),
            path_style: false,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            part_size: default_part_size(),
            upload_concurrency: default_concurrency(),
            buffer_budget: default_buffer_budget(),
            read_part_size: default_read_part_size(),
            read_concurrency: default_concurrency(),
            multipart_copy_threshold: default_copy_threshold(),
            copy_part_size: default_copy_part_size(),
            max_attempts: default_max_attempts(),
            connect_timeout: default_connect_timeout(),
            read_timeout: default_read_timeout(),
        }
    }

    /// The endpoints, in order of preference: `endpoints`, else `endpoint`; none means AWS.
    pub fn endpoint_urls(&self) -> Vec<String> {
        if self.endpoints.is_empty() {
            self.endpoint.iter().cloned().collect()
        } else {
            self.endpoints.clone()
        }
    }

    /// Checks the limits S3 imposes on these settings.
    pub fn validate(&self) -> Result<()> {
        const MIN_PART: u64 = 5 * MIB;
        const MAX_PART: u64 = 5 * 1024 * MIB;
        let bad = |msg: String| Err(Error::Config(msg));
        if self.bucket.is_empty() {
            return bad("s3 bucket is empty".into());
        }
        if !(MIN_PART..=MAX_PART).contains(&self.part_size) {
            return bad(format!("s3 part_size {} is outside 5 MiB..=5 GiB", self.part_size));
        }
        if !(MIN_PART..=MAX_PART).contains(&self.copy_part_size) {
            return bad(format!(
                "s3 copy_part_size {} is outside 5 MiB..=5 GiB",
                self.copy_part_size
            ));
        }
        if self.multipart_copy_threshold > MAX_PART {
            return bad("s3 multipart_copy_threshold is above 5 GiB".into());
        }
        if self.buffer_budget < 2 * self.part_size {
            return bad(format!(
                "s3 buffer_budget {} is under two parts of {}",
                self.buffer_budget, self.part_size
            ));
        }
        if self.upload_concurrency == 0 || self.read_concurrency == 0 || self.max_attempts == 0 {
            return bad("s3 upload_concurrency, read_concurrency and max_attempts must be at least 1".into());
        }
        if !(MIB..=self.buffer_budget).contains(&self.read_part_size) {
            return bad(format!(
                "s3 read_part_size {} is outside 1 MiB..=buffer_budget ({})",
                self.read_part_size, self.buffer_budget
            ));
        }
        if self.endpoint.is_some() && !self.endpoints.is_empty() {
            return bad("s3: set endpoint or endpoints, not both".into());
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return bad("s3 access_key_id and secret_access_key must be set together".into());
        }
        Ok(())
    }
}

/// A secret string: deserializes like a string, never shows in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; pass it on, never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl StorageConfig {
    /// Parses a `[storage]`-style TOML table (the keys of the table, not the header).
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Config(e.to_string()))
    }

    /// Applies the `STRATA_STORAGE_*` overrides found through `lookup` (use
    /// `|k| std::env::var(k).ok()` for the process environment).
    pub fn apply_env(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |name: &str| lookup(&format!("STRATA_STORAGE_{name}"));
        match var("TYPE").as_deref() {
            None => {}
            Some("fs") if matches!(self, StorageConfig::Fs(_)) => {}
            Some("s3") if matches!(self, StorageConfig::S3(_)) => {}
            Some("fs") => self = StorageConfig::Fs(FsConfig::default()),
            Some("s3") => {
                let bucket = var("S3_BUCKET")
                    .ok_or_else(|| Error::Config("STRATA_STORAGE_TYPE=s3 needs STRATA_STORAGE_S3_BUCKET".into()))?;
                self = StorageConfig::S3(S3Config::new(bucket));
            }
            Some(other) => {
                return Err(Error::Config(format!(
                    "STRATA_STORAGE_TYPE must be fs or s3, not {other:?}"
                )));
            }
        }
        match &mut self {
            StorageConfig::Fs(fs) => {
                if let Some(root) = var("ROOT") {
                    fs.root = root.into();
                }
            }
            StorageConfig::S3(s3) => {
                let text = |name: &str, field: &mut String| {
                    if let Some(v) = var(name) {
                        *field = v;
                    }
                };
                text("S3_BUCKET", &mut s3.bucket);
                text("S3_REGION", &mut s3.region);
                let optional = |name: &str, field: &mut Option<String>| {
                    if let Some(v) = var(name) {
                        *field = Some(v);
                    }
                };
                optional("S3_PREFIX", &mut s3.prefix);
                optional("S3_ENDPOINT", &mut s3.endpoint);
                if let Some(v) = var("S3_ENDPOINTS") {
                    s3.endpoints = v
                        .split(',')
                        .map(str::trim)
                        .filter(|e| !e.is_empty())
                        .map(String::from)
                        .collect();
                }
                optional("S3_ACCESS_KEY_ID", &mut s3.access_key_id);
                if let Some(v) = var("S3_SECRET_ACCESS_KEY") {
                    s3.secret_access_key = Some(Secret(v));
                }
                if let Some(v) = var("S3_SESSION_TOKEN") {
                    s3.session_token = Some(Secret(v));
                }
                parse_var(&var, "S3_PATH_STYLE", &mut s3.path_style)?;
                parse_var(&var, "S3_REDIRECT", &mut s3.redirect)?;
                parse_var(&var, "S3_PART_SIZE", &mut s3.part_size)?;
                parse_var(&var, "S3_UPLOAD_CONCURRENCY", &mut s3.upload_concurrency)?;
                parse_var(&var, "S3_BUFFER_BUDGET", &mut s3.buffer_budget)?;
                parse_var(&var, "S3_READ_PART_SIZE", &mut s3.read_part_size)?;
                parse_var(&var, "S3_READ_CONCURRENCY", &mut s3.read_concurrency)?;
                parse_var(&var, "S3_MAX_ATTEMPTS", &mut s3.max_attempts)?;
                for (name, field) in [
                    ("S3_CONNECT_TIMEOUT", &mut s3.connect_timeout),
                    ("S3_READ_TIMEOUT", &mut s3.read_timeout),
                    ("S3_REDIRECT_EXPIRY", &mut s3.redirect_expiry),
                ] {
                    if let Some(v) = var(name) {
                        *field =
                            parse_duration(&v).map_err(|e| Error::Config(format!("STRATA_STORAGE_{name}: {e}")))?;
                    }
                }
            }
        }
        Ok(self)
    }
}

fn parse_var<T: FromStr>(var: &impl Fn(&str) -> Option<String>, name: &str, field: &mut T) -> Result<()> {
    if let Some(v) = var(name) {
        *field = v
            .parse()
            .map_err(|_| Error::Config(format!("STRATA_STORAGE_{name}={v:?} is not a valid value")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn default_is_filesystem_in_strata_data() {
        let cfg = StorageConfig::from_toml("type = \"fs\"").unwrap();
        assert_eq!(cfg, StorageConfig::default());
        assert_eq!(
            cfg,
            StorageConfig::Fs(FsConfig {
                root: "./strata-data".into()
            })
        );
    }

    #[test]
    fn s3_config_parses_with_defaults() {
        let cfg = StorageConfig::from_toml(
            "type = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9000\"\npath_style = true\n\
             access_key_id = \"AK\"\nsecret_access_key = \"very-secret\"",
        )
        .unwrap();
        let StorageConfig::S3(s3) = &cfg else { panic!("{cfg:?}") };
        assert_eq!(s3.bucket, "b");
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(s3.part_size, 16 * MIB);
        assert!(s3.path_style);
        s3.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(StorageConfig::from_toml("type = \"fs\"\nrot = \"/x\"").is_err());
        assert!(StorageConfig::from_toml("type = \"ftp\"").is_err());
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let cfg = StorageConfig::from_toml(
            "type = \"s3\"\nbucket = \"b\"\naccess_key_id = \"AK\"\nsecret_access_key = \"very-secret\"\n\
             session_token = \"token-secret\"",
        )
        .unwrap();
        let shown = format!("{cfg:?} {cfg:#?}");
        assert!(
            !shown.contains("very-secret") && !shown.contains("token-secret"),
            "{shown}"
        );
        assert!(shown.contains("AK"));
    }

    #[test]
    fn environment_overrides_apply_and_can_switch_type() {
        let env: HashMap<&str, &str> = [
            ("STRATA_STORAGE_TYPE", "s3"),
            ("STRATA_STORAGE_S3_BUCKET", "from-env"),
            ("STRATA_STORAGE_S3_PATH_STYLE", "true"),
            ("STRATA_STORAGE_S3_PART_SIZE", "8388608"),
            ("STRATA_STORAGE_S3_SECRET_ACCESS_KEY", "env-secret"),
            ("STRATA_STORAGE_S3_ACCESS_KEY_ID", "env-ak"),
        ]
        .into();
        let cfg = StorageConfig::default()
            .apply_env(|k| env.get(k).map(|v| v.to_string()))
            .unwrap();
        let StorageConfig::S3(s3) = cfg else { panic!() };
        assert_eq!(
            (s3.bucket.as_str(), s3.path_style, s3.part_size),
            ("from-env", true, 8 * MIB)
        );
        assert_eq!(s3.secret_access_key.unwrap().expose(), "env-secret");

        let root = StorageConfig::default().apply_env(|k| (k == "STRATA_STORAGE_ROOT").then(|| "/srv/r".into()));
        assert_eq!(root.unwrap(), StorageConfig::Fs(FsConfig { root: "/srv/r".into() }));

        let bad = StorageConfig::default().apply_env(|k| (k == "STRATA_STORAGE_TYPE").then(|| "s3".into()));
        assert!(matches!(bad, Err(Error::Config(_))));
    }

    #[test]
    fn s3_limits_are_checked() {
        let mut s3 = S3Config::new("b");
        s3.part_size = MIB;
        assert!(s3.validate().is_err());
        let mut s3 = S3Config::new("b");
        s3.access_key_id = Some("AK".into());
        assert!(s3.validate().is_err());
    }
}
