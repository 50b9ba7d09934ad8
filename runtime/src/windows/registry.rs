//! The registry of a Windows image or container (`shared/notes/windows-layers.md` §3): for each
//! hive, a stack of hive files merged by `strata_hive`. The base comes from the base layer's
//! `Hives/<X>_BASE`, else its `Files/Windows/System32/config/<X>`; every layer above adds its
//! `Hives/<X>_Delta`, and a container's scratch layer its own. Edits (`strata reg set`,
//! `strata reg delete`) go into the scratch layer's delta hive, written the way Windows writes
//! one (version 1.6, layered keys), and recorded in its sidecar like any changed file, so
//! `strata commit` carries them into the new layer.

use std::io::Read;
use std::path::{Path, PathBuf};

use strata_hive::{Hive, HiveError, HiveName, Key, RegPath, Semantics, Stack, Value, WriteOptions};

use super::names::fold_key;
use super::{Record, RecordKind, beneath, read_sidecar};
use crate::store::{Result, StoreError, io_error as io};

/// Largest hive file read (Windows caps a hive at 2 GiB; images carry far less).
pub const MAX_HIVE_BYTES: u64 = 1 << 30;

/// The records of the Windows layer in `dir` (none for a directory without a sidecar, such as
/// a scratch layer nothing was written to yet).
fn records(dir: &Path) -> Result<Vec<Record>> {
    match read_sidecar(dir) {
        Ok(records) => Ok(records),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io("read", dir.join(super::SIDECAR), e)),
    }
}

/// The file at the first of `paths` a layer has (compared case-insensitively, as Windows
/// names are), read whole up to [`MAX_HIVE_BYTES`].
fn layer_file(dir: &Path, records: &[Record], paths: &[String]) -> Result<Option<Vec<u8>>> {
    let Some(record) = paths.iter().find_map(|path| {
        let key = fold_key(path);
        records
            .iter()
            .rev()
            .find(|r| r.kind == RecordKind::File && fold_key(&r.path) == key)
    }) else {
        return Ok(None);
    };
    let file = beneath::open_file(dir, record.disk_path()).map_err(|e| io("open", dir.join(record.disk_path()), e))?;
    let mut bytes = Vec::new();
    file.take(MAX_HIVE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io("read", dir.join(record.disk_path()), e))?;
    if bytes.len() as u64 > MAX_HIVE_BYTES {
        return Err(StoreError::Invalid(format!(
            "{}: a hive larger than {MAX_HIVE_BYTES} bytes",
            dir.join(&record.path).display()
        )));
    }
    Ok(Some(bytes))
}

fn parse(bytes: Vec<u8>, what: &str) -> Result<Hive> {
    Hive::parse(bytes).map_err(|e| hive_error(what, &e))
}

/// A hive error as the store's, naming what was being read.
fn hive_error(what: &str, e: &HiveError) -> StoreError {
    StoreError::Invalid(format!("{what}: {e}"))
}

/// The delta file name of `hive` in a layer (`Hives/SOFTWARE_Delta`).
fn delta_path(hive: HiveName) -> String {
    format!("Hives/{}_Delta", hive.layer_name())
}

/// The hive files of `hive` for the image layers `layers` (base first), and a container's
/// scratch layer `upper` when given; `None` when the base layer has no such hive.
pub fn stack(layers: &[PathBuf], upper: Option<&Path>, hive: HiveName) -> Result<Option<Stack>> {
    let Some(base_dir) = layers.first() else {
        return Ok(None);
    };
    let base_paths = [
        format!("Hives/{}_BASE", hive.layer_name()),
        format!("Files/Windows/System32/config/{}", hive.config_file()),
    ];
    let Some(base) = layer_file(base_dir, &records(base_dir)?, &base_paths)? else {
        return Ok(None);
    };
    let mut hives = vec![parse(base, &format!("{} of the base layer", hive.root()))?];
    let delta = delta_path(hive);
    for (i, dir) in layers
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, d)| (i, d.as_path()))
        .chain(upper.map(|u| (layers.len(), u)))
    {
        if let Some(bytes) = layer_file(dir, &records(dir)?, std::slice::from_ref(&delta))? {
            hives.push(parse(bytes, &format!("{delta} of layer {i}"))?);
        }
    }
    Ok(Some(Stack::new(hives)))
}

fn no_hive(hive: HiveName) -> StoreError {
    StoreError::NotFound(format!(
        "{}: the image has no such hive (no Files/Windows/System32/config/{} in its base layer)",
        hive.root(),
        hive.config_file()
    ))
}

/// A FILETIME for now.
fn filetime_now() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (since.as_secs() + 11_644_473_600) * 10_000_000 + u64::from(since.subsec_nanos() / 100)
}

/// A container's registry edit: the scratch layer's delta of one hive, loaded for a change and
/// saved after it. Each hive file is read once per edit.
struct Edit<'a> {
    upper: &'a Path,
    hive: HiveName,
    /// The image's hive files, then the scratch delta when there is one.
    stack: Stack,
    /// How many of them are the image's.
    image_files: usize,
    /// The scratch delta's root.
    root: Key,
}

