//! Entry names: the one place where a name from the layer becomes a path under the destination.
//!
//! A name is accepted only if every component is a plain name: no `..`, no NUL, within the length
//! limits. `.` components and repeated or trailing slashes are dropped, so `./usr//bin/` is
//! `usr/bin`; leading slashes too, so `/etc/passwd` is `etc/passwd`: docker and containerd read
//! absolute member names (which `umoci insert` and some tar builders write) relative to the layer
//! root, and so do hard-link targets. The result, [`EntryPath`], cannot name anything outside the
//! destination lexically; symbolic links on the way are the file system walk's job (`fs.rs`).

use super::Limits;
use super::error::{UnpackError, shown};

/// The prefix that marks a whiteout file (OCI image-spec `layer.md`).
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The name of an opaque-directory marker.
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// A relative path whose components are non-empty, free of `/` and NUL, and neither `.` nor
/// `..`. The empty path is the destination itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct EntryPath {
    /// The components joined by `/`.
    joined: Vec<u8>,
}

impl EntryPath {
    /// Whether this is the destination itself.
    pub(super) fn is_root(&self) -> bool {
        self.joined.is_empty()
    }

    /// The components joined by `/` (empty for the root).
    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.joined
    }

    /// The components, outermost first.
    pub(super) fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.joined.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// The parent and the last component, or `None` for the root.
    pub(super) fn split_last(&self) -> Option<(EntryPath, &[u8])> {
        if self.is_root() {
            return None;
        }
        Some(match self.joined.iter().rposition(|&b| b == b'/') {
            Some(i) => (
                EntryPath {
                    joined: self.joined[..i].to_vec(),
                },
                &self.joined[i + 1..],
            ),
            None => (EntryPath::default(), &self.joined[..]),
        })
    }

    /// Rebuilds a path from [`EntryPath::as_bytes`] output.
    pub(super) fn from_normalized(joined: &[u8]) -> Self {
        EntryPath {
            joined: joined.to_vec(),
        }
    }

    fn from_components(components: &[&[u8]]) -> Self {
        EntryPath {
            joined: components.join(&b'/'),
        }
    }
}

/// What an entry name asks for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Target {
    /// An ordinary entry at this path.
    Path(EntryPath),
    /// `dir/.wh.NAME`: hide `dir/NAME` of the lower layers.
    Whiteout(EntryPath),
    /// `dir/.wh..wh..opq`: hide everything the lower layers have in `dir`.
    Opaque(EntryPath),
    /// `.wh..wh.*` other than the opaque marker: AUFS bookkeeping that has no meaning here.
    AufsMeta,
}

/// Why a name is not a valid relative path.
#[derive(Clone, Copy)]
enum Bad {
    TooLong {
        what: &'static str,
        len: usize,
        limit: usize,
    },
    Nul,
    DotDot,
}

fn normalize<'a>(raw: &'a [u8], limits: &Limits) -> Result<Vec<&'a [u8]>, Bad> {
    if raw.len() > limits.max_name_bytes {
        return Err(Bad::TooLong {
            what: "the path",
            len: raw.len(),
            limit: limits.max_name_bytes,
        });
    }
    if raw.contains(&0) {
        return Err(Bad::Nul);
    }
    let mut components = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(Bad::DotDot),
            _ if c.len() > limits.max_component_bytes => {
                return Err(Bad::TooLong {
                    what: "a path component",
                    len: c.len(),
                    limit: limits.max_component_bytes,
                });
            }
            _ => components.push(c),
        }
    }
    Ok(components)
}

fn entry_error(raw: &[u8], bad: Bad) -> UnpackError {
    let entry = shown(raw);
    match bad {
        Bad::TooLong { what, len, limit } => UnpackError::NameTooLong {
            entry,
            what,
            len,
            limit,
        },
        Bad::Nul => UnpackError::InvalidName {
            entry,
            reason: "it contains a NUL byte",
        },
        Bad::DotDot => UnpackError::Traversal { entry },
    }
}

/// Parses the name of an entry, recognising whiteouts.
pub(super) fn parse_entry_name(raw: &[u8], limits: &Limits) -> Result<Target, UnpackError> {
    let invalid = |reason| UnpackError::InvalidName {
        entry: shown(raw),
        reason,
    };
    if raw.is_empty() {
        return Err(invalid("it is empty"));
    }
    let mut components = normalize(raw, limits).map_err(|bad| entry_error(raw, bad))?;
    let Some(last) = components.pop() else {
        return Ok(Target::Path(EntryPath::default()));
    };
    if components.iter().any(|c| c.starts_with(WHITEOUT_PREFIX)) {
        return Err(invalid("a directory name starts with the whiteout prefix `.wh.`"));
    }
    let Some(hidden) = last.strip_prefix(WHITEOUT_PREFIX) else {
        components.push(last);
        return Ok(Target::Path(EntryPath::from_components(&components)));
    };
    if last == OPAQUE_MARKER {
        return Ok(Target::Opaque(EntryPath::from_components(&components)));
    }
    if hidden.starts_with(WHITEOUT_PREFIX) {
        return Ok(Target::AufsMeta);
    }
    match hidden {
        // `.wh...` would "hide" the parent directory: a traversal in disguise.
        b".." => Err(UnpackError::Traversal { entry: shown(raw) }),
        b"" | b"." => Err(invalid("a whiteout must name a file")),
        _ => {
            components.push(hidden);
            Ok(Target::Whiteout(EntryPath::from_components(&components)))
        }
    }
}

