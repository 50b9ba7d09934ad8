//! Building test layers, hostile ones included, and inspecting unpacked trees.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

/// The mtime entries get unless a test sets another.
pub(crate) const MTIME: u64 = 1_600_000_000;

/// A tar archive built entry by entry with raw headers, so that names the tar crate would refuse
/// (`..`, absolute, NUL) can be written.
pub(crate) struct Layer {
    builder: tar::Builder<Vec<u8>>,
}

impl Layer {
    pub(crate) fn new() -> Self {
        Layer {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    /// Appends an entry with a raw header; names over 100 bytes get a GNU long name record.
    /// `edit` can change the header before its checksum is set.
    pub(crate) fn raw(
        &mut self,
        kind: EntryType,
        name: &[u8],
        link: &[u8],
        mode: u32,
        data: &[u8],
        edit: impl FnOnce(&mut Header),
    ) -> &mut Self {
        if name.len() > 100 {
            self.gnu_long(EntryType::GNULongName, &[name, b"\0"].concat());
        }
        if link.len() > 100 {
            self.gnu_long(EntryType::GNULongLink, &[link, b"\0"].concat());
        }
        let mut header = Header::new_gnu();
        let old = header.as_old_mut();
        let n = name.len().min(100);
        old.name[..n].copy_from_slice(&name[..n]);
        let l = link.len().min(100);
        old.linkname[..l].copy_from_slice(&link[..l]);
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        header.set_size(data.len() as u64);
        edit(&mut header);
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    /// Appends a GNU long name or long link record with exactly `data` as content.
    pub(crate) fn gnu_long(&mut self, kind: EntryType, data: &[u8]) -> &mut Self {
        let mut header = Header::new_gnu();
        header.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    /// Appends a PAX extended header for the next entry.
    pub(crate) fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.builder.append_pax_extensions(records.iter().copied()).unwrap();
        self
    }

    pub(crate) fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.raw(EntryType::Directory, name.as_bytes(), b"", mode, b"", |_| {})
    }

    pub(crate) fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.raw(EntryType::Regular, name.as_bytes(), b"", mode, data, |_| {})
    }

    pub(crate) fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            EntryType::Symlink,
            name.as_bytes(),
            target.as_bytes(),
            0o777,
            b"",
            |_| {},
        )
    }

    pub(crate) fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(EntryType::Link, name.as_bytes(), target.as_bytes(), 0o644, b"", |_| {})
    }

    pub(crate) fn node(&mut self, kind: EntryType, name: &str, mode: u32, major: u32, minor: u32) -> &mut Self {
        self.raw(kind, name.as_bytes(), b"", mode, b"", |h| {
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        })
    }

    /// The archive with its end-of-archive blocks.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

pub(crate) fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// What a test compares about one file system object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: (i64, i64),
    pub(crate) rdev: u64,
    pub(crate) nlink: u64,
    pub(crate) content: Vec<u8>,
    pub(crate) link: Option<PathBuf>,
}

/// Every object under `root` (the root itself as ""), by relative path.
pub(crate) fn snapshot(root: &Path) -> BTreeMap<String, Snapshot> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let file_type = meta.file_type();
        if file_type.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
        let snap = Snapshot {
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            rdev: meta.rdev(),
            nlink: if file_type.is_dir() { 0 } else { meta.nlink() },
            content: if file_type.is_file() {
                std::fs::read(&path).unwrap()
            } else {
                Vec::new()
            },
            link: file_type.is_symlink().then(|| std::fs::read_link(&path).unwrap()),
        };
        out.insert(rel, snap);
    }
    out
}

/// The value of extended attribute `name` of `path` (not following a symbolic link).
pub(crate) fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = [0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("lgetxattr {} {name}: {e}", path.display()),
    }
}

/// The names in directory `dir`, sorted.
pub(crate) fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| String::from_utf8_lossy(e.unwrap().file_name().as_bytes()).into_owned())
        .collect();
    names.sort();
    names
}
