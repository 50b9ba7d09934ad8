//! `strata reg` end to end: a Windows image whose base layer has a SOFTWARE hive and whose three
//! layers above carry delta hives (`strata_hive::testing::scenario`) is pushed, pulled and
//! queried (merged, recursive, as of a layer, JSON), diffed against itself at another layer;
//! then a container of it is edited with `reg set` / `reg delete`, committed (the commit
//! carries `Hives/SOFTWARE_Delta`), pushed, pulled into another home, and queried there.

#[path = "peers/cli.rs"]
#[allow(dead_code)] // shared with the peers tests, which use all of it
mod cli;

use cli::{Strata, oci};
use serde_json::Value;
use strata_hive::testing::scenario;
use strata_hive::{WriteOptions, write};
use strata_tests::local_registry;
use strata_tests::oci::{Entry, OCI_MANIFEST, init_layout, write_image, write_index};

fn hive(key: &strata_hive::Key, layered: bool) -> Vec<u8> {
    let options = WriteOptions {
        layered,
        file_name: "SOFTWARE".into(),
        timestamp: 133_000_000_000_000_000,
    };
    write(key, &options).unwrap()
}

/// The value lines of `key` in `reg query` output: (name, type, data).
fn values_of(text: &str, key: &str) -> Vec<(String, String, String)> {
    let mut lines = text.lines().skip_while(|l| *l != key).skip(1);
    let mut out = Vec::new();
    while let Some(line) = lines.next().filter(|l| l.starts_with("    ")) {
        let parts: Vec<&str> = line.trim_start().splitn(3, "    ").collect();
        out.push((
            parts[0].to_owned(),
            parts[1].to_owned(),
            parts.get(2).unwrap_or(&"").to_string(),
        ));
    }
    out
}

fn triple(name: &str, kind: &str, data: &str) -> (String, String, String) {
    (name.into(), kind.into(), data.into())
}

