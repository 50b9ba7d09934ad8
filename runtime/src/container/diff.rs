//! A container's changes as an OCI layer: the scratch layer (an overlayfs upper directory) walked
//! in name order, new and changed entries as they are, deletions (0:0 character devices) as
//! `.wh.NAME`, opaque directories (`trusted.overlay.opaque=y`) followed by `.wh..wh..opq`, files
//! sharing an inode as hard links. Nothing is followed: symbolic links are written as links.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::store::{Result, io_error as io};

fn opaque(dir: &Path) -> bool {
    let mut value = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, "trusted.overlay.opaque", &mut value), Ok(1) if value[0] == b'y')
}

fn header(md: &Metadata, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(md.uid().into());
    h.set_gid(md.gid().into());
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(size);
    h
}

/// What [`write_diff`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffStats {
    /// Entries (whiteouts included).
    pub entries: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Deletions.
    pub whiteouts: u64,
}

/// Writes the changes in `upper` as an uncompressed layer tar to `out`.
pub fn write_diff(upper: &Path, out: impl Write) -> Result<DiffStats> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut stats = DiffStats::default();
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let mut todo = vec![String::new()];
    while let Some(dir) = todo.pop() {
        let host_dir = upper.join(&dir);
        let mut names: Vec<String> = std::fs::read_dir(&host_dir)
            .map_err(|e| io("list", &host_dir, e))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| io("list", &host_dir, e))?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let rel = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            let host = upper.join(&rel);
            let md = std::fs::symlink_metadata(&host).map_err(|e| io("stat", &host, e))?;
            let ft = md.file_type();
            let add = |b: &mut tar::Builder<_>, mut h: tar::Header, path: &str, data: &mut dyn std::io::Read| {
                b.append_data(&mut h, path, data)
                    .map_err(|e| io("write layer", &host, e))
            };
            stats.entries += 1;
            if ft.is_char_device() && md.rdev() == 0 {
                let wh = if dir.is_empty() {
                    format!(".wh.{name}")
                } else {
                    format!("{dir}/.wh.{name}")
                };
                let mut h = header(&md, tar::EntryType::Regular, 0);
                h.set_mode(0o644);
                add(&mut builder, h, &wh, &mut std::io::empty())?;
                stats.whiteouts += 1;
            } else if ft.is_dir() {
                add(
                    &mut builder,
                    header(&md, tar::EntryType::Directory, 0),
                    &format!("{rel}/"),
                    &mut std::io::empty(),
                )?;
                if opaque(&host) {
                    let mut h = header(&md, tar::EntryType::Regular, 0);
                    h.set_mode(0o644);
                    add(&mut builder, h, &format!("{rel}/.wh..wh..opq"), &mut std::io::empty())?;
                    stats.entries += 1;
                }
                subdirs.push(rel);
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&host).map_err(|e| io("read link", &host, e))?;
                let mut h = header(&md, tar::EntryType::Symlink, 0);
                builder
                    .append_link(&mut h, &rel, &target)
                    .map_err(|e| io("write layer", &host, e))?;
            } else if ft.is_file() {
                let key = (md.dev(), md.ino());
                if md.nlink() > 1
                    && let Some(first) = links.get(&key)
                {
                    let mut h = header(&md, tar::EntryType::Link, 0);
                    builder
                        .append_link(&mut h, &rel, first)
                        .map_err(|e| io("write layer", &host, e))?;
                    continue;
                }
                if md.nlink() > 1 {
                    links.insert(key, rel.clone());
                }
                let mut file = std::fs::File::open(&host).map_err(|e| io("open", &host, e))?;
                add(
                    &mut builder,
                    header(&md, tar::EntryType::Regular, md.len()),
                    &rel,
                    &mut file,
                )?;
                stats.bytes += md.len();
            } else {
                let kind = if ft.is_char_device() {
                    tar::EntryType::Char
                } else if ft.is_block_device() {
                    tar::EntryType::Block
                } else if ft.is_fifo() {
                    tar::EntryType::Fifo
                } else {
                    stats.entries -= 1;
                    continue; // sockets do not go into layers
                };
                let mut h = header(&md, kind, 0);
                let dev = md.rdev();
                h.set_device_major(rustix::fs::major(dev))
                    .map_err(|e| io("write layer", &host, e))?;
                h.set_device_minor(rustix::fs::minor(dev))
                    .map_err(|e| io("write layer", &host, e))?;
                add(&mut builder, h, &rel, &mut std::io::empty())?;
            }
        }
        // Depth first in name order: push in reverse so the first name comes out first.
        todo.extend(subdirs.into_iter().rev());
    }
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| io("write layer", upper, e))?;
    Ok(stats)
}
