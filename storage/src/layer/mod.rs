//! Reading layer tars from the network, safely: decompression ([`Compression`], [`decompress`]),
//! the tar stream split into entries with their PAX and GNU extension records applied
//! ([`EntryHeader`]), and the read loop ([`read_layer`]) that bounds everything a hostile layer
//! could make it hold or do — total declared bytes, entry count, extension record size — before
//! it reads any content, computes the diff_id on the way, and hands each entry to a [`Sink`]:
//! the runtime's unpacker and Windows importer, the registry's layer index.
//!
//! Blocking: the reader is `std::io::Read`; run it on a blocking thread.

mod header;
mod read;
mod stream;

use std::fmt;

pub use header::{EntryHeader, Kind, Mtime};
pub use read::{LayerRead, Sink, read_layer};
pub use stream::decompress;

/// The compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (one or more members).
    Gzip,
    /// Zstandard (one or more frames).
    Zstd,
}

impl Compression {
    /// The compression of a layer media type, or `None` if it is not a layer media type this
    /// reader knows (OCI and Docker, distributable or not).
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        use crate::oci::media;
        const PLAIN: [&str; 3] = [
            media::OCI_LAYER,
            media::OCI_NONDISTRIBUTABLE[0],
            media::DOCKER_LAYER_TAR,
        ];
        const GZIP: [&str; 2] = [media::DOCKER_LAYER_GZIP, media::DOCKER_FOREIGN_LAYER];
        let (base, suffix) = media_type.split_once('+').unwrap_or((media_type, ""));
        if GZIP.contains(&media_type) {
            return Some(Compression::Gzip);
        }
        if !PLAIN.contains(&base) {
            return None;
        }
        match suffix {
            "" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The compression the first bytes of a blob (at least 4 for a reliable answer) show, by
    /// their magic numbers; anything else is taken as a plain tar.
    pub fn sniff(first_bytes: &[u8]) -> Self {
        if first_bytes.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if first_bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Bounds on what reading one layer may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TarLimits {
    /// The most uncompressed bytes: the declared sizes of all entries plus any data after the
    /// end of the archive.
    pub max_total_bytes: u64,
    /// The most entries (files, directories, links, whiteouts, ...).
    pub max_entries: u64,
    /// The largest PAX or GNU long-name record, which is held in memory.
    pub max_extension_bytes: u64,
}

impl Default for TarLimits {
    fn default() -> Self {
        TarLimits {
            max_total_bytes: 64 << 30,
            max_entries: 1_000_000,
            max_extension_bytes: 1 << 20,
        }
    }
}

/// Which [`TarLimits`] field a layer exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// Declared entry sizes plus trailing data.
    TotalBytes,
    /// The number of entries.
    Entries,
    /// The size of one PAX or GNU long-name record.
    ExtensionBytes,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::TotalBytes => "total uncompressed bytes",
            LimitKind::Entries => "number of entries",
            LimitKind::ExtensionBytes => "size of a PAX or GNU extension header",
        })
    }
}

/// Why a layer tar could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TarError {
    /// The layer exceeds one of the [`TarLimits`].
    #[error("layer exceeds the limit on the {what} ({limit}){}", at_entry(.entry))]
    LimitExceeded {
        /// Which limit.
        what: LimitKind,
        /// The limit.
        limit: u64,
        /// The entry being read when the limit was reached, if any.
        entry: Option<String>,
    },
    /// An entry type this reader does not support (GNU sparse files, tape volume headers, ...).
    #[error("layer entry {entry:?} has the unsupported type {kind}")]
    UnsupportedEntryType {
        /// The offending entry.
        entry: String,
        /// The type, described.
        kind: String,
    },
    /// The stream is not a valid (compressed) tar archive.
    #[error("layer is corrupt{}: {reason}", at_entry(.entry))]
    Corrupt {
        /// The entry being read, if known.
        entry: Option<String>,
        /// What is wrong.
        reason: String,
    },
}

/// How many bytes of an entry name errors show.
pub const MAX_SHOWN_NAME: usize = 512;

fn at_entry(entry: &Option<String>) -> String {
    match entry {
        Some(e) => format!(" at entry {e:?}"),
        None => String::new(),
    }
}

/// An entry name for display in errors and logs (lossily decoded, cut after
/// [`MAX_SHOWN_NAME`] bytes).
pub fn shown(name: &[u8]) -> String {
    if name.len() > MAX_SHOWN_NAME {
        let mut s = String::from_utf8_lossy(&name[..MAX_SHOWN_NAME]).into_owned();
        s.push_str("...");
        s
    } else {
        String::from_utf8_lossy(name).into_owned()
    }
}

/// Shorthand for [`TarError::Corrupt`].
pub(crate) fn corrupt(entry: Option<&[u8]>, reason: impl fmt::Display) -> TarError {
    TarError::Corrupt {
        entry: entry.map(shown),
        reason: reason.to_string(),
    }
}
