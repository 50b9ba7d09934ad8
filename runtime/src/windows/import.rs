//! The Windows layer importer: a [`Sink`] for the shared tar read loop.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::beneath;
use super::names::{escape_component, fold_key};
use super::{ATTR_DIRECTORY, Record, RecordKind, SIDECAR, Stream, read_sidecar};
use crate::unpack::UnpackError;
use crate::unpack::apply::Stats;
use crate::unpack::error::{io_at, shown};
use strata_storage::layer::Sink;
use strata_storage::layer::{EntryHeader, Kind};

const TOPS: [&str; 3] = ["Files", "Hives", "UtilityVM"];
/// NTFS's longest name component.
const MAX_COMPONENT_UNITS: usize = 255;
/// The longest Windows path (`\\?\` form).
const MAX_PATH_UNITS: usize = 32_767;

fn bad(entry: &str, reason: impl Into<String>) -> UnpackError {
    UnpackError::Windows {
        entry: entry.to_owned(),
        reason: reason.into(),
    }
}

/// What this layer has at a case-folded path.
#[derive(Debug, Clone)]
struct Seen {
    /// The true name.
    path: String,
    /// Relative to the layer directory.
    disk: String,
    dir: bool,
}

/// Imports one Windows layer into a layer directory.
pub(super) struct Importer {
    root: PathBuf,
    parents: Vec<PathBuf>,
    sidecar: BufWriter<File>,
    /// This layer's entries (whiteouts aside) by case-folded path.
    seen: HashMap<String, Seen>,
    /// The last entry, kept until its alternate data streams (which follow it) are read.
    pending: Option<Record>,
    /// Files of the parent layers by case-folded path (loaded for the first cross-layer link).
    parent_files: Option<HashMap<String, (PathBuf, String)>>,
    streams: u64,
    stats: Stats,
}

impl Importer {
    pub(super) fn new(root: &Path, parents: &[PathBuf]) -> Result<Self, UnpackError> {
        for top in ["Files", "Hives"] {
            std::fs::create_dir_all(root.join(top)).map_err(|e| io_at(top.as_bytes(), e))?;
        }
        let sidecar = File::create(root.join(SIDECAR)).map_err(|e| io_at(SIDECAR.as_bytes(), e))?;
        Ok(Importer {
            root: root.to_owned(),
            parents: parents.to_vec(),
            sidecar: BufWriter::new(sidecar),
            seen: HashMap::new(),
            pending: None,
            parent_files: None,
            streams: 0,
            stats: Stats::default(),
        })
    }

    fn flush_pending(&mut self) -> Result<(), UnpackError> {
        if let Some(record) = self.pending.take() {
            let line = serde_json::to_string(&record).expect("json");
            writeln!(self.sidecar, "{line}").map_err(|e| io_at(SIDECAR.as_bytes(), e))?;
        }
        Ok(())
    }

    /// The on-disk relative path of `parts`: the parent resolved case-insensitively to what this
    /// layer already created, the last component escaped.
    fn disk_of(&self, parts: &[&str]) -> String {
        let (last, dirs) = parts.split_last().expect("non-empty");
        let parent = if dirs.is_empty() {
            String::new()
        } else {
            let key = fold_key(&dirs.join("/"));
            match self.seen.get(&key) {
                Some(s) => s.disk.clone(),
                None => self.disk_of(dirs),
            }
        };
        let name = escape_component(last);
        if parent.is_empty() {
            name
        } else {
            format!("{parent}/{name}")
        }
    }

    fn parent_file(&mut self, key: &str) -> Option<(PathBuf, String)> {
        if self.parent_files.is_none() {
            let mut index = HashMap::new();
            // Farthest first, so nearer layers override.
            for dir in self.parents.iter().rev() {
                for r in read_sidecar(dir).unwrap_or_default() {
                    match r.kind {
                        RecordKind::File => {
                            index.insert(fold_key(&r.path), (dir.clone(), r.disk_path().to_owned()));
                        }
                        RecordKind::Whiteout => {
                            index.remove(&fold_key(&r.path));
                        }
                        _ => {}
                    }
                }
            }
            self.parent_files = Some(index);
        }
        self.parent_files.as_ref().and_then(|i| i.get(key).cloned())
    }

    fn write_content(&mut self, rel: &str, entry: &str, content: &mut dyn Read) -> Result<u64, UnpackError> {
        let mut file = beneath::create_file(&self.root, rel).map_err(|e| io_at(entry.as_bytes(), e))?;
        let n = std::io::copy(content, &mut file).map_err(|e| io_at(entry.as_bytes(), e))?;
        self.stats.file_bytes += n;
        Ok(n)
    }
}

