//! Windows layers on a Linux host, with full fidelity (`shared/notes/windows-layers.md` §1, §5).
//!
//! A Windows layer tar holds `Files/` (the container's `C:\`), `Hives/` (registry delta hives)
//! and `UtilityVM/`, with per-entry metadata in PAX records a Linux file system cannot hold.
//! [`unpack_windows`] lays it out in a layer directory:
//!
//! - `Files/`, `Hives/`, `UtilityVM/`: the entries' data, verbatim. A name Linux cannot hold
//!   (a component over 255 bytes, control or Windows-reserved characters) is stored escaped.
//!   Symbolic links and junctions become empty placeholders (a directory for a directory link):
//!   their targets are data in the sidecar and are never followed.
//! - `Streams/<n>`: the content of alternate data streams (`name:stream` entries).
//! - `windows.jsonl`, the sidecar: one [`Record`] per entry in archive order, with the true name,
//!   attributes, security descriptor, times, extended attributes, streams, link targets and the
//!   raw PAX records.
//!
//! Rules enforced, as a Windows import would: entries only under `Files/`, `Hives/`,
//! `UtilityVM/`; two names of one layer differing only in case are refused; whiteouts only under
//! `Files/` or `UtilityVM/Files/` and never in a base layer; a stream must follow its owner;
//! hard links only to files of this layer or a parent layer, found case-insensitively.

pub(crate) mod beneath;
mod import;
mod names;
pub mod registry;
pub mod scratch;
mod union;

pub use names::fold_key;
pub use union::{WindowsNode, WindowsUnion};

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::unpack::{Compression, Options, UnpackError, Unpacked};

/// The sidecar file of a Windows layer.
pub const SIDECAR: &str = "windows.jsonl";

/// Win32 `FILE_ATTRIBUTE_DIRECTORY`.
pub const ATTR_DIRECTORY: u32 = 0x10;

/// What a Windows layer entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// A directory.
    Dir,
    /// A file.
    File,
    /// A symbolic link (reparse tag `0xA000000C`).
    Symlink,
    /// A directory junction (`MSWINDOWS.mountpoint`).
    Junction,
    /// A second name of a file (`target` is the first).
    HardLink,
    /// A deletion of `path` from the layers below.
    Whiteout,
}

/// An alternate data stream of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    /// The stream name as the tar has it (`Zone.Identifier`, or `x:$DATA`).
    pub name: String,
    /// Its size.
    pub size: u64,
    /// Where its content is, relative to the layer directory.
    pub disk: String,
}

/// One entry of a Windows layer, as the sidecar keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The true name, `/`-separated, without a trailing `/` (`Files/Windows/win.ini`). For a
    /// whiteout, the path it deletes.
    pub path: String,
    /// Where the entry is, relative to the layer directory, when that differs from `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
    /// What it is.
    pub kind: RecordKind,
    /// Win32 attributes (`MSWINDOWS.fileattr`; the default when absent: directory or 0).
    #[serde(default)]
    pub attributes: u32,
    /// Data size.
    #[serde(default)]
    pub size: u64,
    /// Modification time, seconds since the epoch with a fraction as PAX writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<String>,
    /// `LIBARCHIVE.creationtime`, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    /// `MSWINDOWS.rawsd`: the self-relative security descriptor, base64, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_descriptor: Option<String>,
    /// `MSWINDOWS.sd`: a legacy SDDL security descriptor, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sddl: Option<String>,
    /// Target of a link or junction (verbatim, backslashes and all) or first name of a hard link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Extended attributes (`MSWINDOWS.xattr.NAME`), values base64 as in the tar.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub eas: BTreeMap<String, String>,
    /// Alternate data streams.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<Stream>,
    /// Every PAX record of the entry, in archive order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pax: Vec<(String, String)>,
}

impl Record {
    /// Where the entry's data is, relative to the layer directory.
    pub fn disk_path(&self) -> &str {
        self.disk.as_deref().unwrap_or(&self.path)
    }
}

/// Reads the sidecar of the Windows layer in `layer_dir`.
pub fn read_sidecar(layer_dir: &Path) -> std::io::Result<Vec<Record>> {
    let raw = std::fs::read_to_string(layer_dir.join(SIDECAR))?;
    raw.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).map_err(std::io::Error::other))
        .collect()
}

/// Unpacks a (possibly compressed) Windows layer from `input` into the empty directory
/// `layer_dir`, over the layer directories `parents` (nearest first; empty for a base layer),
/// computing the diff_id. Blocking. On error `layer_dir` holds a partial layer the caller deletes.
pub fn unpack_windows(
    input: impl Read,
    compression: Compression,
    layer_dir: &Path,
    parents: &[PathBuf],
    options: &Options,
) -> Result<Unpacked, UnpackError> {
    let mut importer = import::Importer::new(layer_dir, parents)?;
    let read = crate::unpack::archive::read_layer(input, compression, options, &mut importer)?;
    crate::unpack::archive::unpacked(read, importer.finish()?)
}
