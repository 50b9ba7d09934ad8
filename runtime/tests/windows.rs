//! Windows layers through the layer store: fixtures written by our own tar writer following the
//! go-winio / hcsshim conventions (`shared/notes/windows-layers.md` §1, §5.9), each checked by
//! its union listing and its sidecar records, and the import errors a Windows host would give.

use std::path::Path;

use strata_runtime::store::LayerStore;
use strata_runtime::union::{NodeKind, Union};
use strata_runtime::windows::{Record, RecordKind, read_sidecar};

const RAWSD: &str = "AQAAgBQAAAAkAAAAAAAAAAAAAAABAgAAAAAABSAAAAAgAgAAAQIAAAAAAAUgAAAAIAIAAA==";

/// A Windows layer tar being written: PAX records before each entry, as go-winio writes them.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn entry(
        mut self,
        name: &str,
        kind: tar::EntryType,
        data: &[u8],
        link: Option<&str>,
        pax: &[(&str, &str)],
    ) -> Self {
        let mut records: Vec<(String, Vec<u8>)> = pax
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        if !name.is_ascii() || name.len() > 100 {
            records.push(("path".into(), name.as_bytes().to_vec()));
        }
        if !records.is_empty() {
            self.0
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(match kind {
            tar::EntryType::Directory => 0o40000,
            tar::EntryType::Link => 0o644,
            _ => 0o100000,
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        let short: String = name.chars().filter(char::is_ascii).collect();
        let short = if short.len() > 100 {
            short[..100].to_owned()
        } else {
            short
        };
        h.as_ustar_mut().unwrap().name[..short.len()].copy_from_slice(short.as_bytes());
        if let Some(link) = link {
            h.set_link_name(link).unwrap();
        }
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn dir(self, name: &str) -> Self {
        self.entry(
            name,
            tar::EntryType::Directory,
            &[],
            None,
            &[("MSWINDOWS.fileattr", "16"), ("MSWINDOWS.rawsd", RAWSD)],
        )
    }

    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(
            name,
            tar::EntryType::Regular,
            data,
            None,
            &[("MSWINDOWS.fileattr", "32"), ("MSWINDOWS.rawsd", RAWSD)],
        )
    }

    fn whiteout(self, name: &str) -> Self {
        self.entry(name, tar::EntryType::Regular, &[], None, &[])
    }

    fn write(self, path: &Path) {
        std::fs::write(path, self.0.into_inner().unwrap()).unwrap();
    }
}

fn base_layer() -> Layer {
    let cjk = "漢".repeat(255);
    Layer::new()
        .dir("Files")
        .dir("Files/Windows")
        .dir("Files/Windows/System32")
        .dir("Files/Windows/System32/config")
        .file("Files/Windows/System32/config/SYSTEM", b"")
        .file("Files/Windows/System32/config/SOFTWARE", b"")
        .file("Files/Windows/win.ini", b"[fonts]\r\n")
        .entry(
            "Files/boot.ini",
            tar::EntryType::Regular,
            b"boot",
            None,
            &[
                ("LIBARCHIVE.creationtime", "1700000000.1234567"),
                ("MSWINDOWS.fileattr", "39"),
                ("MSWINDOWS.rawsd", RAWSD),
                ("MSWINDOWS.xattr.$KERNEL.PURGE.ESBCACHE", "AAEC"),
                ("atime", "1700000000.1234567"),
            ],
        )
        .file("Files/readme.txt", b"read me")
        .entry(
            "Files/readme.txt:Zone.Identifier",
            tar::EntryType::Regular,
            b"[ZoneTransfer]",
            None,
            &[],
        )
        .dir("Files/Dir")
        .file("Files/Dir/inner.txt", b"inner")
        .entry(
            "Files/notepad.lnk",
            tar::EntryType::Symlink,
            &[],
            Some("C:\\Windows\\notepad.exe"),
            &[("MSWINDOWS.fileattr", "1056")],
        )
        .entry(
            "Files/Docs",
            tar::EntryType::Symlink,
            &[],
            Some("C:\\Users\\Public"),
            &[("MSWINDOWS.fileattr", "1040"), ("MSWINDOWS.mountpoint", "1")],
        )
        .entry(
            "Files/win-link.ini",
            tar::EntryType::Link,
            &[],
            Some("Files/Windows/win.ini"),
            &[("MSWINDOWS.fileattr", "32")],
        )
        .file("Files/été.txt", "accents".as_bytes())
        .file(&format!("Files/{cjk}"), b"long")
        .file("Files/a*b", b"star")
}

fn delta_layer() -> Layer {
    Layer::new()
        .dir("Files")
        .dir("Hives")
        .file("Hives/Software_Delta", b"regf")
        .whiteout("Files/.wh.README.TXT")
        .whiteout("Files/.wh.Dir")
        .whiteout("Files/.wh.missing")
        .file("Files/.WH.x", b"not a whiteout")
        .dir("Files/WINDOWS")
        .file("Files/WINDOWS/WIN.INI", b"[new]\r\n")
        .entry(
            "Files/boot-link.ini",
            tar::EntryType::Link,
            &[],
            Some("Files/BOOT.INI"),
            &[("MSWINDOWS.fileattr", "32")],
        )
}

fn store(dir: &Path) -> LayerStore {
    LayerStore::open(&dir.join("layers")).unwrap()
}

fn names(union: &Union, path: &str) -> Vec<String> {
    let mut n: Vec<String> = union.list(path).unwrap().into_iter().map(|n| n.path).collect();
    n.sort();
    n
}

fn record<'a>(records: &'a [Record], path: &str) -> &'a Record {
    records
        .iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("no record for {path}"))
}

