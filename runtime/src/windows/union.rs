//! The union of a Windows image's layers, as `C:\` would show it: built from the sidecars,
//! base layer first, names compared case-insensitively. Per layer, its whiteouts first remove
//! what the layers below contributed (subtrees included; a missing target is a no-op, as on
//! Windows), then its entries apply: a directory merges (its metadata replaced), anything else
//! replaces, and a hard link shares its target's data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Record, RecordKind, fold_key, read_sidecar};

/// One entry of a Windows union.
#[derive(Debug, Clone)]
pub struct WindowsNode {
    /// The path under `C:\`, `/`-separated and `/`-rooted, with the case of the layer that
    /// last created it.
    pub path: String,
    /// The sidecar record.
    pub record: Record,
    /// Which layer it comes from, 0 being the base.
    pub layer: usize,
    /// The layer directory holding its data.
    pub layer_dir: PathBuf,
    /// Where its data is, relative to `layer_dir`.
    pub rel: String,
}

impl WindowsNode {
    /// Opens its data (never following a link, whatever the path length).
    pub fn open(&self) -> std::io::Result<std::fs::File> {
        super::beneath::open_file(&self.layer_dir, &self.rel)
    }
}

/// The union of a Windows image's layers.
#[derive(Debug, Clone, Default)]
pub struct WindowsUnion {
    /// By case-folded path.
    nodes: BTreeMap<String, WindowsNode>,
}

/// `Files/a/b` → `/a/b`; `Files` → `/`; anything outside `Files/` → none.
fn c_path(path: &str) -> Option<String> {
    if path == "Files" {
        return Some("/".into());
    }
    path.strip_prefix("Files/").map(|rest| format!("/{rest}"))
}

fn fold_c(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        fold_key(trimmed)
    }
}

impl WindowsUnion {
    /// The union of the layer directories given base first.
    pub fn open(base_first: &[PathBuf]) -> std::io::Result<Self> {
        let mut union = WindowsUnion::default();
        for (i, dir) in base_first.iter().enumerate() {
            union.apply_layer(i, dir, read_sidecar(dir)?);
        }
        Ok(union)
    }

    fn apply_layer(&mut self, layer: usize, dir: &Path, records: Vec<Record>) {
        for r in records.iter().filter(|r| r.kind == RecordKind::Whiteout) {
            if let Some(path) = c_path(&r.path) {
                self.remove_subtree(&fold_c(&path));
            }
        }
        for r in records.into_iter().filter(|r| r.kind != RecordKind::Whiteout) {
            let Some(path) = c_path(&r.path) else { continue };
            let key = fold_c(&path);
            let (mut layer_dir, mut rel) = (dir.to_owned(), r.disk_path().to_owned());
            let mut record = r;
            if record.kind == RecordKind::HardLink {
                let target = record.target.as_deref().and_then(c_path).map(|t| fold_c(&t));
                if let Some(t) = target.and_then(|t| self.nodes.get(&t)) {
                    (layer_dir, rel) = (t.layer_dir.clone(), t.rel.clone());
                    record.size = t.record.size;
                }
            }
            let was_dir = self.nodes.get(&key).is_some_and(|n| n.record.kind == RecordKind::Dir);
            if record.kind != RecordKind::Dir && was_dir {
                self.remove_subtree(&key);
            }
            self.nodes.insert(
                key,
                WindowsNode {
                    path,
                    record,
                    layer,
                    layer_dir,
                    rel,
                },
            );
        }
    }

    fn remove_subtree(&mut self, key: &str) {
        self.nodes.remove(key);
        let prefix = format!("{key}/");
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    /// The entry at `path` (any case).
    pub fn get(&self, path: &str) -> Option<WindowsNode> {
        self.nodes.get(&fold_c(&normalize(path))).map(|n| self.shown(n))
    }

    /// `n` with its path spelled as the union shows it: each directory in the case of the layer
    /// that last created it (a child keeps its own name under a re-cased parent).
    fn shown(&self, n: &WindowsNode) -> WindowsNode {
        let mut out = n.clone();
        out.path = self.display(&n.path);
        out
    }

    fn display(&self, path: &str) -> String {
        match path.rsplit_once('/') {
            None | Some(("", "")) => "/".into(),
            Some(("", last)) => format!("/{last}"),
            Some((parent, last)) => {
                let parent = match self.nodes.get(&fold_c(parent)) {
                    Some(p) if p.path != parent => self.display(&p.path),
                    _ => self.display(parent),
                };
                format!("{}/{last}", parent.trim_end_matches('/'))
            }
        }
    }

    /// The entries of directory `path`, sorted case-insensitively; or the entry itself when it
    /// is not a directory.
    pub fn list(&self, path: &str) -> Option<Vec<WindowsNode>> {
        let path = normalize(path);
        let key = fold_c(&path);
        let node = self.nodes.get(&key);
        if let Some(n) = node.filter(|n| n.record.kind != RecordKind::Dir) {
            return Some(vec![self.shown(n)]);
        }
        let prefix = if key == "/" { "/".to_owned() } else { format!("{key}/") };
        let children: Vec<WindowsNode> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
            .map(|(_, n)| self.shown(n))
            .collect();
        (node.is_some() || !children.is_empty() || key == "/").then_some(children)
    }

    /// Every entry, sorted by case-folded path.
    pub fn walk(&self) -> impl Iterator<Item = WindowsNode> + '_ {
        self.nodes.values().map(|n| self.shown(n))
    }
}

/// `\`-or-`/` separated, with or without `C:`, to a `/`-rooted path.
fn normalize(path: &str) -> String {
    let path = path.replace('\\', "/");
    let path = path
        .strip_prefix("C:")
        .or_else(|| path.strip_prefix("c:"))
        .unwrap_or(&path);
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    format!("/{}", parts.join("/"))
}
