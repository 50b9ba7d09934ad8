//! Request accounting, in one place: a tower layer that counts every request by endpoint kind,
//! method and status, times it to its response headers, counts the request body bytes its
//! handler actually read and the response body bytes actually handed to the connection, and
//! writes the request log line.
//!
//! Both bodies are wrapped, so a streamed response without `Content-Length`, a transfer cut
//! short and a request body the handler left unread all count what really passed. The byte
//! counters grow as frames pass (a long transfer shows on `/metrics` while it runs); the request
//! itself (count, latency, log line) is recorded once, when the response body ends or is
//! dropped, whichever comes first. A request whose handler never answered (the client went
//! away first) is not recorded, as before.
//!
//! Handlers say which endpoint and repository a request was for with a [`RequestInfo`]
//! response extension ([`endpoint_kind`] says what counts without one).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Buf;
use http::{Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use tower::{Layer, Service};

use super::Metrics;

/// What a handler tells the request log and metrics about a request, as a response extension.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// Endpoint kind (`blob`, `manifest`, ...).
    pub kind: &'static str,
    /// Repository, when the endpoint has one.
    pub repository: Option<String>,
}

/// The endpoint kind of a response: its handler's [`RequestInfo`], else `unknown` under `/v2`
/// and `ops` elsewhere.
pub(crate) fn endpoint_kind(info: Option<&RequestInfo>, is_v2: bool) -> &'static str {
    info.map_or(if is_v2 { "unknown" } else { "ops" }, |i| i.kind)
}

/// Wraps a service in [`Accounting`], recording into `metrics`.
#[derive(Debug, Clone)]
pub struct AccountingLayer {
    metrics: Arc<Metrics>,
}

impl AccountingLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        AccountingLayer { metrics }
    }
}

impl<S> Layer<S> for AccountingLayer {
    type Service = Accounting<S>;

    fn layer(&self, inner: S) -> Accounting<S> {
        Accounting {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`AccountingLayer`] makes: `inner`, with both bodies counted and every request
/// recorded once.
#[derive(Debug, Clone)]
pub struct Accounting<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Accounting<S>
where
    S: Service<Request<CountedRequest<ReqBody>>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: 'static,
{
    type Response = Response<CountedResponse<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let method = request.method().clone();
        let is_v2 = request.uri().path().starts_with("/v2");
        let read = Arc::new(AtomicU64::new(0));
        let request = request.map(|inner| CountedRequest {
            inner,
            read: read.clone(),
            total: self.metrics.bytes_in.clone(),
        });
        let response = self.inner.call(request);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let response = response.await?;
            let elapsed = start.elapsed();
            let info = response.extensions().get::<RequestInfo>();
            let record = Record {
                kind: endpoint_kind(info, is_v2),
                repository: info.and_then(|i| i.repository.clone()).unwrap_or_default(),
                method,
                status: response.status().as_u16(),
                elapsed,
                read,
                sent: 0,
                metrics,
            };
            Ok(response.map(|inner| CountedResponse {
                inner,
                record: Some(record),
            }))
        })
    }
}

/// A request body that counts the data bytes pulled through it.
#[derive(Debug)]
pub struct CountedRequest<B> {
    inner: B,
    /// This request's bytes, for its log line.
    read: Arc<AtomicU64>,
    /// `strata_http_request_bytes_total`.
    total: Counter,
}

impl<B: Body + Unpin> Body for CountedRequest<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let n = data.remaining() as u64;
            self.read.fetch_add(n, Ordering::Relaxed);
            self.total.inc_by(n);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that counts the data bytes pulled through it and records its request when it
/// ends or is dropped. Size hint and end of stream pass through, so `Content-Length` is still
/// sent for bodies of known size.
#[derive(Debug)]
pub struct CountedResponse<B> {
    inner: B,
    /// `None` once recorded.
    record: Option<Record>,
}