impl<'a> Edit<'a> {
    fn open(layers: &[PathBuf], upper: &'a Path, hive: HiveName) -> Result<Self> {
        let mut stack = stack(layers, None, hive)?.ok_or_else(|| no_hive(hive))?;
        let image_files = stack.len();
        let root = match layer_file(upper, &records(upper)?, &[delta_path(hive)])? {
            Some(bytes) => {
                let parsed = parse(bytes, &format!("the container's {}", delta_path(hive)))?;
                let root = parsed
                    .root()
                    .and_then(|r| Key::load(&r))
                    .map_err(|e| hive_error("the container's delta hive", &e))?;
                stack.push(parsed);
                root
            }
            None => {
                let name = match stack.root().map_err(|e| hive_error(hive.root(), &e))? {
                    Some(root) => root.name(),
                    None => "ROOT".to_owned(),
                };
                Key {
                    inherit_class: true,
                    ..Key::new(name)
                }
            }
        };
        Ok(Edit {
            upper,
            hive,
            stack,
            image_files,
            root,
        })
    }

    /// The values of key `path` as the container sees it; an error when it does not exist.
    fn require(&self, path: &RegPath) -> Result<Vec<Value>> {
        let key = self
            .stack
            .open(&path.keys)
            .map_err(|e| hive_error(path.hive.root(), &e))?
            .ok_or_else(|| StoreError::NotFound(format!("{}: no such key", path.display())))?;
        key.values().map_err(|e| hive_error(path.hive.root(), &e))
    }

    /// Whether the image (under the scratch layer) has key `keys`, and, given `value`, that
    /// value of it.
    fn in_image(&self, keys: &[String], value: Option<&str>) -> Result<bool> {
        let root = self.hive.root();
        let Some(key) = self
            .stack
            .open_in(keys, self.image_files)
            .map_err(|e| hive_error(root, &e))?
        else {
            return Ok(false);
        };
        match value {
            None => Ok(true),
            Some(name) => Ok(key.value(name).map_err(|e| hive_error(root, &e))?.is_some()),
        }
    }

    /// The scratch node at `keys`, made (leading to a change, inheriting the class) where
    /// missing. A tombstone on the way becomes an empty supersede-tree node: the key is new
    /// again and nothing of the layers below comes back; so are the nodes made under one.
    fn node(&mut self, keys: &[String]) -> &mut Key {
        let mut node = &mut self.root;
        let mut replacing = false;
        for name in keys {
            if node.semantics == Semantics::Tombstone {
                node.semantics = Semantics::SupersedeTree;
                node.inherit_class = false;
            }
            replacing |= node.semantics == Semantics::SupersedeTree;
            let existed = node.subkey(name).is_some();
            node = node.subkey_or_insert(name);
            if !existed {
                node.inherit_class = true;
                if replacing {
                    node.semantics = Semantics::SupersedeTree;
                    node.inherit_class = false;
                }
            }
        }
        if node.semantics == Semantics::Tombstone {
            node.semantics = Semantics::SupersedeTree;
            node.inherit_class = false;
        }
        node.last_written = filetime_now();
        node
    }

    /// Whether the layers below cannot show through at `keys` without the scratch delta's help:
    /// a supersede-tree node strictly above it, or, for the key's values (`values_of_key`), a
    /// supersede node at it. Then removing a scratch node or value is enough; otherwise a
    /// tombstone is needed.
    fn replaces_below(&self, keys: &[String], values_of_key: bool) -> bool {
        let mut node = &self.root;
        for name in keys {
            if node.semantics == Semantics::SupersedeTree {
                return true;
            }
            match node.subkey(name) {
                Some(next) => node = next,
                None => return false,
            }
        }
        values_of_key && matches!(node.semantics, Semantics::SupersedeLocal | Semantics::SupersedeTree)
    }

    /// Writes the scratch delta and records it in the scratch layer's sidecar.
    fn save(&self) -> Result<()> {
        let path = delta_path(self.hive);
        let options = WriteOptions {
            layered: true,
            file_name: format!("{}_Delta", self.hive.layer_name()),
            timestamp: filetime_now(),
        };
        let bytes = strata_hive::write(&self.root, &options).map_err(|e| hive_error(&path, &e))?;
        beneath::open_dir(self.upper, "Hives", true).map_err(|e| io("create", self.upper.join("Hives"), e))?;
        let tmp = format!("{path}.tmp");
        {
            use std::io::Write;
            let mut file =
                beneath::create_file(self.upper, &tmp).map_err(|e| io("create", self.upper.join(&tmp), e))?;
            file.write_all(&bytes)
                .and_then(|()| file.sync_all())
                .map_err(|e| io("write", self.upper.join(&tmp), e))?;
        }
        std::fs::rename(self.upper.join(&tmp), self.upper.join(&path))
            .map_err(|e| io("rename", self.upper.join(&path), e))?;
        super::scratch::record_file(self.upper, &path, bytes.len() as u64)
    }
}

