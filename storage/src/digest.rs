//! Digests: which algorithms we store, an incremental (and resumable) hasher, and a stream adapter
//! that verifies digest and size while the bytes pass through.
//!
//! The digest *type* is `oci_spec`'s [`Digest`]; this module adds what storing content needs:
//! [`Algorithm`] says whether we can hash a digest's algorithm (SHA-256 and SHA-512), [`Hasher`]
//! computes one using the CPU's SHA instructions where present (sha2 detects them at run time), and
//! its state can be saved and restored so an upload can continue its hash in another process.

use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::Stream;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Error, Result};
use crate::stream::ByteStream;

pub use oci_spec::image::Digest;

/// A digest algorithm this crate can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// SHA-256, the canonical algorithm of OCI content.
    Sha256,
    /// SHA-512, accepted by the OCI image spec.
    Sha512,
}

impl Algorithm {
    /// The algorithm of `digest`, or an error if we cannot compute it.
    pub fn of(digest: &Digest) -> Result<Self> {
        use oci_spec::image::DigestAlgorithm as A;
        match digest.algorithm() {
            A::Sha256 => Ok(Algorithm::Sha256),
            A::Sha512 => Ok(Algorithm::Sha512),
            other => Err(Error::InvalidDigest {
                value: digest.to_string(),
                reason: format!("unsupported algorithm {other}"),
            }),
        }
    }

    /// The name used in digests and storage keys (`sha256`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The digest of `data`.
    pub fn digest_of(self, data: &[u8]) -> Digest {
        let mut hasher = Hasher::new(self);
        hasher.update(data);
        hasher.finish()
    }
}

/// Parses a digest string and checks that its algorithm is one we can compute.
pub fn parse_digest(value: &str) -> Result<Digest> {
    let digest = Digest::from_str(value).map_err(|e| Error::InvalidDigest {
        value: value.chars().take(160).collect(),
        reason: e.to_string(),
    })?;
    Algorithm::of(&digest)?;
    Ok(digest)
}

/// The SHA-256 digest of `data`.
pub fn sha256(data: &[u8]) -> Digest {
    Algorithm::Sha256.digest_of(data)
}

#[derive(Clone)]
enum Inner {
    Sha256(Sha256),
    Sha512(Box<Sha512>),
}

/// An incremental hasher for one [`Algorithm`], whose state can be saved with [`Hasher::state`]
/// and restored with [`Hasher::resume`] (104 bytes for SHA-256).
#[derive(Clone)]
pub struct Hasher {
    inner: Inner,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").field("algorithm", &self.algorithm()).finish()
    }
}

impl Hasher {
    /// A hasher with nothing hashed yet.
    pub fn new(algorithm: Algorithm) -> Self {
        let inner = match algorithm {
            Algorithm::Sha256 => Inner::Sha256(Sha256::new()),
            Algorithm::Sha512 => Inner::Sha512(Box::new(Sha512::new())),
        };
        Hasher { inner }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            Inner::Sha256(_) => Algorithm::Sha256,
            Inner::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Hashes more bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.inner {
            Inner::Sha256(h) => h.update(data),
            Inner::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything hashed so far (the hasher is left unchanged).
    pub fn digest(&self) -> Digest {
        self.clone().finish()
    }

    /// The digest of everything hashed.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self.inner {
            Inner::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Inner::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest::from_str(&format!("{}:{hex}", algorithm.name()))
            .expect("a hex digest of the right length is a valid digest")
    }

    /// The hasher's internal state, to be restored later with [`Hasher::resume`].
    pub fn state(&self) -> Vec<u8> {
        match &self.inner {
            Inner::Sha256(h) => h.serialize().to_vec(),
            Inner::Sha512(h) => h.serialize().to_vec(),
        }
    }

    /// Restores a hasher from [`Hasher::state`] output.
    pub fn resume(algorithm: Algorithm, state: &[u8]) -> Result<Self> {
        let bad = || Error::Invalid {
            what: "hasher state",
            value: format!("{} bytes", state.len()),
            reason: "not a saved state of this algorithm",
        };
        let inner = match algorithm {
            Algorithm::Sha256 => {
                let s = SerializedState::<Sha256>::try_from(state).map_err(|_| bad())?;
                Inner::Sha256(Sha256::deserialize(&s).map_err(|_| bad())?)
            }
            Algorithm::Sha512 => {
                let s = SerializedState::<Sha512>::try_from(state).map_err(|_| bad())?;
                Inner::Sha512(Box::new(Sha512::deserialize(&s).map_err(|_| bad())?))
            }
        };
        Ok(Hasher { inner })
    }
}

/// A stream adapter that passes bytes through while hashing and counting them, and fails instead
/// of ending when the content does not match the expected digest and size.
///
/// Too many bytes are detected as soon as they arrive, so a hostile sender cannot make us store
/// more than `expected_size`. Consumers that publish only when the stream ends without an error
/// (every [`crate::Backend::put`] does) therefore never publish unverified content.
pub struct VerifyingStream {
    inner: ByteStream,
    hasher: Option<Hasher>,
    expected: Digest,
    expected_size: Option<u64>,
    seen: u64,
}

impl std::fmt::Debug for VerifyingStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingStream")
            .field("expected", &self.expected)
            .field("expected_size", &self.expected_size)
            .field("seen", &self.seen)
            .finish()
    }
}

