//! The read-only union of an image's Linux layers, as overlayfs would present it: the top layer
//! wins, whiteouts (0:0 character devices) hide what lower layers have, an opaque directory
//! (`trusted.overlay.opaque=y`) hides everything below it, and a directory merges with the
//! directories of the same name below it until one is opaque or a lower entry is not a directory.
//!
//! Paths are resolved component by component with `lstat` inside each layer's `Files/`, so a
//! symbolic link a layer holds is never followed on the host: links are followed, when asked,
//! inside the union only (absolute targets from the union's root), like a chroot would.

use std::collections::BTreeMap;
use std::fs::{File, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::store::{LayerStore, Result, StoreError, io_error as io};
use crate::windows::{RecordKind, WindowsNode, WindowsUnion};

/// How many symbolic links one lookup follows at most (Linux's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
}

/// One entry of the union.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Node {
    /// Its path in the union, `/`-rooted.
    pub path: String,
    /// What it is.
    pub kind: NodeKind,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (of a file; of the target for a link).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// The target of a symbolic link, verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `major:minor` of a device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<(u32, u32)>,
    /// Win32 attributes, for an entry of a Windows image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<u32>,
    /// Which layer it comes from, 0 being the base.
    pub layer: usize,
    #[serde(skip)]
    host: PathBuf,
}

/// A directory of the union: the host directories that make it up, top first.
#[derive(Debug, Clone)]
struct DirStack(Vec<(usize, PathBuf)>);

/// The union of an image's layers: Linux (overlayfs rules) or Windows (from the sidecars).
#[derive(Debug, Clone)]
pub enum Union {
    /// A Linux image.
    Linux(LinuxUnion),
    /// A Windows image.
    Windows(WindowsUnion),
}

impl Union {
    /// The union of image `name` in `store`.
    pub fn open(store: &LayerStore, name: &str) -> Result<Self> {
        let image = store.image(name)?;
        if image.os != "windows" {
            return LinuxUnion::open(store, name).map(Union::Linux);
        }
        let dirs = store.image_dirs(&image)?;
        WindowsUnion::open(&dirs)
            .map(Union::Windows)
            .map_err(|e| StoreError::Invalid(format!("image {name}: Windows layer metadata: {e}")))
    }

    /// The entry at `path` (not following a final link); `None` if there is none.
    pub fn stat(&self, path: &str) -> Result<Option<Node>> {
        match self {
            Union::Linux(u) => u.stat(path),
            Union::Windows(u) => Ok(u.get(path).as_ref().map(windows_node)),
        }
    }

    /// The entries of directory `path`, or the entry itself when it is not a directory.
    pub fn list(&self, path: &str) -> Result<Vec<Node>> {
        match self {
            Union::Linux(u) => u.list(path),
            Union::Windows(u) => u
                .list(path)
                .map(|nodes| nodes.iter().map(windows_node).collect())
                .ok_or_else(|| StoreError::NotFound(format!("{path}: no such file or directory"))),
        }
    }

    /// Opens the regular file at `path`.
    pub fn open_file(&self, path: &str) -> Result<(Node, File)> {
        match self {
            Union::Linux(u) => u.open_file(path),
            Union::Windows(u) => {
                let found = u
                    .get(path)
                    .ok_or_else(|| StoreError::NotFound(format!("{path}: no such file or directory")))?;
                let node = windows_node(&found);
                if node.kind != NodeKind::File {
                    return Err(StoreError::Invalid(format!("{path}: not a regular file")));
                }
                let file = found
                    .open()
                    .map_err(|e| io("open", found.layer_dir.join(&found.rel), e))?;
                Ok((node, file))
            }
        }
    }

    /// Every entry, sorted by path (case-insensitively for Windows), the root first.
    pub fn walk(&self) -> Result<Vec<Node>> {
        match self {
            Union::Linux(u) => u.walk(),
            Union::Windows(u) => Ok(u.walk().map(|n| windows_node(&n)).collect()),
        }
    }
}

