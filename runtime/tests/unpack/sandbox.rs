//! A temporary directory holding the destination and a sentinel directory, to prove that a
//! refused layer changed nothing outside the destination: afterwards the temporary directory must
//! hold exactly those two, and the sentinel exactly its untouched file.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use strata_runtime::unpack::{Compression, Limits, Options, UnpackError, unpack_linux};
use tar::EntryType;

use crate::layer::{Layer, names, xattr};

/// A destination with a sentinel beside it.
pub(crate) struct Sandbox {
    _tmp: tempfile::TempDir,
    pub(crate) root: PathBuf,
    pub(crate) dest: PathBuf,
    pub(crate) sentinel: PathBuf,
}

impl Sandbox {
    pub(crate) fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let (dest, sentinel) = (root.join("dest"), root.join("sentinel"));
        std::fs::create_dir(&dest).unwrap();
        std::fs::create_dir(&sentinel).unwrap();
        std::fs::write(sentinel.join("keep.txt"), "untouched").unwrap();
        Sandbox {
            _tmp: tmp,
            root,
            dest,
            sentinel,
        }
    }

    /// The sentinel's absolute path, as a symlink or hard link target.
    pub(crate) fn outside(&self) -> &str {
        self.sentinel.to_str().unwrap()
    }

    /// Asserts that nothing beside the destination changed.
    pub(crate) fn assert_untouched(&self) {
        assert_eq!(names(&self.root), ["dest", "sentinel"]);
        assert_eq!(names(&self.sentinel), ["keep.txt"]);
        let keep = self.sentinel.join("keep.txt");
        assert_eq!(std::fs::read_to_string(&keep).unwrap(), "untouched");
        assert_eq!(std::fs::metadata(&keep).unwrap().nlink(), 1);
        assert_eq!(xattr(&self.sentinel, "trusted.overlay.opaque"), None);
    }
}

/// Privileged options with `limits`.
pub(crate) fn options(limits: Limits) -> Options {
    Options {
        limits,
        privileged: true,
    }
}

/// Unpacks the layer `build` makes for a fresh sandbox, expecting an error that names `entry`.
pub(crate) fn refused_with(
    compression: Compression,
    options: &Options,
    entry: &str,
    build: impl FnOnce(&Sandbox) -> Vec<u8>,
) -> UnpackError {
    let sandbox = Sandbox::new();
    let data = build(&sandbox);
    let err = unpack_linux(&data[..], compression, &sandbox.dest, options).unwrap_err();
    sandbox.assert_untouched();
    assert!(err.to_string().contains(entry), "error {err:?} does not name {entry:?}");
    err
}

/// [`refused_with`] for a plain tar, default options, and entries `build` appends.
pub(crate) fn refused(entry: &str, build: impl FnOnce(&Sandbox, &mut Layer)) -> UnpackError {
    refused_with(Compression::None, &Options::default(), entry, |sandbox| {
        let mut layer = Layer::new();
        build(sandbox, &mut layer);
        layer.finish()
    })
}

/// Appends a regular file with a raw (unchecked) name.
pub(crate) fn raw_file(layer: &mut Layer, name: &[u8]) {
    layer.raw(EntryType::Regular, name, b"", 0o644, b"pwned", |_| {});
}
