//! Byte streams: the one body type that flows into and out of every backend.

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, TryStreamExt};

use crate::error::{BoxError, Error, Result};

/// A stream of byte chunks. Every body in and out of storage is one of these, so memory use never
/// depends on object size.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send + 'static>>;

/// A stream of one chunk.
pub fn once(data: impl Into<Bytes>) -> ByteStream {
    let data = data.into();
    Box::pin(futures::stream::once(async move { Ok(data) }))
}

/// A stream of the given chunks.
pub fn iter_ok(chunks: impl IntoIterator<Item = Bytes, IntoIter: Send + 'static>) -> ByteStream {
    Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)))
}

/// Adapts any fallible byte stream (an HTTP body, a file reader); its errors become
/// [`Error::Input`].
pub fn from_stream<S, B, E>(stream: S) -> ByteStream
where
    S: Stream<Item = std::result::Result<B, E>> + Send + 'static,
    B: Into<Bytes> + 'static,
    E: Into<BoxError> + 'static,
{
    Box::pin(stream.map_ok(Into::into).map_err(Error::input))
}

/// Reads a whole stream into memory. Only for content known to be small (manifests, metadata).
pub async fn collect(mut stream: ByteStream) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
    }
    Ok(buf.freeze())
}

/// Reads at most `limit` bytes of a stream into memory, failing with
/// [`Error::SizeMismatch`] when the stream is longer.
pub async fn collect_limited(mut stream: ByteStream, limit: u64) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let total = (buf.len() + chunk.len()) as u64;
        if total > limit {
            return Err(Error::SizeMismatch {
                expected: limit,
                actual: total,
            });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
