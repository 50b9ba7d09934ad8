//! Well-formed layers: every entry type and its metadata, compression, whiteouts, replacement.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use strata_runtime::unpack::{Compression, Options, UnpackError, Unpacked, unpack_linux};
use strata_storage::digest::sha256;
use tar::EntryType;

use crate::layer::{Layer, MTIME, gzip, names, snapshot, xattr, zstd};

fn unpack(data: &[u8], compression: Compression, dest: &Path, options: &Options) -> Result<Unpacked, UnpackError> {
    unpack_linux(data, compression, dest, options)
}

fn privileged() -> Options {
    Options {
        privileged: true,
        ..Options::default()
    }
}

fn unprivileged() -> Options {
    Options {
        privileged: false,
        ..Options::default()
    }
}

fn long_dir() -> String {
    format!("opt/{}", "d".repeat(60))
}

/// A layer with every entry type, special mode bits, owners, xattrs, long names and mtimes.
fn sample_layer() -> Vec<u8> {
    let long_file = format!("{}/{}", long_dir(), "f".repeat(80));
    let pax_file = format!("{}/{}", long_dir(), "p".repeat(150));
    let mut l = Layer::new();
    l.raw(EntryType::Directory, b"./", b"", 0o755, b"", |h| h.set_mtime(MTIME + 1))
        .raw(EntryType::Directory, b"./etc/", b"", 0o755, b"", |h| {
            h.set_mtime(MTIME + 2);
        })
        .pax(&[
            ("SCHILY.xattr.user.comment", b"hello"),
            ("SCHILY.xattr.trusted.note", b"t"),
            ("mtime", b"1600000003.123456789"),
        ])
        .file("./etc/hosts", 0o644, b"127.0.0.1 localhost\n")
        .raw(
            EntryType::Symlink,
            b"./etc/localtime",
            b"/usr/share/zoneinfo/UTC",
            0o777,
            b"",
            |h| {
                h.set_uid(1000);
                h.set_gid(1000);
                h.set_mtime(MTIME + 4);
            },
        )
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .file("usr/bin/su", 0o4755, b"#!su")
        .file("usr/bin/newgrp", 0o2755, b"#!newgrp")
        .hardlink("usr/bin/su-again", "./usr/bin/su")
        .dir("tmp/", 0o1777)
        .dir("home/", 0o755)
        .raw(EntryType::Directory, b"home/user/", b"", 0o750, b"", |h| {
            h.set_uid(1000);
            h.set_gid(1001);
        })
        .raw(EntryType::Regular, b"home/user/notes", b"", 0o600, b"private", |h| {
            h.set_uid(1000);
            h.set_gid(1001);
        })
        .dir("run/", 0o755)
        .node(EntryType::Fifo, "run/initctl", 0o600, 0, 0)
        .dir("dev/", 0o755)
        .node(EntryType::Char, "dev/null", 0o666, 1, 3)
        .node(EntryType::Block, "dev/loop0", 0o660, 7, 0)
        .dir("secret/", 0o500)
        .file("secret/key", 0o400, b"k")
        .dir("opt/", 0o755)
        .dir(&long_dir(), 0o755)
        .file(&long_file, 0o644, b"gnu long name")
        .pax(&[("path", pax_file.as_bytes())])
        .file("short-name-in-header", 0o644, b"pax long name");
    l.finish()
}

const SAMPLE_ENTRIES: u64 = 24;
const SAMPLE_BYTES: u64 = 20 + 4 + 8 + 7 + 1 + 13 + 13;

