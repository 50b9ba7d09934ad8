//! `strata pull` into the layer store, `strata fs`, `strata layer import`, `strata rmi` and
//! `strata prune`, end to end: the `strata` binary against our registry (in process), with
//! `umoci unpack` (Debian `umoci`) as the reference for what an unpacked Linux image holds.
//!
//! Runs as root (umoci keeps owners, whiteouts are 0:0 character devices); CI does.

#[path = "peers/cli.rs"]
#[allow(dead_code)] // shared with the peers tests, which use all of it
mod cli;
mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use cli::{Strata, oci};
use serde_json::Value;
use strata_tests::local_registry;
use strata_tests::oci::{Entry, Image, OCI_MANIFEST, init_layout, write_image, write_index, write_layout};

/// busybox and its links, then a layer that deletes, replaces, hides and links.
fn busybox_layers() -> Vec<Vec<Entry>> {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (install busybox-static)");
    vec![
        vec![
            Entry::Dir("bin/"),
            Entry::File("bin/busybox", busybox, 0o755),
            Entry::Symlink("bin/sh", "busybox"),
            Entry::Symlink("bin/ls", "/bin/busybox"),
        ],
        vec![
            Entry::Dir("etc/"),
            Entry::File("etc/motd", b"hello\n".to_vec(), 0o644),
            Entry::File("etc/hostname", b"old\n".to_vec(), 0o644),
            Entry::Dir("opt/"),
            Entry::File("opt/old", b"hidden by an opaque directory\n".to_vec(), 0o644),
            Entry::Dir("var/"),
            Entry::Dir("var/cache/"),
            Entry::File("var/cache/big", vec![7; 300_000], 0o640),
        ],
        vec![
            Entry::File("etc/.wh.motd", Vec::new(), 0o644),
            Entry::File("etc/hostname", b"new\n".to_vec(), 0o600),
            Entry::File("opt/.wh..wh..opq", Vec::new(), 0o644),
            Entry::File("opt/new", b"only me\n".to_vec(), 0o644),
            Entry::File("usr-bin-su", b"#!/bin/sh\n".to_vec(), 0o4755),
            Entry::HardLink("usr-bin-su-link", "usr-bin-su"),
            Entry::File("var/.wh.cache", Vec::new(), 0o644),
        ],
    ]
}

/// One entry of a tree, as compared: path, type, mode, owner, size, content or link target.
type Tree = BTreeMap<String, (char, u32, u32, u32, u64, String)>;

/// A directory on the host as a [`Tree`].
fn host_tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let md = std::fs::symlink_metadata(&path).unwrap();
            let rel = format!("/{}", path.strip_prefix(root).unwrap().display());
            let (kind, size, what) = if md.is_dir() {
                todo.push(path.clone());
                ('d', 0, String::new())
            } else if md.file_type().is_symlink() {
                ('l', md.len(), std::fs::read_link(&path).unwrap().display().to_string())
            } else {
                (
                    '-',
                    md.len(),
                    strata_storage::digest::sha256(&std::fs::read(&path).unwrap()).to_string(),
                )
            };
            out.insert(
                rel,
                (kind, md.permissions().mode() & 0o7777, md.uid(), md.gid(), size, what),
            );
        }
    }
    out
}

/// What `strata fs ls -R` and `strata fs cat` show of an image, as a [`Tree`].
fn union_tree(strata: &Strata, image: &str) -> Tree {
    let nodes = strata.json(&["fs", "ls", "-R", image, "/"]);
    let mut out = Tree::new();
    for n in nodes.as_array().expect("an array of entries") {
        let path = n["path"].as_str().unwrap().to_owned();
        if path == "/" {
            continue;
        }
        let kind = match n["kind"].as_str().unwrap() {
            "dir" => 'd',
            "symlink" => 'l',
            "file" => '-',
            other => panic!("{path}: unexpected {other}"),
        };
        let what = match kind {
            'l' => n["target"].as_str().unwrap().to_owned(),
            '-' => {
                let content = strata.bytes(&["fs", "cat", image, &path]);
                strata_storage::digest::sha256(&content).to_string()
            }
            _ => String::new(),
        };
        let num = |k: &str| n[k].as_u64().unwrap();
        out.insert(
            path,
            (
                kind,
                num("mode") as u32,
                num("uid") as u32,
                num("gid") as u32,
                num("size"),
                what,
            ),
        );
    }
    out
}

/// The layer directories of the layer store (chain ids).
fn layer_dirs(strata: &Strata) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(strata.home().join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 64)
        .collect();
    dirs.sort();
    dirs
}

/// A header for a regular file of `size` bytes, every numeric field set.
fn file_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    header
}

