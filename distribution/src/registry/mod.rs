//! [`RegistryClient`]: one registry host, spoken to over the OCI Distribution API with
//! authentication ([`crate::auth`]) and bounded retries with backoff that honour `Retry-After`.
//!
//! HTTPS everywhere, except: a loopback registry (`localhost`, `127.0.0.0/8`, `::1`) that does
//! not answer HTTPS is spoken to over plain HTTP, as docker does ([`RegistryClient::detect_scheme`]),
//! and any host when asked (`--plain-http`). `--insecure` accepts invalid TLS certificates;
//! `--cert-dir` adds CA certificates (`*.crt`) and a client certificate (`*.cert` + `*.key`), as
//! skopeo and docker's `certs.d` read them; `SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured too.
//! Redirects are followed by reqwest, which drops `Authorization` when a redirect leaves the host.

mod blobs;
mod manifests;

use std::time::Duration;

use http::{HeaderMap, Method, StatusCode, header};
use reqwest::{RequestBuilder, Response};
use serde::Deserialize;
use strata_storage::RepositoryName;

pub use blobs::{BlobDownload, UploadLocation};
pub use manifests::{FetchedManifest, MANIFEST_ACCEPT};

use crate::auth::Authenticator;
use crate::credentials::Credentials;
use crate::error::{DistributionError, Result};

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Use plain HTTP for every registry, not only loopback ones.
    pub plain_http: bool,
    /// Accept invalid TLS certificates.
    pub insecure: bool,
    /// CA certificates (`*.crt`) and a client certificate (`*.cert` with its `*.key`).
    pub cert_dir: Option<std::path::PathBuf>,
    /// Attempts per request, including the first.
    pub attempts: u32,
    /// First retry delay; doubled each time, with jitter.
    pub backoff: Duration,
    /// Mirrors to pull through before the registry itself (`http://host:port` or
    /// `https://host`), asked with `?ns=<registry>` as containerd asks; pulls fall back to
    /// the registry when every mirror fails.
    pub mirrors: Vec<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            plain_http: false,
            insecure: false,
            cert_dir: None,
            attempts: 5,
            backoff: Duration::from_millis(200),
            mirrors: Vec::new(),
        }
    }
}

/// Whether `host` (host[:port]) is loopback, where plain HTTP is used automatically.
pub fn is_loopback(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return true;
    }
    let name = match host.rsplit_once(':') {
        Some((n, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => n,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Adds the CA certificates (`*.crt`) and the client certificate (`*.cert` + `*.key` of the
/// same stem) of `dir` to `builder`.
fn certificates(mut builder: reqwest::ClientBuilder, dir: &std::path::Path) -> Result<reqwest::ClientBuilder> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| DistributionError::io(format!("--cert-dir {}", dir.display()), e))?;
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| DistributionError::io(format!("read {}", path.display()), e))
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in &paths {
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => {
                let pem = read(path)?;
                for cert in reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| DistributionError::network(format!("{}: not PEM certificates", path.display()), e))?
                {
                    builder = builder.add_root_certificate(cert);
                }
            }
            Some("cert") => {
                let key = path.with_extension("key");
                let mut pem = read(path)?;
                pem.extend(read(&key)?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    DistributionError::network(
                        format!("{} and {}: not a certificate and key", path.display(), key.display()),
                        e,
                    )
                })?;
                builder = builder.identity(identity);
            }
            _ => {}
        }
    }
    Ok(builder)
}

/// A client for one registry host.
#[derive(Debug)]
pub struct RegistryClient {
    http: reqwest::Client,
    /// `scheme://host`; a loopback registry's scheme may change once, by [`Self::detect_scheme`].
    base: std::sync::RwLock<String>,
    host: String,
    auth: Authenticator,
    options: ClientOptions,
    /// As a mirror: the registry every request names in `?ns=`.
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    code: String,
    #[serde(default)]
    message: String,
}

/// Whether a status is worth retrying.
fn transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// `Retry-After` in seconds (dates are not used by registries in practice).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(60)))
}