#[test]
fn the_registry_of_windows_layers_is_merged_edited_committed_and_travels() {
    let (_rt, registry) = local_registry();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(&work.path().join("a"));
    let src = work.path().join("win");
    init_layout(&src);
    let (base, deltas) = scenario();
    let delta = |i: usize| {
        vec![
            Entry::Dir("Files/"),
            Entry::Dir("Hives/"),
            Entry::File("Hives/SOFTWARE_Delta", hive(&deltas[i], true), 0o644),
        ]
    };
    let layers = vec![
        vec![
            Entry::Dir("Files/"),
            Entry::Dir("Files/Windows/"),
            Entry::Dir("Files/Windows/System32/"),
            Entry::Dir("Files/Windows/System32/config/"),
            // Any case: Windows names are compared without it.
            Entry::File("Files/Windows/System32/config/software", hive(&base, false), 0o644),
        ],
        delta(0),
        delta(1),
        delta(2),
    ];
    let platform = serde_json::json!({ "os": "windows", "architecture": "amd64", "os.version": "10.0.20348.2113" });
    let (image, manifest) = write_image(&src, &platform, &layers);
    write_index(&src, &[("v1", OCI_MANIFEST, image.manifest, manifest.len())]);
    let reference = format!("{}/win/reg:v1", registry.addr);
    strata.ok(&["copy", &oci(&src, "v1"), &reference]);
    strata.ok(&["pull", "--platform", "windows/amd64", &reference]);

    // The merged registry.
    let app = strata.ok(&["reg", "query", &reference, "HKLM\\SOFTWARE\\Vendor\\App"]);
    assert_eq!(
        values_of(&app, "HKLM\\SOFTWARE\\Vendor\\App"),
        [
            triple("Count", "REG_DWORD", "0x1"),
            triple("New", "REG_QWORD", "0x1122334455667788"),
            triple("Version", "REG_SZ", "3.0"),
        ]
    );
    let root = strata.ok(&["reg", "query", &reference, "hklm\\software"]);
    assert!(
        root.contains("HKLM\\SOFTWARE\\Tree\n") && !root.contains("HKLM\\SOFTWARE\\Old"),
        "{root}"
    );
    let tree = strata.ok(&["reg", "query", "-r", &reference, "HKLM\\SOFTWARE\\Tree"]);
    assert_eq!(
        tree.matches("HKLM\\SOFTWARE\\Tree").count(),
        2,
        "Tree and Tree\\A only:\n{tree}"
    );
    let local = strata.ok(&["reg", "query", "-r", &reference, "HKLM\\SOFTWARE\\КЛЮЧ"]);
    assert_eq!(
        values_of(&local, "HKLM\\SOFTWARE\\КЛЮЧ"),
        [triple("Имя", "REG_SZ", "новое")]
    );
    let json = strata.json(&["reg", "query", &reference, "HKLM\\SOFTWARE\\Classy"]);
    assert_eq!(json["class"], "DeltaClass");
    assert_eq!(json["values"], Value::Array(vec![]));
    // As of layer 1 (the base and the first delta).
    let then = strata.ok(&[
        "reg",
        "query",
        "--layer",
        "1",
        &reference,
        "HKLM\\SOFTWARE\\Vendor\\App",
    ]);
    assert!(values_of(&then, "HKLM\\SOFTWARE\\Vendor\\App").contains(&triple("Version", "REG_SZ", "2.0")));
    let missing = strata.run(&["reg", "query", &reference, "HKLM\\SOFTWARE\\Vendor\\Old\\Deep"]);
    assert_eq!(
        (missing.code, missing.stderr.trim().lines().count()),
        (3, 1),
        "{}",
        missing.stderr
    );
    let no_hive = strata.run(&["reg", "query", &reference, "HKLM\\SYSTEM"]);
    assert!(no_hive.stderr.contains("no such hive"), "{}", no_hive.stderr);

    // A container: set, change, delete, then commit.
    strata.ok(&["create", "--name", "win", &reference]);
    strata.ok(&[
        "reg",
        "set",
        "win",
        "HKLM\\SOFTWARE\\Vendor\\App",
        "Version",
        "REG_SZ",
        "4.0",
    ]);
    strata.ok(&[
        "reg",
        "set",
        "win",
        "HKLM\\SOFTWARE\\New\\Deeper",
        "Answer",
        "REG_DWORD",
        "42",
    ]);
    strata.ok(&[
        "reg",
        "set",
        "win",
        "HKLM\\SOFTWARE\\New\\Deeper",
        "List",
        "REG_MULTI_SZ",
        "x\\0y",
    ]);
    strata.ok(&["reg", "delete", "win", "HKLM\\SOFTWARE\\Vendor\\App", "/v", "count"]);
    strata.ok(&["reg", "delete", "win", "HKLM\\SOFTWARE\\Local"]);
    // Deleted, then made again: nothing of the image's key comes back.
    strata.ok(&["reg", "delete", "win", "HKLM\\SOFTWARE\\Tree"]);
    strata.ok(&["reg", "set", "win", "HKLM\\SOFTWARE\\Tree", "Fresh", "REG_SZ", "yes"]);
    let bad = strata.run(&["reg", "delete", "win", "HKLM\\SOFTWARE\\Nope"]);
    assert_eq!(bad.code, 3, "{}", bad.stderr);
    let bad = strata.run(&["reg", "set", "win", "HKLM\\SOFTWARE\\X", "v", "REG_DWORD", "lots"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("not a number"), "{}", bad.stderr);
    let on_image = strata.run(&["reg", "set", &reference, "HKLM\\SOFTWARE\\X", "v", "REG_SZ", "x"]);
    assert!(on_image.stderr.contains("is an image"), "{}", on_image.stderr);

    // Deleted, made again, deleted again: gone, and the image's key stays hidden.
    strata.ok(&["create", "--name", "win2", &reference]);
    strata.ok(&["reg", "delete", "win2", "HKLM\\SOFTWARE\\Tree"]);
    strata.ok(&["reg", "set", "win2", "HKLM\\SOFTWARE\\Tree", "v", "REG_SZ", "x"]);
    strata.ok(&["reg", "delete", "win2", "HKLM\\SOFTWARE\\Tree"]);
    assert_eq!(strata.run(&["reg", "query", "win2", "HKLM\\SOFTWARE\\Tree"]).code, 3);
    // A value only the container set is removed; one from the image is hidden.
    strata.ok(&["reg", "set", "win2", "HKLM\\SOFTWARE\\Added", "mine", "REG_SZ", "x"]);
    strata.ok(&["reg", "delete", "win2", "HKLM\\SOFTWARE\\Added", "--value", "mine"]);
    strata.ok(&["reg", "delete", "win2", "HKLM\\SOFTWARE\\Added", "/v", "V"]);
    let added = strata.ok(&["reg", "query", "win2", "HKLM\\SOFTWARE\\Added"]);
    assert!(values_of(&added, "HKLM\\SOFTWARE\\Added").is_empty(), "{added}");
    strata.ok(&["rm", "win2"]);

    let check = |strata: &Strata, target: &str| {
        let app = strata.ok(&["reg", "query", target, "HKLM\\SOFTWARE\\Vendor\\App"]);
        assert_eq!(
            values_of(&app, "HKLM\\SOFTWARE\\Vendor\\App"),
            [
                triple("New", "REG_QWORD", "0x1122334455667788"),
                triple("Version", "REG_SZ", "4.0")
            ]
        );
        let new = strata.ok(&["reg", "query", target, "HKLM\\SOFTWARE\\New\\Deeper"]);
        assert_eq!(
            values_of(&new, "HKLM\\SOFTWARE\\New\\Deeper"),
            [
                triple("Answer", "REG_DWORD", "0x2a"),
                triple("List", "REG_MULTI_SZ", "x\\0y")
            ]
        );
        assert_eq!(strata.run(&["reg", "query", target, "HKLM\\SOFTWARE\\Local"]).code, 3);
        let tree = strata.ok(&["reg", "query", "-r", target, "HKLM\\SOFTWARE\\Tree"]);
        assert_eq!(
            values_of(&tree, "HKLM\\SOFTWARE\\Tree"),
            [triple("Fresh", "REG_SZ", "yes")]
        );
        assert_eq!(tree.matches("HKLM\\SOFTWARE\\Tree").count(), 1, "{tree}");
    };
    check(&strata, "win");

    let committed = format!("{}/win/reg:v2", registry.addr);
    strata.ok(&["commit", "-m", "registry edits", "win", &committed]);
    check(&strata, &committed);
    let diff = strata.ok(&["reg", "diff", &reference, &committed]);
    for line in [
        "~ HKLM\\SOFTWARE\\Vendor\\App  Version  REG_SZ  3.0 -> REG_SZ  4.0",
        "- HKLM\\SOFTWARE\\Vendor\\App  Count  REG_DWORD  0x1",
        "+ HKLM\\SOFTWARE\\New\\Deeper",
        "+ HKLM\\SOFTWARE\\New\\Deeper  Answer  REG_DWORD  0x2a",
        "- HKLM\\SOFTWARE\\Local",
        "- HKLM\\SOFTWARE\\Tree\\A",
    ] {
        assert!(diff.lines().any(|l| l == line), "{line} in\n{diff}");
    }
    assert_eq!(strata.ok(&["reg", "diff", &committed, &committed]), "");

    // Pushed and pulled into another home: the change travels with the layer.
    strata.ok(&["push", &committed]);
    let elsewhere = Strata::new(&work.path().join("b"));
    elsewhere.ok(&["pull", "--platform", "windows/amd64", &committed]);
    check(&elsewhere, &committed);
    elsewhere.ok(&["pull", "--platform", "windows/amd64", &reference]);
    let changes = elsewhere.json(&["reg", "diff", &reference, &committed, "HKLM\\SOFTWARE\\New"]);
    assert_eq!(
        changes[0],
        serde_json::json!({ "change": "key-added", "key": "HKLM\\SOFTWARE\\New" })
    );
    assert_eq!(changes[2]["value"]["data"], 42);
}
