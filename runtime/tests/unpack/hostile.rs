//! Hostile layers that try to write outside the destination, through names, symbolic links, hard
//! links and whiteouts: each is refused with an error naming the entry, and nothing outside the
//! destination is created or changed (see `sandbox.rs`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use strata_runtime::unpack::{Compression, Options, UnpackError, unpack_linux};

use crate::layer::Layer;
use crate::sandbox::{Sandbox, raw_file, refused};

#[test]
fn dot_dot_names_are_refused() {
    for name in ["../escape", "../sentinel/keep.txt", "a/../../escape", "./a/../b"] {
        let err = refused(name, |_, l| {
            l.dir("a/", 0o755);
            raw_file(l, name.as_bytes());
        });
        assert!(matches!(err, UnpackError::Traversal { .. }), "{err}");
    }
}

#[test]
fn absolute_names_land_inside_the_destination() {
    // As docker and containerd read them: relative to the layer root.
    let sandbox = Sandbox::new();
    let inside_sentinel = sandbox.sentinel.join("keep.txt");
    let mut l = Layer::new();
    l.dir("/", 0o755).dir("/bin/", 0o755);
    raw_file(&mut l, b"/abs");
    raw_file(&mut l, inside_sentinel.to_str().unwrap().as_bytes());
    l.file("//bin/tool", 0o755, b"tool").hardlink("/bin/alias", "/bin/tool");
    unpack_linux(&l.finish()[..], Compression::None, &sandbox.dest, &Options::default()).unwrap();
    sandbox.assert_untouched();
    assert!(!Path::new("/abs").exists());
    assert!(sandbox.dest.join("abs").is_file());
    let moved = sandbox.dest.join(inside_sentinel.strip_prefix("/").unwrap());
    assert!(moved.is_file(), "{} missing", moved.display());
    let tool = std::fs::metadata(sandbox.dest.join("bin/tool")).unwrap();
    let alias = std::fs::metadata(sandbox.dest.join("bin/alias")).unwrap();
    assert_eq!((tool.ino(), tool.nlink()), (alias.ino(), 2));
}

#[test]
fn writing_through_an_absolute_symlink_is_refused() {
    let err = refused("evil/pwned", |s, l| {
        l.symlink("evil", s.outside()).file("evil/pwned", 0o644, b"pwned");
    });
    assert!(
        matches!(err, UnpackError::SymlinkParent { ref parent, .. } if parent == "evil"),
        "{err}"
    );
    let err = refused("tmpx/pwned", |_, l| {
        l.symlink("tmpx", "/tmp/x").file("tmpx/pwned", 0o644, b"pwned");
    });
    assert!(matches!(err, UnpackError::SymlinkParent { .. }), "{err}");
}

#[test]
fn writing_through_a_symlink_to_dot_dot_is_refused() {
    let err = refused("up/sentinel/keep.txt", |_, l| {
        l.symlink("up", "..").file("up/sentinel/keep.txt", 0o644, b"pwned");
    });
    assert!(matches!(err, UnpackError::SymlinkParent { .. }), "{err}");
}

#[test]
fn writing_through_a_symlink_chain_is_refused() {
    let err = refused("a/escape", |_, l| {
        l.symlink("a", "b").symlink("b", "..").file("a/escape", 0o644, b"pwned");
    });
    assert!(matches!(err, UnpackError::SymlinkParent { .. }), "{err}");
}

#[test]
fn a_symlink_replacing_a_directory_cannot_be_written_through() {
    let err = refused("d/sentinel/keep.txt", |_, l| {
        l.dir("d/", 0o755)
            .file("d/f", 0o644, b"f")
            .symlink("d", "..")
            .file("d/sentinel/keep.txt", 0o644, b"pwned");
    });
    assert!(matches!(err, UnpackError::SymlinkParent { .. }), "{err}");
}

#[test]
fn a_directory_replacing_a_symlink_removes_the_link_not_its_target() {
    let sandbox = Sandbox::new();
    let mut l = Layer::new();
    l.symlink("d", sandbox.outside())
        .dir("d/", 0o755)
        .file("d/keep.txt", 0o644, b"inside");
    unpack_linux(&l.finish()[..], Compression::None, &sandbox.dest, &Options::default()).unwrap();
    sandbox.assert_untouched();
    assert_eq!(std::fs::read(sandbox.dest.join("d/keep.txt")).unwrap(), b"inside");
}

#[test]
fn hard_links_to_absolute_paths_never_reach_the_host() {
    // `/etc/passwd` means the layer's etc/passwd, which this layer does not have.
    let before = std::fs::metadata("/etc/passwd").unwrap().nlink();
    let err = refused("passwd", |_, l| {
        l.hardlink("passwd", "/etc/passwd");
    });
    assert!(err.to_string().contains("/etc/passwd"), "{err}");
    assert_eq!(std::fs::metadata("/etc/passwd").unwrap().nlink(), before);
}

#[test]
fn hard_links_to_dot_dot_are_refused() {
    let err = refused("x", |_, l| {
        l.hardlink("x", "../sentinel/keep.txt");
    });
    assert!(matches!(err, UnpackError::HardLinkEscape { .. }), "{err}");
}

#[test]
fn hard_links_through_a_symlinked_directory_are_refused() {
    for target in [None, Some("../sentinel")] {
        let err = refused("x", |s, l| {
            l.symlink("d", target.unwrap_or(s.outside()))
                .hardlink("x", "d/keep.txt");
        });
        assert!(
            matches!(err, UnpackError::HardLinkEscape { reason, .. } if reason.contains("symbolic link")),
            "{err}"
        );
    }
}

#[test]
fn hard_links_to_directories_and_missing_targets_are_refused() {
    let err = refused("x", |_, l| {
        l.dir("sub/", 0o755).hardlink("x", "sub");
    });
    assert!(matches!(err, UnpackError::HardLinkToDirectory { .. }), "{err}");
    let err = refused("root-link", |_, l| {
        l.hardlink("root-link", "./");
    });
    assert!(matches!(err, UnpackError::HardLinkToDirectory { .. }), "{err}");
    let err = refused("x", |_, l| {
        l.hardlink("x", "not/in/this/layer");
    });
    assert!(matches!(err, UnpackError::HardLinkMissing { .. }), "{err}");
}

#[test]
fn whiteouts_that_escape_are_refused() {
    for name in ["../.wh.sentinel", "a/../../.wh.x", ".wh...", "a/.wh..."] {
        let err = refused(name, |_, l| {
            l.dir("a/", 0o755);
            raw_file(l, name.as_bytes());
        });
        assert!(matches!(err, UnpackError::Traversal { .. }), "{name}: {err}");
    }
}

#[test]
fn whiteouts_and_opaque_markers_through_a_symlink_are_refused() {
    for name in ["s/.wh.keep.txt", "s/.wh..wh..opq"] {
        let err = refused(name, |s, l| {
            l.symlink("s", s.outside());
            raw_file(l, name.as_bytes());
        });
        assert!(matches!(err, UnpackError::SymlinkParent { .. }), "{name}: {err}");
    }
}

#[test]
fn a_file_as_a_parent_is_refused() {
    let err = refused("f/x", |_, l| {
        l.file("f", 0o644, b"f").file("f/x", 0o644, b"x");
    });
    assert!(matches!(err, UnpackError::ParentNotDirectory { .. }), "{err}");
}

#[test]
fn the_root_can_only_be_a_directory() {
    let err = refused("./", |s, l| {
        l.symlink("./", s.outside());
    });
    assert!(matches!(err, UnpackError::InvalidName { .. }), "{err}");
}
