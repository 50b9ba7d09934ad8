//! The read loop: decompress, hash, split the tar stream into entries, enforce the limits, and
//! hand each entry to a [`Sink`].

use std::io::Read;

use super::header::{EntryHeader, ExtensionKind, Extensions};
use super::stream::{self, BlockPadded, Hashing, Shared, discard};
use super::{Compression, LimitKind, TarError, TarLimits, corrupt, shown};
use crate::digest::Digest;

const BLOCK: u64 = 512;

/// Counts the uncompressed bytes a layer declares against [`super::Limits::max_total_bytes`].
struct Budget {
    used: u64,
    limit: u64,
}

impl Budget {
    fn charge(&mut self, bytes: u64, entry: Option<&[u8]>) -> Result<(), TarError> {
        match self.used.checked_add(bytes) {
            Some(used) if used <= self.limit => {
                self.used = used;
                Ok(())
            }
            _ => Err(TarError::LimitExceeded {
                what: LimitKind::TotalBytes,
                limit: self.limit,
                entry: entry.map(shown),
            }),
        }
    }
}

/// What the read loop hands entries to: the runtime's unpacker and Windows importer, the
/// registry's layer index.
pub trait Sink {
    /// The sink's error; the reader's own errors convert into it.
    type Error: From<TarError>;
    /// Takes one entry whose content (exactly `h.size` bytes) `content` yields; content not read
    /// is skipped.
    fn apply(&mut self, h: &EntryHeader, content: &mut dyn Read) -> Result<(), Self::Error>;
}

/// What [`read_layer`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRead {
    /// The SHA-256 of the uncompressed tar stream, end-of-archive blocks and padding included:
    /// the layer's diff_id.
    pub diff_id: Digest,
    /// How many entries the layer has (extension headers not counted).
    pub entries: u64,
    /// How many bytes the uncompressed stream has.
    pub bytes: u64,
}

/// Reads a layer tar, handing each entry to `sink`; the diff_id is computed on the way. Every
/// limit is checked from the headers before content is read, so a decompression bomb stops at
/// its first oversized header; the archive must end as Go's `archive/tar` ends it (see
/// `finish_stream`), so no entry hides behind a single zero block.
pub fn read_layer<S: Sink>(
    input: impl Read,
    compression: Compression,
    limits: &TarLimits,
    sink: &mut S,
) -> Result<LayerRead, S::Error> {
    let stream = Shared::new(BlockPadded::new(Hashing::new(stream::decompress(input, compression)?)));
    let mut budget = Budget {
        used: 0,
        limit: limits.max_total_bytes,
    };
    let mut entries = 0u64;
    let mut headers = 0u64;
    let mut extensions = Extensions::default();
    // Where the last entry's content ends, and its name: the real bytes must reach it.
    let mut content_end = (0u64, Vec::new());

    let mut archive = tar::Archive::new(stream.clone());
    let raw_entries = archive.entries().map_err(|e| corrupt(None, e))?.raw(true);
    for raw in raw_entries {
        let mut entry = raw.map_err(|e| corrupt(None, e))?;
        let type_byte = entry.header().entry_type().as_byte();
        let extension = match type_byte {
            b'x' => Some(ExtensionKind::Pax),
            b'L' => Some(ExtensionKind::LongName),
            b'K' => Some(ExtensionKind::LongLink),
            _ => None,
        };
        if let Some(kind) = extension {
            let name = entry.header().path_bytes().into_owned();
            let size = entry.size();
            if size > limits.max_extension_bytes {
                return Err(TarError::LimitExceeded {
                    what: LimitKind::ExtensionBytes,
                    limit: limits.max_extension_bytes,
                    entry: Some(shown(&name)),
                }
                .into());
            }
            budget.charge(size, Some(&name))?;
            let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            entry.read_to_end(&mut data).map_err(|e| corrupt(Some(&name), e))?;
            if data.len() as u64 != size {
                return Err(corrupt(Some(&name), "the archive ends inside an extension header").into());
            }
            extensions.set(kind, data)?;
            continue;
        }

        // Extension records come at most three per entry, so counting the others bounds the loop.
        headers += 1;
        if headers > limits.max_entries {
            return Err(TarError::LimitExceeded {
                what: LimitKind::Entries,
                limit: limits.max_entries,
                entry: Some(shown(&entry.header().path_bytes())),
            }
            .into());
        }
        if type_byte == b'g' {
            // Global PAX records: containerd and Go ignore them too. The tar crate skips the data.
            let name = entry.header().path_bytes().into_owned();
            if extensions.is_pending() {
                return Err(corrupt(Some(&name), "extension records before a global header").into());
            }
            budget.charge(entry.size(), Some(&name))?;
            tracing::debug!(entry = ?shown(&name), "ignoring PAX global header");
            continue;
        }

        let mut header = extensions.resolve(entry.header())?;
        header.offset = entry.raw_file_position();
        budget.charge(header.size, Some(&header.name))?;
        entries += 1;
        content_end = (entry.raw_file_position() + header.size, header.name.clone());
        if header.size_from_pax_only {
            // The tar crate thinks the entry is empty; read its content and padding ourselves.
            let mut content = stream.clone().take(header.size);
            sink.apply(&header, &mut content)?;
            discard(&mut content, u64::MAX).map_err(|e| corrupt(Some(&header.name), e))?;
            let padding = (BLOCK - header.size % BLOCK) % BLOCK;
            let padded = discard(&mut stream.clone(), padding).map_err(|e| corrupt(Some(&header.name), e))?;
            if content.limit() != 0 || padded != padding {
                return Err(corrupt(Some(&header.name), "the archive ends inside the entry").into());
            }
        } else {
            sink.apply(&header, &mut entry)?;
        }
    }
    if extensions.is_pending() {
        return Err(corrupt(None, "extension records at the end of the archive").into());
    }
    drop(archive);
    if stream.with(|s| s.real_bytes()) < content_end.0 {
        return Err(corrupt(Some(&content_end.1), "the archive ends inside the entry").into());
    }

    finish_stream(&stream, &mut budget)?;
    let (diff_id, bytes) = stream.with(|s| (s.inner().digest(), s.inner().byte_count()));
    Ok(LayerRead {
        diff_id,
        entries,
        bytes,
    })
}

/// Reads the rest of the stream after the tar crate stopped at the first zero block, like Go's
/// `archive/tar` (which wrote and reads most layers): the next block must be missing or zero too,
/// so that no entry can hide behind a single zero block. The end-of-archive blocks and whatever
/// padding follows are part of the diff_id.
fn finish_stream<R: Read>(stream: &Shared<R>, budget: &mut Budget) -> Result<(), TarError> {
    let mut block = Vec::with_capacity(BLOCK as usize);
    stream
        .with(|s| s.take(BLOCK).read_to_end(&mut block))
        .map_err(|e| corrupt(None, e))?;
    if !block.is_empty() && block.len() as u64 != BLOCK {
        return Err(corrupt(None, "the archive ends inside its end-of-archive marker"));
    }
    if block.iter().any(|&b| b != 0) {
        return Err(corrupt(None, "data follows a single zero block"));
    }
    budget.charge(block.len() as u64, None)?;
    let allowed = budget.limit - budget.used;
    let trailing = stream
        .with(|s| discard(s, allowed.saturating_add(1)))
        .map_err(|e| corrupt(None, e))?;
    budget.charge(trailing, None)
}
