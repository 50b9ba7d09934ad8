//! Hostile layers through the layer store (Linux and Windows): each import fails with an error
//! naming the entry, nothing beside the store changes, and the store is left exactly as it was:
//! no layer, no image, no debris in `.tmp/`.

use std::io::Write;
use std::path::Path;

use strata_runtime::store::LayerStore;
use strata_runtime::unpack::{Limits, Options};
use tar::EntryType;

use crate::layer::{Layer, names};
use crate::sandbox::{Sandbox, raw_file};

/// Imports the tar `build` makes (as `os`, with `limits`) into a store in a sandbox's
/// destination and checks the refusal.
fn refused(os: &str, limits: Limits, entry: &str, build: impl FnOnce(&Sandbox) -> Vec<u8>) {
    let sandbox = Sandbox::new();
    let store = LayerStore::open(&sandbox.dest.join("layers"))
        .unwrap()
        .with_options(Options {
            limits,
            privileged: true,
        });
    let data = build(&sandbox);
    let tar_dir = tempfile::tempdir().unwrap();
    let tar = tar_dir.path().join("layer.tar");
    std::fs::write(&tar, data).unwrap();
    let err = store.import_tar(&tar, "hostile", os, None).unwrap_err().to_string();
    assert!(err.contains(entry), "error {err:?} does not name {entry:?}");
    sandbox.assert_untouched();
    assert_eq!(names(&sandbox.dest), ["layers"]);
    assert_eq!(names(store.root()), [".lock", ".tmp", "images"], "no layer");
    assert!(names(&store.root().join(".tmp")).is_empty(), "no debris");
    assert!(names(&store.root().join("images")).is_empty(), "no image");
}

fn linux(entry: &str, build: impl FnOnce(&Sandbox, &mut Layer)) {
    refused("linux", Limits::default(), entry, |sandbox| {
        let mut layer = Layer::new();
        build(sandbox, &mut layer);
        layer.finish()
    });
}

fn windows(entry: &str, build: impl FnOnce(&Sandbox, &mut Layer)) {
    refused("windows", Limits::default(), entry, |sandbox| {
        let mut layer = Layer::new();
        layer.dir("Files", 0o755);
        build(sandbox, &mut layer);
        layer.finish()
    });
}

/// `../` repeated enough to leave any temporary directory.
fn up(name: &str) -> String {
    format!("{}{name}", "../".repeat(12))
}

#[test]
fn traversal_names() {
    linux("../evil", |_, l| raw_file(l, b"../evil"));
    linux("a/../../evil", |_, l| raw_file(l, b"a/../../evil"));
    linux("/../evil", |_, l| raw_file(l, b"/../evil"));
    let long = up("evil");
    linux("evil", |_, l| raw_file(l, long.as_bytes()));
    linux("../../evil", |_, l| {
        l.pax(&[("path", b"../../evil")]);
        raw_file(l, b"benign");
    });
    windows("Files/../../evil", |_, l| raw_file(l, b"Files/../../evil"));
    windows("Hives/../../x", |_, l| raw_file(l, b"Hives/../../x"));
}

#[test]
fn symlink_escapes() {
    linux("link/keep.txt", |s, l| {
        l.symlink("link", s.outside());
        raw_file(l, b"link/keep.txt");
    });
    linux("up/sentinel/new", |_, l| {
        l.symlink("up", "..");
        l.symlink("up2", "../..");
        raw_file(l, b"up/sentinel/new");
    });
    linux("link/keep.txt", |s, l| {
        l.symlink("link", s.outside());
        l.hardlink("h", "link/keep.txt");
    });
}

#[test]
fn hard_link_escapes() {
    linux("h", |s, l| {
        let target = format!("{}/keep.txt", s.outside());
        l.hardlink("h", &target);
    });
    linux("h", |_, l| {
        l.hardlink("h", "../sentinel/keep.txt");
    });
    windows("Files/h", |_, l| {
        l.raw(
            EntryType::Link,
            b"Files/h",
            b"Files/../../sentinel/keep.txt",
            0o644,
            b"",
            |_| {},
        );
    });
    windows("Files/h", |_, l| {
        l.raw(EntryType::Link, b"Files/h", b"Hives/x", 0o644, b"", |_| {});
    });
}

#[test]
fn bombs() {
    // 64 MiB of zeros, a few KiB gzipped, against a 1 MiB budget.
    let small = Limits {
        max_total_bytes: 1 << 20,
        ..Limits::default()
    };
    refused("linux", small, "zeros", |_| {
        let mut header = tar::Header::new_gnu();
        header.set_path("zeros").unwrap();
        header.set_size(64 << 20);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(header.as_bytes()).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            gz.write_all(&zeros).unwrap();
        }
        let out = gz.finish().unwrap();
        assert!(out.len() < 1 << 20, "the bomb is small: {}", out.len());
        out
    });
    let few = Limits {
        max_entries: 50,
        ..Limits::default()
    };
    refused("linux", few, "f50", |_| {
        let mut layer = Layer::new();
        for i in 0..100 {
            layer.file(&format!("f{i}"), 0o644, b"");
        }
        layer.finish()
    });
    let long = "n".repeat(300);
    linux(&long[..200], |_, l| raw_file(l, long.as_bytes()));
}

#[test]
fn the_store_sweeps_what_a_crash_left_in_gc_not_when_another_process_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layers");
    let store = LayerStore::open(&root).unwrap();
    std::fs::create_dir_all(root.join(".tmp/import-1-dead/Files/x")).unwrap();
    LayerStore::open(&root).unwrap();
    assert_eq!(
        names(&root.join(".tmp")),
        ["import-1-dead"],
        "opening the store keeps imports that may be in progress"
    );
    store.gc().unwrap();
    assert!(names(&root.join(".tmp")).is_empty());
    assert!(Path::new(&root).join("images").is_dir());
}
