//! Prometheus metrics, kept in process in a `prometheus-client` registry and rendered in the
//! Prometheus text format (0.0.4) at `/metrics`: requests by endpoint kind, method and status; a
//! latency histogram per endpoint kind; bytes in and out; upload requests in flight and upload
//! sessions started, completed and cancelled; garbage collection totals and storage bytes by
//! repository.
//!
//! Requests and their bytes are counted by [`AccountingLayer`] (`layer.rs`), upload and
//! garbage-collection events by the code they happen in.
//!
//! Counters are registered without `_total`: the encoder appends it, so the exposed names are
//! `strata_http_requests_total` and so on.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

mod layer;

pub(crate) use layer::endpoint_kind;
pub use layer::{Accounting, AccountingLayer, CountedRequest, CountedResponse, RequestInfo};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
    /// `manifest`, `blob`, `tag_check`.
    kind: &'static str,
    /// `fetched`, `error`, `stale` (a cached tag served because the upstream failed).
    result: &'static str,
}

/// The registry's metrics. Shared by all requests.
#[derive(Debug)]
pub struct Metrics {
    /// What `/metrics` renders; every field below is registered in it.
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    /// Time to response headers.
    latency: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    /// Request body bytes read by handlers, counted by [`AccountingLayer`] as they pass.
    bytes_in: Counter,
    /// Response body bytes handed to connections, counted by [`AccountingLayer`] as they pass.
    bytes_out: Counter,
    uploads_in_flight: Gauge,
    sessions_started: Counter,
    sessions_completed: Counter,
    sessions_cancelled: Counter,
    gc_cycles: Counter,
    gc_deleted: Family<KindLabels, Counter>,
    gc_freed_bytes: Counter,
    gc_last_duration: Gauge<f64, AtomicU64>,
    /// 1 while storage answered its last readiness probe.
    storage_ready: Gauge,
    /// Replaced whole after each cycle, so repositories that vanished leave the output.
    storage_bytes: Arc<Mutex<BTreeMap<String, u64>>>,
    /// What the pull-through cache asked its upstreams, and how it went.
    upstream: Family<UpstreamLabels, Counter>,
    /// Bytes fetched from upstreams.
    upstream_bytes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// What happened to an upload session.
#[derive(Debug, Clone, Copy)]
pub enum SessionEvent {
    /// A session was opened.
    Started,
    /// A session ended with a published blob.
    Completed,
    /// A session was cancelled by the client.
    Cancelled,
}

/// Counts an upload request as in flight until dropped.
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Every metric at zero, registered under its exposed name.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::default();
        registry.register(
            "strata_http_requests",
            "Requests by endpoint kind, method and status",
            requests.clone(),
        );
        let latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "strata_http_request_duration_seconds",
            "Time to response headers, by endpoint kind",
            latency.clone(),
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let bytes_in = counter(
            &mut registry,
            "strata_http_request_bytes",
            "Request body bytes received",
        );
        let bytes_out = counter(&mut registry, "strata_http_response_bytes", "Response body bytes sent");
        let uploads_in_flight = Gauge::default();
        registry.register(
            "strata_upload_requests_in_flight",
            "Upload requests streaming data right now",
            uploads_in_flight.clone(),
        );
        let sessions_started = counter(
            &mut registry,
            "strata_upload_sessions_started",
            "Upload sessions opened",
        );
        let sessions_completed = counter(
            &mut registry,
            "strata_upload_sessions_completed",
            "Upload sessions that published a blob",
        );
        let sessions_cancelled = counter(
            &mut registry,
            "strata_upload_sessions_cancelled",
            "Upload sessions cancelled by clients",
        );
        let gc_cycles = counter(&mut registry, "strata_gc_cycles", "Garbage-collection cycles finished");
        let gc_deleted = Family::default();
        registry.register(
            "strata_gc_deleted",
            "Objects garbage collection deleted, by kind",
            gc_deleted.clone(),
        );
        let gc_freed_bytes = counter(
            &mut registry,
            "strata_gc_freed_bytes",
            "Bytes of blobs garbage collection deleted",
        );
        let gc_last_duration = Gauge::default();
        registry.register(
            "strata_gc_last_duration_seconds",
            "How long the last cycle took",
            gc_last_duration.clone(),
        );
        let storage_ready = Gauge::default();
        registry.register(
            "strata_storage_ready",
            "1 while storage answered the last readiness probe (what /readyz says)",
            storage_ready.clone(),
        );
        let storage_bytes = Arc::default();
        registry.register_collector(Box::new(StorageBytes(Arc::clone(&storage_bytes))));
        let upstream = Family::default();
        registry.register(
            "strata_upstream_requests",
            "Pull-through cache requests to upstreams, by upstream, kind and result (stale: a cached tag served because the upstream failed)",
            upstream.clone(),
        );
        let upstream_bytes = counter(
            &mut registry,
            "strata_upstream_bytes",
            "Blob bytes fetched from upstreams",
        );
        Metrics {
            registry,
            requests,
            latency,
            bytes_in,
            bytes_out,
            uploads_in_flight,
            sessions_started,
            sessions_completed,
            sessions_cancelled,
            gc_cycles,
            gc_deleted,
            gc_freed_bytes,
            upstream,
            upstream_bytes,
            gc_last_duration,
            storage_ready,
            storage_bytes,
        }
    }

    /// Records what the last readiness probe found.
    pub fn storage_ready(&self, ready: bool) {
        self.storage_ready.set(i64::from(ready));
    }

    /// Counts one answered request and its time to response headers (bytes are counted by
    /// [`AccountingLayer`] as they pass).
    pub fn request(&self, kind: &'static str, method: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: kind,
                method: method.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&EndpointLabels { endpoint: kind })
            .observe(elapsed.as_secs_f64());
    }

    /// Marks an upload request in flight for the guard's lifetime.
    pub fn upload_in_flight(&self) -> InFlight {
        self.uploads_in_flight.inc();
        InFlight(self.uploads_in_flight.clone())
    }

    /// Counts an upload session event.
    pub fn session(&self, event: SessionEvent) {
        let counter = match event {
            SessionEvent::Started => &self.sessions_started,
            SessionEvent::Completed => &self.sessions_completed,
            SessionEvent::Cancelled => &self.sessions_cancelled,
        };
        counter.inc();
    }

    /// Counts one pull-through request to `upstream`: `kind` (`manifest`, `blob`, `tag_check`),
    /// `result` (`fetched`, `error`, `stale`), and the blob bytes it brought.
    pub fn upstream(&self, upstream: &str, kind: &'static str, result: &'static str, bytes: u64) {
        self.upstream
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
                kind,
                result,
            })
            .inc();
        self.upstream_bytes.inc_by(bytes);
    }

    /// Records a finished garbage-collection cycle (a dry run only updates storage bytes).
    pub fn gc(&self, report: &crate::gc::Report) {
        *self.storage_bytes.lock().expect("metrics lock") = report
            .by_repository
            .iter()
            .map(|(name, r)| (name.clone(), r.bytes))
            .collect();
        if report.dry_run || report.skipped {
            return;
        }
        self.gc_cycles.inc();
        for (kind, n) in [
            ("blob", report.blobs_deleted),
            ("manifest", report.manifests_deleted),
            ("link", report.links_deleted),
            ("tag", report.tags_deleted),
            ("upload", report.uploads_purged),
        ] {
            self.gc_deleted.get_or_create(&KindLabels { kind }).inc_by(n);
        }
        self.gc_freed_bytes.inc_by(report.bytes_freed);
        self.gc_last_duration.set(report.duration_ms as f64 / 1000.0);
    }

    /// The metrics in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("metrics encode into a String");
        out
    }
}