fn push(strata: &Strata, src: &Path, reference: &str) -> Image {
    let image = write_layout(src, "v1", &busybox_layers());
    strata.ok(&["copy", &oci(src, "v1"), reference]);
    image
}

#[test]
fn a_pulled_image_unpacks_to_what_umoci_unpacks() {
    let (_rt, registry) = local_registry();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let src = work.path().join("src");
    let reference = format!("{}/lin/busybox:v1", registry.addr);
    let image = push(&strata, &src, &reference);

    strata.ok(&["pull", &reference]);
    let bundle = work.path().join("bundle");
    let umoci = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:v1", src.display()))
        .arg(&bundle)
        .output()
        .expect("run umoci (install umoci)");
    assert!(
        umoci.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&umoci.stderr)
    );

    let ours = union_tree(&strata, &reference);
    let theirs = host_tree(&bundle.join("rootfs"));
    assert_eq!(ours, theirs, "strata's union differs from umoci's rootfs");
    // The cases the image exercises really are there.
    assert!(!ours.contains_key("/etc/motd") && !ours.contains_key("/opt/old") && !ours.contains_key("/var/cache"));
    assert_eq!(ours["/etc/hostname"].1, 0o600);
    assert_eq!(ours["/usr-bin-su"].1, 0o4755);
    assert_eq!(strata.ok(&["fs", "cat", &reference, "/opt/new"]), "only me\n");
    // Symbolic links are followed inside the image, never on the host.
    let through_link = strata.bytes(&["fs", "cat", &reference, "/bin/ls"]);
    assert_eq!(through_link, std::fs::read("/bin/busybox").unwrap());

    // One directory per layer, named by chain id, with the Windows-style metadata files.
    let dirs = layer_dirs(&strata);
    assert_eq!(dirs.len(), 3, "{dirs:?}");
    let layers = strata.json(&["layer", "ls"]);
    let chain: Vec<String> = layers[0]["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let top = strata
        .home()
        .join("layers")
        .join(chain[2].trim_start_matches("sha256:"));
    let layerchain: Value = serde_json::from_slice(&std::fs::read(top.join("layerchain.json")).unwrap()).unwrap();
    let expected: Vec<String> = chain[..2]
        .iter()
        .rev()
        .map(|c| {
            strata
                .home()
                .join("layers")
                .join(c.trim_start_matches("sha256:"))
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(layerchain, serde_json::json!(expected), "nearest parent first");
    let base = strata
        .home()
        .join("layers")
        .join(chain[0].trim_start_matches("sha256:"));
    let base_chain: Value = serde_json::from_slice(&std::fs::read(base.join("layerchain.json")).unwrap()).unwrap();
    assert_eq!(base_chain, Value::Null, "a base layer's chain is null");
    let info: Value = serde_json::from_slice(&std::fs::read(top.join("layer.json")).unwrap()).unwrap();
    assert_eq!(info["digest"], image.layers[2].to_string().as_str());
    assert_eq!(info["parent"], chain[1].as_str());
    assert_eq!(info["os"], "linux");
}

#[test]
fn pulled_images_push_back_byte_for_byte_and_rmi_frees_only_unshared_layers() {
    let (_rt, registry) = local_registry();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let reference = format!("{}/lin/busybox:v1", registry.addr);
    let image = push(&strata, &work.path().join("src"), &reference);
    strata.ok(&["pull", &reference]);

    // Pull -> push to another repository: the same manifest and blobs.
    let copy = format!("{}/other/busybox:v2", registry.addr);
    let pushed = strata.json(&["push", &reference, &copy]);
    assert_eq!(pushed["digest"], image.manifest.to_string().as_str());
    let manifest = strata.json(&["inspect", "--raw", &copy]);
    let layers: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = image.layers.iter().map(|d| d.to_string()).collect();
    assert_eq!(layers, expected);

    // A second image sharing the first two layers.
    let extra = work.path().join("extra.tar");
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_data(&mut file_header(3), "extra", &b"abc"[..]).unwrap();
    std::fs::write(&extra, tar.into_inner().unwrap()).unwrap();
    let chain_id = strata.ok(&[
        "layer",
        "import",
        extra.to_str().unwrap(),
        "--name",
        "mine",
        "--parent",
        &reference,
    ]);
    assert_eq!(layer_dirs(&strata).len(), 4);
    assert!(layer_dirs(&strata).contains(&chain_id.trim().trim_start_matches("sha256:").to_owned()));
    assert_eq!(strata.ok(&["fs", "cat", "mine", "/extra"]), "abc");
    assert_eq!(strata.ok(&["fs", "cat", "mine", "/opt/new"]), "only me\n");

    // Removing the pulled image keeps the layers "mine" still uses.
    strata.ok(&["rmi", &reference]);
    assert_eq!(layer_dirs(&strata).len(), 4, "every layer is still used by mine");
    strata.ok(&["rmi", "mine"]);
    assert!(layer_dirs(&strata).is_empty(), "{:?}", layer_dirs(&strata));
    let run = strata.run(&["fs", "ls", "mine"]);
    assert_eq!(run.code, 3, "{run:?}");
}

#[test]
fn a_layer_that_does_not_unpack_leaves_no_layer_and_no_debris() {
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let evil = work.path().join("evil.tar");
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_data(&mut file_header(2), "ok", &b"ok"[..]).unwrap();
    let mut link = file_header(0);
    link.set_entry_type(tar::EntryType::Symlink);
    tar.append_link(&mut link, "escape", "/tmp").unwrap();
    let mut header = file_header(2);
    // Through the link: refused.
    let name = b"escape/strata-evil";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_cksum();
    tar.append(&header, &b"no"[..]).unwrap();
    std::fs::write(&evil, tar.into_inner().unwrap()).unwrap();

    let run = strata.run(&["layer", "import", evil.to_str().unwrap(), "--name", "evil"]);
    assert_eq!(run.code, 6, "a refused layer, not an integrity failure: {run:?}");
    assert!(run.stderr.contains("is refused"), "{}", run.stderr);
    assert!(
        run.stderr.contains("escape/strata-evil"),
        "the error names the entry: {}",
        run.stderr
    );
    assert!(!Path::new("/tmp/strata-evil").exists());
    assert!(layer_dirs(&strata).is_empty());
    let tmp = strata.home().join("layers/.tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "debris in {}",
        tmp.display()
    );
    assert_eq!(strata.run(&["fs", "ls", "evil"]).code, 3);
    assert!(
        !strata.ok(&["images"]).contains("evil"),
        "a refused import names no image"
    );
}

#[test]
fn a_pulled_windows_image_unpacks_into_windows_layers() {
    let (_rt, registry) = local_registry();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let src = work.path().join("win");
    init_layout(&src);
    let platform = serde_json::json!({ "os": "windows", "architecture": "amd64", "os.version": "10.0.20348.2113" });
    let layers = vec![
        vec![
            Entry::Dir("Files/"),
            Entry::Dir("Files/Windows/"),
            Entry::File("Files/Windows/win.ini", b"[fonts]\r\n".to_vec(), 0o644),
            Entry::File("Files/readme.txt", b"read me".to_vec(), 0o644),
        ],
        vec![
            Entry::Dir("Files/"),
            Entry::Dir("Hives/"),
            Entry::File("Hives/Software_Delta", b"regf".to_vec(), 0o644),
            Entry::File("Files/.wh.README.TXT", Vec::new(), 0o644),
            Entry::File("Files/WINDOWS/new.txt", b"new".to_vec(), 0o644),
        ],
    ];
    let (image, manifest) = write_image(&src, &platform, &layers);
    write_index(&src, &[("v1", OCI_MANIFEST, image.manifest, manifest.len())]);
    let reference = format!("{}/win/app:v1", registry.addr);
    strata.ok(&["copy", &oci(&src, "v1"), &reference]);

    strata.ok(&["pull", "--platform", "windows/amd64", &reference]);
    let listing = strata.json(&["fs", "ls", &reference, "/"]);
    let names: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["path"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/Windows"], "readme.txt is deleted by .wh.README.TXT");
    let windows = strata.json(&["fs", "ls", &reference, "c:\\windows"]);
    let entries: Vec<(&str, u64)> = windows
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["path"].as_str().unwrap(), n["attributes"].as_u64().unwrap()))
        .collect();
    assert_eq!(entries, [("/Windows/new.txt", 0), ("/Windows/win.ini", 0)]);
    assert_eq!(
        strata.ok(&["fs", "cat", &reference, "C:\\WINDOWS\\WIN.INI"]),
        "[fonts]\r\n"
    );
    let text = strata.ok(&["fs", "ls", &reference, "/windows"]);
    assert!(
        text.lines().all(|l| l.starts_with("------")),
        "attribute column:\n{text}"
    );
    let layers = strata.json(&["layer", "ls"]);
    assert_eq!(layers[0]["os"], "windows");
    let top = strata
        .home()
        .join("layers")
        .join(layers[0]["chain"][1].as_str().unwrap().trim_start_matches("sha256:"));
    assert_eq!(std::fs::read(top.join("Hives/Software_Delta")).unwrap(), b"regf");
    assert!(top.join("windows.jsonl").is_file());
}

/// Every entry of `dir` (recursively), for debris checks; none if it does not exist.
fn entries_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path.clone());
            }
            out.push(path.display().to_string());
        }
    }
    out
}

