//! The scratch layer of a Windows container on a Linux host. Windows processes cannot run here,
//! but files can be copied in (`strata cp`) and the result committed. The scratch directory has
//! the shape of a Windows layer directory: `Files/` with the data (escaped names as on import)
//! and the `windows.jsonl` sidecar with one [`Record`] per changed entry, so the container's view
//! is the [`WindowsUnion`] of the image's layers and the scratch layer.
//!
//! [`write_layer`] turns the scratch layer into a Windows layer tar the way Windows writers do
//! (`shared/notes/windows-layers.md` §1.2, §5.4, §5.6): the `Files` and `Hives` directory
//! entries first, then the changed entries in name order with their PAX Windows records
//! (attributes, security descriptor and creation time carried over from the entry they
//! replace), whiteouts as bare entries; mode holds only the type bits.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::names::{escape_component, fold_key};
use super::{ATTR_DIRECTORY, Record, RecordKind, SIDECAR, WindowsUnion, beneath, read_sidecar};
use crate::store::{Result, StoreError, io_error as io};

/// Win32 `FILE_ATTRIBUTE_ARCHIVE`, what a newly written file gets.
const ATTR_ARCHIVE: u32 = 0x20;

/// The union a Windows container sees: its image's layers (base first) under `upper`.
pub fn container_union(layers: &[PathBuf], upper: &Path) -> Result<WindowsUnion> {
    let mut dirs = layers.to_vec();
    if upper.join(SIDECAR).is_file() {
        dirs.push(upper.to_owned());
    }
    WindowsUnion::open(&dirs).map_err(|e| io("read layer metadata", upper, e))
}

fn load(upper: &Path) -> Result<Vec<Record>> {
    match read_sidecar(upper) {
        Ok(r) => Ok(r),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io("read", upper.join(SIDECAR), e)),
    }
}

fn save(upper: &Path, records: &[Record]) -> Result<()> {
    let mut out = String::new();
    for r in records {
        out.push_str(&serde_json::to_string(r).expect("json"));
        out.push('\n');
    }
    let path = upper.join(SIDECAR);
    strata_storage::atomic::write(&path, out.as_bytes()).map_err(|e| io("write", &path, e))
}

/// `C:\a\b`, `/a/b` or `a/b` as the components under `Files/`.
fn components(path: &str) -> Vec<String> {
    let path = path.replace('\\', "/");
    let path = path
        .strip_prefix("C:")
        .or_else(|| path.strip_prefix("c:"))
        .unwrap_or(&path);
    let mut out: Vec<String> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p.to_owned()),
        }
    }
    out
}

/// Copies host file or directory `host` into the container at `path` (into it, when `path` is a
/// directory). Names match existing ones case-insensitively, keeping their case and Windows
/// metadata, as NTFS does on overwrite. Returns the bytes copied.
pub fn copy_in(layers: &[PathBuf], upper: &Path, host: &Path, path: &str) -> Result<u64> {
    let union = container_union(layers, upper)?;
    let mut parts = components(path);
    if union
        .get(&format!("/{}", parts.join("/")))
        .is_some_and(|n| n.record.kind == RecordKind::Dir)
        || parts.is_empty()
    {
        let name = host
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| StoreError::Invalid(format!("{}: no file name", host.display())))?;
        parts.push(name);
    }
    let parent = format!("/{}", parts[..parts.len() - 1].join("/"));
    if parts.len() > 1 && !union.get(&parent).is_some_and(|n| n.record.kind == RecordKind::Dir) {
        return Err(StoreError::NotFound(format!(
            "{parent}: no such directory in the container"
        )));
    }
    let mut records = load(upper)?;
    let mut bytes = 0;
    copy_tree(&union, upper, host, &parts, &mut records, &mut bytes)?;
    save(upper, &records)?;
    Ok(bytes)
}