impl RegistryClient {
    /// A client for `host` (`docker.io` is reached at `registry-1.docker.io`).
    pub fn new(host: &str, credentials: Option<Credentials>, options: ClientOptions) -> Result<Self> {
        let api_host = if host == crate::DOCKER_HUB {
            crate::DOCKER_HUB_API
        } else {
            host
        };
        let scheme = if options.plain_http || is_loopback(api_host) {
            "http"
        } else {
            "https"
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(options.insecure)
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(120));
        if let Some(dir) = &options.cert_dir {
            builder = certificates(builder, dir)?;
        }
        let http = builder
            .build()
            .map_err(|e| DistributionError::network("build HTTP client", e))?;
        Ok(RegistryClient {
            http,
            base: std::sync::RwLock::new(format!("{scheme}://{api_host}")),
            host: host.to_owned(),
            auth: Authenticator::new(credentials),
            options,
            namespace: None,
        })
    }

    /// This client as a mirror of `registry`: every API request carries `?ns=<registry>`.
    pub fn for_namespace(mut self, registry: &str) -> Self {
        self.namespace = Some(registry.to_owned());
        self
    }

    /// The registry host this client talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `scheme://host` of the API.
    pub fn base(&self) -> String {
        self.base.read().expect("base lock").clone()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            return path.to_owned();
        }
        match &self.namespace {
            Some(ns) if path.starts_with("/v2/") && path != "/v2/" => {
                let sep = if path.contains('?') { '&' } else { '?' };
                let ns: String = url::form_urlencoded::byte_serialize(ns.as_bytes()).collect();
                format!("{}{path}{sep}ns={ns}", self.base())
            }
            _ => format!("{}{path}", self.base()),
        }
    }

    /// For a loopback registry (plain HTTP unless `--plain-http` said so already): speak HTTPS
    /// when it answers HTTPS, as docker tries HTTPS first for `localhost` registries.
    pub async fn detect_scheme(&self) {
        let base = self.base();
        let Some(host) = base.strip_prefix("http://") else {
            return;
        };
        if self.options.plain_http || !is_loopback(host) {
            return;
        }
        let https = format!("https://{host}");
        let probe = self
            .http
            .get(format!("{https}/v2/"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        // A certificate problem means it does speak TLS: stay on HTTPS, so that the next request
        // reports the certificate instead of a confusing plain-HTTP failure.
        let speaks_tls = match probe {
            Ok(_) => true,
            Err(e) => DistributionError::network("", e).chain().contains("certificate"),
        };
        if speaks_tls {
            tracing::debug!(%host, "the loopback registry answers HTTPS");
            *self.base.write().expect("base lock") = https;
        }
    }

    /// Sends a request built by `make` (called again for each attempt), answering auth
    /// challenges once and retrying transient failures. `scope` is the token scope it needs.
    /// `replayable` says whether the request may be sent more than once (its body is in memory).
    pub(crate) async fn send(
        &self,
        scope: &str,
        replayable: bool,
        mut make: impl FnMut(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response> {
        if self.auth.want_scope(scope) {
            self.auth.refresh(&self.http).await?;
        }
        let mut attempt = 0;
        let mut answered_challenge = false;
        loop {
            attempt += 1;
            let mut request = make(&self.http);
            if let Some(value) = self.auth.header() {
                request = request.header(header::AUTHORIZATION, value);
            }
            let (method, url) = match request.try_clone().and_then(|r| r.build().ok()) {
                Some(r) => (r.method().clone(), r.url().to_string()),
                None => (Method::GET, String::new()),
            };
            let last_try = !replayable || attempt >= self.options.attempts;
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if (status == StatusCode::UNAUTHORIZED
                        || (status == StatusCode::FORBIDDEN && self.auth.header().is_some()))
                        && !answered_challenge
                        && replayable
                    {
                        answered_challenge = true;
                        let challenge = response
                            .headers()
                            .get(header::WWW_AUTHENTICATE)
                            .and_then(|v| v.to_str().ok())
                            .map(String::from);
                        if status == StatusCode::FORBIDDEN && challenge.is_none() {
                            self.auth.refresh(&self.http).await?;
                        } else {
                            self.auth.challenge(&self.http, challenge.as_deref()).await?;
                        }
                        attempt -= 1;
                        continue;
                    }
                    if transient(status) && !last_try {
                        let wait = retry_after(response.headers()).unwrap_or_else(|| self.backoff(attempt));
                        tracing::debug!(%method, %url, %status, ?wait, "retrying");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Ok(response);
                }
                Err(e) if !last_try && (e.is_connect() || e.is_timeout() || e.is_request()) => {
                    let wait = self.backoff(attempt);
                    tracing::debug!(%method, %url, error = %e, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(DistributionError::network(format!("{method} {url}"), e)),
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .options
            .backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(8));
        let jitter = rand::random_range(0.0..0.5);
        base.mul_f64(1.0 + jitter).min(Duration::from_secs(30))
    }

    /// Turns a non-success response into an error (404 → not found, 401/403 → auth).
    pub(crate) async fn error(response: Response, what: &str) -> DistributionError {
        let status = response.status();
        let method = String::new();
        let url = response.url().to_string();
        let body = response.bytes().await.unwrap_or_default();
        let first = serde_json::from_slice::<ErrorBody>(&body)
            .ok()
            .and_then(|b| b.errors.into_iter().next());
        if let Some(e) = &first
            && e.code == "DIGEST_INVALID"
        {
            return DistributionError::Integrity(format!(
                "{what}: the registry found the content does not match its digest ({})",
                e.message
            ));
        }
        let message = first
            .map(|e| format!("{}: {}", e.code, e.message))
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_owned());
        match status {
            StatusCode::NOT_FOUND => DistributionError::NotFound(format!("{what} ({message})")),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                DistributionError::Auth(format!("{what}: {status} {message}"))
            }
            _ => DistributionError::Registry {
                method,
                url,
                status: status.as_u16(),
                message: format!("{what}: {message}"),
            },
        }
    }

    /// Checks the API answers (`GET /v2/`), authenticating if it asks.
    pub async fn ping(&self) -> Result<()> {
        let response = self.send("", true, |c| c.get(self.url("/v2/"))).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Self::error(response, "GET /v2/").await)
        }
    }

    /// Every tag of `repo`, following `Link` pagination.
    pub async fn tags(&self, repo: &RepositoryName) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut out = Vec::new();
        let mut next = Some(format!("/v2/{repo}/tags/list"));
        while let Some(path) = next.take() {
            let response = self.send(&pull_scope(repo), true, |c| c.get(self.url(&path))).await?;
            if !response.status().is_success() {
                return Err(Self::error(response, &format!("list tags of {repo}")).await);
            }
            next = next_link(response.headers());
            let page: Page = response
                .json()
                .await
                .map_err(|e| DistributionError::network("read tags", e))?;
            out.extend(page.tags.unwrap_or_default());
        }
        Ok(out)
    }

    /// Every repository in the registry (`/v2/_catalog`), following `Link` pagination.
    pub async fn catalog(&self) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            repositories: Vec<String>,
        }
        let mut out = Vec::new();
        let mut next = Some("/v2/_catalog?n=1000".to_owned());
        while let Some(path) = next.take() {
            let response = self
                .send("registry:catalog:*", true, |c| c.get(self.url(&path)))
                .await?;
            if !response.status().is_success() {
                return Err(Self::error(response, "list the catalog").await);
            }
            next = next_link(response.headers());
            let page: Page = response
                .json()
                .await
                .map_err(|e| DistributionError::network("read catalog", e))?;
            out.extend(page.repositories);
        }
        Ok(out)
    }
}

/// The token scope to read `repo`.
pub(crate) fn pull_scope(repo: &RepositoryName) -> String {
    format!("repository:{repo}:pull")
}

/// The token scope to write `repo`.
pub(crate) fn push_scope(repo: &RepositoryName) -> String {
    format!("repository:{repo}:pull,push")
}

/// The target of a `Link: <...>; rel="next"` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(header::LINK)?.to_str().ok()?;
    link.split(',')
        .find(|part| part.contains("rel=\"next\"") || part.contains("rel=next"))
        .and_then(|part| Some(part[part.find('<')? + 1..part.find('>')?].to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.8.9.1",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "docker.io"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn link_headers_give_the_next_page() {
        let mut h = HeaderMap::new();
        h.insert(
            header::LINK,
            "</v2/a/tags/list?n=2&last=b>; rel=\"next\"".parse().unwrap(),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/v2/a/tags/list?n=2&last=b"));
    }
}