#[test]
fn a_base_layer_keeps_every_windows_detail() {
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("base.tar");
    base_layer().write(&tar);
    assert_eq!(LayerStore::detect_os(&tar).unwrap(), "windows");
    let store = store(work.path());
    let image = store.import_tar(&tar, "win", "windows", None).unwrap();
    let chain_id = strata_storage::digest::parse_digest(&image.chain[0]).unwrap();
    let dir = store.layer_dir(&chain_id);
    assert!(dir.join("Files").is_dir() && dir.join("Hives").is_dir());
    assert_eq!(
        std::fs::read(dir.join("Files/Windows/win.ini")).unwrap(),
        b"[fonts]\r\n"
    );

    let records = read_sidecar(&dir).unwrap();
    let boot = record(&records, "Files/boot.ini");
    assert_eq!(boot.attributes, 39);
    assert_eq!(boot.security_descriptor.as_deref(), Some(RAWSD));
    assert_eq!(boot.creation_time.as_deref(), Some("1700000000.1234567"));
    assert_eq!(boot.eas["$KERNEL.PURGE.ESBCACHE"], "AAEC");
    assert!(
        boot.pax.iter().any(|(k, v)| k == "atime" && v == "1700000000.1234567"),
        "raw PAX records are kept"
    );
    let readme = record(&records, "Files/readme.txt");
    assert_eq!(readme.streams.len(), 1);
    assert_eq!(readme.streams[0].name, "Zone.Identifier");
    assert_eq!(
        std::fs::read(dir.join(&readme.streams[0].disk)).unwrap(),
        b"[ZoneTransfer]"
    );
    let link = record(&records, "Files/notepad.lnk");
    assert_eq!(
        (link.kind, link.target.as_deref()),
        (RecordKind::Symlink, Some("C:\\Windows\\notepad.exe"))
    );
    let junction = record(&records, "Files/Docs");
    assert_eq!(junction.kind, RecordKind::Junction);
    // Links are placeholders: nothing on disk points anywhere.
    assert!(
        !std::fs::symlink_metadata(dir.join("Files/notepad.lnk"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(std::fs::symlink_metadata(dir.join("Files/Docs")).unwrap().is_dir());
    // Names Linux cannot hold are escaped, the true name in the sidecar.
    let cjk = format!("Files/{}", "漢".repeat(255));
    let long = record(&records, &cjk);
    let disk = long.disk.as_deref().expect("escaped");
    assert!(disk.rsplit('/').next().unwrap().len() <= 255);
    assert_eq!(std::fs::read(dir.join(disk)).unwrap(), b"long");
    assert_eq!(record(&records, "Files/a*b").disk.as_deref(), Some("Files/a%2Ab"));

    let union = Union::open(&store, "win").unwrap();
    let mut expected: Vec<String> = [
        "/Dir",
        "/Docs",
        "/Windows",
        "/a*b",
        "/boot.ini",
        "/notepad.lnk",
        "/readme.txt",
        "/win-link.ini",
        "/été.txt",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    expected.push(format!("/{}", "漢".repeat(255)));
    expected.sort();
    assert_eq!(names(&union, "/"), expected);
    // Case-insensitive lookups, Windows separators, attributes shown.
    let (node, mut file) = union.open_file("C:\\WINDOWS\\WIN.INI").unwrap();
    let mut content = String::new();
    std::io::Read::read_to_string(&mut file, &mut content).unwrap();
    assert_eq!(content, "[fonts]\r\n");
    assert_eq!(node.attributes, Some(32));
    assert_eq!(union.stat("/boot.ini").unwrap().unwrap().mode_string(), "-arhs-");
    let docs = union.stat("/docs").unwrap().unwrap();
    assert_eq!(
        (docs.kind, docs.target.as_deref()),
        (NodeKind::Symlink, Some("C:\\Users\\Public"))
    );
    let hard = union.open_file("/win-link.ini").unwrap();
    assert_eq!(hard.0.size, 9);
}

#[test]
fn a_delta_layer_deletes_case_insensitively_and_links_across_layers() {
    let work = tempfile::tempdir().unwrap();
    let (base, delta) = (work.path().join("base.tar"), work.path().join("delta.tar"));
    base_layer().write(&base);
    delta_layer().write(&delta);
    let store = store(work.path());
    store.import_tar(&base, "base", "windows", None).unwrap();
    let image = store.import_tar(&delta, "top", "windows", Some("base")).unwrap();
    assert_eq!(image.chain.len(), 2);
    let top = store.layer_dir(&strata_storage::digest::parse_digest(&image.chain[1]).unwrap());
    assert_eq!(
        std::fs::read(top.join("Hives/Software_Delta")).unwrap(),
        b"regf",
        "hives verbatim"
    );
    let layerchain: serde_json::Value =
        serde_json::from_slice(&std::fs::read(top.join("layerchain.json")).unwrap()).unwrap();
    assert_eq!(layerchain.as_array().unwrap().len(), 1);

    let union = Union::open(&store, "top").unwrap();
    let listing = names(&union, "/");
    assert!(
        !listing.contains(&"/readme.txt".to_string()),
        ".wh.README.TXT deletes readme.txt: {listing:?}"
    );
    assert!(
        !listing.contains(&"/Dir".to_string()),
        "a whiteout hides a whole directory"
    );
    assert!(union.stat("/Dir/inner.txt").unwrap().is_none());
    assert!(
        listing.contains(&"/.WH.x".to_string()),
        "only `.wh.` is a whiteout prefix"
    );
    // The upper layer's entry replaces the lower one whatever the case, and names it.
    let win = union.list("/windows").unwrap();
    assert_eq!(
        win.iter().map(|n| n.path.as_str()).collect::<Vec<_>>(),
        ["/WINDOWS/System32", "/WINDOWS/WIN.INI"]
    );
    assert_eq!(win[1].layer, 1);
    // A hard link to a parent layer's file, named in another case.
    let (node, _) = union.open_file("/boot-link.ini").unwrap();
    assert_eq!(node.size, 4);
    assert_eq!(std::fs::read(top.join("Files/boot-link.ini")).unwrap(), b"boot");
    // The base image is unchanged.
    let base_union = Union::open(&store, "base").unwrap();
    assert!(base_union.stat("/readme.txt").unwrap().is_some());
}

/// Imports `layer` (over the base layer when `delta`) and expects an error mentioning `why`,
/// with no layer and no debris left.
fn refused(layer: Layer, delta: bool, why: &str) {
    let work = tempfile::tempdir().unwrap();
    let store = store(work.path());
    let parent = if delta {
        let base = work.path().join("base.tar");
        base_layer().write(&base);
        store.import_tar(&base, "base", "windows", None).unwrap();
        Some("base")
    } else {
        None
    };
    let before: Vec<_> = std::fs::read_dir(store.root())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let tar = work.path().join("bad.tar");
    layer.write(&tar);
    let err = store
        .import_tar(&tar, "bad", "windows", parent)
        .unwrap_err()
        .to_string();
    assert!(err.contains(why), "expected {why:?} in: {err}");
    let after: Vec<_> = std::fs::read_dir(store.root())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "no new layer");
    assert_eq!(
        std::fs::read_dir(store.root().join(".tmp")).unwrap().count(),
        0,
        "no debris"
    );
}

#[test]
fn imports_a_windows_host_would_refuse_are_refused() {
    refused(
        Layer::new()
            .dir("Files")
            .file("Files/A.txt", b"1")
            .file("Files/a.txt", b"2"),
        false,
        "differ only in case",
    );
    refused(
        Layer::new().dir("Files").whiteout("Files/.wh.x"),
        false,
        "base layer cannot have tombstones",
    );
    refused(
        Layer::new()
            .dir("Files")
            .file("Files/a.txt", b"1")
            .file("Files/b.txt", b"2")
            .entry("Files/a.txt:s", tar::EntryType::Regular, b"x", None, &[]),
        false,
        "must directly follow its owner",
    );
    refused(
        Layer::new().file("Other/x", b"1"),
        false,
        "under Files/, Hives/ or UtilityVM/",
    );
    refused(
        Layer::new().dir("Files").entry(
            "Files/x",
            tar::EntryType::Regular,
            b"",
            None,
            &[("MSWINDOWS.rawsd", "%%%")],
        ),
        false,
        "not base64",
    );
    refused(
        Layer::new().dir("Files").file("Files/deep/x", b"1"),
        false,
        "every parent directory",
    );
    refused(
        Layer::new()
            .dir("Files")
            .entry("Files/l", tar::EntryType::Link, &[], Some("Files/nowhere"), &[]),
        true,
        "failed to find link target",
    );
    refused(Layer::new().dir("Files").file("Files/../../etc/x", b"1"), true, "`..`");
    refused(
        Layer::new().dir("Hives").whiteout("Hives/.wh.System_Delta"),
        true,
        "invalid tombstone",
    );
}

#[test]
fn names_linux_cannot_hold_or_tell_apart_are_kept() {
    let work = tempfile::tempdir().unwrap();
    let mut layer = Layer::new().dir("Files");
    // 300 directories deep, then components long enough to pass Linux's PATH_MAX.
    let mut deep = "Files".to_owned();
    for _ in 0..300 {
        deep.push_str("/d");
        layer = layer.dir(&deep);
    }
    for i in 0..25 {
        deep.push_str(&format!("/{}{i:02}", "x".repeat(198)));
        layer = layer.dir(&deep);
    }
    let deep_file = format!("{deep}/bottom.txt");
    assert!(deep_file.len() > 4096);
    let layer = layer
        .file(&deep_file, b"deep")
        .file("Files/\u{e9}.txt", b"nfc")
        .file("Files/e\u{301}.txt", b"nfd")
        .file("Files/\u{df}.txt", b"sharp s")
        .file("Files/SS.txt", b"double s")
        .file("Files/\u{1f600}.txt", b"emoji");
    let tar = work.path().join("names.tar");
    layer.write(&tar);
    let store = store(work.path());
    store.import_tar(&tar, "names", "windows", None).unwrap();
    let union = Union::open(&store, "names").unwrap();
    let linux = work.path().join("linux.tar");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("etc/hostname").unwrap();
    h.set_size(0);
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    std::fs::write(&linux, b.into_inner().unwrap()).unwrap();
    assert_eq!(LayerStore::detect_os(&linux).unwrap(), "linux");
    let root = names(&union, "/");
    for n in [
        "/\u{e9}.txt",
        "/e\u{301}.txt",
        "/\u{df}.txt",
        "/SS.txt",
        "/\u{1f600}.txt",
    ] {
        assert!(root.contains(&n.to_string()), "{n} missing from {root:?}");
    }
    let read = |path: &str| {
        let (_, mut f) = union.open_file(path).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut f, &mut s).unwrap();
        s
    };
    assert_eq!(
        read("/e\u{301}.txt"),
        "nfd",
        "NTFS does not normalize: NFC and NFD are two files"
    );
    assert_eq!(read("/ss.txt"), "double s", "ß is not SS");
    assert_eq!(read(&deep_file["Files".len()..].to_uppercase()), "deep");
}

#[test]
fn metadata_is_kept_as_written() {
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("meta.tar");
    Layer::new()
        .dir("Files")
        .entry(
            "Files/sparse.bin",
            tar::EntryType::Regular,
            &[0; 64],
            None,
            &[("MSWINDOWS.fileattr", "544")],
        )
        .entry("Files/bare.txt", tar::EntryType::Regular, b"x", None, &[])
        .entry("Files/baredir", tar::EntryType::Directory, &[], None, &[])
        .entry(
            "Files/old.txt",
            tar::EntryType::Regular,
            b"x",
            None,
            &[
                ("LIBARCHIVE.creationtime", "1700000000.5"),
                ("mtime", "-1.5"),
                ("MSWINDOWS.sd", "O:BAG:BA"),
            ],
        )
        .write(&tar);
    let store = store(work.path());
    let image = store.import_tar(&tar, "meta", "windows", None).unwrap();
    let dir = store.layer_dir(&strata_storage::digest::parse_digest(&image.chain[0]).unwrap());
    let records = read_sidecar(&dir).unwrap();
    assert_eq!(record(&records, "Files/sparse.bin").attributes, 0x220);
    assert_eq!(
        std::fs::read(dir.join("Files/sparse.bin")).unwrap(),
        vec![0; 64],
        "sparse data is dense"
    );
    assert_eq!(
        record(&records, "Files/bare.txt").attributes,
        0,
        "no fileattr on a file: 0"
    );
    assert_eq!(
        record(&records, "Files/baredir").attributes,
        0x10,
        "no fileattr on a directory: DIRECTORY"
    );
    let old = record(&records, "Files/old.txt");
    assert_eq!(
        old.creation_time.as_deref(),
        Some("1700000000.5"),
        "BuildKit's unpadded time, not 'fixed'"
    );
    assert_eq!(old.sddl.as_deref(), Some("O:BAG:BA"));
    assert!(
        old.pax.contains(&("mtime".to_string(), "-1.5".to_string())),
        "{:?}",
        old.pax
    );
}

#[test]
fn delta_layer_shapes() {
    let work = tempfile::tempdir().unwrap();
    let store = store(work.path());
    let base = work.path().join("base.tar");
    base_layer().write(&base);
    store.import_tar(&base, "base", "windows", None).unwrap();
    let before: Vec<String> = Union::open(&store, "base")
        .unwrap()
        .walk()
        .unwrap()
        .into_iter()
        .map(|n| n.path)
        .collect();

    // Only the Files and Hives directory entries: a real layer that changes nothing.
    let empty = work.path().join("empty.tar");
    Layer::new().dir("Files").dir("Hives").write(&empty);
    let image = store.import_tar(&empty, "empty", "windows", Some("base")).unwrap();
    assert_eq!(image.chain.len(), 2);
    let after: Vec<String> = Union::open(&store, "empty")
        .unwrap()
        .walk()
        .unwrap()
        .into_iter()
        .map(|n| n.path)
        .collect();
    assert_eq!(before, after);

    // Opaque markers mean nothing on Windows; a re-cased directory merges; UtilityVM is kept
    // verbatim outside C:\; zstd is recognised.
    let delta = work.path().join("delta.tar");
    Layer::new()
        .dir("Files")
        .dir("Hives")
        .whiteout("Files/Dir/.wh..wh..opq")
        .file("Files/DIR/y.txt", b"y")
        .dir("UtilityVM")
        .dir("UtilityVM/Files")
        .file("UtilityVM/Files/vm.txt", b"vm")
        .write(&delta);
    let compressed = work.path().join("delta.tar.zst");
    std::fs::write(
        &compressed,
        zstd::encode_all(std::fs::read(&delta).unwrap().as_slice(), 3).unwrap(),
    )
    .unwrap();
    assert_eq!(LayerStore::detect_os(&compressed).unwrap(), "windows", "through zstd");
    let image = store.import_tar(&compressed, "delta", "windows", Some("base")).unwrap();
    let union = Union::open(&store, "delta").unwrap();
    assert_eq!(names(&union, "/dir"), ["/Dir/inner.txt", "/Dir/y.txt"]);
    assert!(union.stat("/vm.txt").unwrap().is_none());
    let top = store.layer_dir(&strata_storage::digest::parse_digest(&image.chain[1]).unwrap());
    assert_eq!(std::fs::read(top.join("UtilityVM/Files/vm.txt")).unwrap(), b"vm");
}

#[test]
fn links_streams_and_windows_reserved_names() {
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("links.tar");
    let link = |l: Layer, name: &str, target: &str, attr: &str| {
        l.entry(
            name,
            tar::EntryType::Symlink,
            &[],
            Some(target),
            &[("MSWINDOWS.fileattr", attr)],
        )
    };
    let mut layer = Layer::new().dir("Files").dir("Files/lib");
    layer = link(layer, "Files/rel.dll", "..\\lib\\x.dll", "1056");
    layer = link(layer, "Files/nt.exe", "\\\\?\\C:\\Windows\\notepad.exe", "1056");
    layer = link(layer, "Files/unc", "\\\\srv\\share", "1056");
    layer = link(layer, "Files/dirlink", "C:\\Windows", "1040");
    layer
        .file("Files/two.txt", b"two")
        .entry("Files/two.txt:one", tar::EntryType::Regular, b"1", None, &[])
        .entry("Files/two.txt:two:$DATA", tar::EntryType::Regular, b"22", None, &[])
        .dir("Files/withstream")
        .entry(
            "Files/withstream:meta",
            tar::EntryType::Regular,
            b"dir stream",
            None,
            &[],
        )
        .file("Files/con", b"device name")
        .file("Files/aux.txt", b"device name")
        .file("Files/trailing.", b"dot")
        .file("Files/tab\there", b"control")
        .write(&tar);
    let store = store(work.path());
    let image = store.import_tar(&tar, "links", "windows", None).unwrap();
    let dir = store.layer_dir(&strata_storage::digest::parse_digest(&image.chain[0]).unwrap());
    let records = read_sidecar(&dir).unwrap();
    for (path, target) in [
        ("Files/rel.dll", "..\\lib\\x.dll"),
        ("Files/nt.exe", "\\\\?\\C:\\Windows\\notepad.exe"),
        ("Files/unc", "\\\\srv\\share"),
        ("Files/dirlink", "C:\\Windows"),
    ] {
        let r = record(&records, path);
        assert_eq!(
            (r.kind, r.target.as_deref()),
            (RecordKind::Symlink, Some(target)),
            "{path}"
        );
    }
    assert!(
        std::fs::symlink_metadata(dir.join("Files/dirlink")).unwrap().is_dir(),
        "a directory link's placeholder"
    );
    let two = record(&records, "Files/two.txt");
    let streams: Vec<(&str, u64)> = two.streams.iter().map(|s| (s.name.as_str(), s.size)).collect();
    assert_eq!(streams, [("one", 1), ("two:$DATA", 2)], "both spellings, as written");
    assert_eq!(record(&records, "Files/withstream").streams[0].name, "meta");
    assert_eq!(
        record(&records, "Files/tab\there").disk.as_deref(),
        Some("Files/tab%09here")
    );
    let union = Union::open(&store, "links").unwrap();
    for name in ["/con", "/aux.txt", "/trailing.", "/tab\there"] {
        assert!(union.stat(name).unwrap().is_some(), "{name} is kept");
    }
    let listing = names(&union, "/");
    assert!(
        !listing.iter().any(|n| n.contains(':')),
        "streams are not entries: {listing:?}"
    );
}
