//! Noticing that configuration files changed (htpasswd, groups, TLS certificates): what each
//! file looked like when it was read, compared on a poll.

use std::path::Path;
use std::time::SystemTime;

/// What a set of files looked like: (modified, length) of each, `None` when unreadable.
pub(crate) type Stamps = Vec<Option<(SystemTime, u64)>>;

/// The stamps of `paths` now.
pub(crate) fn stamps<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Stamps {
    paths
        .into_iter()
        .map(|path| {
            let md = std::fs::metadata(path).ok()?;
            Some((md.modified().ok()?, md.len()))
        })
        .collect()
}
