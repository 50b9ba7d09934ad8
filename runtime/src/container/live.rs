//! Copying into and out of a *running* Linux container through its mounted root
//! (`/proc/PID/root`), so the overlay sees the write as any write from inside would (changing an
//! upper directory under a mounted overlay is undefined). Paths resolve with
//! `openat2(RESOLVE_IN_ROOT)`: links and `..` stay inside the container's root, as the kernel
//! would resolve them for the container. What is opened is what is copied: below the path named,
//! every entry is opened `O_NOFOLLOW` relative to its opened parent, so a link the container
//! swaps in while a copy runs is copied as a link or refused, never followed out of its root.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};

use super::userns::IdMap;
use crate::store::{Result, StoreError, io_error as io};

/// Owners as the container sees them and as the host does: the same, unless the container has a
/// user namespace (`--userns`).
#[derive(Debug, Clone, Copy)]
struct Owners(Option<IdMap>);

impl Owners {
    /// The container's owner of a file the host sees owned by `uid`:`gid`.
    fn container(self, uid: u32, gid: u32) -> (u32, u32) {
        match self.0 {
            Some(m) => (m.container_uid(uid), m.container_gid(gid)),
            None => (uid, gid),
        }
    }

    /// The host ids that are container owner `uid`:`gid`.
    fn host(self, uid: u32, gid: u32) -> (rfs::Uid, rfs::Gid) {
        let (uid, gid) = match self.0 {
            Some(m) => (m.host_uid(uid), m.host_gid(gid)),
            None => (uid, gid),
        };
        (rfs::Uid::from_raw(uid), rfs::Gid::from_raw(gid))
    }
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens directory `path` of the root `root` (no links followed outside it).
fn open_dir(root: &OwnedFd, path: &str) -> Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    rfs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )
    .map_err(|e| io("open", path, e))
}

/// The root of the container whose PID 1 is `pid`.
fn container_root(pid: i32) -> Result<OwnedFd> {
    let proc_root = format!("/proc/{pid}/root");
    rfs::open(
        &proc_root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io("open", &proc_root, e))
}

/// Copies `path` of the container whose PID 1 is `pid` to `host` (into it when it is a
/// directory), keeping modes and owners (as the container sees them: `ids` is its user
/// namespace's mapping). Returns the bytes copied.
pub fn copy_out_of_running(pid: i32, path: &str, host: &Path, ids: Option<IdMap>) -> Result<u64> {
    let root = container_root(pid)?;
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    // O_PATH first: a FIFO or device is looked at, never opened.
    let fd = rfs::openat2(&root, rel, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), RESOLVE)
        .map_err(|e| io("open", path, e))?;
    let stat = rfs::fstat(&fd).map_err(|e| io("stat", path, e))?;
    let name = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("root");
    let dest = if host.is_dir() {
        host.join(name)
    } else {
        host.to_owned()
    };
    let opened = match rfs::FileType::from_raw_mode(stat.st_mode) {
        rfs::FileType::Directory => rfs::openat2(
            &root,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        ),
        rfs::FileType::RegularFile => rfs::openat2(
            &root,
            rel,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        ),
        _ => return Ok(0),
    }
    .map_err(|e| io("open", path, e))?;
    copy_fd_out(opened, path, &dest, Owners(ids))
}

