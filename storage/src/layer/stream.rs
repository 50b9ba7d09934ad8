//! The byte stream under the tar parser: decompression, the diff_id hash, and a shared handle so
//! the unpacker can read content the tar crate does not know about (see [`Shared`]).

use std::cell::RefCell;
use std::io::{self, BufReader, Read};
use std::rc::Rc;

use crate::digest::{Algorithm, Digest, Hasher};

use super::{Compression, TarError, corrupt};

/// Wraps `input` in the decoder for `compression`: what it reads is the tar stream.
pub fn decompress<'a>(input: impl Read + 'a, compression: Compression) -> Result<Box<dyn Read + 'a>, TarError> {
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

/// Ends what `inner` reads on a 512-byte block boundary, adding zeros: a writer that leaves out
/// the padding after the last entry and the end-of-archive blocks (`umoci insert` does) reads
/// as Go's `archive/tar` reads it. The zeros are not part of the diff_id (they come after the
/// hash), and they can only stand in for padding: the read loop checks that the real bytes
/// cover every entry's content.
pub(super) struct BlockPadded<R> {
    inner: R,
    read: u64,
    /// Zeros still to give once `inner` ended.
    zeros: Option<u64>,
}

impl<R> BlockPadded<R> {
    pub(super) fn new(inner: R) -> Self {
        BlockPadded {
            inner,
            read: 0,
            zeros: None,
        }
    }

    /// The wrapped reader.
    pub(super) fn inner(&self) -> &R {
        &self.inner
    }

    /// How many bytes came from the wrapped reader (without the added zeros).
    pub(super) fn real_bytes(&self) -> u64 {
        self.read
    }
}

impl<R: Read> Read for BlockPadded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.zeros.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.read += n as u64;
                return Ok(n);
            }
            self.zeros = Some((512 - self.read % 512) % 512);
        }
        let left = self.zeros.as_mut().expect("set above");
        let n = (*left).min(buf.len() as u64) as usize;
        buf[..n].fill(0);
        *left -= n as u64;
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

    #[test]
    fn block_padding_ends_the_stream_on_a_block_boundary() {
        let mut r = BlockPadded::new(&[7u8; 700][..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 1024);
        assert!(out[..700].iter().all(|&b| b == 7) && out[700..].iter().all(|&b| b == 0));
        assert_eq!(r.real_bytes(), 700);
        let mut whole = BlockPadded::new(&[1u8; 512][..]);
        out.clear();
        whole.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 512);
    }
}
