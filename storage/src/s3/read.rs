//! Downloads in ranges read in parallel.
//!
//! One GET streams an object at the speed of one connection to one node; a distributed store
//! (Garage, Ceph, S3 itself) serves several ranges at once much faster. So `get` asks for the
//! first `read_part_size` bytes, streams them to the caller at once, and meanwhile reads the
//! next parts with up to `read_concurrency - 1` ranged GETs ahead, each held in memory under the
//! backend's buffer budget and yielded in order. Downloads take only from the first half of the
//! budget (uploads, which wait for it, keep the rest): a part that finds no such room is not
//! read ahead, and when nothing else is ahead, the rest of the object comes in one streamed
//! request, so a busy replica degrades to one GET per download instead of growing. Every later range is
//! conditional on the first response's ETag, so an object replaced during a download fails the
//! download instead of mixing two objects.
//!
//! The parts read ahead advance while the caller polls the stream (no spawned tasks): dropping
//! the stream cancels them.

use std::collections::VecDeque;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, Stream, StreamExt};
use tokio::sync::OwnedSemaphorePermit;

use super::Inner;
use super::client::{self, backend_err, map_err};
use super::parts;
use crate::error::{Error, Result};
use crate::key::Key;
use crate::stream::ByteStream;

/// One range of the object, ready to be yielded: its bytes (in memory, or still arriving) and
/// the share of the budget they hold.
struct Part {
    body: ByteStream,
    _held: Option<OwnedSemaphorePermit>,
}

/// The body of a download whose first part is already streaming.
pub(super) struct Ranges {
    inner: Arc<Inner>,
    key: Key,
    etag: Option<String>,
    /// The part being yielded.
    current: Option<Part>,
    /// Parts requested, in order.
    ahead: FuturesOrdered<BoxFuture<'static, Result<Part>>>,
    /// Parts that arrived while an earlier one was still being yielded.
    ready: VecDeque<Result<Part>>,
    /// The bytes not yet requested.
    rest: Range<u64>,
    failed: bool,
}

impl Ranges {
    /// The stream of `first` (the body of the first part, already requested) followed by
    /// `rest`, read in parts ahead.
    pub(super) fn body(
        inner: Arc<Inner>,
        key: Key,
        etag: Option<String>,
        first: ByteStream,
        rest: Range<u64>,
    ) -> ByteStream {
        let mut ranges = Ranges {
            inner,
            key,
            etag,
            current: Some(Part {
                body: first,
                _held: None,
            }),
            ahead: FuturesOrdered::new(),
            ready: VecDeque::new(),
            rest,
            failed: false,
        };
        ranges.schedule();
        Box::pin(ranges)
    }

    /// Requests parts until `read_concurrency - 1` are ahead of the current one, the budget is
    /// spent, or nothing is left. With nothing ahead and no budget, the rest is one request.
    fn schedule(&mut self) {
        let limit = self.inner.read_concurrency.saturating_sub(1);
        while !self.rest.is_empty() && self.ahead.len() + self.ready.len() < limit {
            let end = self.rest.end.min(self.rest.start + self.inner.read_part_size);
            let range = self.rest.start..end;
            match parts::try_reserve(
                &self.inner.budget,
                self.inner.budget_total,
                (end - range.start) as usize,
            ) {
                Some(held) => {
                    self.rest.start = end;
                    let fetch = fetch(self.inner.clone(), self.key.clone(), self.etag.clone(), range);
                    self.ahead.push_back(Box::pin(async move {
                        let body = fetch.await?;
                        let chunks: Vec<Bytes> = body.collect::<Vec<_>>().await.into_iter().collect::<Result<_>>()?;
                        let body: ByteStream = Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)));
                        Ok(Part {
                            body,
                            _held: Some(held),
                        })
                    }));
                }
                None if self.ahead.is_empty() && self.ready.is_empty() => {
                    let range = self.rest.clone();
                    self.rest.start = self.rest.end;
                    let fetch = fetch(self.inner.clone(), self.key.clone(), self.etag.clone(), range);
                    self.ahead.push_back(Box::pin(async move {
                        Ok(Part {
                            body: fetch.await?,
                            _held: None,
                        })
                    }));
                }
                None => break,
            }
        }
    }
}

impl Stream for Ranges {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.failed {
                return Poll::Ready(None);
            }
            while let Poll::Ready(Some(part)) = this.ahead.poll_next_unpin(cx) {
                this.ready.push_back(part);
            }
            if let Some(part) = this.current.as_mut() {
                match part.body.poll_next_unpin(cx) {
                    Poll::Ready(None) => {
                        this.current = None;
                        this.schedule();
                        continue;
                    }
                    Poll::Ready(Some(Err(e))) => {
                        this.failed = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                    other => return other,
                }
            }
            match this.ready.pop_front() {
                Some(Ok(part)) => this.current = Some(part),
                Some(Err(e)) => {
                    this.failed = true;
                    return Poll::Ready(Some(Err(e)));
                }
                // Every part ahead was polled since the last change: woken when one arrives.
                None if !this.ahead.is_empty() => return Poll::Pending,
                None => return Poll::Ready(None),
            }
        }
    }
}

/// One ranged GET of `range`, conditional on `etag`, whose answer must be exactly that range.
async fn fetch(inner: Arc<Inner>, key: Key, etag: Option<String>, range: Range<u64>) -> Result<ByteStream> {
    let out = inner
        .client
        .get_object()
        .bucket(&inner.bucket)
        .key(inner.s3_key(&key))
        .range(format!("bytes={}-{}", range.start, range.end - 1))
        .set_if_match(etag)
        .send()
        .await
        .map_err(|e| {
            if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) {
                return changed(&key);
            }
            map_err("GetObject", key.as_str(), e)
        })?;
    let got = out.content_range.as_deref().and_then(client::parse_content_range);
    if got.as_ref().map(|(r, _)| r) != Some(&range) {
        return Err(backend_err(
            "GetObject",
            key.as_str(),
            std::io::Error::other(format!(
                "asked for bytes {range:?}, got Content-Range {:?}",
                out.content_range
            )),
        ));
    }
    Ok(client::body_stream(out.body, key.to_string()))
}

fn changed(key: &Key) -> Error {
    backend_err(
        "GetObject",
        key.as_str(),
        std::io::Error::other("the object changed during the download"),
    )
}