fn copy_tree(
    union: &WindowsUnion,
    upper: &Path,
    host: &Path,
    parts: &[String],
    records: &mut Vec<Record>,
    bytes: &mut u64,
) -> Result<()> {
    let md = std::fs::metadata(host).map_err(|e| io("stat", host, e))?;
    let c_path = format!("/{}", parts.join("/"));
    let existing = union.get(&c_path);
    // The true name: the existing entry's (its case), else as given.
    let true_path = match &existing {
        Some(n) => format!("Files{}", n.path),
        None => {
            // A new name under the parent as the container spells it.
            let (last, dirs) = parts.split_last().expect("non-empty");
            let parent_c = format!("/{}", dirs.join("/"));
            let parent_key = fold_key(&format!("Files{}", parent_c.trim_end_matches('/')));
            let parent = match union.get(&parent_c) {
                Some(p) if p.path != "/" => format!("Files{}", p.path),
                Some(_) => "Files".to_owned(),
                None => records
                    .iter()
                    .find(|r| fold_key(&r.path) == parent_key)
                    .map(|r| r.path.clone())
                    .unwrap_or_else(|| format!("Files{}", parent_c.trim_end_matches('/'))),
            };
            format!("{parent}/{last}")
        }
    };
    let disk = true_path.split('/').map(escape_component).collect::<Vec<_>>().join("/");
    let mut record = match existing {
        Some(n) => {
            let mut r = n.record;
            r.path = true_path.clone();
            r.streams.clear();
            r.pax.clear();
            r
        }
        None => new_file(&true_path),
    };
    record.disk = (disk != true_path).then(|| disk.clone());
    let mtime = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs().to_string());
    record.mtime = mtime;
    if md.is_dir() {
        record.kind = RecordKind::Dir;
        record.attributes |= ATTR_DIRECTORY;
        record.size = 0;
        beneath::open_dir(upper, &disk, true).map_err(|e| io("create", upper.join(&disk), e))?;
        let key = fold_key(&record.path);
        records.retain(|r| fold_key(&r.path) != key);
        records.push(record);
        let mut children: Vec<_> = std::fs::read_dir(host)
            .map_err(|e| io("list", host, e))?
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| io("list", host, e))?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let mut sub = parts.to_vec();
            sub.push(child.file_name().to_string_lossy().into_owned());
            copy_tree(union, upper, &child.path(), &sub, records, bytes)?;
        }
        return Ok(());
    }
    if record.kind == RecordKind::Dir {
        return Err(StoreError::Invalid(format!("{c_path} is a directory in the container")));
    }
    record.kind = RecordKind::File;
    record.target = None;
    let mut from = std::fs::File::open(host).map_err(|e| io("open", host, e))?;
    let mut to = beneath::create_file(upper, &disk).map_err(|e| io("create", upper.join(&disk), e))?;
    record.size = std::io::copy(&mut from, &mut to).map_err(|e| io("copy", host, e))?;
    *bytes += record.size;
    let key = fold_key(&record.path);
    records.retain(|r| fold_key(&r.path) != key);
    records.push(record);
    Ok(())
}

/// The record of a file new in the scratch layer, as Windows would make it: archive attribute,
/// no metadata of its own yet (a directory changes the kind and attributes).
pub(super) fn new_file(path: &str) -> Record {
    Record {
        path: path.to_owned(),
        disk: None,
        kind: RecordKind::File,
        attributes: ATTR_ARCHIVE,
        size: 0,
        mtime: None,
        creation_time: None,
        security_descriptor: None,
        sddl: None,
        target: None,
        eas: BTreeMap::new(),
        streams: Vec::new(),
        pax: Vec::new(),
    }
}

/// Records file `path` (written at that name in the scratch layer `upper`, `size` bytes) as
/// changed now, keeping the metadata of the entry it replaces in the scratch layer.
pub(crate) fn record_file(upper: &Path, path: &str, size: u64) -> Result<()> {
    let mut records = load(upper)?;
    let key = fold_key(path);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().to_string())
        .ok();
    match records.iter_mut().find(|r| fold_key(&r.path) == key) {
        Some(r) => {
            r.size = size;
            r.mtime = now;
            r.kind = RecordKind::File;
        }
        None => records.push(Record {
            size,
            mtime: now,
            ..new_file(path)
        }),
    }
    save(upper, &records)
}