/// Parses the target of a hard link: a name of an earlier entry of the layer.
pub(super) fn parse_link_target(entry: &[u8], target: &[u8], limits: &Limits) -> Result<EntryPath, UnpackError> {
    let escape = |reason| UnpackError::HardLinkEscape {
        entry: shown(entry),
        target: shown(target),
        reason,
    };
    match normalize(target, limits) {
        Ok(components) => Ok(EntryPath::from_components(&components)),
        Err(Bad::DotDot) => Err(escape("has a `..` component")),
        Err(bad) => Err(entry_error(target, bad)),
    }
}

/// Checks the target of a symbolic link, which is stored verbatim and never followed.
pub(super) fn check_symlink_target(entry: &[u8], target: &[u8], limits: &Limits) -> Result<(), UnpackError> {
    if target.is_empty() || target.contains(&0) {
        return Err(UnpackError::InvalidName {
            entry: shown(entry),
            reason: "a symbolic link target is empty or contains a NUL byte",
        });
    }
    if target.len() > limits.max_name_bytes {
        return Err(UnpackError::NameTooLong {
            entry: shown(entry),
            what: "the symbolic link target",
            len: target.len(),
            limit: limits.max_name_bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Target, UnpackError> {
        parse_entry_name(raw.as_bytes(), &Limits::default())
    }

    fn path(p: &str) -> EntryPath {
        EntryPath {
            joined: p.as_bytes().to_vec(),
        }
    }

    #[test]
    fn dot_prefixes_and_repeated_slashes_are_normalized() {
        assert_eq!(parse("./usr//bin/").unwrap(), Target::Path(path("usr/bin")));
        assert_eq!(parse("./").unwrap(), Target::Path(EntryPath::default()));
        assert_eq!(parse("a/./b").unwrap(), Target::Path(path("a/b")));
    }

    #[test]
    fn escaping_names_are_rejected() {
        assert!(matches!(parse("../x"), Err(UnpackError::Traversal { .. })));
        assert!(matches!(parse("a/../b"), Err(UnpackError::Traversal { .. })));
        assert!(matches!(parse("a/.wh..."), Err(UnpackError::Traversal { .. })));
        assert!(matches!(parse("a\0b"), Err(UnpackError::InvalidName { .. })));
        assert!(matches!(parse(""), Err(UnpackError::InvalidName { .. })));
    }

    #[test]
    fn absolute_names_are_relative_to_the_layer_root() {
        assert_eq!(parse("/").unwrap(), Target::Path(EntryPath::default()));
        assert_eq!(parse("/etc/passwd").unwrap(), Target::Path(path("etc/passwd")));
        assert_eq!(parse("//etc//.wh.x").unwrap(), Target::Whiteout(path("etc/x")));
        assert!(matches!(parse("/../etc"), Err(UnpackError::Traversal { .. })));
        let target = parse_link_target(b"x", b"/bin/busybox", &Limits::default()).unwrap();
        assert_eq!(target, path("bin/busybox"));
    }

    #[test]
    fn whiteouts_are_recognised() {
        assert_eq!(parse("a/.wh.b").unwrap(), Target::Whiteout(path("a/b")));
        assert_eq!(parse("a/.wh..wh..opq").unwrap(), Target::Opaque(path("a")));
        assert_eq!(parse(".wh..wh..opq").unwrap(), Target::Opaque(EntryPath::default()));
        assert_eq!(parse(".wh..wh.plnk").unwrap(), Target::AufsMeta);
        assert!(matches!(parse(".wh.a/b"), Err(UnpackError::InvalidName { .. })));
        assert!(matches!(parse("a/.wh."), Err(UnpackError::InvalidName { .. })));
    }

    #[test]
    fn split_last_gives_parent_and_name() {
        let p = path("a/b/c");
        let (parent, name) = p.split_last().unwrap();
        assert_eq!((parent, name), (path("a/b"), &b"c"[..]));
        assert_eq!(path("a").split_last().unwrap(), (EntryPath::default(), &b"a"[..]));
        assert!(EntryPath::default().split_last().is_none());
    }
}
