//! The rules of the house that ARCHITECTURE.md states, checked on the source: which crate may
//! depend on which (nothing imports upward), and no two modules of a crate import each other
//! (a module and its own submodules aside: a parent declares its children, children use their
//! parent's items).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// Workspace crates each crate may depend on (dependencies and dev-dependencies; the
/// registry's and the client's tests use `strata-tests`' helpers, a dev-dependency only).
const ALLOWED: &[(&str, &[&str])] = &[
    ("storage", &[]),
    ("distribution", &["strata-storage"]),
    ("hive", &[]),
    ("runtime", &["strata-storage", "strata-hive"]),
    (
        "registry",
        &["strata-storage", "strata-distribution", "strata-hive", "strata-tests"],
    ),
    (
        "client",
        &[
            "strata-storage",
            "strata-distribution",
            "strata-hive",
            "strata-runtime",
            "strata-registry",
            "strata-tests",
        ],
    ),
    ("tests", &["strata-storage", "strata-registry"]),
    ("bench", &["strata-storage", "strata-hive"]),
];

#[test]
fn crates_depend_only_downward() {
    for (dir, allowed) in ALLOWED {
        let manifest = std::fs::read_to_string(root().join(dir).join("Cargo.toml")).unwrap();
        let used: BTreeSet<&str> = manifest
            .lines()
            .filter_map(|l| l.split(['=', ' ', '.']).next())
            .filter(|name| name.starts_with("strata-") && !manifest.contains(&format!("name = \"{name}\"")))
            .collect();
        for name in used {
            assert!(
                allowed.contains(&name),
                "{dir}/Cargo.toml depends on {name}; ARCHITECTURE.md allows only {allowed:?}"
            );
        }
    }
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a library file (`src/a/mod.rs` and `src/a.rs` are `a`), or `None` for
/// files outside the library (binaries).
fn module_of(src: &Path, file: &Path) -> Option<Vec<String>> {
    let rel = file.strip_prefix(src).ok()?;
    if rel.starts_with("bin") || rel == Path::new("main.rs") {
        return None;
    }
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop()?;
    match last.as_str() {
        "lib.rs" | "mod.rs" => {}
        other => parts.push(other.trim_end_matches(".rs").to_owned()),
    }
    Some(parts)
}

/// The `crate::`, `super::` and `self::` paths a file names (brace groups of `use` expanded),
/// resolved against its module `module`.
fn references(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &code[i..];
        let start = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|p| rest.starts_with(p) && (i == 0 || !is_ident(bytes[i - 1])));
        let Some(prefix) = start else {
            i += 1;
            continue;
        };
        // The path up to the first character that is not part of a path or a brace group.
        let mut depth = 0;
        let mut end = i;
        for (k, c) in code[i..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                c if depth == 0 && !(c.is_alphanumeric() || c == '_' || c == ':') => break,
                _ => {}
            }
            end = i + k + c.len_utf8();
        }
        let base: Vec<String> = match prefix {
            "crate::" => Vec::new(),
            // In `a/mod.rs` (module a), `super` is a's parent; in `a/b.rs` (module a::b) too.
            "super::" => module[..module.len().saturating_sub(1)].to_vec(),
            _ => module.to_vec(),
        };
        for path in expand(&code[i + prefix.len()..end]) {
            let mut full = base.clone();
            full.extend(path);
            out.push(full);
        }
        i = end.max(i + 1);
    }
    out
}

/// `a::{b, c::{d, e}}` → `[a, b]`, `[a, c, d]`, `[a, c, e]`.
fn expand(path: &str) -> Vec<Vec<String>> {
    let path = path.trim().trim_end_matches("::");
    let Some(open) = path.find('{') else {
        return vec![path.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect()];
    };
    let head: Vec<String> = path[..open]
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let inner = &path[open + 1..path.rfind('}').unwrap_or(path.len())];
    let mut items = Vec::new();
    let (mut depth, mut from) = (0, 0);
    for (k, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[from..k]);
                from = k + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[from..]);
    let mut out = Vec::new();
    for item in items.into_iter().filter(|s| !s.trim().is_empty()) {
        for tail in expand(item) {
            let mut full = head.clone();
            full.extend(tail.into_iter().filter(|s| s != "self"));
            out.push(full);
        }
    }
    out
}

#[test]
fn no_two_modules_import_each_other() {
    let mut cycles = Vec::new();
    for (dir, _) in ALLOWED {
        let src = root().join(dir).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let modules: BTreeMap<Vec<String>, PathBuf> = files
            .iter()
            .filter_map(|f| Some((module_of(&src, f)?, f.clone())))
            .collect();
        // module -> modules it names (the longest known module prefix of each path)
        let mut edges: BTreeMap<&Vec<String>, BTreeSet<&Vec<String>>> = BTreeMap::new();
        for (module, file) in &modules {
            let text = std::fs::read_to_string(file).unwrap();
            for path in references(&text, module) {
                let target = (0..=path.len())
                    .rev()
                    .find_map(|n| modules.get_key_value(&path[..n]).map(|(k, _)| k));
                if let Some(target) = target {
                    let related = target.starts_with(module) || module.starts_with(target);
                    if !related {
                        edges.entry(module).or_default().insert(target);
                    }
                }
            }
        }
        for (a, targets) in &edges {
            for b in targets {
                if a < b && edges.get(b).is_some_and(|t| t.contains(a)) {
                    cycles.push(format!("{dir}: {} <-> {}", a.join("::"), b.join("::")));
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that import each other:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_checker_sees_braced_and_relative_imports() {
    let module = vec!["a".to_owned(), "b".to_owned()];
    let refs = references(
        "use crate::{x::y, z::{self, w}};\nuse super::c::D;\nfn f() { crate::q::r(); }",
        &module,
    );
    let refs: Vec<String> = refs.iter().map(|r| r.join("::")).collect();
    assert_eq!(refs, ["x::y", "z", "z::w", "a::c::D", "q::r"]);
}
