//! Applying one entry to the destination: the policy of what each entry type creates, how it
//! replaces earlier entries at the same path, and how whiteouts become overlayfs objects.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::Options;
use super::error::{UnpackError, corrupt, io_at, shown};
use super::fs::{Node, Root, WalkError, file_type_at, open_child_dir, remove};
use super::path::{EntryPath, Target, check_symlink_target, parse_entry_name, parse_link_target};
use strata_storage::layer::{EntryHeader, Kind, Mtime};

/// The xattr that makes an overlayfs directory hide the lower layers' contents.
const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";

/// Counters kept while applying.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    /// Content bytes of regular files.
    pub(crate) file_bytes: u64,
    /// Entries not created (device nodes when unprivileged, AUFS metadata).
    pub(crate) skipped_entries: u64,
    /// Extended attributes not set.
    pub(crate) skipped_xattrs: u64,
}

/// Mode and mtime of a directory, set after all entries because creating children changes the
/// mtime, and a read-only mode would stop an unprivileged unpacker from creating them.
#[derive(Debug, Clone, Copy)]
struct DirMeta {
    mode: u32,
    mtime: Mtime,
}

/// Applies entries, in archive order, to the destination.
#[derive(Debug)]
pub(super) struct Applier<'o> {
    root: Root,
    options: &'o Options,
    /// Directory metadata to set at the end, by path; children sort after their parents.
    dirs: BTreeMap<Vec<u8>, DirMeta>,
    stats: Stats,
    buf: Vec<u8>,
}

impl<'o> Applier<'o> {
    pub(super) fn new(root: Root, options: &'o Options) -> Self {
        Applier {
            root,
            options,
            dirs: BTreeMap::new(),
            stats: Stats::default(),
            buf: vec![0; 64 * 1024],
        }
    }

