//! `strata cp`: files out of and into a container (links inside it resolved inside it).

use std::path::{Path, PathBuf};

use super::Container;
use super::error::{ContainerError, Result};
use crate::store::StoreError;
use crate::union::{LinuxUnion, Node, NodeKind};
use crate::windows::scratch;

/// The union a container sees: its image's layers under its scratch layer.
fn container_union(container: &Container) -> LinuxUnion {
    let mut dirs: Vec<PathBuf> = container.config.layers.iter().map(|l| l.join("Files")).collect();
    dirs.push(container.upper());
    LinuxUnion::from_dirs(dirs)
}

/// `strata cp CONTAINER:PATH HOSTPATH`: copies out of the container's file system (links
/// inside it resolved inside it). Returns the bytes copied.
pub fn copy_out(container: &Container, path: &str, host: &Path) -> Result<u64> {
    if container.config.os == "windows" {
        let union = scratch::container_union(&container.config.layers, &container.upper())?;
        let node = union
            .get(path)
            .ok_or_else(|| ContainerError::NotFound(format!("{}:{path}", container.config.name)))?;
        let dest = destination(host, &node.path);
        let mut from = node
            .open()
            .map_err(|e| ContainerError::io(format!("{}:{path}", container.config.name), e))?;
        let mut to = std::fs::File::create(&dest).map_err(|e| ContainerError::io(format!("{}", dest.display()), e))?;
        return std::io::copy(&mut from, &mut to).map_err(|e| ContainerError::io(format!("{}", dest.display()), e));
    }
    // A running container's files are read through its root, where the container cannot swap
    // a checked path for a link before it is opened.
    if let Some(pid) = container.state.pid.filter(|_| container.is_running()) {
        return crate::container::live::copy_out_of_running(pid, path, host, container.config.userns).map_err(
            |e| match e {
                StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    ContainerError::NotFound(format!("{}:{path}", container.config.name))
                }
                other => other.into(),
            },
        );
    }
    let union = container_union(container);
    let node = union
        .resolve(path)?
        .ok_or_else(|| ContainerError::NotFound(format!("{}:{path}", container.config.name)))?;
    let dest = destination(host, &node.path);
    copy_out_node(&union, &node, &dest)
}

/// Where container path `path` lands when copied to `host`: inside it if it is a directory.
fn destination(host: &Path, path: &str) -> PathBuf {
    let name = path.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("root");
    if host.is_dir() {
        host.join(name)
    } else {
        host.to_owned()
    }
}

/// `strata cp HOSTPATH CONTAINER:PATH`: copies into the container's scratch layer at the
/// place `path` names inside the container (into a running Linux container through its
/// mounted root). Returns the bytes copied.
pub fn copy_in(container: &Container, host: &Path, path: &str) -> Result<u64> {
    if container.config.os == "windows" {
        return Ok(scratch::copy_in(
            &container.config.layers,
            &container.upper(),
            host,
            path,
        )?);
    }
    if let Some(pid) = container.state.pid.filter(|_| container.is_running()) {
        return Ok(crate::container::live::copy_into_running(
            pid,
            host,
            path,
            container.config.userns,
        )?);
    }
    let union = container_union(container);
    let host_md = std::fs::symlink_metadata(host).map_err(|e| ContainerError::io(format!("{}", host.display()), e))?;
    let (dir, name) = match union.resolve(path)? {
        Some(n) if n.kind == NodeKind::Dir => (
            n.path,
            host.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| ContainerError::Usage(format!("{}: no file name", host.display())))?,
        ),
        _ => {
            let trimmed = path.trim_end_matches('/');
            let (parent, name) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
            let parent = union
                .resolve(if parent.is_empty() { "/" } else { parent })?
                .filter(|n| n.kind == NodeKind::Dir)
                .ok_or_else(|| {
                    ContainerError::NotFound(format!("{}:{parent}: no such directory", container.config.name))
                })?;
            (parent.path, name.to_owned())
        }
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(ContainerError::Usage(format!("{path}: not a file name")));
    }
    let upper = container.upper();
    let upper_dir = upper.join(dir.trim_start_matches('/'));
    std::fs::create_dir_all(&upper_dir).map_err(|e| ContainerError::io(format!("{}", upper_dir.display()), e))?;
    let dest = upper_dir.join(&name);
    // A deletion recorded at that name gives way to the new entry.
    if std::fs::symlink_metadata(&dest).is_ok_and(|m| !m.is_dir()) {
        let _ = std::fs::remove_file(&dest);
    }
    copy_host_tree(host, &host_md, &dest)
}

fn copy_out_node(union: &LinuxUnion, node: &Node, dest: &Path) -> Result<u64> {
    let err = |e: std::io::Error| ContainerError::io(format!("{}", dest.display()), e);
    let (path, kind) = (node.path.as_str(), node.kind);
    let copied = match kind {
        NodeKind::Dir => {
            std::fs::create_dir_all(dest).map_err(err)?;
            let mut total = 0;
            for child in union.list(path)? {
                let name = child.path.rsplit('/').next().unwrap_or_default().to_owned();
                total += copy_out_node(union, &child, &dest.join(name))?;
            }
            total
        }
        NodeKind::Symlink => {
            std::os::unix::fs::symlink(node.target.as_deref().unwrap_or_default(), dest).map_err(err)?;
            0
        }
        NodeKind::File => {
            let (_, mut file) = union.open_file(path)?;
            let mut out = std::fs::File::create(dest).map_err(err)?;
            std::io::copy(&mut file, &mut out).map_err(err)?
        }
        _ => return Ok(0),
    };
    keep_owner_and_mode(dest, node.uid, node.gid, node.mode, kind == NodeKind::Symlink).map_err(err)?;
    Ok(copied)
}

/// Gives `path` the owner and permission bits of what it was copied from (the owner first:
/// `chown` clears setuid bits); a symbolic link keeps only its owner.
fn keep_owner_and_mode(path: &Path, uid: u32, gid: u32, mode: u32, symlink: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if symlink {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
}

fn copy_host_tree(src: &Path, md: &std::fs::Metadata, dest: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let err = |e: std::io::Error| ContainerError::io(format!("{} -> {}", src.display(), dest.display()), e);
    let copied = copy_host_entry(src, md, dest)?;
    keep_owner_and_mode(dest, md.uid(), md.gid(), md.mode(), md.file_type().is_symlink()).map_err(err)?;
    Ok(copied)
}

fn copy_host_entry(src: &Path, md: &std::fs::Metadata, dest: &Path) -> Result<u64> {
    let err = |e: std::io::Error| ContainerError::io(format!("{} -> {}", src.display(), dest.display()), e);
    if md.is_dir() {
        std::fs::create_dir_all(dest).map_err(err)?;
        let mut total = 0;
        for entry in std::fs::read_dir(src).map_err(err)? {
            let entry = entry.map_err(err)?;
            let child_md = std::fs::symlink_metadata(entry.path()).map_err(err)?;
            total += copy_host_tree(&entry.path(), &child_md, &dest.join(entry.file_name()))?;
        }
        Ok(total)
    } else if md.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src).map_err(err)?, dest).map_err(err)?;
        Ok(0)
    } else {
        std::fs::copy(src, dest).map_err(err)
    }
}
