//! Limits on what one request may hold: a minimum rate for request bodies (a stalled upload is
//! cut instead of holding a connection and a session forever), and a budget for bodies held in
//! memory across all requests (a burst of large manifest `PUT`s gets 429 instead of growing
//! memory without bound).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::header;
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::Server as ServerConfig;
use crate::error::{ApiError, ApiResult, Code};

/// The minimum request body rate: `[server] min_body_rate_bytes` per second over each
/// `body_rate_window` (0: no minimum).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyRate {
    bytes_per_second: u64,
    window: Duration,
}

impl BodyRate {
    /// The rate the server configuration asks for.
    pub(crate) fn of(server: &ServerConfig) -> Self {
        BodyRate {
            bytes_per_second: server.min_body_rate_bytes,
            window: server.body_rate_window,
        }
    }
}

/// Middleware: every request body must average the minimum rate over each window.
pub(crate) async fn min_body_rate(State(rate): State<BodyRate>, request: Request, next: Next) -> Response {
    let has_body = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .map_or(request.headers().contains_key(header::TRANSFER_ENCODING), |n| n != "0");
    if rate.bytes_per_second == 0 || !has_body {
        return next.run(request).await;
    }
    let window = rate.window.max(Duration::from_secs(1));
    let minimum = rate.bytes_per_second.saturating_mul(window.as_secs());
    let (parts, body) = request.into_parts();
    let body = Body::new(MinRate::new(body, minimum, window));
    next.run(Request::from_parts(parts, body)).await
}

/// A request body that fails once fewer than `minimum` bytes arrived within a `window`.
struct MinRate {
    inner: Body,
    minimum: u64,
    window: Duration,
    received: u64,
    timer: Pin<Box<Sleep>>,
}

impl MinRate {
    fn new(inner: Body, minimum: u64, window: Duration) -> Self {
        MinRate {
            inner,
            minimum,
            window,
            received: 0,
            timer: Box::pin(tokio::time::sleep(window)),
        }
    }

    /// At the end of a window: `Err` if it was too slow, else a new window starts.
    fn check_window(&mut self) -> Result<(), BodyTooSlow> {
        if self.received < self.minimum {
            return Err(BodyTooSlow {
                received: self.received,
                window: self.window,
            });
        }
        self.received = 0;
        self.timer.as_mut().reset(Instant::now() + self.window);
        Ok(())
    }
}

/// Why a request body was cut.
#[derive(Debug, thiserror::Error)]
#[error("the request body was too slow: {received} bytes in {}s", window.as_secs())]
pub(crate) struct BodyTooSlow {
    received: u64,
    window: Duration,
}

impl http_body::Body for MinRate {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                if this.timer.as_mut().poll(cx).is_ready()
                    && let Err(e) = this.check_window()
                {
                    return Poll::Ready(Some(Err(axum::Error::new(e))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => {
                while this.timer.as_mut().poll(cx).is_ready() {
                    if let Err(e) = this.check_window() {
                        return Poll::Ready(Some(Err(axum::Error::new(e))));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Bytes of request bodies held in memory, shared by all requests.
#[derive(Debug)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    /// Size of one permit in bytes (semaphores count in `u32`-sized steps).
    unit: u64,
}

impl BodyBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Self {
        let unit = 1024;
        let permits = usize::try_from(bytes.div_ceil(unit))
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        BodyBudget {
            permits: Arc::new(Semaphore::new(permits)),
            unit,
        }
    }

    /// Reserves `bytes` now, or fails with 429 `TOOMANYREQUESTS` and `Retry-After` when the
    /// budget is spent (the reservation is returned when the permit drops).
    pub fn reserve(&self, bytes: u64) -> ApiResult<OwnedSemaphorePermit> {
        let wanted = u32::try_from(bytes.div_ceil(self.unit).max(1)).unwrap_or(u32::MAX);
        self.permits.clone().try_acquire_many_owned(wanted).map_err(|_| {
            ApiError::new(Code::TooManyRequests, "too many large requests at once; retry shortly")
                .with_header(header::RETRY_AFTER, "1")
        })
    }

    /// Bytes not reserved right now.
    pub fn available(&self) -> u64 {
        self.permits.available_permits() as u64 * self.unit
    }
}