/// Copies the opened directory or regular file `fd` (named `shown`) to `dest`.
fn copy_fd_out(fd: OwnedFd, shown: &str, dest: &Path, owners: Owners) -> Result<u64> {
    use std::os::unix::fs::PermissionsExt;
    let stat = rfs::fstat(&fd).map_err(|e| io("stat", shown, e))?;
    let copied = match rfs::FileType::from_raw_mode(stat.st_mode) {
        rfs::FileType::Directory => {
            std::fs::create_dir_all(dest).map_err(|e| io("create", dest, e))?;
            let mut total = 0;
            for entry in rfs::Dir::read_from(&fd).map_err(|e| io("list", shown, e))? {
                let entry = entry.map_err(|e| io("list", shown, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name == "." || name == ".." {
                    continue;
                }
                let child_shown = format!("{}/{name}", shown.trim_end_matches('/'));
                let child_dest = dest.join(&name);
                let child = rfs::statat(&fd, name.as_str(), rfs::AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| io("stat", &child_shown, e))?;
                let flags = match rfs::FileType::from_raw_mode(child.st_mode) {
                    rfs::FileType::Directory => OFlags::RDONLY | OFlags::DIRECTORY,
                    rfs::FileType::RegularFile => OFlags::RDONLY | OFlags::NONBLOCK,
                    rfs::FileType::Symlink => {
                        let target = rfs::readlinkat(&fd, name.as_str(), Vec::new())
                            .map_err(|e| io("read link", &child_shown, e))?;
                        let target = std::path::PathBuf::from(target.to_string_lossy().into_owned());
                        std::os::unix::fs::symlink(&target, &child_dest).map_err(|e| io("create", &child_dest, e))?;
                        let (uid, gid) = owners.container(child.st_uid, child.st_gid);
                        std::os::unix::fs::lchown(&child_dest, Some(uid), Some(gid))
                            .map_err(|e| io("chown", &child_dest, e))?;
                        continue;
                    }
                    _ => continue,
                };
                let opened = rfs::openat(
                    &fd,
                    name.as_str(),
                    flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io("open", &child_shown, e))?;
                total += copy_fd_out(opened, &child_shown, &child_dest, owners)?;
            }
            total
        }
        rfs::FileType::RegularFile => {
            let mut from = File::from(fd);
            let mut to = File::create(dest).map_err(|e| io("create", dest, e))?;
            std::io::copy(&mut from, &mut to).map_err(|e| io("copy", shown, e))?
        }
        // Swapped for something else between looking and opening: not copied.
        _ => return Ok(0),
    };
    let (uid, gid) = owners.container(stat.st_uid, stat.st_gid);
    std::os::unix::fs::lchown(dest, Some(uid), Some(gid)).map_err(|e| io("chown", dest, e))?;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(stat.st_mode & 0o7777))
        .map_err(|e| io("chmod", dest, e))?;
    Ok(copied)
}

/// Copies host `host` to `path` in the container whose PID 1 is `pid`: into `path` when it is a
/// directory, else as `path` (whose parent must exist), keeping modes and owners (which become
/// the container's owners of those ids: `ids` is its user namespace's mapping). Returns the bytes
/// copied.
pub fn copy_into_running(pid: i32, host: &Path, path: &str, ids: Option<IdMap>) -> Result<u64> {
    let root = container_root(pid)?;
    let name_of = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let (dir, name) = match open_dir(&root, path) {
        Ok(_) => (
            path.to_owned(),
            name_of(host).ok_or_else(|| StoreError::Invalid(format!("{}: no file name", host.display())))?,
        ),
        Err(_) => {
            let trimmed = path.trim_end_matches('/');
            let (parent, name) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
            (
                if parent.is_empty() {
                    "/".into()
                } else {
                    parent.to_owned()
                },
                name.to_owned(),
            )
        }
    };
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(StoreError::Invalid(format!("{path}: not a file name")));
    }
    let dir_fd = open_dir(&root, &dir)?;
    copy_at(&dir_fd, &name, host, Owners(ids))
}

/// Gives `fd` the owner and permission bits of `md` (the owner first: `chown` clears setuid
/// bits).
fn keep_owner_and_mode(fd: &OwnedFd, md: &std::fs::Metadata, name: &str, owners: Owners) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (uid, gid) = owners.host(md.uid(), md.gid());
    rfs::fchown(fd, Some(uid), Some(gid)).map_err(|e| io("chown", name, e))?;
    rfs::fchmod(fd, Mode::from_raw_mode(md.mode() & 0o7777)).map_err(|e| io("chmod", name, e))
}

fn copy_at(dir: &OwnedFd, name: &str, host: &Path, owners: Owners) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let shown = host.display().to_string();
    let md = std::fs::symlink_metadata(host).map_err(|e| io("stat", &shown, e))?;
    if md.is_dir() {
        match rfs::mkdirat(dir, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(io("create", name, e)),
        }
        let sub = rfs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io("open", name, e))?;
        keep_owner_and_mode(&sub, &md, name, owners)?;
        let mut total = 0;
        for entry in std::fs::read_dir(host).map_err(|e| io("list", &shown, e))? {
            let entry = entry.map_err(|e| io("list", &shown, e))?;
            total += copy_at(&sub, &entry.file_name().to_string_lossy(), &entry.path(), owners)?;
        }
        return Ok(total);
    }
    if md.file_type().is_symlink() {
        let target = std::fs::read_link(host).map_err(|e| io("read link", &shown, e))?;
        rfs::symlinkat(&target, dir, name).map_err(|e| io("create", name, e))?;
        let (uid, gid) = owners.host(md.uid(), md.gid());
        rfs::chownat(dir, name, Some(uid), Some(gid), rfs::AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io("chown", name, e))?;
        return Ok(0);
    }
    let out = rfs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| io("create", name, e))?;
    keep_owner_and_mode(&out, &md, name, owners)?;
    let mut out = File::from(out);
    let mut from = File::open(host).map_err(|e| io("open", &shown, e))?;
    std::io::copy(&mut from, &mut out).map_err(|e| io("copy", &shown, e))
}
