//! Secure unpacking of Linux image layers into a directory that will be an overlayfs lower layer.
//!
//! This is the security boundary for layer tars from the network. [`unpack_linux`] applies a
//! (possibly compressed) layer to an **empty** directory the way runc-based tools (containerd,
//! umoci) do, following the OCI image-spec `layer.md`, while computing the layer's diff_id:
//!
//! - Nothing is created or changed outside the destination: names with `..` are refused, a
//!   leading `/` means the layer root (as docker and containerd read it), every directory is walked with `O_NOFOLLOW` from a descriptor of the destination (so
//!   writing through a symbolic link the layer made is refused), symbolic link targets are stored
//!   verbatim and never followed, and hard links may only point at earlier entries of the layer.
//! - Memory does not grow with the layer: content is streamed, and PAX and GNU extension records
//!   are bounded by [`Limits::max_extension_bytes`]. Only directory metadata (applied at the end)
//!   grows with the number of entries, which [`Limits::max_entries`] bounds.
//! - [`Limits`] bound total size, entry count and name lengths, checked from the headers before
//!   any content is read, so a decompression bomb stops at its first oversized header.
//! - Whiteouts become overlayfs objects: `dir/.wh.NAME` a 0:0 character device `dir/NAME`, and
//!   `dir/.wh..wh..opq` the `trusted.overlay.opaque=y` attribute on `dir`.
//!
//! On any error the destination holds a partial tree: the caller unpacks into a temporary
//! directory and deletes it on failure.

pub(crate) mod apply;
pub(crate) mod archive;
pub(crate) mod error;
mod fs;
mod path;

use std::io::Read;
use std::path::Path;

pub use error::{LimitKind, MAX_SHOWN_NAME, UnpackError};
pub use strata_storage::layer::{Compression, decompress};

/// Bounds on what one layer may contain; exceeding one fails with
/// [`UnpackError::LimitExceeded`] or [`UnpackError::NameTooLong`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most uncompressed bytes: the declared sizes of all entries plus any data after the
    /// end of the archive. Default 64 GiB.
    pub max_total_bytes: u64,
    /// The most entries (files, directories, links, whiteouts, ...). Default 1 000 000.
    pub max_entries: u64,
    /// The longest entry name or link target in bytes. Default 4096 (Linux `PATH_MAX`).
    pub max_name_bytes: usize,
    /// The longest component of a name in bytes. Default 255 (Linux `NAME_MAX`).
    pub max_component_bytes: usize,
    /// The largest PAX or GNU long-name record, which is held in memory. Default 1 MiB.
    pub max_extension_bytes: u64,
}

impl Limits {
    /// The limits the tar reader enforces.
    pub fn tar(&self) -> strata_storage::layer::TarLimits {
        strata_storage::layer::TarLimits {
            max_total_bytes: self.max_total_bytes,
            max_entries: self.max_entries,
            max_extension_bytes: self.max_extension_bytes,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_total_bytes: 64 << 30,
            max_entries: 1_000_000,
            max_name_bytes: 4096,
            max_component_bytes: 255,
            max_extension_bytes: 1 << 20,
        }
    }
}

/// How [`unpack_linux`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Size limits.
    pub limits: Limits,
    /// Whether to create device nodes and whiteouts, set the opaque attribute and set owners.
    /// When false, device nodes are skipped (counted in [`Unpacked::skipped_entries`]), owners
    /// are left as the current user, and whiteouts fail with [`UnpackError::NeedsPrivilege`].
    /// Default: whether the process runs as root.
    pub privileged: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            privileged: rustix::process::geteuid().is_root(),
        }
    }
}

/// What [`unpack_linux`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The SHA-256 of the uncompressed tar stream, end-of-archive blocks and padding included:
    /// the layer's diff_id, to be checked against the image config.
    pub diff_id: strata_storage::Digest,
    /// How many entries the layer has (extension headers not counted).
    pub entries: u64,
    /// How many bytes of regular file content were written.
    pub bytes: u64,
    /// Entries not created: device nodes when unprivileged, AUFS metadata (`.wh..wh.*`).
    pub skipped_entries: u64,
    /// Extended attributes not set: ones the file system refused (`EOPNOTSUPP`, `EPERM`), and
    /// overlayfs ones (`trusted.overlay.*`, `user.overlay.*`), which only whiteouts may create.
    pub skipped_xattrs: u64,
}

/// Unpacks a (possibly compressed) layer tar read from `input` into the existing empty directory
/// `dest`, computing the diff_id while reading.
///
/// Entries are applied in order; an entry at the path of an earlier one replaces it, except that
/// a directory replacing a directory keeps its contents. A whiteout for a path an earlier entry of
/// the same layer created keeps that entry (whiteouts only hide lower layers) and, for a
/// directory, makes it opaque. Hard links share the inode, and so the metadata, of their target.
///
/// Blocking: run it on a blocking thread. On error, `dest` holds a partial tree that the caller
/// must delete; nothing outside `dest` has been created or changed.
pub fn unpack_linux(
    input: impl Read,
    compression: Compression,
    dest: &Path,
    options: &Options,
) -> Result<Unpacked, UnpackError> {
    archive::unpack(input, compression, dest, options)
}
