//! The owned form of a hive's keys and values: what the writer writes, what edits change, and
//! what the merge returns.

use std::collections::HashSet;

use crate::error::{HiveError, Result};
use crate::names::fold;
use crate::read::{KeyNode, Semantics};

/// Deepest key nesting accepted (Windows allows 512 levels).
pub const MAX_DEPTH: usize = 512;

/// A registry key with its values and subkeys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Key {
    /// Its name (the root's is the hive's root key name).
    pub name: String,
    /// Its class name (UTF-16LE bytes), when it has one.
    pub class: Option<Vec<u8>>,
    /// Last written, as a Windows FILETIME.
    pub last_written: u64,
    /// How it combines with the layers below (a delta hive's keys).
    pub semantics: Semantics,
    /// Whether its class comes from the layers below.
    pub inherit_class: bool,
    /// Its values.
    pub values: Vec<Value>,
    /// Its subkeys.
    pub subkeys: Vec<Key>,
}

/// A value of a key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Value {
    /// Its name (empty: the key's default value).
    pub name: String,
    /// The registry type (`REG_SZ` = 1, …).
    pub kind: u32,
    /// Its data.
    pub data: Vec<u8>,
    /// Whether it deletes the value of the layers below (a delta hive's value).
    pub tombstone: bool,
}

impl Key {
    /// A key named `name` with nothing in it.
    pub fn new(name: impl Into<String>) -> Self {
        Key {
            name: name.into(),
            ..Key::default()
        }
    }

    /// Loads the key at `node` and everything below it. Each node is read once: a cycle or a
    /// subtree reached twice is an error, as is nesting deeper than [`MAX_DEPTH`].
    pub fn load(node: &KeyNode<'_>) -> Result<Self> {
        let mut seen = HashSet::new();
        Self::load_at(node, 0, &mut seen)
    }

    fn load_at(node: &KeyNode<'_>, depth: usize, seen: &mut HashSet<u32>) -> Result<Self> {
        if depth > MAX_DEPTH {
            return Err(HiveError::Structure(format!(
                "keys nest deeper than {MAX_DEPTH} levels"
            )));
        }
        if !seen.insert(node.offset()) {
            return Err(HiveError::Structure(format!(
                "key node {:#x} reached twice (a cycle in the subkey lists)",
                node.offset()
            )));
        }
        let values = node
            .values()?
            .iter()
            .map(|v| {
                Ok(Value {
                    name: v.name(),
                    kind: v.kind(),
                    data: v.data()?,
                    tombstone: v.is_tombstone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let subkeys = node
            .subkeys()?
            .iter()
            .map(|k| Self::load_at(k, depth + 1, seen))
            .collect::<Result<Vec<_>>>()?;
        Ok(Key {
            name: node.name(),
            class: node.class()?,
            last_written: node.last_written(),
            semantics: node.semantics(),
            inherit_class: node.inherits_class(),
            values,
            subkeys,
        })
    }

    /// The subkey named `name` (case-insensitively).
    pub fn subkey(&self, name: &str) -> Option<&Key> {
        let wanted = fold(name);
        self.subkeys.iter().find(|k| fold(&k.name) == wanted)
    }

    /// The subkey named `name`, created (normal, empty) when missing.
    pub fn subkey_or_insert(&mut self, name: &str) -> &mut Key {
        let wanted = fold(name);
        match self.subkeys.iter().position(|k| fold(&k.name) == wanted) {
            Some(i) => &mut self.subkeys[i],
            None => {
                self.subkeys.push(Key::new(name));
                self.subkeys.last_mut().expect("pushed")
            }
        }
    }

    /// Removes the subkey named `name`; whether there was one.
    pub fn remove_subkey(&mut self, name: &str) -> bool {
        let wanted = fold(name);
        let before = self.subkeys.len();
        self.subkeys.retain(|k| fold(&k.name) != wanted);
        self.subkeys.len() != before
    }

    /// Sets value `value`, replacing one of the same name (case-insensitively).
    pub fn set_value(&mut self, value: Value) {
        let wanted = fold(&value.name);
        match self.values.iter_mut().find(|v| fold(&v.name) == wanted) {
            Some(old) => *old = value,
            None => self.values.push(value),
        }
    }

    /// Removes the value named `name`; whether there was one.
    pub fn remove_value(&mut self, name: &str) -> bool {
        let wanted = fold(name);
        let before = self.values.len();
        self.values.retain(|v| fold(&v.name) != wanted);
        self.values.len() != before
    }
}