/// `strata_storage_bytes{repository}` from the last cycle's map, written in one piece under its
/// lock (a `Family` would have to be cleared and refilled, and a scrape in between would see
/// every repository gone).
#[derive(Debug)]
struct StorageBytes(Arc<Mutex<BTreeMap<String, u64>>>);

impl Collector for StorageBytes {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let by_repository = self.0.lock().expect("metrics lock");
        if by_repository.is_empty() {
            return Ok(());
        }
        let mut metric = encoder.encode_descriptor(
            "strata_storage_bytes",
            "Bytes of the blobs each repository links, at the last cycle.",
            None,
            MetricType::Gauge,
        )?;
        for (repository, bytes) in by_repository.iter() {
            let labels = [("repository", repository.as_str())];
            ConstGauge::new(*bytes).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_has_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.request("blob", "GET", 200, Duration::from_millis(3));
        m.request("blob", "GET", 200, Duration::from_secs(200));
        m.bytes_out.inc_by(150);
        m.session(SessionEvent::Started);
        let guard = m.upload_in_flight();
        let text = m.render();
        assert!(text.contains("strata_http_requests_total{endpoint=\"blob\",method=\"GET\",status=\"200\"} 2"));
        assert!(text.contains("strata_http_request_duration_seconds_bucket{endpoint=\"blob\",le=\"0.005\"} 1"));
        assert!(text.contains("strata_http_request_duration_seconds_bucket{endpoint=\"blob\",le=\"+Inf\"} 2"));
        assert!(text.contains("strata_http_response_bytes_total 150"));
        assert!(text.contains("strata_upload_requests_in_flight 1"));
        drop(guard);
        assert!(m.render().contains("strata_upload_requests_in_flight 0"));
        assert!(text.contains("strata_upload_sessions_started_total 1"));
    }

    #[test]
    fn storage_bytes_are_replaced_by_each_cycle() {
        let m = Metrics::default();
        let mut report = crate::gc::Report::default();
        for (name, bytes) in [("gone", 5), ("kept", 7)] {
            report.by_repository.insert(
                name.to_owned(),
                crate::gc::RepositoryReport {
                    bytes,
                    ..Default::default()
                },
            );
        }
        m.gc(&report);
        assert!(m.render().contains("strata_storage_bytes{repository=\"gone\"} 5"));
        report.by_repository.remove("gone");
        report.blobs_deleted = 3;
        m.gc(&report);
        let text = m.render();
        assert!(!text.contains("repository=\"gone\""), "{text}");
        assert!(text.contains("strata_storage_bytes{repository=\"kept\"} 7"), "{text}");
        assert!(text.contains("# TYPE strata_storage_bytes gauge"), "{text}");
        assert!(text.contains("strata_gc_cycles_total 2"), "{text}");
        assert!(text.contains("strata_gc_deleted_total{kind=\"blob\"} 3"), "{text}");
    }
}