#[test]
fn a_layer_with_every_entry_type_unpacks_exactly() {
    let tar = sample_layer();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let unpacked = unpack(&tar, Compression::None, d, &privileged()).unwrap();
    assert_eq!(unpacked.diff_id, sha256(&tar));
    assert_eq!(unpacked.entries, SAMPLE_ENTRIES);
    assert_eq!(unpacked.bytes, SAMPLE_BYTES);
    assert_eq!((unpacked.skipped_entries, unpacked.skipped_xattrs), (0, 0));

    let meta = |p: &str| std::fs::symlink_metadata(d.join(p)).unwrap();
    // Directory mtimes hold although children were created after the directory entries.
    assert_eq!((meta("").mode() & 0o7777, meta("").mtime()), (0o755, MTIME as i64 + 1));
    assert_eq!(meta("etc").mtime(), MTIME as i64 + 2);

    let hosts = meta("etc/hosts");
    assert_eq!(std::fs::read(d.join("etc/hosts")).unwrap(), b"127.0.0.1 localhost\n");
    assert_eq!(hosts.mode(), 0o100644);
    assert_eq!((hosts.mtime(), hosts.mtime_nsec()), (1_600_000_003, 123_456_789));
    assert_eq!(
        xattr(&d.join("etc/hosts"), "user.comment").as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(xattr(&d.join("etc/hosts"), "trusted.note").as_deref(), Some(&b"t"[..]));

    let localtime = meta("etc/localtime");
    assert!(localtime.file_type().is_symlink());
    let target = std::fs::read_link(d.join("etc/localtime")).unwrap();
    assert_eq!(target, Path::new("/usr/share/zoneinfo/UTC"));
    assert_eq!(
        (localtime.uid(), localtime.gid(), localtime.mtime()),
        (1000, 1000, MTIME as i64 + 4)
    );

    assert_eq!(meta("usr/bin/su").mode() & 0o7777, 0o4755);
    assert_eq!(meta("usr/bin/newgrp").mode() & 0o7777, 0o2755);
    assert_eq!(meta("usr/bin/su-again").ino(), meta("usr/bin/su").ino());
    assert_eq!(meta("usr/bin/su").nlink(), 2);
    assert_eq!(meta("tmp").mode() & 0o7777, 0o1777);

    let notes = meta("home/user/notes");
    assert_eq!((notes.uid(), notes.gid(), notes.mode() & 0o7777), (1000, 1001, 0o600));
    assert_eq!(
        (meta("home/user").uid(), meta("home/user").mode() & 0o7777),
        (1000, 0o750)
    );

    assert!(meta("run/initctl").file_type().is_fifo());
    assert_eq!(meta("run/initctl").mode() & 0o7777, 0o600);
    let null = meta("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (major(null.rdev()), minor(null.rdev()), null.mode() & 0o7777),
        (1, 3, 0o666)
    );
    let lo = meta("dev/loop0");
    assert!(lo.file_type().is_block_device());
    assert_eq!((major(lo.rdev()), minor(lo.rdev()), lo.mode() & 0o7777), (7, 0, 0o660));

    // A read-only directory still received its file: its mode is set last.
    assert_eq!(meta("secret").mode() & 0o7777, 0o500);
    assert_eq!(std::fs::read(d.join("secret/key")).unwrap(), b"k");

    let long = d.join(long_dir());
    assert_eq!(std::fs::read(long.join("f".repeat(80))).unwrap(), b"gnu long name");
    assert_eq!(std::fs::read(long.join("p".repeat(150))).unwrap(), b"pax long name");
    assert!(!d.join("short-name-in-header").exists());
}

#[test]
fn gzip_and_zstd_layers_give_the_same_diff_id_and_tree() {
    let tar = sample_layer();
    let mut trees = Vec::new();
    for (compression, data) in [
        (Compression::None, tar.clone()),
        (Compression::Gzip, gzip(&tar)),
        (Compression::Zstd, zstd(&tar)),
    ] {
        assert_eq!(Compression::sniff(&data), compression);
        let tmp = tempfile::tempdir().unwrap();
        let unpacked = unpack(&data, compression, tmp.path(), &privileged()).unwrap();
        assert_eq!(unpacked.diff_id, sha256(&tar), "{compression:?}");
        assert_eq!(unpacked.entries, SAMPLE_ENTRIES);
        trees.push(snapshot(tmp.path()));
    }
    assert_eq!(trees[0], trees[1]);
    assert_eq!(trees[0], trees[2]);
    assert_eq!(trees[0].len(), 24);
}

#[test]
fn media_types_map_to_their_compression() {
    let m = Compression::from_media_type;
    assert_eq!(m("application/vnd.oci.image.layer.v1.tar"), Some(Compression::None));
    assert_eq!(
        m("application/vnd.oci.image.layer.v1.tar+gzip"),
        Some(Compression::Gzip)
    );
    assert_eq!(
        m("application/vnd.oci.image.layer.v1.tar+zstd"),
        Some(Compression::Zstd)
    );
    assert_eq!(
        m("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
        Some(Compression::Gzip)
    );
    assert_eq!(
        m("application/vnd.docker.image.rootfs.diff.tar.gzip"),
        Some(Compression::Gzip)
    );
    assert_eq!(m("application/vnd.oci.image.layer.v1.tar+bzip2"), None);
    assert_eq!(m("application/vnd.oci.image.config.v1+json"), None);
    assert_eq!(Compression::sniff(b"usr/"), Compression::None);
}

#[test]
fn whiteouts_become_overlayfs_devices_and_opaque_directories() {
    let mut l = Layer::new();
    l.file("etc/.wh.passwd", 0o644, b"")
        .dir("var/", 0o755)
        .dir("var/cache/", 0o755)
        .file("var/cache/.wh..wh..opq", 0o644, b"")
        .file("new/.wh..wh..opq", 0o644, b"")
        .file(".wh.tmp", 0o644, b"")
        // Whiteouts hide only lower layers: what this layer made stays (and a directory becomes opaque).
        .dir("keep/", 0o755)
        .file("keep/file", 0o644, b"x")
        .file(".wh.keep", 0o644, b"")
        .file("f", 0o644, b"data")
        .file(".wh.f", 0o644, b"")
        .file(".wh..wh.plnk", 0o644, b"")
        .pax(&[("SCHILY.xattr.trusted.overlay.redirect", b"/etc")])
        .file("redirected", 0o644, b"r");
    let tar = l.finish();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let unpacked = unpack(&tar, Compression::None, d, &privileged()).unwrap();
    assert_eq!((unpacked.skipped_entries, unpacked.skipped_xattrs), (1, 1));

    for whiteout in ["etc/passwd", "tmp"] {
        let meta = std::fs::symlink_metadata(d.join(whiteout)).unwrap();
        assert!(meta.file_type().is_char_device(), "{whiteout}");
        assert_eq!(meta.rdev(), 0, "{whiteout}");
    }
    assert_eq!(std::fs::symlink_metadata(d.join("etc")).unwrap().mode(), 0o40755);
    let opaque = |p: &str| xattr(&d.join(p), "trusted.overlay.opaque");
    assert_eq!(opaque("var/cache").as_deref(), Some(&b"y"[..]));
    assert_eq!(opaque("new").as_deref(), Some(&b"y"[..]));
    assert_eq!(opaque("var"), None);
    assert_eq!(opaque("keep").as_deref(), Some(&b"y"[..]));
    assert_eq!(std::fs::read(d.join("keep/file")).unwrap(), b"x");
    assert_eq!(std::fs::read(d.join("f")).unwrap(), b"data");
    assert_eq!(xattr(&d.join("redirected"), "trusted.overlay.redirect"), None);
    assert_eq!(names(d), ["etc", "f", "keep", "new", "redirected", "tmp", "var"]);
}

#[test]
fn unprivileged_unpacking_skips_devices_and_owners_and_refuses_whiteouts() {
    let mut l = Layer::new();
    l.raw(EntryType::Regular, b"owned", b"", 0o644, b"o", |h| h.set_uid(1000))
        .node(EntryType::Char, "null", 0o666, 1, 3)
        .node(EntryType::Block, "loop0", 0o660, 7, 0)
        .node(EntryType::Fifo, "fifo", 0o600, 0, 0);
    let tmp = tempfile::tempdir().unwrap();
    let unpacked = unpack(&l.finish(), Compression::None, tmp.path(), &unprivileged()).unwrap();
    assert_eq!(unpacked.skipped_entries, 2);
    assert_eq!(names(tmp.path()), ["fifo", "owned"]);
    let owner = std::fs::metadata(tmp.path().join("owned")).unwrap().uid();
    assert_eq!(owner, rustix::process::geteuid().as_raw());

    for name in [".wh.gone", "dir/.wh..wh..opq"] {
        let mut l = Layer::new();
        l.file(name, 0o644, b"");
        let tmp = tempfile::tempdir().unwrap();
        let err = unpack(&l.finish(), Compression::None, tmp.path(), &unprivileged()).unwrap_err();
        assert!(matches!(err, UnpackError::NeedsPrivilege { .. }), "{err}");
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn later_entries_replace_earlier_ones_at_the_same_path() {
    let mut l = Layer::new();
    l.file("a", 0o644, b"file")
        .dir("a/", 0o755)
        .file("a/x", 0o644, b"x")
        .dir("d/", 0o755)
        .file("d/child", 0o644, b"c")
        .dir("d/", 0o700)
        .dir("t/", 0o755)
        .dir("t/sub/", 0o755)
        .file("t/sub/deep", 0o644, b"deep")
        .file("t", 0o600, b"now a file")
        .file("s", 0o644, b"s")
        .symlink("s", "target")
        .symlink("l", "/etc")
        .dir("l/", 0o755)
        .file("l/inside", 0o644, b"i");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    unpack(&l.finish(), Compression::None, d, &privileged()).unwrap();
    assert_eq!(std::fs::read(d.join("a/x")).unwrap(), b"x");
    assert_eq!(std::fs::read(d.join("d/child")).unwrap(), b"c");
    assert_eq!(std::fs::metadata(d.join("d")).unwrap().mode() & 0o7777, 0o700);
    assert_eq!(std::fs::read(d.join("t")).unwrap(), b"now a file");
    assert_eq!(std::fs::read_link(d.join("s")).unwrap(), Path::new("target"));
    assert!(std::fs::symlink_metadata(d.join("l")).unwrap().is_dir());
    assert!(!Path::new("/etc/inside").exists());
    assert_eq!(names(d), ["a", "d", "l", "s", "t"]);
}

#[test]
fn a_pax_size_with_a_zero_header_size_is_read_like_go_writes_large_files() {
    let content = vec![7u8; 1000];
    let mut l = Layer::new();
    l.pax(&[("size", b"1000")])
        .raw(EntryType::Regular, b"large", b"", 0o644, &content, |h| h.set_size(0))
        .file("after", 0o644, b"still in sync");
    let tar = l.finish();
    let tmp = tempfile::tempdir().unwrap();
    let unpacked = unpack(&tar, Compression::None, tmp.path(), &privileged()).unwrap();
    assert_eq!(unpacked.diff_id, sha256(&tar));
    assert_eq!(unpacked.bytes, 1000 + 13);
    assert_eq!(std::fs::read(tmp.path().join("large")).unwrap(), content);
    assert_eq!(std::fs::read(tmp.path().join("after")).unwrap(), b"still in sync");
}

#[test]
fn a_hard_link_to_a_symlink_links_the_symlink_itself() {
    let mut l = Layer::new();
    l.symlink("s", "/etc/passwd").hardlink("h", "s");
    let tmp = tempfile::tempdir().unwrap();
    unpack(&l.finish(), Compression::None, tmp.path(), &privileged()).unwrap();
    let h = std::fs::symlink_metadata(tmp.path().join("h")).unwrap();
    assert!(h.file_type().is_symlink());
    assert_eq!(h.ino(), std::fs::symlink_metadata(tmp.path().join("s")).unwrap().ino());
}

fn major(dev: u64) -> u32 {
    rustix::fs::major(dev)
}

fn minor(dev: u64) -> u32 {
    rustix::fs::minor(dev)
}
