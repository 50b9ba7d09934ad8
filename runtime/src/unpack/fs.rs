//! File system access relative to directory file descriptors.
//!
//! Every operation happens in a directory reached from the destination's descriptor by opening
//! one component at a time with `O_NOFOLLOW | O_DIRECTORY`, so a symbolic link (or anything but a
//! directory) on the way is an error instead of a detour, and only the last component of a name is
//! ever created, replaced or changed. Nothing here follows a symbolic link.
//!
//! The only path-based call is `lsetxattr` on symbolic links and device nodes, which cannot be
//! opened: its path is the destination joined with a name whose parents were just walked, and the
//! destination is private to this unpacker while it runs (the caller's temporary directory).

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use super::error::UnpackError;
use super::path::EntryPath;
use strata_storage::layer::Mtime;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// The mode of directories this unpacker creates because a layer has entries in them without an
/// entry for the directory itself (what containerd does).
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// What a walk found where it needed a directory. Each variant carries the path walked so far.
#[derive(Debug)]
pub(super) enum WalkError {
    /// A symbolic link.
    Symlink(Vec<u8>),
    /// Something else that is not a directory.
    NotDirectory(Vec<u8>),
    /// Nothing (only when not creating).
    Missing(Vec<u8>),
    /// The file system failed.
    Io(Vec<u8>, Errno),
}

/// The destination directory.
#[derive(Debug)]
pub(super) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Opens `dest`, which must be an empty directory.
    pub(super) fn open_empty(dest: &Path) -> Result<Root, UnpackError> {
        let io = |e: Errno| UnpackError::Io {
            path: dest.display().to_string(),
            source: e.into(),
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rfs::openat(rfs::CWD, dest, flags, Mode::empty()).map_err(io)?;
        let mut dir = Dir::read_from(&fd).map_err(io)?;
        while let Some(entry) = dir.read() {
            if !matches!(entry.map_err(io)?.file_name().to_bytes(), b"." | b"..") {
                return Err(UnpackError::DestinationNotEmpty { path: dest.into() });
            }
        }
        Ok(Root {
            fd,
            path: dest.to_path_buf(),
        })
    }

    /// Opens the directory `dir`, creating missing components with mode 0755 if `create`.
    pub(super) fn open_dir(&self, dir: &EntryPath, create: bool) -> Result<OwnedFd, WalkError> {
        let mut cur =
            rfs::openat(&self.fd, c".", DIR_FLAGS, Mode::empty()).map_err(|e| WalkError::Io(Vec::new(), e))?;
        let mut walked = Vec::new();
        for name in dir.components() {
            if !walked.is_empty() {
                walked.push(b'/');
            }
            walked.extend_from_slice(name);
            cur = match open_child_dir(&cur, name) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    match rfs::mkdirat(&cur, name, Mode::from_raw_mode(IMPLICIT_DIR_MODE)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(WalkError::Io(walked, e)),
                    }
                    open_child_dir(&cur, name).map_err(|e| classify(&cur, name, e, walked.clone()))?
                }
                Err(e) => return Err(classify(&cur, name, e, walked)),
            };
        }
        Ok(cur)
    }

    /// The path of `entry` under the destination, for the few calls that need a path.
    pub(super) fn path_of(&self, entry: &EntryPath) -> PathBuf {
        self.path.join(OsStr::from_bytes(entry.as_bytes()))
    }
}

fn classify(dir: &OwnedFd, name: &[u8], error: Errno, walked: Vec<u8>) -> WalkError {
    match error {
        Errno::LOOP => WalkError::Symlink(walked),
        Errno::NOENT => WalkError::Missing(walked),
        Errno::NOTDIR => match file_type_at(dir.as_fd(), name) {
            Ok(Some(FileType::Symlink)) => WalkError::Symlink(walked),
            _ => WalkError::NotDirectory(walked),
        },
        e => WalkError::Io(walked, e),
    }
}

/// Opens the directory `name` in `dir` without following a symbolic link.
pub(super) fn open_child_dir(dir: impl AsFd, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    rfs::openat(dir, name, DIR_FLAGS, Mode::empty())
}

/// The type of `name` in `dir` (not following a symbolic link), or `None` if it does not exist.
pub(super) fn file_type_at(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<Option<FileType>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes `name` from `dir`: a directory with everything in it, anything else by unlinking.
/// Symbolic links inside are removed, never followed.
pub(super) fn remove(dir: BorrowedFd<'_>, name: &[u8], file_type: FileType) -> rustix::io::Result<()> {
    if file_type != FileType::Directory {
        return rfs::unlinkat(dir, name, AtFlags::empty());
    }
    let fd = open_child_dir(dir, name)?;
    // Collect first: removing entries while reading a directory may make readdir skip some.
    let mut children = Vec::new();
    let mut entries = Dir::read_from(&fd)?;
    while let Some(entry) = entries.read() {
        let entry = entry?;
        let child = entry.file_name().to_bytes();
        if child != b"." && child != b".." {
            children.push((child.to_vec(), entry.file_type()));
        }
    }
    for (child, file_type) in children {
        let file_type = match file_type {
            FileType::Unknown => file_type_at(fd.as_fd(), &child)?.unwrap_or(FileType::Unknown),
            known => known,
        };
        remove(fd.as_fd(), &child, file_type)?;
    }
    rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// A file system object whose metadata is being set: an open descriptor, or a name in a
/// directory for objects that cannot be opened (symbolic links, device nodes, fifos).
#[derive(Debug, Clone, Copy)]
pub(super) enum Node<'a> {
    /// A regular file or directory opened by the unpacker.
    Fd(BorrowedFd<'a>),
    /// `name` in `dir`; `path` is the same object as a path, for `lsetxattr`.
    At {
        dir: BorrowedFd<'a>,
        name: &'a [u8],
        path: &'a Path,
    },
}

impl Node<'_> {
    /// Sets the owner (of the link itself for a symbolic link).
    pub(super) fn chown(self, uid: u32, gid: u32) -> rustix::io::Result<()> {
        let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        match self {
            Node::Fd(fd) => rfs::fchown(fd, uid, gid),
            Node::At { dir, name, .. } => rfs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW),
        }
    }

    /// Sets the permission bits; never called for symbolic links, which have none.
    pub(super) fn chmod(self, mode: u32) -> rustix::io::Result<()> {
        let mode = Mode::from_raw_mode(mode);
        match self {
            Node::Fd(fd) => rfs::fchmod(fd, mode),
            // The node was just created by mknodat, so there is no link to follow.
            Node::At { dir, name, .. } => rfs::chmodat(dir, name, mode, AtFlags::empty()),
        }
    }

    /// Sets access and modification time to `mtime`.
    pub(super) fn set_times(self, mtime: Mtime) -> rustix::io::Result<()> {
        let time = Timespec {
            tv_sec: mtime.secs,
            tv_nsec: mtime.nanos.into(),
        };
        let times = Timestamps {
            last_access: time,
            last_modification: time,
        };
        match self {
            Node::Fd(fd) => rfs::futimens(fd, &times),
            Node::At { dir, name, .. } => rfs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW),
        }
    }

    /// Sets one extended attribute (on the link itself for a symbolic link).
    pub(super) fn set_xattr(self, name: &[u8], value: &[u8]) -> rustix::io::Result<()> {
        match self {
            Node::Fd(fd) => rfs::fsetxattr(fd, name, value, XattrFlags::empty()),
            Node::At { path, .. } => rfs::lsetxattr(path, name, value, XattrFlags::empty()),
        }
    }
}
