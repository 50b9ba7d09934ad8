//! The layered-key merge: one registry hive seen through a stack of hive files, a base and the
//! delta hives of the layers above it (`shared/notes/windows-layers.md` §3). For each key, its
//! nodes in the layers are taken nearest first:
//!
//! - a **tombstone** hides the key and everything below it in the layers under it (and is
//!   itself empty); nearest of all, the key does not exist;
//! - a **supersede-local** node's values and class replace those of the layers under it; its
//!   subkeys still combine with theirs;
//! - a **supersede-tree** node replaces the whole subtree of the layers under it;
//! - **normal** nodes combine: values are the union by name (case-insensitive), the nearest
//!   winning, and a value tombstone removes the name;
//! - the class is the nearest node's that does not inherit it; the last-written time is the
//!   newest.
//!
//! A key path is resolved level by level this way: a subkey's nodes are the children of its
//! parent's nodes that still count.

use std::collections::{BTreeMap, HashSet};

use crate::error::{HiveError, Result};
use crate::model::{Key, MAX_DEPTH, Value};
use crate::names::fold;
use crate::read::{Hive, KeyNode, Semantics};

/// The hive files of one registry hive, base first.
#[derive(Debug)]
pub struct Stack {
    hives: Vec<Hive>,
}

/// A key of the merged hive.
#[derive(Debug, Clone)]
pub struct MergedKey<'s> {
    /// The nodes whose values and class count, nearest first (layer index, base = 0).
    local: Vec<(usize, KeyNode<'s>)>,
    /// The nodes whose subkeys count, nearest first. A subkey's nodes are only ever the
    /// children of these, so what a tombstone or a supersede-tree node cut off here stays cut
    /// off all the way down.
    tree: Vec<(usize, KeyNode<'s>)>,
}

impl Stack {
    /// A stack of `hives`, base first.
    pub fn new(hives: Vec<Hive>) -> Self {
        Stack { hives }
    }

    /// How many hive files it has.
    pub fn len(&self) -> usize {
        self.hives.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.hives.is_empty()
    }

    /// The hive files, base first.
    pub fn hives(&self) -> &[Hive] {
        &self.hives
    }

    /// Adds `hive` on top (a container's delta over its image's).
    pub fn push(&mut self, hive: Hive) {
        self.hives.push(hive);
    }

    /// The merged root key (`None` only for an empty stack).
    pub fn root(&self) -> Result<Option<MergedKey<'_>>> {
        self.root_in(self.hives.len())
    }

    /// The merged root key of the first `files` hive files only (the layers up to one).
    fn root_in(&self, files: usize) -> Result<Option<MergedKey<'_>>> {
        let mut nodes = Vec::with_capacity(files);
        for (layer, hive) in self.hives.iter().enumerate().take(files).rev() {
            nodes.push((layer, hive.root()?));
        }
        Ok(MergedKey::resolve(nodes))
    }

    /// The merged key at `path` (names below the root, compared case-insensitively).
    pub fn open<S: AsRef<str>>(&self, path: &[S]) -> Result<Option<MergedKey<'_>>> {
        self.open_in(path, self.hives.len())
    }

    /// The merged key at `path` in the first `files` hive files only.
    pub fn open_in<S: AsRef<str>>(&self, path: &[S], files: usize) -> Result<Option<MergedKey<'_>>> {
        if path.len() > MAX_DEPTH {
            return Err(HiveError::Invalid(format!("a key path deeper than {MAX_DEPTH} levels")));
        }
        let mut key = self.root_in(files)?;
        for name in path {
            key = match key {
                Some(k) => k.subkey(name.as_ref())?,
                None => return Ok(None),
            };
        }
        Ok(key)
    }
}

