//! The byte stream under the tar parser: decompression, the diff_id hash, and a shared handle so
//! the unpacker can read content the tar crate does not know about (see [`Shared`]).

use std::cell::RefCell;
use std::io::{self, BufReader, Read};
use std::rc::Rc;

use strata_storage::digest::{Algorithm, Digest, Hasher};

use super::Compression;
use super::error::{UnpackError, corrupt};

/// Wraps `input` in the decoder for `compression`.
pub(crate) fn decompress<'a>(
    input: impl Read + 'a,
    compression: Compression,
) -> Result<Box<dyn Read + 'a>, UnpackError> {
    Ok(match compression {
        // The tar parser reads 512-byte headers; decoders buffer on their own.
        Compression::None => Box::new(BufReader::with_capacity(64 * 1024, input)),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        // The decoder's default window limit (128 MiB) bounds its memory.
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(input).map_err(|e| corrupt(None, format!("zstd decoder: {e}")))?)
        }
    })
}

/// Hashes and counts every byte read through it: the uncompressed tar stream.
pub(super) struct Hashing<R> {
    inner: R,
    hasher: Hasher,
    bytes: u64,
}

impl<R> Hashing<R> {
    pub(super) fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Hasher::new(Algorithm::Sha256),
            bytes: 0,
        }
    }

    /// The SHA-256 of everything read so far.
    pub(super) fn digest(&self) -> Digest {
        self.hasher.digest()
    }

    /// How many bytes were read so far.
    pub(super) fn byte_count(&self) -> u64 {
        self.bytes
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A reader shared by the tar parser and the unpacker.
///
/// The tar crate in raw mode does not apply PAX `size` records: for a header whose size field is
/// zero it expects the next header right away. The unpacker then reads the content (and its
/// padding) itself through another handle; the parser only tracks positions relative to what it
/// read, so it simply continues after the content.
pub(super) struct Shared<R>(Rc<RefCell<R>>);

impl<R> Shared<R> {
    pub(super) fn new(inner: R) -> Self {
        Shared(Rc::new(RefCell::new(inner)))
    }

    /// Runs `f` on the shared reader.
    pub(super) fn with<T>(&self, f: impl FnOnce(&mut R) -> T) -> T {
        f(&mut self.0.borrow_mut())
    }
}

impl<R> Clone for Shared<R> {
    fn clone(&self) -> Self {
        Shared(Rc::clone(&self.0))
    }
}

impl<R: Read> Read for Shared<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

/// Reads and discards up to `limit` bytes; returns how many there were.
pub(super) fn discard(reader: &mut impl Read, limit: u64) -> io::Result<u64> {
    io::copy(&mut reader.take(limit), &mut io::sink())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_reader_hashes_what_passes_through() {
        let mut r = Hashing::new(&b"hello world"[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!(r.byte_count(), 11);
        assert_eq!(r.digest(), strata_storage::digest::sha256(b"hello world"));
    }
}
