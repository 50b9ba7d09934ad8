//! Listing for the filesystem backend: a depth-first walk that yields keys in byte order.
//!
//! Sorting each directory's entries by name is not enough for byte order of whole keys: `a-b`
//! sorts before `a/x` because `-` < `/`. A directory `d` stands for the contiguous key range
//! `d/...`, so entries are sorted by `name` for files and `name + "/"` for directories, which
//! orders whole keys exactly as S3 does.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::meta_of;
use crate::backend::{ListStream, ObjectMeta};
use crate::error::{Error, Result};
use crate::key::Key;

/// Results buffered between the walking thread and the consumer.
const CHANNEL_DEPTH: usize = 256;

enum Entry {
    Dir(PathBuf, String),
    File(PathBuf, String),
}

pub(super) fn list(root: Arc<PathBuf>, prefix: Key, start_after: Option<Key>) -> ListStream {
    let (tx, rx) = mpsc::channel::<Result<ObjectMeta>>(CHANNEL_DEPTH);
    tokio::task::spawn_blocking(move || {
        let start_after = start_after.as_ref().map(Key::as_str);
        let mut stack = vec![Entry::Dir(root.join(prefix.as_str()), prefix.to_string())];
        while let Some(entry) = stack.pop() {
            let item = match entry {
                Entry::Dir(path, key) => match children(&path, &key, start_after) {
                    Ok(mut children) => {
                        children.reverse();
                        stack.extend(children);
                        continue;
                    }
                    Err(e) => Err(e),
                },
                Entry::File(path, key) => match std::fs::symlink_metadata(&path) {
                    Ok(md) if md.is_file() => Ok(meta_of(&Key::parse(key).expect("validated below"), &md)),
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // deleted meanwhile
                    Err(e) => Err(Error::io("stat", path.display(), e)),
                },
            };
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// The entries of directory `path` (whose key is `key`) that may hold keys after `start_after`,
/// in key order. Names that are not valid key segments (temp files, foreign files) are skipped.
fn children(path: &PathBuf, key: &str, start_after: Option<&str>) -> Result<Vec<Entry>> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(Vec::new());
        }
        Err(e) => return Err(Error::io("read directory", path.display(), e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", path.display(), e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let child_key = format!("{key}/{name}");
        if Key::parse(child_key.as_str()).is_err() {
            continue;
        }
        let Ok(file_type) = entry.file_type() else { continue };
        if file_type.is_dir() {
            let dir_prefix = format!("{child_key}/");
            let all_before = start_after.is_some_and(|s| s >= dir_prefix.as_str() && !s.starts_with(&dir_prefix));
            if !all_before {
                out.push((dir_prefix, Entry::Dir(entry.path(), child_key)));
            }
        } else if file_type.is_file() && start_after.is_none_or(|s| child_key.as_str() > s) {
            out.push((child_key.clone(), Entry::File(entry.path(), child_key)));
        }
    }
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(out.into_iter().map(|(_, e)| e).collect())
}