/// Splits and checks a Windows entry name.
fn split_name(raw: &[u8]) -> Result<(String, Vec<String>), UnpackError> {
    let entry = shown(raw);
    let name = std::str::from_utf8(raw).map_err(|_| bad(&entry, "the name is not UTF-8"))?;
    let name = name.trim_end_matches('/');
    if name.starts_with('/') {
        return Err(UnpackError::AbsolutePath { entry });
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            ".." => return Err(UnpackError::Traversal { entry }),
            "" | "." => {
                return Err(UnpackError::InvalidName {
                    entry,
                    reason: "empty or `.` component",
                });
            }
            p if p.contains('\0') => {
                return Err(UnpackError::InvalidName {
                    entry,
                    reason: "NUL in the name",
                });
            }
            p if p.encode_utf16().count() > MAX_COMPONENT_UNITS => {
                return Err(bad(
                    &entry,
                    format!("a name component is over {MAX_COMPONENT_UNITS} UTF-16 units (NTFS's limit)"),
                ));
            }
            p => parts.push(p.to_owned()),
        }
    }
    if name.encode_utf16().count() > MAX_PATH_UNITS {
        return Err(bad(
            &entry,
            format!("the path is over {MAX_PATH_UNITS} UTF-16 units (Windows's limit)"),
        ));
    }
    if !TOPS.contains(&parts[0].as_str()) {
        return Err(bad(&entry, "entries must be under Files/, Hives/ or UtilityVM/"));
    }
    Ok((name.to_owned(), parts))
}

/// Builds the sidecar record of an entry from its PAX records.
fn record_of(h: &EntryHeader, path: &str, kind: RecordKind) -> Result<Record, UnpackError> {
    let mut record = Record {
        path: path.to_owned(),
        disk: None,
        kind,
        attributes: if h.kind == Kind::Directory { ATTR_DIRECTORY } else { 0 },
        size: h.size,
        mtime: Some(if h.mtime.nanos == 0 {
            h.mtime.secs.to_string()
        } else {
            format!("{}.{:09}", h.mtime.secs, h.mtime.nanos)
        }),
        creation_time: None,
        security_descriptor: None,
        sddl: None,
        target: None,
        eas: Default::default(),
        streams: Vec::new(),
        pax: Vec::new(),
    };
    for (k, v) in &h.pax {
        let key = String::from_utf8_lossy(k).into_owned();
        let value = String::from_utf8_lossy(v).into_owned();
        match key.as_str() {
            "MSWINDOWS.fileattr" => {
                record.attributes = value
                    .parse()
                    .map_err(|_| bad(path, format!("MSWINDOWS.fileattr {value:?} is not a decimal number")))?;
            }
            "MSWINDOWS.rawsd" => {
                base64::engine::general_purpose::STANDARD
                    .decode(&value)
                    .map_err(|e| bad(path, format!("MSWINDOWS.rawsd is not base64: {e}")))?;
                record.security_descriptor = Some(value.clone());
            }
            "MSWINDOWS.sd" => record.sddl = Some(value.clone()),
            "LIBARCHIVE.creationtime" => record.creation_time = Some(value.clone()),
            _ => {
                if let Some(ea) = key.strip_prefix("MSWINDOWS.xattr.") {
                    base64::engine::general_purpose::STANDARD
                        .decode(&value)
                        .map_err(|e| bad(path, format!("{key} is not base64: {e}")))?;
                    record.eas.insert(ea.to_owned(), value.clone());
                }
            }
        }
        record.pax.push((key, value));
    }
    Ok(record)
}

impl Sink for Importer {
    type Error = UnpackError;