fn windows_node(n: &WindowsNode) -> Node {
    let r = &n.record;
    let kind = match r.kind {
        RecordKind::Dir => NodeKind::Dir,
        RecordKind::Symlink | RecordKind::Junction => NodeKind::Symlink,
        _ => NodeKind::File,
    };
    let mtime = r
        .mtime
        .as_deref()
        .and_then(|m| m.split('.').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Node {
        path: n.path.clone(),
        kind,
        mode: 0,
        uid: 0,
        gid: 0,
        size: if kind == NodeKind::File { r.size } else { 0 },
        mtime,
        target: matches!(r.kind, RecordKind::Symlink | RecordKind::Junction)
            .then(|| r.target.clone())
            .flatten(),
        device: None,
        attributes: Some(r.attributes),
        layer: n.layer,
        host: n.layer_dir.join(&n.rel),
    }
}

/// The union of an image's Linux layers.
#[derive(Debug, Clone)]
pub struct LinuxUnion {
    /// `(layer index from the base, Files/ directory)`, top layer first.
    layers: Vec<(usize, PathBuf)>,
}

impl LinuxUnion {
    /// The union of Linux image `name` in `store`.
    pub fn open(store: &LayerStore, name: &str) -> Result<Self> {
        let image = store.image(name)?;
        let dirs = image
            .chain
            .iter()
            .map(|c| {
                let chain_id = strata_storage::digest::parse_digest(c)
                    .map_err(|e| StoreError::Invalid(format!("image {name}: chain id {c}: {e}")))?;
                Ok(store.layer_dir(&chain_id).join("Files"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LinuxUnion::from_dirs(dirs))
    }

    /// The union of layer directories given base first.
    pub fn from_dirs(base_first: Vec<PathBuf>) -> Self {
        let layers = base_first.into_iter().enumerate().rev().collect();
        LinuxUnion { layers }
    }

    /// The host directories a layer's `Files/` are, base first.
    pub fn layer_dirs(&self) -> Vec<PathBuf> {
        self.layers.iter().rev().map(|(_, p)| p.clone()).collect()
    }

    /// The entry at `path`, not following a final symbolic link; `None` if there is none.
    pub fn stat(&self, path: &str) -> Result<Option<Node>> {
        self.lookup(path, false, 0)
    }

    /// The entry at `path`, following symbolic links (inside the union); its `path` is free of
    /// links. `None` if there is none.
    pub fn resolve(&self, path: &str) -> Result<Option<Node>> {
        self.lookup(path, true, 0)
    }

    /// The entries of directory `path` (following symbolic links), sorted by name; or the entry
    /// itself when it is not a directory.
    pub fn list(&self, path: &str) -> Result<Vec<Node>> {
        let node = self
            .lookup(path, true, 0)?
            .ok_or_else(|| StoreError::NotFound(format!("{path}: no such file or directory")))?;
        if node.kind != NodeKind::Dir {
            return Ok(vec![node]);
        }
        let stack = self.dir_stack(&node.path, 0)?.expect("a directory node has a stack");
        Ok(self.children(&node.path, &stack)?.into_values().collect())
    }

    /// Opens the regular file at `path` (following symbolic links inside the union).
    pub fn open_file(&self, path: &str) -> Result<(Node, File)> {
        let node = self
            .lookup(path, true, 0)?
            .ok_or_else(|| StoreError::NotFound(format!("{path}: no such file or directory")))?;
        if node.kind != NodeKind::File {
            return Err(StoreError::Invalid(format!("{path}: not a regular file")));
        }
        let file = open_nofollow(&node.host)?;
        Ok((node, file))
    }

    /// Every entry of the union, sorted by path, the root first.
    pub fn walk(&self) -> Result<Vec<Node>> {
        let Some(root) = self.lookup("/", false, 0)? else {
            return Ok(Vec::new());
        };
        let mut out = vec![root];
        let mut todo = vec!["/".to_owned()];
        while let Some(dir) = todo.pop() {
            let stack = self.dir_stack(&dir, 0)?.expect("walked directories exist");
            for node in self.children(&dir, &stack)?.into_values() {
                if node.kind == NodeKind::Dir {
                    todo.push(node.path.clone());
                }
                out.push(node);
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Resolves `path`, following symbolic links in its directories (and at its end when
    /// `follow`), inside the union.
    fn lookup(&self, path: &str, follow: bool, depth: usize) -> Result<Option<Node>> {
        let parts = normalize(path)?;
        let Some((last, dirs)) = parts.split_last() else {
            return match self.layers.first() {
                Some((i, top)) => node_at("/", top, *i).map(Some),
                None => Ok(None),
            };
        };
        let mut resolved = String::new();
        for part in dirs {
            let at = format!("{resolved}/{part}");
            match self.lookup(&at, true, depth)? {
                Some(n) if n.kind == NodeKind::Dir => resolved = n.path,
                Some(_) => return Err(StoreError::NotFound(format!("{at}: not a directory"))),
                None => return Ok(None),
            }
        }
        let Some(parent) = self.dir_stack(&resolved, depth)? else {
            return Ok(None);
        };
        let here = format!("{resolved}/{last}");
        let Some(node) = self.child(&here, &parent, last)? else {
            return Ok(None);
        };
        match (&node.target, follow) {
            (Some(target), true) if node.kind == NodeKind::Symlink => {
                if depth >= MAX_LINKS {
                    return Err(StoreError::Invalid(format!(
                        "{path}: too many levels of symbolic links"
                    )));
                }
                let next = if target.starts_with('/') {
                    target.clone()
                } else {
                    format!("{resolved}/{target}")
                };
                self.lookup(&next, true, depth + 1)
            }
            _ => Ok(Some(node)),
        }
    }

    fn root_stack(&self) -> DirStack {
        let mut stack = Vec::new();
        for (i, dir) in &self.layers {
            stack.push((*i, dir.clone()));
            if is_opaque(dir) {
                break;
            }
        }
        DirStack(stack)
    }

    /// The host directories making up union directory `path` (already resolved: no links).
    fn dir_stack(&self, path: &str, depth: usize) -> Result<Option<DirStack>> {
        let mut stack = self.root_stack();
        let mut at = String::new();
        for part in normalize(path)? {
            at = format!("{at}/{part}");
            let mut next = Vec::new();
            for (i, dir) in &stack.0 {
                let host = dir.join(&part);
                let Some(md) = lstat(&host)? else { continue };
                if is_whiteout(&md) || !md.is_dir() {
                    if next.is_empty() && !is_whiteout(&md) && md.file_type().is_symlink() {
                        // A link where a directory was expected: resolve it in the union.
                        let node = self.lookup(&at, true, depth + 1)?;
                        return match node {
                            Some(n) if n.kind == NodeKind::Dir => self.dir_stack(&n.path, depth + 1),
                            _ => Ok(None),
                        };
                    }
                    break;
                }
                next.push((*i, host.clone()));
                if is_opaque(&host) {
                    break;
                }
            }
            if next.is_empty() {
                return Ok(None);
            }
            stack = DirStack(next);
        }
        Ok(Some(stack))
    }

    /// The entry `name` of the directory made of `stack`, at union path `here`.
    fn child(&self, here: &str, stack: &DirStack, name: &str) -> Result<Option<Node>> {
        for (i, dir) in &stack.0 {
            let host = dir.join(name);
            let Some(md) = lstat(&host)? else { continue };
            if is_whiteout(&md) {
                return Ok(None);
            }
            return node_from(here, &host, *i, &md).map(Some);
        }
        Ok(None)
    }

    /// The visible entries of the directory made of `stack`, by name.
    fn children(&self, dir: &str, stack: &DirStack) -> Result<BTreeMap<String, Node>> {
        let mut seen: BTreeMap<String, Option<Node>> = BTreeMap::new();
        for (i, host_dir) in &stack.0 {
            let entries = std::fs::read_dir(host_dir).map_err(|e| io("list", host_dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| io("list", host_dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if seen.contains_key(&name) {
                    continue;
                }
                let host = entry.path();
                let Some(md) = lstat(&host)? else { continue };
                let node = if is_whiteout(&md) {
                    None
                } else {
                    let path = if dir == "/" {
                        format!("/{name}")
                    } else {
                        format!("{dir}/{name}")
                    };
                    Some(node_from(&path, &host, *i, &md)?)
                };
                seen.insert(name, node);
            }
        }
        Ok(seen.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
    }
}

/// Splits a union path into its components, resolving `.` and `..` lexically (never above `/`).
fn normalize(path: &str) -> Result<Vec<String>> {
    let mut parts: Vec<String> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p.to_owned()),
        }
    }
    Ok(parts)
}

fn lstat(path: &Path) -> Result<Option<Metadata>> {
    match std::fs::symlink_metadata(path) {
        Ok(md) => Ok(Some(md)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(io("stat", path, e)),
    }
}

fn is_whiteout(md: &Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    let mut value = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, "trusted.overlay.opaque", &mut value), Ok(1) if value[0] == b'y')
}

fn node_at(path: &str, host: &Path, layer: usize) -> Result<Node> {
    let md = lstat(host)?.ok_or_else(|| StoreError::NotFound(host.display().to_string()))?;
    node_from(path, host, layer, &md)
}

fn node_from(path: &str, host: &Path, layer: usize, md: &Metadata) -> Result<Node> {
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_char_device() {
        NodeKind::CharDevice
    } else if ft.is_block_device() {
        NodeKind::BlockDevice
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_socket() {
        NodeKind::Socket
    } else {
        NodeKind::File
    };
    let target = match kind {
        NodeKind::Symlink => Some(
            std::fs::read_link(host)
                .map_err(|e| io("read link", host, e))?
                .to_string_lossy()
                .into_owned(),
        ),
        _ => None,
    };
    let device = matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice).then(|| {
        let dev = md.rdev();
        (rustix::fs::major(dev), rustix::fs::minor(dev))
    });
    Ok(Node {
        path: path.to_owned(),
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        size: if kind == NodeKind::Dir { 0 } else { md.size() },
        mtime: md.mtime(),
        target,
        device,
        attributes: None,
        layer,
        host: host.to_owned(),
    })
}

/// Opens a file the union resolved, refusing to follow a link (the layer holds no links there).
fn open_nofollow(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| io("open", path, e))
}

impl Node {
    /// `ls -l`-style type and permission string (`drwxr-xr-x`).
    pub fn mode_string(&self) -> String {
        if let Some(a) = self.attributes {
            // PowerShell's Mode column: directory, archive, read-only, hidden, system, reparse.
            let bit = |b: u32, c: char| if a & b != 0 { c } else { '-' };
            return [
                bit(0x10, 'd'),
                bit(0x20, 'a'),
                bit(0x1, 'r'),
                bit(0x2, 'h'),
                bit(0x4, 's'),
                bit(0x400, 'l'),
            ]
            .iter()
            .collect();
        }
        let t = match self.kind {
            NodeKind::File => '-',
            NodeKind::Dir => 'd',
            NodeKind::Symlink => 'l',
            NodeKind::CharDevice => 'c',
            NodeKind::BlockDevice => 'b',
            NodeKind::Fifo => 'p',
            NodeKind::Socket => 's',
        };
        let m = self.mode;
        let bit = |b: u32, c: char| if m & b != 0 { c } else { '-' };
        let special = |x: u32, s: u32, set: char, unset: char| match (m & x != 0, m & s != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => 'x',
            (false, false) => '-',
        };
        [
            t,
            bit(0o400, 'r'),
            bit(0o200, 'w'),
            special(0o100, 0o4000, 's', 'S'),
            bit(0o040, 'r'),
            bit(0o020, 'w'),
            special(0o010, 0o2000, 's', 'S'),
            bit(0o004, 'r'),
            bit(0o002, 'w'),
            special(0o001, 0o1000, 't', 'T'),
        ]
        .iter()
        .collect()
    }
}
