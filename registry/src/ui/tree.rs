//! Directories of one layer or of an image's union, from the layers' file lists.
//!
//! The union follows the OCI layer rules: the topmost layer that names a path decides it; a
//! whiteout `.wh.NAME` deletes NAME of the layers below; an opaque directory hides what the
//! layers below put in it; a non-directory, whiteout or opaque marker at a directory or any of
//! its ancestors hides that directory of the layers below. Windows images compare names
//! case-insensitively, as NTFS does (the newest layer's spelling shows).

use std::collections::BTreeMap;

use serde::Serialize;

use super::layers::{Entry, EntryKind, LayerIndex};

/// How a layer changed a path, against the layers below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Change {
    Added,
    Changed,
    Deleted,
}

/// One row of a directory.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub(crate) name: String,
    /// The full path (as the providing layer spells it).
    pub(crate) path: String,
    pub(crate) kind: EntryKind,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: i64,
    pub(crate) link: Option<String>,
    /// The layer (0 = bottom) the row comes from.
    pub(crate) layer: usize,
    /// In a layer's view: what the layer did to the path.
    pub(crate) change: Option<Change>,
    /// Whether no entry names the directory itself (only paths below it do).
    pub(crate) implied: bool,
}

fn key(s: &str, fold: bool) -> String {
    if fold { s.to_lowercase() } else { s.to_owned() }
}

/// `dir`'s ancestors and itself: `a`, `a/b`, `a/b/c`.
fn lineage(dir: &str) -> impl Iterator<Item = &str> {
    dir.match_indices('/')
        .map(move |(i, _)| &dir[..i])
        .chain((!dir.is_empty()).then_some(dir))
}

/// Entries of `layer` whose path starts with `prefix` (`""` or `dir/`).
fn under<'a>(layer: &'a LayerIndex, prefix: &str, fold: bool) -> Box<dyn Iterator<Item = &'a Entry> + 'a> {
    if fold {
        let prefix = prefix.to_lowercase();
        Box::new(
            layer
                .entries
                .iter()
                .filter(move |e| e.path.to_lowercase().starts_with(&prefix)),
        )
    } else {
        let start = layer.entries.partition_point(|e| e.path.as_str() < prefix);
        let prefix = prefix.to_owned();
        Box::new(
            layer.entries[start..]
                .iter()
                .take_while(move |e| e.path.starts_with(&prefix)),
        )
    }
}

/// The children of `dir` in one layer, by (folded) name: the last entry naming each, or an
/// implied directory.
fn children(layer: &LayerIndex, dir: &str, fold: bool, index: usize) -> BTreeMap<String, Row> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for entry in under(layer, &prefix, fold) {
        let rest = &entry.path[prefix.len()..];
        if entry.kind == EntryKind::Opaque && rest.is_empty() {
            continue;
        }
        // An opaque marker shows its directory (as a directory the layer implies).
        let (name, deeper) = match rest.split_once('/') {
            Some((name, _)) => (name, true),
            None => (rest, entry.kind == EntryKind::Opaque),
        };
        if name.is_empty() {
            continue;
        }
        let path = format!("{}{name}", &entry.path[..prefix.len()]);
        let row = if deeper {
            Row {
                name: name.to_owned(),
                path,
                kind: EntryKind::Dir,
                size: 0,
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: 0,
                link: None,
                layer: index,
                change: None,
                implied: true,
            }
        } else {
            Row {
                name: name.to_owned(),
                path,
                kind: entry.kind,
                size: entry.size,
                mode: entry.mode,
                uid: entry.uid,
                gid: entry.gid,
                mtime: entry.mtime,
                link: entry.link.clone(),
                layer: index,
                change: None,
                implied: false,
            }
        };
        match rows.get(&key(name, fold)) {
            // An entry beats an implied directory; a later entry beats an earlier one.
            Some(existing) if row.implied && !existing.implied => {}
            _ => {
                rows.insert(key(name, fold), row);
            }
        }
    }
    rows
}

/// Whether `layer` hides what the layers below it have in `dir`.
fn hides_below(layer: &LayerIndex, dir: &str, fold: bool) -> bool {
    lineage(dir).any(|path| {
        let folded = key(path, fold);
        let named: Vec<&Entry> = if fold {
            layer
                .entries
                .iter()
                .filter(|e| e.path.to_lowercase() == folded)
                .collect()
        } else {
            let start = layer.entries.partition_point(|e| e.path.as_str() < path);
            layer.entries[start..].iter().take_while(|e| e.path == path).collect()
        };
        named
            .iter()
            .any(|e| matches!(e.kind, EntryKind::Whiteout | EntryKind::Opaque) || !matches!(e.kind, EntryKind::Dir))
    })
}