    fn apply(&mut self, h: &EntryHeader, content: &mut dyn Read) -> Result<(), UnpackError> {
        let (name, parts) = split_name(&h.name)?;
        let last = parts.last().expect("non-empty").clone();
        let is_base = self.parents.is_empty();

        // An alternate data stream: `owner:stream`, right after its owner.
        if parts.len() > 1 && last.contains(':') {
            let (owner_last, stream) = last.split_once(':').expect("has a colon");
            let owner = format!("{}/{owner_last}", parts[..parts.len() - 1].join("/"));
            match self.pending.as_mut() {
                Some(p) if p.path == owner && h.kind == Kind::Regular => {
                    self.streams += 1;
                    let disk = format!("Streams/{}", self.streams);
                    p.streams.push(Stream {
                        name: stream.to_owned(),
                        size: h.size,
                        disk: disk.clone(),
                    });
                    self.write_content(&disk, &name, content)?;
                    return Ok(());
                }
                _ => return Err(bad(&name, "an alternate data stream must directly follow its owner")),
            }
        }
        if parts.iter().any(|p| p.contains(':')) {
            return Err(bad(
                &name,
                "`:` is only allowed as the stream separator of the last component",
            ));
        }
        self.flush_pending()?;

        // A whiteout.
        if let Some(target) = last.strip_prefix(".wh.") {
            let under_files =
                parts[0] == "Files" || (parts.len() > 2 && parts[0] == "UtilityVM" && parts[1] == "Files");
            if !under_files {
                return Err(bad(
                    &name,
                    "invalid tombstone: whiteouts belong under Files/ or UtilityVM/Files/",
                ));
            }
            if is_base {
                return Err(bad(&name, "base layer cannot have tombstones"));
            }
            let dir = parts[..parts.len() - 1].join("/");
            let mut record = record_of(h, &format!("{dir}/{target}"), RecordKind::Whiteout)?;
            record.attributes = 0;
            self.pending = Some(record);
            return Ok(());
        }

        let key = fold_key(&name);
        let is_dir_attr = |r: &Record| r.attributes & ATTR_DIRECTORY != 0;
        if parts.len() == 1 {
            // `Files`, `Hives`, `UtilityVM` themselves: the layer directory has them.
            let kind = RecordKind::Dir;
            let record = record_of(h, &name, kind)?;
            beneath::open_dir(&self.root, &name, true).map_err(|e| io_at(name.as_bytes(), e))?;
            self.seen.insert(
                key,
                Seen {
                    path: name.clone(),
                    disk: name.clone(),
                    dir: true,
                },
            );
            self.pending = Some(record);
            return Ok(());
        }
        if let Some(earlier) = self.seen.get(&key) {
            if earlier.path != name {
                return Err(bad(
                    &name,
                    format!("{:?} is already in this layer: names differ only in case", earlier.path),
                ));
            }
            if !(earlier.dir && h.kind == Kind::Directory) {
                return Err(bad(&name, "the entry appears twice in this layer"));
            }
        }
        if is_base && parts.len() > 2 {
            let parent = fold_key(&parts[..parts.len() - 1].join("/"));
            if !self.seen.get(&parent).is_some_and(|s| s.dir) {
                return Err(bad(&name, "a base layer must have an entry for every parent directory"));
            }
        }
        let parts_ref: Vec<&str> = parts.iter().map(String::as_str).collect();
        let disk = self.disk_of(&parts_ref);
        let kind = match h.kind {
            Kind::Directory => RecordKind::Dir,
            Kind::Regular => RecordKind::File,
            Kind::Symlink if h.pax.iter().any(|(k, _)| k == b"MSWINDOWS.mountpoint") => RecordKind::Junction,
            Kind::Symlink => RecordKind::Symlink,
            Kind::HardLink => RecordKind::HardLink,
            _ => return Err(bad(&name, "device nodes and pipes cannot be in a Windows layer")),
        };
        let mut record = record_of(h, &name, kind)?;
        if disk != name {
            record.disk = Some(disk.clone());
        }
        let dir = match kind {
            RecordKind::Dir => {
                beneath::open_dir(&self.root, &disk, true).map_err(|e| io_at(name.as_bytes(), e))?;
                true
            }
            RecordKind::File => {
                self.write_content(&disk, &name, content)?;
                false
            }
            RecordKind::Symlink | RecordKind::Junction => {
                // The target is data: a placeholder holds the name, nothing points anywhere.
                record.target = Some(String::from_utf8_lossy(&h.link).into_owned());
                let dir = kind == RecordKind::Junction || is_dir_attr(&record);
                if dir {
                    beneath::open_dir(&self.root, &disk, true).map_err(|e| io_at(name.as_bytes(), e))?;
                } else {
                    self.write_content(&disk, &name, &mut std::io::empty())?;
                }
                dir
            }
            RecordKind::HardLink => {
                let target = String::from_utf8_lossy(&h.link).into_owned();
                let target = target.trim_end_matches('/').to_owned();
                if target.split('/').any(|c| matches!(c, "" | "." | "..")) {
                    return Err(UnpackError::HardLinkEscape {
                        entry: name.clone(),
                        target,
                        reason: "has an empty, `.` or `..` component",
                    });
                }
                if !(target.starts_with("Files/") || target.starts_with("UtilityVM/Files/")) {
                    return Err(bad(
                        &name,
                        format!("invalid hard link to {target:?}: only Files/ may be linked"),
                    ));
                }
                let target_key = fold_key(&target);
                let (source_base, source_rel) = match self.seen.get(&target_key) {
                    Some(s) if !s.dir => (self.root.clone(), s.disk.clone()),
                    Some(_) => return Err(bad(&name, format!("hard link to the directory {target:?}"))),
                    None => self.parent_file(&target_key).ok_or_else(|| {
                        bad(
                            &name,
                            format!("failed to find link target {target:?} in this layer or its parents"),
                        )
                    })?,
                };
                beneath::hard_link(&source_base, &source_rel, &self.root, &disk)
                    .map_err(|e| io_at(name.as_bytes(), e))?;
                record.target = Some(target);
                false
            }
            RecordKind::Whiteout => unreachable!("handled above"),
        };
        self.seen.insert(key, Seen { path: name, disk, dir });
        self.pending = Some(record);
        Ok(())
    }
}

impl Importer {
    /// Finishes after the last entry.
    pub(crate) fn finish(mut self) -> Result<Stats, UnpackError> {
        self.flush_pending()?;
        let file = self
            .sidecar
            .into_inner()
            .map_err(|e| io_at(SIDECAR.as_bytes(), e.into_error()))?;
        file.sync_all().map_err(|e| io_at(SIDECAR.as_bytes(), e))?;
        Ok(self.stats)
    }
}