#[test]
fn concurrent_pulls_of_overlapping_images_beside_a_prune_loop_all_succeed_and_fetch_each_blob_once() {
    let (rt, registry) = local_registry();
    let work = tempfile::tempdir().unwrap();
    let pusher = Strata::new(&work.path().join("pusher"));
    // Three images: the second shares two layers with the first, the third one.
    let full = busybox_layers();
    let mut second = full[..2].to_vec();
    second.push(vec![Entry::File("second", b"2\n".to_vec(), 0o644)]);
    let third = vec![full[0].clone(), vec![Entry::File("third", b"3\n".to_vec(), 0o644)]];
    let names = ["first", "second", "third"];
    let mut images = Vec::new();
    for (name, layers) in names.iter().zip([full, second, third]) {
        let src = work.path().join(name);
        images.push(write_layout(&src, "v1", &layers));
        let reference = format!("{}/overlap/{name}:v1", registry.addr);
        pusher.ok(&["copy", &oci(&src, "v1"), &reference]);
    }
    // Pulls go through a proxy that logs blob downloads and slows them, so they overlap.
    let proxy = rt.block_on(common::proxy::Proxy::start(registry.addr));
    proxy.set(common::proxy::Rules {
        throttle_downloads: Some(1 << 20),
        ..Default::default()
    });

    let strata = Strata::new(work.path());
    let done = std::sync::atomic::AtomicBool::new(false);
    let (pulls, prunes) = std::thread::scope(|scope| {
        let pruner = scope.spawn(|| {
            let mut runs = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                runs.push(strata.run(&["prune"]));
            }
            runs
        });
        let pullers: Vec<_> = (0..8)
            .map(|i| {
                let reference = format!("{}/overlap/{}:v1", proxy.addr, names[i % 3]);
                let strata = &strata;
                scope.spawn(move || (reference.clone(), strata.run(&["pull", &reference])))
            })
            .collect();
        let pulls: Vec<_> = pullers.into_iter().map(|p| p.join().unwrap()).collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (pulls, pruner.join().unwrap())
    });
    for (reference, run) in &pulls {
        assert_eq!(run.code, 0, "pull {reference}: {run:?}");
    }
    assert!(!prunes.is_empty());
    for run in &prunes {
        assert_eq!(run.code, 0, "prune: {run:?}");
    }

    // Every image is intact.
    for name in names {
        let reference = format!("{}/overlap/{name}:v1", proxy.addr);
        assert!(!strata.ok(&["fs", "cat", &reference, "/bin/busybox"]).is_empty());
    }
    let first = format!("{}/overlap/first:v1", proxy.addr);
    assert_eq!(strata.ok(&["fs", "cat", &first, "/etc/hostname"]), "new\n");
    let second = format!("{}/overlap/second:v1", proxy.addr);
    assert_eq!(strata.ok(&["fs", "cat", &second, "/second"]), "2\n");
    assert_eq!(strata.ok(&["fs", "cat", &second, "/etc/hostname"]), "old\n");
    let third = format!("{}/overlap/third:v1", proxy.addr);
    assert_eq!(strata.ok(&["fs", "cat", &third, "/third"]), "3\n");
    assert_eq!(
        layer_dirs(&strata).len(),
        3 + 1 + 1,
        "chains: three, one more, one more"
    );

    // Each blob was downloaded once, however many pulls needed it.
    let mut gets: BTreeMap<String, usize> = BTreeMap::new();
    for seen in proxy.log() {
        if seen.method == "GET" && seen.uri.contains("/blobs/sha256:") && seen.status < 300 {
            let digest = seen.uri.rsplit('/').next().unwrap().to_owned();
            *gets.entry(digest).or_default() += 1;
        }
    }
    let mut wanted: Vec<String> = images
        .iter()
        .flat_map(|i| i.layers.iter().chain([&i.config]).map(|d| d.to_string()))
        .collect();
    wanted.sort();
    wanted.dedup();
    assert_eq!(gets.keys().cloned().collect::<Vec<_>>(), wanted);
    assert!(gets.values().all(|&n| n == 1), "downloads per blob: {gets:?}");

    // No debris: nothing half-written, no download session, no lock left after a prune.
    strata.ok(&["prune"]);
    for dir in [
        strata.store().join(".tmp"),
        strata.store().join("_uploads"),
        strata.store().join(".locks"),
        strata.home().join("layers/.tmp"),
        strata.home().join("layers/.locks"),
        strata.home().join("tmp"),
    ] {
        assert_eq!(entries_under(&dir), Vec::<String>::new(), "debris in {}", dir.display());
    }
    drop(proxy);
    drop(rt);
}