    /// Applies one entry whose content (exactly `h.size` bytes) `content` yields.
    pub(super) fn apply(&mut self, h: &EntryHeader, content: &mut dyn Read) -> Result<(), UnpackError> {
        let path = match parse_entry_name(&h.name, &self.options.limits)? {
            Target::Path(path) => path,
            Target::Whiteout(path) => return self.whiteout(h, &path),
            Target::Opaque(dir) => return self.opaque(h, &dir),
            Target::AufsMeta => {
                tracing::warn!(entry = ?shown(&h.name), "skipping AUFS metadata entry");
                self.stats.skipped_entries += 1;
                return Ok(());
            }
        };
        if h.kind == Kind::Directory {
            return self.directory(h, &path);
        }
        let Some((parent, name)) = path.split_last() else {
            return Err(UnpackError::InvalidName {
                entry: shown(&h.name),
                reason: "only a directory may name the root of the layer",
            });
        };
        if h.kind == Kind::HardLink {
            return self.hard_link(h, &path);
        }
        if matches!(h.kind, Kind::CharDevice | Kind::BlockDevice) && !self.options.privileged {
            tracing::warn!(entry = ?shown(&h.name), "skipping device node: unpacking unprivileged");
            self.stats.skipped_entries += 1;
            return Ok(());
        }
        let dir = self.parent_dir(h, &parent)?;
        self.clear(&dir, name, &path, &h.name)?;
        let at = |e: Errno| io_at(&h.name, e);
        match h.kind {
            Kind::Regular => {
                let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let mut file = File::from(rfs::openat(&dir, name, flags, Mode::from_raw_mode(0o600)).map_err(at)?);
                self.copy(h, content, &mut file)?;
                self.set_metadata(Node::Fd(file.as_fd()), h, true)
            }
            Kind::Symlink => {
                check_symlink_target(&h.name, &h.link, &self.options.limits)?;
                rfs::symlinkat(&h.link[..], &dir, name).map_err(at)?;
                let full = self.root.path_of(&path);
                let node = Node::At {
                    dir: dir.as_fd(),
                    name,
                    path: &full,
                };
                self.set_metadata(node, h, false)
            }
            Kind::CharDevice | Kind::BlockDevice | Kind::Fifo => {
                let file_type = match h.kind {
                    Kind::CharDevice => FileType::CharacterDevice,
                    Kind::BlockDevice => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rfs::makedev(h.device.0, h.device.1);
                rfs::mknodat(&dir, name, file_type, Mode::from_raw_mode(0o600), dev).map_err(at)?;
                let full = self.root.path_of(&path);
                let node = Node::At {
                    dir: dir.as_fd(),
                    name,
                    path: &full,
                };
                self.set_metadata(node, h, true)
            }
            Kind::Directory | Kind::HardLink => unreachable!("handled above"),
        }
    }

    /// Sets the deferred directory metadata and returns the counters.
    pub(super) fn finish(self) -> Result<Stats, UnpackError> {
        // Children first: an unprivileged unpacker needs search permission on the way down.
        for (path, meta) in self.dirs.iter().rev() {
            let entry = EntryPath::from_normalized(path);
            let fd = self.root.open_dir(&entry, false).map_err(|w| walk_error(path, w))?;
            let node = Node::Fd(fd.as_fd());
            node.chmod(meta.mode).map_err(|e| io_at(path, e))?;
            node.set_times(meta.mtime).map_err(|e| io_at(path, e))?;
        }
        Ok(self.stats)
    }

    fn directory(&mut self, h: &EntryHeader, path: &EntryPath) -> Result<(), UnpackError> {
        let fd = match path.split_last() {
            None => self.root.open_dir(path, false).map_err(|w| walk_error(&h.name, w))?,
            Some((parent, name)) => {
                let dir = self.parent_dir(h, &parent)?;
                // A directory replacing a directory keeps its contents.
                if file_type_at(dir.as_fd(), name).map_err(|e| io_at(&h.name, e))? != Some(FileType::Directory) {
                    self.clear(&dir, name, path, &h.name)?;
                    rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o700)).map_err(|e| io_at(&h.name, e))?;
                }
                open_child_dir(&dir, name).map_err(|e| io_at(&h.name, e))?
            }
        };
        let node = Node::Fd(fd.as_fd());
        if self.options.privileged {
            node.chown(h.uid, h.gid).map_err(|e| io_at(&h.name, e))?;
        }
        self.set_xattrs(node, h)?;
        let meta = DirMeta {
            mode: h.mode,
            mtime: h.mtime,
        };
        self.dirs.insert(path.as_bytes().to_vec(), meta);
        Ok(())
    }

    fn hard_link(&mut self, h: &EntryHeader, path: &EntryPath) -> Result<(), UnpackError> {
        let target = parse_link_target(&h.name, &h.link, &self.options.limits)?;
        let (entry, shown_target) = (shown(&h.name), shown(&h.link));
        let missing = || UnpackError::HardLinkMissing {
            entry: entry.clone(),
            target: shown_target.clone(),
        };
        let Some((target_parent, target_name)) = target.split_last() else {
            return Err(UnpackError::HardLinkToDirectory {
                entry: entry.clone(),
                target: shown_target.clone(),
            });
        };
        let target_dir = self.root.open_dir(&target_parent, false).map_err(|w| match w {
            WalkError::Symlink(_) => UnpackError::HardLinkEscape {
                entry: entry.clone(),
                target: shown_target.clone(),
                reason: "passes through a symbolic link",
            },
            WalkError::NotDirectory(_) | WalkError::Missing(_) => missing(),
            WalkError::Io(at, e) => io_at(&at, e),
        })?;
        match file_type_at(target_dir.as_fd(), target_name).map_err(|e| io_at(&h.link, e))? {
            None => return Err(missing()),
            Some(FileType::Directory) => {
                return Err(UnpackError::HardLinkToDirectory {
                    entry: entry.clone(),
                    target: shown_target.clone(),
                });
            }
            // A link to itself: the entry is already there.
            Some(_) if target == *path => return Ok(()),
            // Anything else, a symbolic link included, is linked as it is: linkat does not follow.
            Some(_) => {}
        }
        let (parent, name) = path.split_last().expect("the root was rejected before");
        let dir = self.parent_dir(h, &parent)?;
        self.clear(&dir, name, path, &h.name)?;
        rfs::linkat(&target_dir, target_name, &dir, name, AtFlags::empty()).map_err(|e| match e {
            // Replacing the entry removed the target (the target was inside it).
            Errno::NOENT => missing(),
            e => io_at(&h.name, e),
        })
    }

    fn whiteout(&mut self, h: &EntryHeader, path: &EntryPath) -> Result<(), UnpackError> {
        if !self.options.privileged {
            return Err(UnpackError::NeedsPrivilege {
                entry: shown(&h.name),
                what: "an overlayfs whiteout is a 0:0 character device",
            });
        }
        let (parent, name) = path.split_last().expect("a whiteout names a file");
        let dir = self.parent_dir(h, &parent)?;
        let at = |e: Errno| io_at(&h.name, e);
        match file_type_at(dir.as_fd(), name).map_err(at)? {
            None => rfs::mknodat(&dir, name, FileType::CharacterDevice, Mode::empty(), rfs::makedev(0, 0)).map_err(at),
            // The layer itself created this directory: it stays (a whiteout only hides lower
            // layers), and now hides everything the lower layers have at this path.
            Some(FileType::Directory) => {
                let fd = open_child_dir(&dir, name).map_err(at)?;
                rfs::fsetxattr(&fd, OPAQUE_XATTR, b"y", rfs::XattrFlags::empty()).map_err(at)
            }
            // Any other earlier entry of this layer already hides the lower file.
            Some(_) => Ok(()),
        }
    }

    fn opaque(&mut self, h: &EntryHeader, dir: &EntryPath) -> Result<(), UnpackError> {
        if !self.options.privileged {
            return Err(UnpackError::NeedsPrivilege {
                entry: shown(&h.name),
                what: "an opaque directory needs the trusted.overlay.opaque extended attribute",
            });
        }
        let fd = self.root.open_dir(dir, true).map_err(|w| walk_error(&h.name, w))?;
        rfs::fsetxattr(&fd, OPAQUE_XATTR, b"y", rfs::XattrFlags::empty()).map_err(|e| io_at(&h.name, e))
    }

    /// Opens the parent directory of an entry, creating missing directories.
    fn parent_dir(&self, h: &EntryHeader, parent: &EntryPath) -> Result<OwnedFd, UnpackError> {
        self.root.open_dir(parent, true).map_err(|w| walk_error(&h.name, w))
    }

    /// Removes whatever an earlier entry put at `name` in `dir` (`path` from the destination).
    fn clear(&mut self, dir: &OwnedFd, name: &[u8], path: &EntryPath, entry: &[u8]) -> Result<(), UnpackError> {
        let Some(file_type) = file_type_at(dir.as_fd(), name).map_err(|e| io_at(entry, e))? else {
            return Ok(());
        };
        remove(dir.as_fd(), name, file_type).map_err(|e| io_at(entry, e))?;
        if file_type == FileType::Directory {
            // Forget the metadata of the removed directory and of everything below it.
            let p = path.as_bytes();
            let below: Vec<Vec<u8>> = self
                .dirs
                .range([p, b"/"].concat()..[p, b"0"].concat())
                .map(|(k, _)| k.clone())
                .collect();
            for k in below {
                self.dirs.remove(&k);
            }
            self.dirs.remove(p);
        }
        Ok(())
    }

    fn copy(&mut self, h: &EntryHeader, content: &mut dyn Read, file: &mut File) -> Result<(), UnpackError> {
        let mut left = h.size;
        while left > 0 {
            let want = self.buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match content.read(&mut self.buf[..want]) {
                Ok(0) => return Err(corrupt(Some(&h.name), "the archive ends inside the file")),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(corrupt(Some(&h.name), e)),
            };
            file.write_all(&self.buf[..n]).map_err(|e| io_at(&h.name, e))?;
            left -= n as u64;
        }
        self.stats.file_bytes += h.size;
        Ok(())
    }

    /// Owner, mode (after the owner: chown clears setuid bits), xattrs (after the owner: chown
    /// clears file capabilities), then times.
    fn set_metadata(&mut self, node: Node<'_>, h: &EntryHeader, chmod: bool) -> Result<(), UnpackError> {
        let at = |e: Errno| io_at(&h.name, e);
        if self.options.privileged {
            node.chown(h.uid, h.gid).map_err(at)?;
        }
        if chmod {
            node.chmod(h.mode).map_err(at)?;
        }
        self.set_xattrs(node, h)?;
        node.set_times(h.mtime).map_err(at)
    }

    fn set_xattrs(&mut self, node: Node<'_>, h: &EntryHeader) -> Result<(), UnpackError> {
        for (name, value) in &h.xattrs {
            let (entry, xattr) = (shown(&h.name), shown(name));
            // Overlayfs metadata must come from whiteout conversion only: a layer that sets it
            // could redirect lookups or hide lower files in ways the spec does not allow.
            if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
                tracing::warn!(?entry, ?xattr, "ignoring overlayfs extended attribute in layer");
                self.stats.skipped_xattrs += 1;
                continue;
            }
            match node.set_xattr(name, value) {
                Ok(()) => {}
                Err(e @ (Errno::OPNOTSUPP | Errno::PERM | Errno::ACCESS)) => {
                    tracing::warn!(?entry, ?xattr, error = %e, "skipping extended attribute the file system refused");
                    self.stats.skipped_xattrs += 1;
                }
                Err(e) => return Err(io_at(&h.name, e)),
            }
        }
        Ok(())
    }
}

/// The error for an entry whose directory walk failed.
fn walk_error(entry: &[u8], error: WalkError) -> UnpackError {
    match error {
        WalkError::Symlink(parent) => UnpackError::SymlinkParent {
            entry: shown(entry),
            parent: shown(&parent),
        },
        WalkError::NotDirectory(parent) | WalkError::Missing(parent) => UnpackError::ParentNotDirectory {
            entry: shown(entry),
            parent: shown(&parent),
        },
        WalkError::Io(at, e) => io_at(&at, e),
    }
}
