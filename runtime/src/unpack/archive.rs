//! The Linux unpacker's read loop: `strata_storage::layer::read_layer` (decompression, diff_id,
//! limits, extension records) handing each entry to the [`Applier`].

use std::io::Read;
use std::path::Path;

use strata_storage::layer::{self, EntryHeader, Sink};

use super::apply::{Applier, Stats};
use super::error::UnpackError;
use super::fs::Root;
use super::{Compression, Options, Unpacked};

impl Sink for Applier<'_> {
    type Error = UnpackError;

    fn apply(&mut self, h: &EntryHeader, content: &mut dyn Read) -> Result<(), UnpackError> {
        Applier::apply(self, h, content)
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
    let mut applier = Applier::new(root, options);
    let read = read_layer(input, compression, options, &mut applier)?;
    unpacked(read, applier.finish()?)
}

/// Reads a layer with the runtime's limits into `sink`.
pub(crate) fn read_layer<S: Sink<Error = UnpackError>>(
    input: impl Read,
    compression: Compression,
    options: &Options,
    sink: &mut S,
) -> Result<layer::LayerRead, UnpackError> {
    layer::read_layer(input, compression, &options.limits.tar(), sink)
}

/// What an unpack did: what the reader read and what the sink skipped.
pub(crate) fn unpacked(read: layer::LayerRead, stats: Stats) -> Result<Unpacked, UnpackError> {
    tracing::debug!(diff_id = %read.diff_id, entries = read.entries, uncompressed_bytes = read.bytes, "unpacked layer");
    Ok(Unpacked {
        diff_id: read.diff_id,
        entries: read.entries,
        bytes: stats.file_bytes,
        skipped_entries: stats.skipped_entries,
        skipped_xattrs: stats.skipped_xattrs,
    })
}
