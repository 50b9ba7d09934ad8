//! Paths inside a container's root, resolved the way the container would see them (symbolic
//! links followed *inside* the root, `..` never above it), so that nothing a container image or a
//! `strata cp` argument says can reach a host path.

use std::path::{Path, PathBuf};

use crate::store::{Result, StoreError, io_error as io};

/// How many symbolic links one resolution follows.
const MAX_LINKS: usize = 40;

/// Resolves `path` inside `root` (a directory on the host), following symbolic links as if
/// `root` were `/`. Returns the host path, free of symbolic links up to its last component
/// (which may not exist yet). With `create_dirs`, missing directories are created (mode 0755).
pub(crate) fn resolve_in_root(root: &Path, path: &str, create_dirs: bool) -> Result<PathBuf> {
    let mut todo: Vec<String> = split(path).into_iter().rev().collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            done.pop();
            continue;
        }
        let host = root.join(done.iter().collect::<PathBuf>()).join(&part);
        match std::fs::symlink_metadata(&host) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(StoreError::Invalid(format!(
                        "{path}: too many levels of symbolic links"
                    )));
                }
                let target = std::fs::read_link(&host).map_err(|e| io("read link", &host, e))?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    done.clear();
                }
                todo.extend(split(&target).into_iter().rev());
            }
            Ok(_) => done.push(part),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if create_dirs && !todo.is_empty() {
                    std::fs::create_dir(&host).map_err(|e| io("create", &host, e))?;
                }
                done.push(part);
            }
            Err(e) => return Err(io("stat", &host, e)),
        }
    }
    Ok(root.join(done.iter().collect::<PathBuf>()))
}

fn split(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("etc/up")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/abs/passwd", false).unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            resolve_in_root(root, "/etc/up/etc/x", false).unwrap(),
            root.join("etc/x")
        );
        assert_eq!(resolve_in_root(root, "/../../x", false).unwrap(), root.join("x"));
        assert_eq!(
            resolve_in_root(root, "/new/dir/file", true).unwrap(),
            root.join("new/dir/file")
        );
        assert!(root.join("new/dir").is_dir());
    }
}