impl<B: Body + Unpin> Body for CountedResponse<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(record)) = (frame.data_ref(), self.record.as_mut()) {
                    let n = data.remaining() as u64;
                    record.sent += n;
                    record.metrics.bytes_out.inc_by(n);
                }
            }
            // The end: record now rather than whenever the connection drops the body.
            Poll::Ready(None) => drop(self.record.take()),
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One answered request; recorded when dropped, so every way a response body ends (finished,
/// failed, abandoned by the client, never polled as for `HEAD`) records it exactly once.
#[derive(Debug)]
struct Record {
    metrics: Arc<Metrics>,
    kind: &'static str,
    repository: String,
    method: Method,
    status: u16,
    /// Time to response headers.
    elapsed: Duration,
    /// Request body bytes the handler read (it may still be reading while the response streams).
    read: Arc<AtomicU64>,
    /// Response body bytes sent so far.
    sent: u64,
}

impl Drop for Record {
    fn drop(&mut self) {
        let (kind, method, status) = (self.kind, &self.method, self.status);
        self.metrics.request(kind, method.as_str(), status, self.elapsed);
        tracing::info!(
            %method,
            endpoint = kind,
            repository = %self.repository,
            status,
            bytes_in = self.read.load(Ordering::Relaxed),
            bytes_out = self.sent,
            duration_ms = self.elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Body as AxumBody;
    use bytes::Bytes;
    use futures::stream;
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;

    fn metric(text: &str, line_start: &str) -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(line_start).map(|v| v.trim().parse().unwrap()))
    }

    #[tokio::test]
    async fn streamed_response_without_content_length_counts_the_bytes_sent() {
        let metrics = Arc::new(Metrics::new());
        let service = ServiceBuilder::new()
            .layer(AccountingLayer::new(metrics.clone()))
            .service(service_fn(|_: Request<CountedRequest<AxumBody>>| async {
                let chunks = ["first ", "second ", "third"].map(|c| Ok::<_, Infallible>(Bytes::from(c)));
                let mut response = Response::new(AxumBody::from_stream(stream::iter(chunks)));
                response.extensions_mut().insert(RequestInfo {
                    kind: "blob",
                    repository: Some("r".into()),
                });
                Ok::<_, Infallible>(response)
            }));
        let request = Request::get("/v2/r/blobs/x").body(AxumBody::empty()).unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.headers().get(http::header::CONTENT_LENGTH), None);
        let text = metrics.render();
        assert_eq!(metric(&text, "strata_http_response_bytes_total "), Some(0), "{text}");
        assert_eq!(
            metric(
                &text,
                "strata_http_requests_total{endpoint=\"blob\",method=\"GET\",status=\"200\"} "
            ),
            None,
            "recorded before the body ended: {text}"
        );

        let body = axum::body::to_bytes(AxumBody::new(response.into_body()), usize::MAX)
            .await
            .unwrap();
        assert_eq!(body.len(), 18);
        let text = metrics.render();
        assert_eq!(metric(&text, "strata_http_response_bytes_total "), Some(18), "{text}");
        assert_eq!(
            metric(
                &text,
                "strata_http_requests_total{endpoint=\"blob\",method=\"GET\",status=\"200\"} "
            ),
            Some(1),
            "{text}"
        );
        assert_eq!(
            metric(&text, "strata_http_request_duration_seconds_count{endpoint=\"blob\"} "),
            Some(1)
        );
    }

    #[tokio::test]
    async fn abandoned_response_counts_what_was_sent_and_records_once() {
        let metrics = Arc::new(Metrics::new());
        let service =
            AccountingLayer::new(metrics.clone()).layer(service_fn(|_: Request<CountedRequest<AxumBody>>| async {
                let chunks = ["sent ", "never sent"].map(|c| Ok::<_, Infallible>(Bytes::from(c)));
                Ok::<_, Infallible>(Response::new(AxumBody::from_stream(stream::iter(chunks))))
            }));
        let request = Request::get("/other").body(AxumBody::empty()).unwrap();
        let mut body = service.oneshot(request).await.unwrap().into_body();
        let first = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.into_data().unwrap(), "sent ");
        drop(body);
        let text = metrics.render();
        assert_eq!(metric(&text, "strata_http_response_bytes_total "), Some(5), "{text}");
        assert_eq!(
            metric(
                &text,
                "strata_http_requests_total{endpoint=\"ops\",method=\"GET\",status=\"200\"} "
            ),
            Some(1),
            "{text}"
        );
    }

    #[tokio::test]
    async fn request_bytes_are_the_bytes_the_handler_read() {
        let metrics = Arc::new(Metrics::new());
        // The handler reads the first frame of a three-frame body and answers.
        let service = AccountingLayer::new(metrics.clone()).layer(service_fn(
            |request: Request<CountedRequest<AxumBody>>| async move {
                let mut body = request.into_body();
                let first = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(first.into_data().unwrap().len(), 4);
                Ok::<_, Infallible>(Response::new(AxumBody::empty()))
            },
        ));
        let chunks = ["read", " unread", " unread"].map(|c| Ok::<_, Infallible>(Bytes::from(c)));
        let request = Request::put("/v2/r/blobs/uploads/x")
            .header(http::header::CONTENT_LENGTH, 18)
            .body(AxumBody::from_stream(stream::iter(chunks)))
            .unwrap();
        drop(service.oneshot(request).await.unwrap());
        let text = metrics.render();
        assert_eq!(metric(&text, "strata_http_request_bytes_total "), Some(4), "{text}");
        assert_eq!(
            metric(
                &text,
                "strata_http_requests_total{endpoint=\"unknown\",method=\"PUT\",status=\"200\"} "
            ),
            Some(1),
            "{text}"
        );
    }
}
