//! Several S3 endpoints serving one bucket (the nodes of a Garage or Ceph cluster, or a service
//! and its standby), with health tracked per endpoint.
//!
//! One SDK client serves them all: the [`Failover`] interceptor points each attempt of a request
//! at the first endpoint that is neither known down by a probe nor failed a request in the last
//! [`DOWN_FOR`], and records how the attempt went; the SDK's own retries then land on the next
//! endpoint. Only probes ([`Endpoints::probe_result`], run by the registry's readiness check)
//! declare an endpoint down for good; while every endpoint is down by its probe, requests fail at
//! once with [`Error::Unavailable`] instead of waiting out timeouts and retries. Without probes
//! (a command-line tool), requests never fail fast: failures only reorder the endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::interceptors::{BeforeTransmitInterceptorContextMut, FinalizerInterceptorContextRef};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

use crate::error::{Error, Result};

/// How long an endpoint that failed a request is passed over (unless a probe finds it well).
pub(super) const DOWN_FOR: Duration = Duration::from_secs(5);

/// One endpoint: its URL split for rewriting, and its health.
#[derive(Debug)]
struct Endpoint {
    url: String,
    scheme: String,
    authority: String,
    /// A path prefix (`/s3`), or empty.
    path: String,
    /// Milliseconds since [`Endpoints::started`] until which a failed request passes it over.
    failed_until: AtomicU64,
    /// Down by its last probe.
    probed_down: AtomicBool,
}

/// The endpoints of one bucket, in order of preference.
#[derive(Debug)]
pub(super) struct Endpoints {
    list: Vec<Endpoint>,
    started: Instant,
}

/// Why a request was not sent: every endpoint is down by its probe.
#[derive(Debug)]
pub(super) struct AllDown;

impl std::fmt::Display for AllDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("every S3 endpoint failed its last health probe")
    }
}

impl std::error::Error for AllDown {}

/// The endpoint an attempt went to (kept in the request's config bag between hooks).
#[derive(Debug, Clone, Copy)]
struct Chosen(usize);

impl Storable for Chosen {
    type Storer = StoreReplace<Self>;
}

/// An endpoint a request must use (health probes of each endpoint).
#[derive(Debug, Clone, Copy)]
struct Forced(usize);

impl Storable for Forced {
    type Storer = StoreReplace<Self>;
}

/// An operation interceptor that sends the request to endpoint `.0`, whatever its health.
#[derive(Debug)]
pub(super) struct Force(pub usize);

impl Intercept for Force {
    fn name(&self) -> &'static str {
        "StrataS3ForceEndpoint"
    }

    fn read_before_execution(
        &self,
        _context: &aws_sdk_s3::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        cfg.interceptor_state().store_put(Forced(self.0));
        Ok(())
    }
}

/// Splits `scheme://authority/path` (the path without a trailing `/`).
fn split(url: &str) -> Option<(String, String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    (!scheme.is_empty() && !authority.is_empty()).then(|| (scheme.to_owned(), authority.to_owned(), path.to_owned()))
}