/// PAX time `secs[.frac]` of a record's mtime, as whole seconds for the USTAR field.
fn secs(mtime: Option<&str>) -> u64 {
    mtime
        .and_then(|m| m.split('.').next())
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0) as u64
}

/// Writes the scratch layer `upper` as an uncompressed Windows layer tar to `out`. Returns the
/// number of entries.
pub fn write_layer(upper: &Path, out: impl Write) -> Result<u64> {
    let mut records = load(upper)?;
    records.sort_by(|a, b| a.path.cmp(&b.path));
    let mut builder = tar::Builder::new(out);
    let err = |e: std::io::Error| io("write layer", upper, e);
    let mut count = 0;
    let mut append = |b: &mut tar::Builder<_>, r: &Record, data: &mut dyn std::io::Read| -> Result<()> {
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if r.kind != RecordKind::Whiteout {
            pax.push(("MSWINDOWS.fileattr".into(), r.attributes.to_string().into_bytes()));
            if let Some(sd) = &r.security_descriptor {
                pax.push(("MSWINDOWS.rawsd".into(), sd.clone().into_bytes()));
            }
            if let Some(t) = &r.creation_time {
                pax.push(("LIBARCHIVE.creationtime".into(), t.clone().into_bytes()));
            }
            for (name, value) in &r.eas {
                pax.push((format!("MSWINDOWS.xattr.{name}"), value.clone().into_bytes()));
            }
            if !r.path.is_ascii() || r.path.len() > 100 {
                pax.push(("path".into(), r.path.clone().into_bytes()));
            }
        }
        // Go's archive/tar writes the records sorted by key; so do we.
        pax.sort_by(|a, b| a.0.cmp(&b.0));
        if !pax.is_empty() {
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(err)?;
        }
        let mut h = tar::Header::new_ustar();
        let (kind, mode, name, size) = match r.kind {
            RecordKind::Dir => (tar::EntryType::Directory, 0o40000, r.path.clone(), 0),
            RecordKind::Whiteout => {
                let (dir, base) = r.path.rsplit_once('/').unwrap_or(("", &r.path));
                (tar::EntryType::Regular, 0, format!("{dir}/.wh.{base}"), 0)
            }
            _ => (tar::EntryType::Regular, 0o100000, r.path.clone(), r.size),
        };
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(size);
        h.set_mtime(if r.kind == RecordKind::Whiteout {
            0
        } else {
            secs(r.mtime.as_deref())
        });
        // The USTAR name keeps the ASCII characters (Go drops the others); PAX `path` has the rest.
        let short: String = name.chars().filter(char::is_ascii).take(100).collect();
        h.as_ustar_mut().expect("ustar").name[..short.len()].copy_from_slice(short.as_bytes());
        h.set_cksum();
        b.append(&h, data).map_err(err)?;
        count += 1;
        Ok(())
    };
    for top in ["Files", "Hives"] {
        let dir = Record {
            kind: RecordKind::Dir,
            attributes: ATTR_DIRECTORY,
            ..new_file(top)
        };
        append(&mut builder, &dir, &mut std::io::empty())?;
    }
    for r in records.iter().filter(|r| r.path != "Files" && r.path != "Hives") {
        match r.kind {
            RecordKind::File => {
                let mut data = beneath::open_file(upper, r.disk_path()).map_err(err)?;
                append(&mut builder, r, &mut data)?;
            }
            RecordKind::Dir | RecordKind::Whiteout => append(&mut builder, r, &mut std::io::empty())?,
            // Links and streams are not produced by copies into a scratch layer.
            _ => {}
        }
    }
    builder.into_inner().and_then(|mut w| w.flush()).map_err(err)?;
    Ok(count)
}