impl VerifyingStream {
    /// Verifies `inner` against `expected` (and `expected_size` when given).
    pub fn new(inner: ByteStream, expected: Digest, expected_size: Option<u64>) -> Result<Self> {
        let algorithm = Algorithm::of(&expected)?;
        Ok(VerifyingStream {
            inner,
            hasher: Some(Hasher::new(algorithm)),
            expected,
            expected_size,
            seen: 0,
        })
    }

    fn check_end(&mut self) -> Result<()> {
        if let Some(expected) = self.expected_size
            && expected != self.seen
        {
            return Err(Error::SizeMismatch {
                expected,
                actual: self.seen,
            });
        }
        let actual = self.hasher.take().expect("checked once").finish();
        if actual != self.expected {
            return Err(Error::DigestMismatch {
                expected: self.expected.clone(),
                actual,
            });
        }
        Ok(())
    }
}

impl Stream for VerifyingStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(hasher) = this.hasher.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(this.inner.as_mut().poll_next(cx)) {
            Some(Ok(chunk)) => {
                this.seen += chunk.len() as u64;
                if let Some(expected) = this.expected_size
                    && this.seen > expected
                {
                    this.hasher = None;
                    return Poll::Ready(Some(Err(Error::SizeMismatch {
                        expected,
                        actual: this.seen,
                    })));
                }
                hasher.update(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Some(Err(e)) => {
                this.hasher = None;
                Poll::Ready(Some(Err(e)))
            }
            None => match this.check_end() {
                Ok(()) => Poll::Ready(None),
                Err(e) => Poll::Ready(Some(Err(e))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;
    use crate::stream;

    const EMPTY_SHA256: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn empty_input_hashes_to_the_well_known_digest() {
        assert_eq!(sha256(b"").to_string(), EMPTY_SHA256);
    }

    #[test]
    fn sha512_is_accepted_and_sha384_is_not() {
        let d = Algorithm::Sha512.digest_of(b"abc");
        assert!(d.to_string().starts_with("sha512:ddaf35a1"));
        assert_eq!(parse_digest(d.as_ref()).unwrap(), d);
        let sha384 = format!("sha384:{}", "a".repeat(96));
        assert!(matches!(parse_digest(&sha384), Err(Error::InvalidDigest { .. })));
        assert!(matches!(parse_digest("sha256:ABC"), Err(Error::InvalidDigest { .. })));
    }

    #[test]
    fn a_resumed_hasher_continues_where_the_saved_one_stopped() {
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut first = Hasher::new(alg);
            first.update(b"hello ");
            let state = first.state();
            let mut resumed = Hasher::resume(alg, &state).unwrap();
            resumed.update(b"world");
            assert_eq!(resumed.finish(), alg.digest_of(b"hello world"));
        }
        assert_eq!(Hasher::new(Algorithm::Sha256).state().len(), 104);
        assert!(Hasher::resume(Algorithm::Sha256, b"short").is_err());
    }

    async fn verify(data: &'static [u8], digest: Digest, size: Option<u64>) -> Result<Vec<u8>> {
        let chunks = data.chunks(3).map(Bytes::from_static).collect::<Vec<_>>();
        let s = VerifyingStream::new(stream::iter_ok(chunks), digest, size)?;
        let parts: Vec<Bytes> = s.try_collect().await?;
        Ok(parts.concat())
    }

    #[tokio::test]
    async fn verifying_stream_passes_matching_content_through() {
        let out = verify(b"some content", sha256(b"some content"), Some(12))
            .await
            .unwrap();
        assert_eq!(out, b"some content");
    }

    #[tokio::test]
    async fn verifying_stream_fails_on_wrong_digest_or_size() {
        let err = verify(b"some content", sha256(b"other"), None).await.unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        let err = verify(b"some content", sha256(b"some content"), Some(11))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::SizeMismatch {
                    expected: 11,
                    actual: 12
                }
            ),
            "{err}"
        );
        let err = verify(b"some content", sha256(b"some content"), Some(13))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::SizeMismatch {
                    expected: 13,
                    actual: 12
                }
            ),
            "{err}"
        );
    }
}
