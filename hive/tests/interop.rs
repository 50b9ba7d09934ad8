//! Independent parsers read every hive we write, and we agree with them on hives they write:
//! Debian's hivex (`hivexregedit --export`, `hivexsh`, packages libhivex-bin and
//! libwin-hivex-perl) and Python's regipy (PyPI). `scripts/test` installs them; a missing tool
//! fails these tests rather than skipping them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_hive::data::{JsonData, to_json, type_name};
use strata_hive::testing::{binary, dword, key, multi, qword, scenario, sz};
use strata_hive::{Hive, Key, WriteOptions, write};

/// (key path below the root, value: name, type, data), or a key alone (value `None`).
type Entry = (String, Option<(String, u32, Vec<u8>)>);

fn need(program: &str) -> &str {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "{program} is not installed: run scripts/test, which installs it");
    program
}

/// The Python that has regipy: `STRATA_TEST_PYTHON`, the venv `scripts/test` makes, or
/// `python3`.
fn python() -> String {
    let candidates = [
        std::env::var("STRATA_TEST_PYTHON").ok(),
        Some("/opt/strata-test-venv/bin/python".to_owned()),
        Some("python3".to_owned()),
    ];
    for python in candidates.into_iter().flatten() {
        let ok = Command::new(&python)
            .args(["-c", "import regipy"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return python;
        }
    }
    panic!("no Python with regipy: run scripts/test, which installs it in /opt/strata-test-venv");
}

fn flatten(key: &Key, path: &str, out: &mut BTreeSet<Entry>) {
    out.insert((path.to_owned(), None));
    for v in &key.values {
        // What a reader without layered keys sees of a tombstone: REG_NONE, no data.
        out.insert((path.to_owned(), Some((v.name.clone(), v.kind, v.data.clone()))));
    }
    for k in &key.subkeys {
        let child = if path.is_empty() {
            k.name.clone()
        } else {
            format!("{path}\\{}", k.name)
        };
        flatten(k, &child, out);
    }
}

fn ours(file: &Path) -> BTreeSet<Entry> {
    let hive = Hive::parse(std::fs::read(file).unwrap()).unwrap();
    let mut out = BTreeSet::new();
    flatten(&Key::load(&hive.root().unwrap()).unwrap(), "", &mut out);
    out
}

fn hex_bytes(text: &str) -> Vec<u8> {
    text.split(',')
        .filter(|b| !b.is_empty())
        .map(|b| u8::from_str_radix(b.trim(), 16).unwrap())
        .collect()
}

/// A quoted `.reg` name and the rest of the line after its `=`.
fn reg_name(line: &str) -> (String, &str) {
    if let Some(rest) = line.strip_prefix("@=") {
        return (String::new(), rest);
    }
    let mut name = String::new();
    let mut chars = line[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => name.push(chars.next().unwrap().1),
            '"' => return (name, &line[i + 3..]),
            c => name.push(c),
        }
    }
    panic!("unterminated name: {line}");
}

fn hivex(file: &Path) -> BTreeSet<Entry> {
    let output = Command::new(need("hivexregedit"))
        .args(["--export", "--prefix", "P"])
        .arg(file)
        .arg("\\")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    let mut out = BTreeSet::new();
    let mut path = String::new();
    for line in text.lines() {
        if let Some(key) = line.strip_prefix("[P\\").and_then(|l| l.strip_suffix(']')) {
            path = key.to_owned();
            out.insert((path.clone(), None));
        } else if line.starts_with('"') || line.starts_with('@') {
            let (name, value) = reg_name(line);
            let (kind, data) = if let Some(d) = value.strip_prefix("dword:") {
                (4, u32::from_str_radix(d, 16).unwrap().to_le_bytes().to_vec())
            } else if let Some(rest) = value.strip_prefix("hex(") {
                let (kind, bytes) = rest.split_once("):").unwrap();
                (u32::from_str_radix(kind, 16).unwrap(), hex_bytes(bytes))
            } else if let Some(bytes) = value.strip_prefix("hex:") {
                (3, hex_bytes(bytes))
            } else {
                panic!("unexpected value line: {line}");
            };
            out.insert((path.clone(), Some((name, kind, data))));
        }
    }
    out
}

const REGIPY: &str = r#"
import json, sys
from regipy.registry import RegistryHive
def walk(nk, path, out):
    values = []
    if nk.values_count:
        for v in nk.iter_values(as_json=True, trim_values=False):
            values.append({"name": "" if v.name == "(default)" else v.name, "type": v.value_type, "value": v.value.hex() if isinstance(v.value, bytes) else v.value})
    out.append({"path": path, "values": values})
    if nk.subkey_count:
        for sk in nk.iter_subkeys():
            walk(sk, sk.name if not path else path + "\\" + sk.name, out)
out = []
walk(RegistryHive(sys.argv[1]).root, "", out)
print(json.dumps(out, default=str))
"#;

/// Each key's values as regipy decodes them: path → name → (type, value).
fn regipy(file: &Path) -> BTreeSet<(String, String, String, String)> {
    let output = Command::new(python()).args(["-c", REGIPY]).arg(file).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let keys: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut out = BTreeSet::new();
    for key in keys.as_array().unwrap() {
        let path = key["path"].as_str().unwrap().to_owned();
        out.insert((path.clone(), String::new(), String::new(), String::new()));
        for v in key["values"].as_array().unwrap() {
            let kind = v["type"].as_str().unwrap().to_owned();
            let value = if kind == "REG_NONE" {
                String::new()
            } else {
                normal(&v["value"])
            };
            out.insert((path.clone(), v["name"].as_str().unwrap().to_owned(), kind, value));
        }
    }
    out
}

