//! The errors of [`super::unpack_linux`]: one variant per reason a layer is refused, each naming
//! the offending entry so that an operator can see what the layer tried to do.

use std::fmt;

use strata_storage::layer::TarError;
pub(crate) use strata_storage::layer::shown;
pub use strata_storage::layer::{LimitKind, MAX_SHOWN_NAME};

/// Why a layer could not be unpacked.
///
/// Entry names are shown as the layer spells them (lossily decoded, escaped, and cut after
/// [`MAX_SHOWN_NAME`] bytes). After any error the destination holds a partial tree that the caller
/// must delete; nothing outside the destination has been touched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    /// A path has a `..` component.
    #[error("layer entry {entry:?} has a `..` component; entries must stay inside the layer")]
    Traversal {
        /// The offending entry.
        entry: String,
    },
    /// A path starts with `/`.
    #[error("layer entry {entry:?} is an absolute path")]
    AbsolutePath {
        /// The offending entry.
        entry: String,
    },
    /// A parent directory of the entry is a symbolic link (written by this layer).
    #[error("layer entry {entry:?} would be written through the symbolic link {parent:?}")]
    SymlinkParent {
        /// The offending entry.
        entry: String,
        /// The parent path that is a symbolic link.
        parent: String,
    },
    /// A parent of the entry exists and is neither a directory nor a symbolic link.
    #[error("layer entry {entry:?} has the non-directory {parent:?} as a parent")]
    ParentNotDirectory {
        /// The offending entry.
        entry: String,
        /// The parent path that is not a directory.
        parent: String,
    },
    /// A hard link points outside the layer: an absolute target, `..`, or a symbolic link on
    /// the way to the target.
    #[error("hard link {entry:?} -> {target:?} is refused: the target {reason}")]
    HardLinkEscape {
        /// The hard link entry.
        entry: String,
        /// Its target, as written in the layer.
        target: String,
        /// Why the target is outside the layer.
        reason: &'static str,
    },
    /// A hard link's target is not an earlier entry of this layer.
    #[error("hard link {entry:?} -> {target:?} is refused: the target is not an earlier entry of this layer")]
    HardLinkMissing {
        /// The hard link entry.
        entry: String,
        /// Its target, as written in the layer.
        target: String,
    },
    /// A hard link's target is a directory.
    #[error("hard link {entry:?} -> {target:?} is refused: the target is a directory")]
    HardLinkToDirectory {
        /// The hard link entry.
        entry: String,
        /// Its target, as written in the layer.
        target: String,
    },
    /// The layer exceeds one of the [`super::Limits`].
    #[error("layer exceeds the limit on the {what} ({limit}){}", at_entry(.entry))]
    LimitExceeded {
        /// Which limit.
        what: LimitKind,
        /// The configured limit.
        limit: u64,
        /// The entry being read when the limit was reached, if any.
        entry: Option<String>,
    },
    /// A path (or a symbolic link target) or one of its components is too long.
    #[error("layer entry {entry:?}: {what} is {len} bytes, over the limit of {limit}")]
    NameTooLong {
        /// The offending entry (cut for display).
        entry: String,
        /// What is too long: the path, a component or a link target.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A path is malformed (NUL byte, empty, whiteout prefix on a directory, ...).
    #[error("layer entry {entry:?} has an invalid name: {reason}")]
    InvalidName {
        /// The offending entry.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry type this unpacker does not support (GNU sparse files, tape volume headers, ...).
    #[error("layer entry {entry:?} has the unsupported type {kind}")]
    UnsupportedEntryType {
        /// The offending entry.
        entry: String,
        /// The type, described.
        kind: String,
    },
    /// The entry needs privileges that [`super::Options::privileged`] does not grant (whiteouts
    /// are character devices and opaque directories use `trusted.*` extended attributes).
    #[error("layer entry {entry:?} needs privileges to unpack: {what}")]
    NeedsPrivilege {
        /// The offending entry.
        entry: String,
        /// What needs the privilege.
        what: &'static str,
    },
    /// A Windows layer entry breaks the Windows layer format's rules.
    #[error("Windows layer entry {entry:?}: {reason}")]
    Windows {
        /// The entry.
        entry: String,
        /// Which rule.
        reason: String,
    },
    /// The stream is not a valid (compressed) tar archive.
    #[error("layer is corrupt{}: {reason}", at_entry(.entry))]
    Corrupt {
        /// The entry being read, if known.
        entry: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// The destination is not an empty directory.
    #[error("destination {path:?} is not an empty directory")]
    DestinationNotEmpty {
        /// The destination.
        path: std::path::PathBuf,
    },
    /// A filesystem operation failed.
    #[error("unpacking {path:?} failed: {source}")]
    Io {
        /// The entry (relative to the destination) or the destination itself.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl From<TarError> for UnpackError {
    fn from(e: TarError) -> Self {
        match e {
            TarError::LimitExceeded { what, limit, entry } => UnpackError::LimitExceeded { what, limit, entry },
            TarError::UnsupportedEntryType { entry, kind } => UnpackError::UnsupportedEntryType { entry, kind },
            TarError::Corrupt { entry, reason } => UnpackError::Corrupt { entry, reason },
            other => UnpackError::Corrupt {
                entry: None,
                reason: other.to_string(),
            },
        }
    }
}

fn at_entry(entry: &Option<String>) -> String {
    match entry {
        Some(e) => format!(" at entry {e:?}"),
        None => String::new(),
    }
}

/// Shorthand for [`UnpackError::Corrupt`].
pub(crate) fn corrupt(entry: Option<&[u8]>, reason: impl fmt::Display) -> UnpackError {
    UnpackError::Corrupt {
        entry: entry.map(shown),
        reason: reason.to_string(),
    }
}

/// Shorthand for [`UnpackError::Io`] about an entry.
pub(crate) fn io_at(entry: &[u8], source: impl Into<std::io::Error>) -> UnpackError {
    UnpackError::Io {
        path: shown(entry),
        source: source.into(),
    }
}
