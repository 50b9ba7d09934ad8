//! Liveness and readiness, as load balancers and Kubernetes probe them.
//!
//! `/healthz` (liveness): the process serves requests; it never touches storage, so a storage
//! outage does not get healthy replicas restarted. `/readyz` (readiness): the storage answered
//! the last probe. The probe runs in the background every `server.readiness_interval` (default
//! 1 s) and gives storage as long to answer, so `/readyz` answers at once from its result and
//! flips within two intervals of an outage or a recovery. While storage is known down, `GET /v2/`
//! answers 503 too (clients and balancers that check it route around this replica), and the S3
//! backend fails requests at once instead of waiting out its retries.

use std::sync::Mutex;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use strata_storage::Backend;

/// What the last storage probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// No probe has finished yet.
    Unknown,
    /// It answered.
    Up,
    /// It did not; why.
    Down(String),
}

/// The registry's readiness: the last storage probe's result.
#[derive(Debug)]
pub struct Readiness(Mutex<Storage>);

impl Default for Readiness {
    fn default() -> Self {
        Readiness(Mutex::new(Storage::Unknown))
    }
}

impl Readiness {
    /// The last probe's result.
    pub fn storage(&self) -> Storage {
        self.0.lock().expect("readiness").clone()
    }

    /// Whether the last probe found storage down.
    pub fn is_down(&self) -> bool {
        matches!(*self.0.lock().expect("readiness"), Storage::Down(_))
    }

    fn set(&self, now: Storage) {
        let mut current = self.0.lock().expect("readiness");
        match (&*current, &now) {
            (Storage::Down(_), Storage::Up) => tracing::info!("storage answers again: ready"),
            (Storage::Up | Storage::Unknown, Storage::Down(reason)) => {
                tracing::warn!(%reason, "storage does not answer: not ready");
            }
            _ => {}
        }
        *current = now;
    }
}

/// Probes `backend` every `interval`, giving it as long to answer, into `readiness` (and the
/// `strata_storage_ready` gauge).
pub(crate) async fn probe_storage(
    readiness: &Readiness,
    metrics: &crate::metrics::Metrics,
    backend: &dyn Backend,
    interval: Duration,
) {
    let interval = interval.max(Duration::from_millis(10));
    loop {
        let result = match backend.probe(interval).await {
            Ok(()) => Storage::Up,
            Err(e) => Storage::Down(e.to_string()),
        };
        metrics.storage_ready(result == Storage::Up);
        readiness.set(result);
        tokio::time::sleep(interval).await;
    }
}

/// `GET /healthz`: 200 while the process serves requests.
pub(crate) async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// `GET /readyz`: 200 when the last storage probe got an answer, else 503 with the reason.
pub(crate) fn readyz(readiness: &Readiness) -> Response {
    match readiness.storage() {
        Storage::Up => (StatusCode::OK, "ready\n").into_response(),
        Storage::Unknown => (StatusCode::SERVICE_UNAVAILABLE, "starting: storage not probed yet\n").into_response(),
        Storage::Down(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("storage unavailable: {reason}\n"),
        )
            .into_response(),
    }
}
