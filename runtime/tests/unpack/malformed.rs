//! Malformed and oversized layers: decompression bombs, limits, corrupt or ambiguous archives.
//! Each is refused with an error naming the entry, and nothing outside the destination is created
//! or changed (see `sandbox.rs`).

use std::time::{Duration, Instant};

use strata_runtime::unpack::{Compression, LimitKind, Limits, Options, UnpackError, unpack_linux};
use tar::EntryType;

use crate::layer::{Layer, gzip, names};
use crate::sandbox::{Sandbox, options, raw_file, refused, refused_with};

/// gzip members of 1 MiB of zeros: a 1 GiB stream costs about 1 MiB (members concatenate).
fn gzip_zeros(gib: u64) -> Vec<u8> {
    let member = gzip(&vec![0u8; 1 << 20]);
    member.repeat((gib << 10) as usize)
}

fn one_mib() -> Options {
    options(Limits {
        max_total_bytes: 1 << 20,
        ..Limits::default()
    })
}

#[test]
fn a_gzip_bomb_file_stops_at_its_header() {
    let started = Instant::now();
    let mut header = tar::Header::new_gnu();
    header.set_path("big").unwrap();
    header.set_size(1 << 30);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    let mut bomb = gzip(header.as_bytes());
    bomb.extend(gzip_zeros(1));
    bomb.extend(gzip(&[0u8; 1024]));
    assert!(bomb.len() < 16 << 20, "the bomb is {} bytes", bomb.len());

    let sandbox = Sandbox::new();
    let err = unpack_linux(&bomb[..], Compression::Gzip, &sandbox.dest, &one_mib()).unwrap_err();
    sandbox.assert_untouched();
    let expected = UnpackError::LimitExceeded {
        what: LimitKind::TotalBytes,
        limit: 1 << 20,
        entry: Some("big".into()),
    };
    assert_eq!(err.to_string(), expected.to_string());
    assert!(names(&sandbox.dest).is_empty(), "nothing of the bomb was written");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn files_adding_up_past_the_limit_are_refused_at_the_first_one_over() {
    let err = refused_with(Compression::None, &one_mib(), "second", |_| {
        let mut l = Layer::new();
        l.file("first", 0o644, &vec![1u8; 600 << 10])
            .file("second", 0o644, &vec![2u8; 600 << 10]);
        l.finish()
    });
    assert!(
        matches!(
            err,
            UnpackError::LimitExceeded {
                what: LimitKind::TotalBytes,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_gzip_bomb_after_the_end_of_the_archive_is_refused() {
    let started = Instant::now();
    let sandbox = Sandbox::new();
    let mut l = Layer::new();
    l.file("small", 0o644, b"small");
    let mut bomb = gzip(&l.finish());
    bomb.extend(gzip_zeros(1));
    let err = unpack_linux(&bomb[..], Compression::Gzip, &sandbox.dest, &one_mib()).unwrap_err();
    sandbox.assert_untouched();
    assert!(
        matches!(
            err,
            UnpackError::LimitExceeded {
                what: LimitKind::TotalBytes,
                entry: None,
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn too_many_entries_are_refused() {
    let limits = Limits {
        max_entries: 10,
        ..Limits::default()
    };
    let err = refused_with(Compression::None, &options(limits), "f10", |_| {
        let mut l = Layer::new();
        for i in 0..20 {
            l.file(&format!("f{i}"), 0o644, b"");
        }
        l.finish()
    });
    assert!(
        matches!(
            err,
            UnpackError::LimitExceeded {
                what: LimitKind::Entries,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn names_and_components_over_the_limits_are_refused() {
    let long_path = "a/".repeat(2500) + "f";
    let err = refused("a/a/a/a", |_, l| raw_file(l, long_path.as_bytes()));
    assert!(
        matches!(err, UnpackError::NameTooLong { what: "the path", .. }),
        "{err}"
    );
    let long_component = "c".repeat(300);
    let err = refused(&long_component[..100], |_, l| raw_file(l, long_component.as_bytes()));
    assert!(
        matches!(
            err,
            UnpackError::NameTooLong {
                what: "a path component",
                ..
            }
        ),
        "{err}"
    );
    let long_target = "t/".repeat(2500);
    let err = refused("link", |_, l| {
        l.symlink("link", &long_target);
    });
    assert!(matches!(err, UnpackError::NameTooLong { .. }), "{err}");
}

#[test]
fn extension_headers_over_the_limit_are_refused() {
    let err = refused("PAX", |_, l| {
        let big = vec![b'x'; 2 << 20];
        l.pax(&[("comment", &big[..])]).file("f", 0o644, b"");
    });
    assert!(
        matches!(
            err,
            UnpackError::LimitExceeded {
                what: LimitKind::ExtensionBytes,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn names_with_nul_bytes_are_refused() {
    let err = refused("a\\0b", |_, l| {
        l.pax(&[("path", b"a\0b")]).file("placeholder", 0o644, b"");
    });
    assert!(matches!(err, UnpackError::InvalidName { .. }), "{err}");
    let err = refused("evil\\0", |_, l| {
        l.gnu_long(EntryType::GNULongName, b"evil\0/../../escape\0")
            .file("placeholder", 0o644, b"");
    });
    assert!(matches!(err, UnpackError::InvalidName { .. }), "{err}");
}

#[test]
fn sparse_files_are_refused() {
    let err = refused("sparse", |_, l| {
        l.raw(EntryType::GNUSparse, b"sparse", b"", 0o644, b"", |_| {});
    });
    assert!(matches!(err, UnpackError::UnsupportedEntryType { .. }), "{err}");
    let err = refused("pax-sparse", |_, l| {
        l.pax(&[("GNU.sparse.major", b"1")]).file("pax-sparse", 0o644, b"");
    });
    assert!(matches!(err, UnpackError::UnsupportedEntryType { .. }), "{err}");
}

#[test]
fn corrupt_and_ambiguous_archives_are_refused() {
    let err = refused_with(Compression::None, &Options::default(), "checksum", |_| {
        let mut tar = Layer::new();
        tar.file("f", 0o644, b"f");
        let mut tar = tar.finish();
        tar[0] = b'g';
        tar
    });
    assert!(matches!(err, UnpackError::Corrupt { .. }), "{err}");
    let err = refused_with(Compression::None, &Options::default(), "truncated", |_| {
        let mut tar = Layer::new();
        tar.file("truncated", 0o644, &[1u8; 4096]);
        let mut tar = tar.finish();
        tar.truncate(2048);
        tar
    });
    assert!(matches!(err, UnpackError::Corrupt { .. }), "{err}");
    let err = refused("contradicts", |_, l| {
        l.pax(&[("size", b"100")]).file("contradicts", 0o644, b"five!");
    });
    assert!(matches!(err, UnpackError::Corrupt { .. }), "{err}");
}

#[test]
fn entries_hidden_behind_a_single_zero_block_are_refused() {
    let err = refused_with(Compression::None, &Options::default(), "single zero block", |_| {
        let mut visible = Layer::new();
        visible.file("visible", 0o644, b"v");
        let mut tar = visible.finish();
        tar.truncate(tar.len() - 512);
        let mut hidden = Layer::new();
        hidden.file("hidden", 0o644, b"h");
        tar.extend(hidden.finish());
        tar
    });
    assert!(matches!(err, UnpackError::Corrupt { .. }), "{err}");
}

#[test]
fn a_destination_that_is_not_empty_is_refused() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.dest.join("existing"), "x").unwrap();
    let err = unpack_linux(
        &Layer::new().finish()[..],
        Compression::None,
        &sandbox.dest,
        &Options::default(),
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::DestinationNotEmpty { .. }), "{err}");
}

#[test]
fn an_archive_without_its_last_padding_and_end_blocks_unpacks_like_go_reads_it() {
    // What `umoci insert` writes: the last file's content is the last byte of the stream.
    let mut l = Layer::new();
    l.file("bin/tool", 0o755, &[3u8; 1000])
        .file("etc/passwd", 0o644, b"root:x:0:0::/:/bin/sh\n");
    let mut tar = l.finish();
    // Header, 1000 bytes padded to 1024, header, 22 bytes.
    let end = 512 + 1024 + 512 + 22;
    tar.truncate(end);
    for cut in [end, end - 22 + 512] {
        let mut data = tar.clone();
        data.resize(cut, 0);
        let sandbox = Sandbox::new();
        let unpacked = unpack_linux(&data[..], Compression::None, &sandbox.dest, &Options::default()).unwrap();
        assert_eq!(
            unpacked.diff_id,
            strata_storage::digest::sha256(&data),
            "the real bytes"
        );
        assert_eq!(
            std::fs::read(sandbox.dest.join("etc/passwd")).unwrap(),
            b"root:x:0:0::/:/bin/sh\n"
        );
        assert_eq!(std::fs::read(sandbox.dest.join("bin/tool")).unwrap(), [3u8; 1000]);
    }
    // Cut inside the content: refused, even where the added zeros would cover the gap.
    let err = refused_with(Compression::None, &Options::default(), "etc/passwd", |_| {
        let mut data = tar.clone();
        data.truncate(end - 2);
        data
    });
    assert!(err.to_string().contains("ends inside the entry"), "{err}");
}