impl<'s> MergedKey<'s> {
    /// Resolves the nodes of one key (nearest first).
    fn resolve(nodes: Vec<(usize, KeyNode<'s>)>) -> Option<Self> {
        if nodes.first()?.1.semantics() == Semantics::Tombstone {
            return None;
        }
        let (mut local, mut tree) = (Vec::new(), Vec::new());
        let mut local_open = true;
        for (layer, node) in nodes {
            let semantics = node.semantics();
            if semantics == Semantics::Tombstone {
                break;
            }
            if local_open {
                local.push((layer, node));
            }
            tree.push((layer, node));
            match semantics {
                Semantics::SupersedeLocal => local_open = false,
                Semantics::SupersedeTree => break,
                _ => {}
            }
        }
        Some(MergedKey { local, tree })
    }

    /// Its name, as the nearest layer spells it.
    pub fn name(&self) -> String {
        self.tree[0].1.name()
    }

    /// The newest last-written time of its nodes (FILETIME).
    pub fn last_written(&self) -> u64 {
        self.tree.iter().map(|(_, n)| n.last_written()).max().unwrap_or(0)
    }

    /// Its class: the nearest node's that does not inherit it.
    pub fn class(&self) -> Result<Option<Vec<u8>>> {
        match self.tree.iter().find(|(_, n)| !n.inherits_class()) {
            Some((_, node)) => node.class(),
            None => Ok(None),
        }
    }

    /// Its values, sorted by name: the union of its layers', the nearest winning, tombstoned
    /// names left out.
    pub fn values(&self) -> Result<Vec<Value>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (_, node) in &self.local {
            for value in node.values()? {
                let name = value.name();
                if !seen.insert(fold(&name)) || value.is_tombstone() {
                    continue;
                }
                out.push(Value {
                    name,
                    kind: value.kind(),
                    data: value.data()?,
                    tombstone: false,
                });
            }
        }
        out.sort_by_cached_key(|v| fold(&v.name));
        Ok(out)
    }

    /// The value named `name` (case-insensitively).
    pub fn value(&self, name: &str) -> Result<Option<Value>> {
        let wanted = fold(name);
        Ok(self.values()?.into_iter().find(|v| fold(&v.name) == wanted))
    }

    /// Its subkeys, sorted by name.
    pub fn subkeys(&self) -> Result<Vec<MergedKey<'s>>> {
        let mut children: BTreeMap<String, Vec<(usize, KeyNode<'s>)>> = BTreeMap::new();
        for (layer, node) in &self.tree {
            for child in node.subkeys()? {
                children.entry(fold(&child.name())).or_default().push((*layer, child));
            }
        }
        Ok(children.into_values().filter_map(Self::resolve).collect())
    }

    /// The subkey named `name` (case-insensitively).
    pub fn subkey(&self, name: &str) -> Result<Option<MergedKey<'s>>> {
        let mut nodes = Vec::new();
        for (layer, node) in &self.tree {
            if let Some(child) = node.subkey(name)? {
                nodes.push((*layer, child));
            }
        }
        Ok(Self::resolve(nodes))
    }

    /// Visits this key and every key below it, depth first in name order, with each one's depth
    /// (this key: 0). A node reached twice (a cycle or a shared subtree) or keys nested deeper
    /// than Windows allows end the walk with an error.
    pub fn walk(&self, visit: &mut dyn FnMut(&MergedKey<'s>, usize) -> Result<()>) -> Result<()> {
        let mut guard = Guard::default();
        self.walk_at(0, &mut guard, visit)
    }

    fn walk_at(
        &self,
        depth: usize,
        guard: &mut Guard,
        visit: &mut dyn FnMut(&MergedKey<'s>, usize) -> Result<()>,
    ) -> Result<()> {
        guard.enter(self, depth)?;
        visit(self, depth)?;
        for child in self.subkeys()? {
            child.walk_at(depth + 1, guard, visit)?;
        }
        Ok(())
    }

    /// This key and everything below it as an owned tree (normal semantics, values merged).
    pub fn to_key(&self) -> Result<Key> {
        let mut guard = Guard::default();
        self.to_key_at(0, &mut guard)
    }

    fn to_key_at(&self, depth: usize, guard: &mut Guard) -> Result<Key> {
        guard.enter(self, depth)?;
        let subkeys = self
            .subkeys()?
            .iter()
            .map(|k| k.to_key_at(depth + 1, guard))
            .collect::<Result<Vec<_>>>()?;
        Ok(Key {
            name: self.name(),
            class: self.class()?,
            last_written: self.last_written(),
            semantics: Semantics::Normal,
            inherit_class: false,
            values: self.values()?,
            subkeys,
        })
    }
}

/// What a walk has reached: every node once, no deeper than Windows allows.
#[derive(Debug, Default)]
pub(crate) struct Guard {
    seen: HashSet<(usize, u32)>,
}

impl Guard {
    pub(crate) fn enter(&mut self, key: &MergedKey<'_>, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(HiveError::Structure(format!(
                "keys nest deeper than {MAX_DEPTH} levels"
            )));
        }
        for (layer, node) in &key.tree {
            if !self.seen.insert((*layer, node.offset())) {
                return Err(HiveError::Structure(format!(
                    "key node {:#x} of layer {layer} reached twice (a cycle in the subkey lists)",
                    node.offset()
                )));
            }
        }
        Ok(())
    }
}