impl Endpoints {
    /// The endpoints `urls`, all presumed well.
    pub(super) fn new(urls: &[String]) -> Result<Self> {
        let list = urls
            .iter()
            .map(|url| {
                let (scheme, authority, path) = split(url).ok_or_else(|| {
                    Error::Config(format!("s3 endpoint {url:?} is not a URL (http[s]://host[:port])"))
                })?;
                Ok(Endpoint {
                    url: url.clone(),
                    scheme,
                    authority,
                    path,
                    failed_until: AtomicU64::new(0),
                    probed_down: AtomicBool::new(false),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if list.is_empty() {
            return Err(Error::Config("no s3 endpoint".into()));
        }
        Ok(Endpoints {
            list,
            started: Instant::now(),
        })
    }

    /// How many there are.
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    /// Endpoint `i`'s URL.
    pub(super) fn url(&self, i: usize) -> &str {
        &self.list[i].url
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Records a request's outcome on endpoint `i`.
    fn request_result(&self, i: usize, ok: bool) {
        let until = if ok {
            0
        } else {
            self.now() + DOWN_FOR.as_millis() as u64
        };
        self.list[i].failed_until.store(until, Ordering::Relaxed);
    }

    /// Records a probe's outcome on endpoint `i`.
    pub(super) fn probe_result(&self, i: usize, ok: bool) {
        let endpoint = &self.list[i];
        let was_down = endpoint.probed_down.swap(!ok, Ordering::Relaxed);
        if ok {
            endpoint.failed_until.store(0, Ordering::Relaxed);
        }
        if was_down == ok {
            if ok {
                tracing::info!(endpoint = %endpoint.url, "S3 endpoint answers again");
            } else {
                tracing::warn!(endpoint = %endpoint.url, "S3 endpoint failed its health probe");
            }
        }
    }

    /// Whether endpoint `i` is down by its last probe.
    pub(super) fn probed_down(&self, i: usize) -> bool {
        self.list[i].probed_down.load(Ordering::Relaxed)
    }

    /// The endpoint for attempt `attempt` (1-based) of a request: the first well one; when all
    /// failed requests lately, the first a probe has not declared down, rotating with the attempt
    /// so retries try each; none when every probe failed.
    fn choose(&self, attempt: usize) -> Option<usize> {
        let now = self.now();
        let up: Vec<usize> = (0..self.list.len()).filter(|&i| !self.probed_down(i)).collect();
        if up.is_empty() {
            return None;
        }
        let well = up
            .iter()
            .copied()
            .find(|&i| self.list[i].failed_until.load(Ordering::Relaxed) <= now);
        Some(well.unwrap_or(up[(attempt.saturating_sub(1)) % up.len()]))
    }

    /// `uri` (made for endpoint 0: the one the SDK was configured with) pointed at endpoint `to`;
    /// path-style (`host/bucket/key`) and virtual-hosted (`bucket.host/key`) addressing alike.
    fn rewrite(&self, uri: &str, to: usize) -> Option<String> {
        let (from, to) = (&self.list[0], &self.list[to]);
        let rest = uri.strip_prefix(&format!("{}://", from.scheme))?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let authority = if authority == from.authority {
            to.authority.clone()
        } else {
            let bucket = authority.strip_suffix(&format!(".{}", from.authority))?;
            format!("{bucket}.{}", to.authority)
        };
        let tail = match tail.strip_prefix(from.path.as_str()) {
            Some(after) if after.is_empty() || after.starts_with(['/', '?']) => format!("{}{after}", to.path),
            _ => return None,
        };
        Some(format!("{}://{authority}{tail}", to.scheme))
    }
}

/// The interceptor that sends each attempt to [`Endpoints::choose`]'s endpoint and records how
/// it went.
#[derive(Debug)]
pub(super) struct Failover(pub Arc<Endpoints>);

impl Intercept for Failover {
    fn name(&self) -> &'static str {
        "StrataS3Failover"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let chosen = match cfg.load::<Forced>() {
            Some(Forced(i)) => *i,
            None => {
                let attempt = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
                self.0.choose(attempt as usize).ok_or(AllDown)?
            }
        };
        cfg.interceptor_state().store_put(Chosen(chosen));
        if chosen != 0 {
            let request = context.request_mut();
            let uri = self
                .0
                .rewrite(request.uri(), chosen)
                .ok_or_else(|| format!("cannot point {} at {}", request.uri(), self.0.url(chosen)))?;
            request.set_uri(uri.as_str())?;
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let Some(Chosen(i)) = cfg.load::<Chosen>().copied() else {
            return Ok(());
        };
        // An endpoint that answers is well, whatever it answers, unless it is a server error;
        // one that does not (refused, reset, timed out) is not.
        let status = context.response().map(|r| r.status().as_u16());
        let failed = match context.output_or_error() {
            Some(Err(e)) => e.is_timeout_error() || e.is_connector_error() || status.is_none_or(|s| s >= 500),
            Some(Ok(_)) => false,
            None => false,
        };
        self.0.request_result(i, !failed);
        Ok(())
    }
}

/// Whether `err` (an SDK error's source chain) is the failover's refusal to send.
pub(super) fn is_all_down(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<AllDown>() {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(urls: &[&str]) -> Endpoints {
        Endpoints::new(&urls.iter().map(|u| u.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn rewrites_path_style_virtual_hosted_and_prefixed_urls() {
        let e = endpoints(&["http://10.0.0.1:3900", "https://node2:443/s3", "http://10.0.0.3:3900"]);
        assert_eq!(
            e.rewrite("http://10.0.0.1:3900/bucket/a/b?uploads", 2).unwrap(),
            "http://10.0.0.3:3900/bucket/a/b?uploads"
        );
        assert_eq!(
            e.rewrite("http://bucket.10.0.0.1:3900/key", 2).unwrap(),
            "http://bucket.10.0.0.3:3900/key"
        );
        assert_eq!(
            e.rewrite("http://10.0.0.1:3900/bucket/k", 1).unwrap(),
            "https://node2:443/s3/bucket/k"
        );
        let prefixed = endpoints(&["http://a/s3/", "http://b/x"]);
        assert_eq!(
            prefixed.rewrite("http://a/s3/bucket/k", 1).unwrap(),
            "http://b/x/bucket/k"
        );
        assert_eq!(e.rewrite("http://elsewhere/bucket", 1), None);
        assert!(Endpoints::new(&["not a url".into()]).is_err());
        assert!(Endpoints::new(&[]).is_err());
    }

    #[test]
    fn choice_prefers_the_first_well_endpoint_and_fails_fast_only_on_probes() {
        let e = endpoints(&["http://a", "http://b", "http://c"]);
        assert_eq!(e.choose(1), Some(0));
        e.request_result(0, false);
        assert_eq!(e.choose(1), Some(1));
        e.request_result(1, false);
        e.request_result(2, false);
        // All failed lately: retries rotate over them.
        assert_eq!([e.choose(1), e.choose(2), e.choose(3)], [Some(0), Some(1), Some(2)]);
        // A probe that finds one well clears its failure.
        e.probe_result(2, true);
        assert_eq!(e.choose(1), Some(2));
        for i in 0..3 {
            e.probe_result(i, false);
        }
        assert_eq!(e.choose(1), None);
        e.probe_result(1, true);
        assert_eq!(e.choose(1), Some(1));
    }
}
