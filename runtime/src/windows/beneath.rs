//! File access beneath a layer directory by descriptors, one component at a time with
//! `O_NOFOLLOW`: Windows paths may be far longer than Linux's `PATH_MAX` (4096 bytes), and
//! nothing here ever follows a symbolic link.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

fn components(rel: &str) -> impl Iterator<Item = &str> {
    rel.split('/').filter(|c| !c.is_empty())
}

/// Splits `rel` into its directory and last component.
fn split(rel: &str) -> io::Result<(&str, &str)> {
    let rel = rel.trim_end_matches('/');
    match rel.rsplit_once('/') {
        Some((dir, name)) if !name.is_empty() => Ok((dir, name)),
        None if !rel.is_empty() => Ok(("", rel)),
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "empty path")),
    }
}

/// Opens directory `rel` beneath `base`, creating missing components (mode 0755) if `create`.
pub(crate) fn open_dir(base: &Path, rel: &str, create: bool) -> io::Result<OwnedFd> {
    let mut cur = rfs::openat(rfs::CWD, base, DIR_FLAGS, Mode::empty())?;
    for name in components(rel) {
        cur = match rfs::openat(&cur, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => {
                match rfs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                rfs::openat(&cur, name, DIR_FLAGS, Mode::empty())?
            }
            Err(e) => return Err(e.into()),
        };
    }
    Ok(cur)
}

/// Creates (or truncates) the regular file `rel` beneath `base`, creating its directories.
pub(crate) fn create_file(base: &Path, rel: &str) -> io::Result<File> {
    let (dir, name) = split(rel)?;
    let dir = open_dir(base, dir, true)?;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(File::from(rfs::openat(&dir, name, flags, Mode::from_raw_mode(0o644))?))
}

/// Opens the regular file `rel` beneath `base` for reading.
pub(crate) fn open_file(base: &Path, rel: &str) -> io::Result<File> {
    let (dir, name) = split(rel)?;
    let dir = open_dir(base, dir, false)?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(File::from(rfs::openat(&dir, name, flags, Mode::empty())?))
}

/// Makes `dst_rel` beneath `dst_base` a hard link to `src_rel` beneath `src_base` (copying when
/// the two are on different file systems).
pub(crate) fn hard_link(src_base: &Path, src_rel: &str, dst_base: &Path, dst_rel: &str) -> io::Result<()> {
    let (src_dir, src_name) = split(src_rel)?;
    let (dst_dir, dst_name) = split(dst_rel)?;
    let src = open_dir(src_base, src_dir, false)?;
    let dst = open_dir(dst_base, dst_dir, true)?;
    match rfs::linkat(&src, src_name, &dst, dst_name, AtFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::XDEV) => {
            let mut from = open_file(src_base, src_rel)?;
            let mut to = create_file(dst_base, dst_rel)?;
            io::copy(&mut from, &mut to).map(|_| ())
        }
        Err(e) => Err(e.into()),
    }
}
