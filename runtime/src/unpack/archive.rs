//! The read loop: decompress, hash, split the tar stream into entries, enforce the limits, and
//! hand each entry to the [`Applier`].

use std::io::Read;
use std::path::Path;

use super::apply::{Applier, Stats};
use super::error::{UnpackError, corrupt, shown};
use super::fs::Root;
use super::header::{EntryHeader, ExtensionKind, Extensions};
use super::stream::{self, BlockPadded, Hashing, Shared, discard};
use super::{Compression, LimitKind, Options, Unpacked};

const BLOCK: u64 = 512;

/// Counts the uncompressed bytes a layer declares against [`super::Limits::max_total_bytes`].
struct Budget {
    used: u64,
    limit: u64,
}

impl Budget {
    fn charge(&mut self, bytes: u64, entry: Option<&[u8]>) -> Result<(), UnpackError> {
        match self.used.checked_add(bytes) {
            Some(used) if used <= self.limit => {
                self.used = used;
                Ok(())
            }
            _ => Err(UnpackError::LimitExceeded {
                what: LimitKind::TotalBytes,
                limit: self.limit,
                entry: entry.map(shown),
            }),
        }
    }
}

/// What the read loop hands entries to: the Linux [`Applier`] or the Windows layer importer.
pub(crate) trait Sink {
    /// Applies one entry whose content (exactly `h.size` bytes) `content` yields.
    fn apply(&mut self, h: &EntryHeader, content: &mut dyn Read) -> Result<(), UnpackError>;
    /// Finishes after the last entry.
    fn finish(self) -> Result<Stats, UnpackError>;
}

impl Sink for Applier<'_> {
    fn apply(&mut self, h: &EntryHeader, content: &mut dyn Read) -> Result<(), UnpackError> {
        Applier::apply(self, h, content)
    }
    fn finish(self) -> Result<Stats, UnpackError> {
        Applier::finish(self)
    }
}

/// See [`super::unpack_linux`].
pub(super) fn unpack(
    input: impl Read,
    compression: Compression,
    dest: &Path,
    options: &Options,
) -> Result<Unpacked, UnpackError> {
    let root = Root::open_empty(dest)?;
    read_layer(input, compression, options, Applier::new(root, options))
}

/// Reads a layer tar, handing each entry to `applier`; the diff_id is computed on the way.
pub(crate) fn read_layer(
    input: impl Read,
    compression: Compression,
    options: &Options,
    mut applier: impl Sink,
) -> Result<Unpacked, UnpackError> {
    let limits = &options.limits;
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
                return Err(UnpackError::LimitExceeded {
                    what: LimitKind::ExtensionBytes,
                    limit: limits.max_extension_bytes,
                    entry: Some(shown(&name)),
                });
            }
            budget.charge(size, Some(&name))?;
            let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            entry.read_to_end(&mut data).map_err(|e| corrupt(Some(&name), e))?;
            if data.len() as u64 != size {
                return Err(corrupt(Some(&name), "the archive ends inside an extension header"));
            }
            extensions.set(kind, data)?;
            continue;
        }

        // Extension records come at most three per entry, so counting the others bounds the loop.
        headers += 1;
        if headers > limits.max_entries {
            return Err(UnpackError::LimitExceeded {
                what: LimitKind::Entries,
                limit: limits.max_entries,
                entry: Some(shown(&entry.header().path_bytes())),
            });
        }
        if type_byte == b'g' {
            // Global PAX records: containerd and Go ignore them too. The tar crate skips the data.
            let name = entry.header().path_bytes().into_owned();
            if extensions.is_pending() {
                return Err(corrupt(Some(&name), "extension records before a global header"));
            }
            budget.charge(entry.size(), Some(&name))?;
            tracing::debug!(entry = ?shown(&name), "ignoring PAX global header");
            continue;
        }

        let header = extensions.resolve(entry.header())?;
        budget.charge(header.size, Some(&header.name))?;
        entries += 1;
        content_end = (entry.raw_file_position() + header.size, header.name.clone());
        if header.size_from_pax_only {
            // The tar crate thinks the entry is empty; read its content and padding ourselves.
            let mut content = stream.clone().take(header.size);
            applier.apply(&header, &mut content)?;
            discard(&mut content, u64::MAX).map_err(|e| corrupt(Some(&header.name), e))?;
            let padding = (BLOCK - header.size % BLOCK) % BLOCK;
            let padded = discard(&mut stream.clone(), padding).map_err(|e| corrupt(Some(&header.name), e))?;
            if content.limit() != 0 || padded != padding {
                return Err(corrupt(Some(&header.name), "the archive ends inside the entry"));
            }
        } else {
            applier.apply(&header, &mut entry)?;
        }
    }
    if extensions.is_pending() {
        return Err(corrupt(None, "extension records at the end of the archive"));
    }
    drop(archive);
    if stream.with(|s| s.real_bytes()) < content_end.0 {
        return Err(corrupt(Some(&content_end.1), "the archive ends inside the entry"));
    }

    finish_stream(&stream, &mut budget)?;

    let stats = applier.finish()?;
    let (diff_id, total) = stream.with(|s| (s.inner().digest(), s.inner().byte_count()));
    tracing::debug!(%diff_id, entries, uncompressed_bytes = total, "unpacked layer");
    Ok(Unpacked {
        diff_id,
        entries,
        bytes: stats.file_bytes,
        skipped_entries: stats.skipped_entries,
        skipped_xattrs: stats.skipped_xattrs,
    })
}

/// Reads the rest of the stream after the tar crate stopped at the first zero block, like Go's
/// `archive/tar` (which wrote and reads most layers): the next block must be missing or zero too,
/// so that no entry can hide behind a single zero block. The end-of-archive blocks and whatever
/// padding follows are part of the diff_id.
fn finish_stream<R: Read>(stream: &Shared<R>, budget: &mut Budget) -> Result<(), UnpackError> {
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