/// A JSON value as comparable text (hex in lower case).
fn normal(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.to_lowercase(),
        other => other.to_string().to_lowercase(),
    }
}

/// Our view in regipy's terms.
fn ours_decoded(file: &Path) -> BTreeSet<(String, String, String, String)> {
    ours(file)
        .into_iter()
        .map(|(path, value)| match value {
            None => (path, String::new(), String::new(), String::new()),
            Some((name, kind, data)) => {
                let value = match to_json(kind, &data) {
                    _ if kind == 0 => String::new(),
                    JsonData::String(s) => s.to_lowercase(),
                    JsonData::Strings(list) => serde_json::to_string(&list).unwrap().to_lowercase(),
                    JsonData::Number(n) => n.to_string(),
                };
                (path, name, type_name(kind), value)
            }
        })
        .collect()
}

fn written(dir: &Path) -> Vec<PathBuf> {
    let (base, deltas) = scenario();
    let many: Vec<Key> = (0..700u32)
        .map(|i| key(&format!("k{i}"), vec![dword("i", i)], vec![]))
        .collect();
    let wide = key(
        "ROOT",
        vec![
            multi("multi", &["x", "鍵"]),
            qword("q", u64::MAX),
            binary("big", 50_000, 3),
            sz("", "default"),
        ],
        many,
    );
    let mut files = Vec::new();
    for (i, (hive, layered)) in [
        (base, false),
        (deltas[0].clone(), true),
        (deltas[1].clone(), true),
        (deltas[2].clone(), true),
        (wide, false),
    ]
    .into_iter()
    .enumerate()
    {
        let options = WriteOptions {
            layered,
            file_name: format!("hive{i}"),
            timestamp: 133_000_000_000_000_000,
        };
        let path = dir.join(format!("hive{i}"));
        std::fs::write(&path, write(&hive, &options).unwrap()).unwrap();
        files.push(path);
    }
    files
}

#[test]
fn hivex_reads_every_hive_we_write_as_we_do() {
    let dir = tempfile::tempdir().unwrap();
    for file in written(dir.path()) {
        let (theirs, mine) = (hivex(&file), ours(&file));
        assert!(mine.len() > 2, "{}", file.display());
        assert!(theirs == mine, "{}: hivex and strata disagree", file.display());
        // hivexsh opens it too, and lists the root's subkeys.
        let script = dir.path().join("ls.hivexsh");
        std::fs::write(&script, "ls\n").unwrap();
        let output = Command::new(need("hivexsh"))
            .arg("-f")
            .arg(&script)
            .arg(&file)
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && listed.lines().count() > 2,
            "hivexsh on {}: {listed}",
            file.display()
        );
    }
}

#[test]
fn regipy_reads_every_hive_we_write_as_we_do() {
    let dir = tempfile::tempdir().unwrap();
    for file in written(dir.path()) {
        let (theirs, mine) = (regipy(&file), ours_decoded(&file));
        let only_theirs: Vec<_> = theirs.difference(&mine).take(5).collect();
        let only_mine: Vec<_> = mine.difference(&theirs).take(5).collect();
        assert!(
            only_theirs.is_empty() && only_mine.is_empty(),
            "{}: regipy only {only_theirs:?}; strata only {only_mine:?}",
            file.display()
        );
    }
}

#[test]
fn we_read_what_hivex_writes_as_hivex_and_regipy_do() {
    let dir = tempfile::tempdir().unwrap();
    let base = &written(dir.path())[0];
    let by_hivex = dir.path().join("by-hivex");
    let script = format!(
        "cd \\Vendor\\App\nsetval 3\nAdded\nstring:hivex wrote this\nNum\ndword:0x2a\nQ\nqword:0x1122334455667788\n\
         cd \\\nadd HivexKey\ncd HivexKey\nsetval 2\nbin\nhex:3:01,02,03\nlist\nhex:7:61,00,00,00,62,00,00,00,00,00\n\
         cd \\Tree\ndel\ncommit {}\n",
        by_hivex.display()
    );
    let copy = dir.path().join("copy");
    std::fs::copy(base, &copy).unwrap();
    let script_file = dir.path().join("edit.hivexsh");
    std::fs::write(&script_file, script).unwrap();
    let status = Command::new(need("hivexsh"))
        .arg("-w")
        .arg("-f")
        .arg(&script_file)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success(), "hivexsh edits the hive");
    let mine = ours(&by_hivex);
    assert_eq!(hivex(&by_hivex), mine);
    assert!(mine.contains(&("HivexKey".into(), Some(("bin".into(), 3, vec![1, 2, 3])))));
    assert!(!mine.iter().any(|(p, _)| p.starts_with("Tree")), "hivex deleted Tree");
    let (theirs, decoded) = (regipy(&by_hivex), ours_decoded(&by_hivex));
    let only_theirs: Vec<_> = theirs.difference(&decoded).take(5).collect();
    let only_mine: Vec<_> = decoded.difference(&theirs).take(5).collect();
    assert!(
        only_theirs.is_empty() && only_mine.is_empty(),
        "on hivex's hive, regipy only {only_theirs:?}; strata only {only_mine:?}"
    );
}