/// `strata reg set`: sets value `value` of key `path` in a container (layers base first, its
/// scratch layer `upper`), making the key and those leading to it.
pub fn set_value(layers: &[PathBuf], upper: &Path, path: &RegPath, value: Value) -> Result<()> {
    let mut edit = Edit::open(layers, upper, path.hive)?;
    edit.node(&path.keys).set_value(value);
    edit.save()
}

/// `strata reg delete KEY`: deletes key `path` and everything below it in a container.
pub fn delete_key(layers: &[PathBuf], upper: &Path, path: &RegPath) -> Result<()> {
    let Some((last, parents)) = path.keys.split_last() else {
        return Err(StoreError::Invalid(format!(
            "{}: a hive's root cannot be deleted",
            path.display()
        )));
    };
    let mut edit = Edit::open(layers, upper, path.hive)?;
    edit.require(path)?;
    let below = !edit.replaces_below(&path.keys, false) && edit.in_image(&path.keys, None)?;
    let parent = edit.node(parents);
    if below {
        // Hide the image's key: a tombstone, empty.
        let node = parent.subkey_or_insert(last);
        *node = Key {
            name: node.name.clone(),
            semantics: Semantics::Tombstone,
            last_written: filetime_now(),
            ..Key::default()
        };
    } else {
        parent.remove_subkey(last);
    }
    edit.save()
}

/// `strata reg delete KEY /v NAME`: deletes value `name` of key `path` in a container.
pub fn delete_value(layers: &[PathBuf], upper: &Path, path: &RegPath, name: &str) -> Result<()> {
    let mut edit = Edit::open(layers, upper, path.hive)?;
    if edit
        .require(path)?
        .iter()
        .all(|v| strata_hive::fold(&v.name) != strata_hive::fold(name))
    {
        return Err(StoreError::NotFound(format!(
            "{}: no value named {name:?}",
            path.display()
        )));
    }
    let below = !edit.replaces_below(&path.keys, true) && edit.in_image(&path.keys, Some(name))?;
    let node = edit.node(&path.keys);
    if below {
        node.set_value(Value {
            name: name.to_owned(),
            tombstone: true,
            ..Value::default()
        });
    } else {
        node.remove_value(name);
    }
    edit.save()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_hive::testing::{key, sz};

    /// A layer directory holding `files` (path, bytes) with their sidecar records.
    fn layer(dir: &Path, files: &[(&str, Vec<u8>)]) {
        let mut records = Vec::new();
        for (path, bytes) in files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, bytes).unwrap();
            records.push(Record {
                size: bytes.len() as u64,
                ..super::super::scratch::new_file(path)
            });
        }
        let lines: Vec<String> = records.iter().map(|r| serde_json::to_string(r).unwrap()).collect();
        std::fs::write(dir.join(super::super::SIDECAR), lines.join("\n")).unwrap();
    }

    fn hive(value: &str, layered: bool) -> Vec<u8> {
        let root = key("ROOT", vec![sz("From", value)], vec![]);
        let options = WriteOptions {
            layered,
            ..WriteOptions::default()
        };
        strata_hive::write(&root, &options).unwrap()
    }

    fn from(stack: &Stack) -> String {
        let v = stack.root().unwrap().unwrap().value("From").unwrap().unwrap();
        strata_hive::data::display(v.kind, &v.data)
    }

    #[test]
    fn the_base_is_hives_base_before_the_config_file_and_default_maps_to_defaultuser() {
        let dir = tempfile::tempdir().unwrap();
        let (base, top) = (dir.path().join("base"), dir.path().join("top"));
        layer(
            &base,
            &[
                ("Files/Windows/System32/config/SOFTWARE", hive("config", false)),
                ("Hives/SOFTWARE_BASE", hive("base", false)),
                ("Files/Windows/System32/config/default", hive("default", false)),
            ],
        );
        layer(&top, &[("Hives/DEFAULTUSER_Delta", hive("delta", true))]);
        let layers = [base.clone(), top];
        assert_eq!(
            from(&stack(&layers, None, HiveName::Software).unwrap().unwrap()),
            "base"
        );
        let default = stack(&layers, None, HiveName::Default).unwrap().unwrap();
        assert_eq!((default.len(), from(&default)), (2, "delta".to_owned()));
        assert!(stack(&layers, None, HiveName::Sam).unwrap().is_none());
        // A delta in the base layer is not one: only layers above add deltas.
        layer(
            &base,
            &[
                ("Hives/SYSTEM_BASE", hive("base", false)),
                ("Hives/SYSTEM_Delta", hive("x", true)),
            ],
        );
        assert_eq!(stack(&[base], None, HiveName::System).unwrap().unwrap().len(), 1);
    }
}
