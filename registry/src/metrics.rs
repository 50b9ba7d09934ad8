//! Prometheus metrics, kept in process and rendered in the text exposition format at `/metrics`:
//! requests by endpoint kind, method and status; a latency histogram per endpoint kind; bytes in
//! and out; upload requests in flight and upload sessions started, completed and cancelled.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The registry's metrics. Shared by all requests.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    uploads_in_flight: AtomicI64,
    sessions_started: AtomicU64,
    sessions_completed: AtomicU64,
    sessions_cancelled: AtomicU64,
    gc: Mutex<GcTotals>,
}

/// Garbage collection since the process started, and storage by repository from the last cycle.
#[derive(Debug, Default)]
struct GcTotals {
    cycles: u64,
    deleted: BTreeMap<&'static str, u64>,
    freed_bytes: u64,
    last_duration: f64,
    storage_bytes: BTreeMap<String, u64>,
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
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.uploads_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(
        &self,
        kind: &'static str,
        method: &str,
        status: u16,
        elapsed: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((kind, method.to_owned(), status))
            .or_default() += 1;
        let secs = elapsed.as_secs_f64();
        {
            let mut latency = self.latency.lock().expect("metrics lock");
            let h = latency.entry(kind).or_default();
            if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
                h.counts[i] += 1;
            }
            h.sum += secs;
            h.count += 1;
        }
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    }

    /// Marks an upload request in flight for the guard's lifetime.
    pub fn upload_in_flight(&self) -> InFlight<'_> {
        self.uploads_in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// Counts an upload session event.
    pub fn session(&self, event: SessionEvent) {
        let counter = match event {
            SessionEvent::Started => &self.sessions_started,
            SessionEvent::Completed => &self.sessions_completed,
            SessionEvent::Cancelled => &self.sessions_cancelled,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a finished garbage-collection cycle (a dry run only updates storage bytes).
    pub fn gc(&self, report: &crate::gc::Report) {
        let mut gc = self.gc.lock().expect("metrics lock");
        gc.storage_bytes = report
            .by_repository
            .iter()
            .map(|(name, r)| (name.clone(), r.bytes))
            .collect();
        if report.dry_run || report.skipped {
            return;
        }
        gc.cycles += 1;
        for (kind, n) in [
            ("blob", report.blobs_deleted),
            ("manifest", report.manifests_deleted),
            ("link", report.links_deleted),
            ("tag", report.tags_deleted),
            ("upload", report.uploads_purged),
        ] {
            *gc.deleted.entry(kind).or_default() += n;
        }
        gc.freed_bytes += report.bytes_freed;
        gc.last_duration = report.duration_ms as f64 / 1000.0;
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP strata_http_requests_total Requests by endpoint kind, method and status.\n");
        out.push_str("# TYPE strata_http_requests_total counter\n");
        for ((kind, method, status), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "strata_http_requests_total{{endpoint=\"{kind}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP strata_http_request_duration_seconds Time to response headers, by endpoint kind.\n");
        out.push_str("# TYPE strata_http_request_duration_seconds histogram\n");
        for (kind, h) in self.latency.lock().expect("metrics lock").iter() {
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "strata_http_request_duration_seconds_bucket{{endpoint=\"{kind}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "strata_http_request_duration_seconds_bucket{{endpoint=\"{kind}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "strata_http_request_duration_seconds_sum{{endpoint=\"{kind}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "strata_http_request_duration_seconds_count{{endpoint=\"{kind}\"}} {}",
                h.count
            );
        }
        let gauges: [(&str, &str, &str, i64); 6] = [
            (
                "strata_http_request_bytes_total",
                "counter",
                "Request body bytes received.",
                self.bytes_in.load(Ordering::Relaxed) as i64,
            ),
            (
                "strata_http_response_bytes_total",
                "counter",
                "Response body bytes sent.",
                self.bytes_out.load(Ordering::Relaxed) as i64,
            ),
            (
                "strata_upload_requests_in_flight",
                "gauge",
                "Upload requests streaming data right now.",
                self.uploads_in_flight.load(Ordering::Relaxed),
            ),
            (
                "strata_upload_sessions_started_total",
                "counter",
                "Upload sessions opened.",
                self.sessions_started.load(Ordering::Relaxed) as i64,
            ),
            (
                "strata_upload_sessions_completed_total",
                "counter",
                "Upload sessions that published a blob.",
                self.sessions_completed.load(Ordering::Relaxed) as i64,
            ),
            (
                "strata_upload_sessions_cancelled_total",
                "counter",
                "Upload sessions cancelled by clients.",
                self.sessions_cancelled.load(Ordering::Relaxed) as i64,
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        let gc = self.gc.lock().expect("metrics lock");
        let _ = writeln!(
            out,
            "# HELP strata_gc_cycles_total Garbage-collection cycles finished.\n# TYPE strata_gc_cycles_total counter\nstrata_gc_cycles_total {}",
            gc.cycles
        );
        out.push_str("# HELP strata_gc_deleted_total Objects garbage collection deleted, by kind.\n");
        out.push_str("# TYPE strata_gc_deleted_total counter\n");
        for (kind, n) in &gc.deleted {
            let _ = writeln!(out, "strata_gc_deleted_total{{kind=\"{kind}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP strata_gc_freed_bytes_total Bytes of blobs garbage collection deleted.\n# TYPE strata_gc_freed_bytes_total counter\nstrata_gc_freed_bytes_total {}",
            gc.freed_bytes
        );
        let _ = writeln!(
            out,
            "# HELP strata_gc_last_duration_seconds How long the last cycle took.\n# TYPE strata_gc_last_duration_seconds gauge\nstrata_gc_last_duration_seconds {}",
            gc.last_duration
        );
        out.push_str("# HELP strata_storage_bytes Bytes of the blobs each repository links, at the last cycle.\n");
        out.push_str("# TYPE strata_storage_bytes gauge\n");
        for (repository, bytes) in &gc.storage_bytes {
            let _ = writeln!(out, "strata_storage_bytes{{repository=\"{repository}\"}} {bytes}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_has_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.observe("blob", "GET", 200, Duration::from_millis(3), 0, 100);
        m.observe("blob", "GET", 200, Duration::from_secs(200), 0, 50);
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
}