/// `dir` in the union of `layers` (bottom first): what a container would see.
pub(crate) fn union(layers: &[&LayerIndex], dir: &str, fold: bool) -> Vec<Row> {
    let mut seen: BTreeMap<String, Option<Row>> = BTreeMap::new();
    for (index, layer) in layers.iter().enumerate().rev() {
        for (name, row) in children(layer, dir, fold, index) {
            match seen.get_mut(&name) {
                None => {
                    seen.insert(name, (row.kind != EntryKind::Whiteout).then_some(row));
                }
                // A directory an upper layer only implies shows the lower layer's own entry.
                Some(Some(upper)) if upper.implied && row.kind == EntryKind::Dir && !row.implied => *upper = row,
                Some(_) => {}
            }
        }
        if hides_below(layer, dir, fold) {
            break;
        }
    }
    let mut rows: Vec<Row> = seen.into_values().flatten().collect();
    sort(&mut rows);
    rows
}

/// `dir` of layer `top` of `layers`, each row marked added, changed or deleted against the
/// union of the layers below.
pub(crate) fn layer(layers: &[&LayerIndex], top: usize, dir: &str, fold: bool) -> Vec<Row> {
    let below: BTreeMap<String, ()> = union(&layers[..top], dir, fold)
        .into_iter()
        .map(|r| (key(&r.name, fold), ()))
        .collect();
    let mut rows: Vec<Row> = children(layers[top], dir, fold, top)
        .into_iter()
        .map(|(name, mut row)| {
            row.change = Some(match (row.kind, below.contains_key(&name)) {
                (EntryKind::Whiteout, _) => Change::Deleted,
                (_, true) => Change::Changed,
                (_, false) => Change::Added,
            });
            row
        })
        .collect();
    sort(&mut rows);
    rows
}

/// Directories first, then by name.
fn sort(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        (a.kind != EntryKind::Dir)
            .cmp(&(b.kind != EntryKind::Dir))
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// `ls -l` style permissions.
pub(crate) fn mode_string(kind: EntryKind, mode: u32) -> String {
    let first = match kind {
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::Device => 'c',
        EntryKind::Fifo => 'p',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(first);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind) -> Entry {
        Entry {
            path: path.into(),
            kind,
            size: 1,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            link: None,
            offset: 0,
        }
    }

    fn index(entries: &[(&str, EntryKind)]) -> LayerIndex {
        let mut entries: Vec<Entry> = entries.iter().map(|(p, k)| entry(p, *k)).collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        LayerIndex { entries, refused: 0 }
    }

    fn names(rows: &[Row]) -> Vec<String> {
        rows.iter().map(|r| format!("{}@{}", r.name, r.layer)).collect()
    }

    #[test]
    fn the_union_applies_whiteouts_opaque_directories_and_replacements() {
        use EntryKind::*;
        let base = index(&[
            ("etc", Dir),
            ("etc/passwd", File),
            ("etc/hosts", File),
            ("opt/app/old", File),
            ("var/lib/x", File),
            ("bin", Dir),
            ("bin/sh", File),
        ]);
        let upper = index(&[
            ("etc/hosts", Whiteout),
            ("etc/shadow", File),
            ("opt/app", Opaque),
            ("opt/app/new", File),
            ("var", File),
            ("bin/sh", File),
        ]);
        let layers = [&base, &upper];
        assert_eq!(names(&union(&layers, "", false)), ["bin@0", "etc@0", "opt@1", "var@1"]);
        assert_eq!(names(&union(&layers, "etc", false)), ["passwd@0", "shadow@1"]);
        assert_eq!(names(&union(&layers, "opt/app", false)), ["new@1"]);
        assert!(union(&layers, "var/lib", false).is_empty(), "var is a file now");
        let changes: Vec<(String, Change)> = layer(&layers, 1, "etc", false)
            .into_iter()
            .map(|r| (r.name, r.change.unwrap()))
            .collect();
        assert_eq!(
            changes,
            [("hosts".into(), Change::Deleted), ("shadow".into(), Change::Added)]
        );
        let bin: Vec<Change> = layer(&layers, 1, "bin", false)
            .into_iter()
            .map(|r| r.change.unwrap())
            .collect();
        assert_eq!(bin, [Change::Changed]);
    }

    #[test]
    fn windows_names_fold_case() {
        use EntryKind::*;
        let base = index(&[
            ("Files/Windows/System32/cmd.exe", File),
            ("Files/Windows/notepad.exe", File),
        ]);
        let upper = index(&[
            ("Files/WINDOWS/System32/CMD.EXE", File),
            ("Files/windows/.wh.notepad.exe", Whiteout),
        ]);
        let upper = LayerIndex {
            entries: upper
                .entries
                .into_iter()
                .map(|mut e| {
                    if e.kind == Whiteout {
                        e.path = "Files/windows/notepad.exe".into();
                    }
                    e
                })
                .collect(),
            refused: 0,
        };
        let layers = [&base, &upper];
        assert_eq!(names(&union(&layers, "Files/Windows/System32", true)), ["CMD.EXE@1"]);
        assert!(
            names(&union(&layers, "files/windows", true))
                .iter()
                .all(|n| !n.starts_with("notepad"))
        );
        assert_eq!(
            names(&union(&layers, "Files/Windows/System32", false)),
            ["cmd.exe@0"],
            "case-sensitive: two names"
        );
    }

    #[test]
    fn modes_read_like_ls() {
        assert_eq!(mode_string(EntryKind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(EntryKind::File, 0o640), "-rw-r-----");
    }
}
