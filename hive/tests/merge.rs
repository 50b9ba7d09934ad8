//! Hives written and read back exactly, and the layered-key merge over the synthetic base and
//! three delta hives (`strata_hive::testing::scenario`): added keys and values, changed values,
//! value and key tombstones, supersede-local, supersede-tree with a tombstone inside, class
//! inheritance, non-ASCII and case-insensitive names, big (`db`) values, the newest last-write.

use strata_hive::testing::{binary, class, dword, key, multi, qword, scenario, sz};
use strata_hive::{Change, Hive, Key, MergedKey, Semantics, Stack, Value, WriteOptions, diff, fold, write};

fn options(layered: bool) -> WriteOptions {
    WriteOptions {
        layered,
        file_name: "SOFTWARE".into(),
        timestamp: 133_000_000_000_000_000,
    }
}

/// `key` with its subkeys in the order a hive stores them (by upper-cased name).
fn sorted(mut key: Key) -> Key {
    key.subkeys = key.subkeys.into_iter().map(sorted).collect();
    key.subkeys
        .sort_by(|a, b| fold(&a.name).encode_utf16().cmp(fold(&b.name).encode_utf16()));
    key
}

fn stack(layers: usize) -> Stack {
    let (base, deltas) = scenario();
    let mut hives = vec![Hive::parse(write(&base, &options(false)).unwrap()).unwrap()];
    for delta in deltas.iter().take(layers) {
        hives.push(Hive::parse(write(delta, &options(true)).unwrap()).unwrap());
    }
    Stack::new(hives)
}

fn open<'s>(stack: &'s Stack, path: &str) -> Option<MergedKey<'s>> {
    let names: Vec<&str> = path.split('\\').filter(|p| !p.is_empty()).collect();
    stack.open(&names).unwrap()
}

fn values(stack: &Stack, path: &str) -> Vec<Value> {
    open(stack, path)
        .unwrap_or_else(|| panic!("{path} exists"))
        .values()
        .unwrap()
}

fn subkeys(stack: &Stack, path: &str) -> Vec<String> {
    open(stack, path)
        .unwrap()
        .subkeys()
        .unwrap()
        .iter()
        .map(MergedKey::name)
        .collect()
}

#[test]
fn every_hive_written_reads_back_exactly() {
    let (base, deltas) = scenario();
    for (hive, layered) in [
        (base, false),
        (deltas[0].clone(), true),
        (deltas[1].clone(), true),
        (deltas[2].clone(), true),
    ] {
        let bytes = write(&hive, &options(layered)).unwrap();
        assert_eq!(bytes.len() % 4096, 0);
        let read = Hive::parse(bytes).unwrap();
        assert_eq!(read.minor_version(), if layered { 6 } else { 5 });
        assert_eq!(read.is_layered(), layered);
        let mut expected = sorted(hive);
        if !layered {
            // A base hive has no layered semantics to keep.
            expected.inherit_class = false;
        }
        assert_eq!(Key::load(&read.root().unwrap()).unwrap(), expected);
        // The shared security descriptor: self-relative (revision 1, SE_SELF_RELATIVE set).
        let sd = read.root().unwrap().security().expect("an sk cell");
        assert_eq!((sd[0], u16::from_le_bytes([sd[2], sd[3]]) & 0x8000), (1, 0x8000));
    }

    // Many subkeys (an ri over lh lists), big and empty values, every type.
    let many: Vec<Key> = (0..1500)
        .map(|i| key(&format!("k{i:04}"), vec![dword("i", i)], vec![]))
        .collect();
    let root = key(
        "ROOT",
        vec![
            binary("exactly one segment", 16_344, 1),
            binary("one byte more", 16_345, 2),
            binary("four", 4, 3),
            binary("empty", 0, 4),
            binary("", 5, 5),
            multi("multi", &["x", "ÿ", "鍵"]),
            qword("q", u64::MAX),
        ],
        many,
    );
    let read = Hive::parse(write(&root, &options(false)).unwrap()).unwrap();
    assert_eq!(Key::load(&read.root().unwrap()).unwrap(), sorted(root));
}

#[test]
fn the_merge_follows_the_layered_key_rules() {
    let s = stack(3);
    // Added key and values, a changed value (nearest wins), a value tombstone.
    assert_eq!(values(&s, "Added"), [dword("v", 1)]);
    assert_eq!(
        values(&s, "Vendor\\App"),
        [
            dword("Count", 1),
            qword("New", 0x1122_3344_5566_7788),
            sz("Version", "3.0")
        ]
    );
    // A key tombstone hides the subtree below it; a later layer makes the key anew.
    assert_eq!(values(&s, "Vendor\\Old"), [dword("Fresh", 1)]);
    assert!(subkeys(&s, "Vendor\\Old").is_empty(), "Deep stays deleted");
    assert!(open(&s, "Vendor\\Old\\Deep").is_none());
    // Supersede-tree with a tombstone inside: only the delta's subtree.
    assert_eq!(values(&s, "Tree"), [sz("T", "delta")]);
    assert_eq!(subkeys(&s, "Tree"), ["A"]);
    assert_eq!(values(&s, "Tree\\A"), [dword("a", 2)]);
    assert!(open(&s, "Tree\\B").is_none() && open(&s, "Tree\\C").is_none());
    // Supersede-local: its own values only, the subkeys below still there.
    assert_eq!(values(&s, "Local"), [sz("L1", "delta")]);
    assert_eq!(subkeys(&s, "Local"), ["Kid"]);
    assert_eq!(values(&s, "Local\\Kid"), [sz("k", "base")]);
    // Class: inherited from below, or the nearest layer's own.
    assert_eq!(open(&s, "Vendor").unwrap().class().unwrap(), Some(class("VendorClass")));
    assert_eq!(open(&s, "Classy").unwrap().class().unwrap(), Some(class("DeltaClass")));
    // Non-ASCII names, found in any case; the nearest layer's spelling.
    let key = open(&s, "КЛЮЧ").unwrap();
    assert_eq!(key.name(), "ключ");
    assert_eq!(key.values().unwrap(), [sz("Имя", "новое")]);
    assert_eq!(key.value("имя").unwrap(), Some(sz("Имя", "новое")));
    assert!(open(&s, "vendor\\APP").is_some());
    // Big values from base and delta.
    assert_eq!(
        values(&s, "Big"),
        [binary("Blob", 100_000, 7), binary("Blob2", 40_000, 9)]
    );
    // The newest last-write time of the key's layers.
    assert_eq!(open(&s, "Vendor\\App").unwrap().last_written(), 132_000_000_000_000_030);
    assert_eq!(
        subkeys(&s, ""),
        ["Added", "Big", "Classy", "Lists", "Local", "Tree", "Vendor", "ключ"]
    );

    // Fewer layers: what the image looked like then.
    let s1 = stack(1);
    assert_eq!(values(&s1, "Vendor\\App")[2], sz("Version", "2.0"));
    assert!(open(&s1, "Vendor\\Old").is_none());
    assert_eq!(subkeys(&s1, "Tree"), ["A", "B", "C"]);
}

#[test]
fn a_walk_and_a_diff_see_the_merged_registry() {
    let s = stack(3);
    let root = s.root().unwrap().unwrap();
    let mut seen = Vec::new();
    root.walk(&mut |k, depth| {
        seen.push((depth, k.name()));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen.len(), 13, "{seen:?}");
    let merged = root.to_key().unwrap();
    assert_eq!(merged.subkey("Tree").unwrap().subkeys.len(), 1);

    let before = stack(0);
    let changes = diff(before.root().unwrap().as_ref(), Some(&root), "").unwrap();
    let has = |wanted: &Change| changes.contains(wanted);
    assert!(has(&Change::KeyAdded("Added".into())));
    assert!(has(&Change::ValueAdded("Added".into(), dword("v", 1))));
    assert!(has(&Change::ValueChanged(
        "Vendor\\App".into(),
        sz("Version", "1.0"),
        sz("Version", "3.0")
    )));
    assert!(has(&Change::ValueDeleted("Vendor\\App".into(), sz("Path", "C:\\App"))));
    assert!(has(&Change::KeyDeleted("Vendor\\Old\\Deep".into())));
    assert!(has(&Change::ValueDeleted("Vendor\\Old".into(), sz("X", "1"))));
    assert!(has(&Change::KeyDeleted("Tree\\B".into())));
    assert!(has(&Change::ValueDeleted("Local".into(), sz("L2", "base"))));
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, Change::KeyAdded(p) if p.contains("Tree\\C")))
    );
    assert_eq!(diff(Some(&root), Some(&root), "").unwrap(), []);
}

#[test]
fn a_merged_delta_round_trips_through_the_writer() {
    // write → read → merge is exact: a delta written from a merged view, stacked on nothing,
    // gives the same view.
    let s = stack(3);
    let merged = s.root().unwrap().unwrap().to_key().unwrap();
    let again = Stack::new(vec![Hive::parse(write(&merged, &options(true)).unwrap()).unwrap()]);
    assert_eq!(again.root().unwrap().unwrap().to_key().unwrap(), merged);
    assert_eq!(merged.semantics, Semantics::Normal);
}

mod generated {
    use proptest::prelude::*;
    use strata_hive::{Hive, Key, Semantics, Value, WriteOptions, fold, write};

    fn name() -> impl Strategy<Value = String> {
        prop_oneof!["[A-Za-z0-9 ._-]{1,12}", "[À-ÿ]{1,6}", "[а-я鍵🗝]{1,4}",]
    }

    fn value() -> impl Strategy<Value = Value> {
        (
            prop_oneof![Just(String::new()), name()],
            0u32..12,
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..8),
                proptest::collection::vec(any::<u8>(), 16_340..16_350),
                proptest::collection::vec(any::<u8>(), 40_000..40_010),
            ],
            any::<bool>(),
        )
            .prop_map(|(name, kind, data, tombstone)| Value {
                name,
                kind: if tombstone { 0 } else { kind },
                data: if tombstone { Vec::new() } else { data },
                tombstone,
            })
    }

    fn semantics() -> impl Strategy<Value = Semantics> {
        prop_oneof![
            Just(Semantics::Normal),
            Just(Semantics::Tombstone),
            Just(Semantics::SupersedeLocal),
            Just(Semantics::SupersedeTree),
        ]
    }

    /// Keys with distinct names at each level, as a hive requires; a tombstone holds nothing.
    fn tree() -> impl Strategy<Value = Key> {
        let leaf = (
            name(),
            proptest::collection::vec(value(), 0..4),
            semantics(),
            any::<bool>(),
        )
            .prop_map(|(name, values, semantics, inherit_class)| {
                tidy(Key {
                    name,
                    values,
                    semantics,
                    inherit_class,
                    ..Key::default()
                })
            });
        leaf.prop_recursive(4, 40, 6, |inner| {
            (
                name(),
                proptest::collection::vec(value(), 0..3),
                proptest::collection::vec(inner, 0..6),
                semantics(),
            )
                .prop_map(|(name, values, subkeys, semantics)| {
                    tidy(Key {
                        name,
                        values,
                        subkeys,
                        semantics,
                        last_written: 7,
                        ..Key::default()
                    })
                })
        })
    }

    fn tidy(mut key: Key) -> Key {
        let mut seen = std::collections::HashSet::new();
        key.values.retain(|v| seen.insert(fold(&v.name)));
        let mut seen = std::collections::HashSet::new();
        key.subkeys.retain(|k| seen.insert(fold(&k.name)));
        if key.semantics == Semantics::Tombstone {
            key.values.clear();
            key.subkeys.clear();
            key.inherit_class = false;
        }
        key
    }

    fn sorted(mut key: Key) -> Key {
        key.subkeys = key.subkeys.into_iter().map(sorted).collect();
        key.subkeys
            .sort_by(|a, b| fold(&a.name).encode_utf16().cmp(fold(&b.name).encode_utf16()));
        key
    }

    /// Trees over a few names (in two cases), so that layers overlap.
    fn overlapping() -> impl Strategy<Value = Key> {
        let name = || prop_oneof![Just("a"), Just("b"), Just("A"), Just("c")].prop_map(str::to_owned);
        let value = (
            prop_oneof![Just("x"), Just("X"), Just("y"), Just("")],
            0u8..4,
            any::<bool>(),
        )
            .prop_map(|(name, data, tombstone)| Value {
                name: name.to_owned(),
                kind: if tombstone { 0 } else { 4 },
                data: if tombstone { Vec::new() } else { vec![data, 0, 0, 0] },
                tombstone,
            });
        let class = proptest::option::of(prop_oneof![Just("K1"), Just("K2")]);
        let node = move |subkeys: Vec<Key>| {
            (
                name(),
                proptest::collection::vec(value.clone(), 0..3),
                semantics(),
                any::<bool>(),
                class.clone(),
                0u64..4,
            )
                .prop_map(move |(name, values, semantics, inherit_class, class, time)| {
                    tidy(Key {
                        name,
                        values,
                        subkeys: subkeys.clone(),
                        semantics,
                        inherit_class,
                        class: class.map(|c| c.encode_utf16().flat_map(u16::to_le_bytes).collect()),
                        last_written: time,
                    })
                })
        };
        let leaf = node(Vec::new());
        leaf.prop_recursive(3, 30, 4, move |inner| {
            let node = node.clone();
            proptest::collection::vec(inner, 0..4).prop_flat_map(node)
        })
    }

    /// The merge rules over owned trees, nodes nearest first: what the merge of hive files must
    /// give.
    fn reference(nodes: &[&Key]) -> Option<Key> {
        if nodes.first()?.semantics == Semantics::Tombstone {
            return None;
        }
        let (mut local, mut tree, mut open) = (Vec::new(), Vec::new(), true);
        for n in nodes {
            if n.semantics == Semantics::Tombstone {
                break;
            }
            if open {
                local.push(*n);
            }
            tree.push(*n);
            match n.semantics {
                Semantics::SupersedeLocal => open = false,
                Semantics::SupersedeTree => break,
                _ => {}
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut values: Vec<Value> = local
            .iter()
            .flat_map(|n| &n.values)
            .filter(|v| seen.insert(fold(&v.name)) && !v.tombstone)
            .cloned()
            .collect();
        values.sort_by_key(|v| fold(&v.name));
        let mut children: std::collections::BTreeMap<String, Vec<&Key>> = std::collections::BTreeMap::new();
        for n in &tree {
            for c in &n.subkeys {
                children.entry(fold(&c.name)).or_default().push(c);
            }
        }
        Some(Key {
            name: tree[0].name.clone(),
            class: tree.iter().find(|n| !n.inherit_class).and_then(|n| n.class.clone()),
            last_written: tree.iter().map(|n| n.last_written).max().unwrap_or(0),
            semantics: Semantics::Normal,
            inherit_class: false,
            values,
            subkeys: children.values().filter_map(|c| reference(c)).collect(),
        })
    }

    /// What a base hive keeps: no layered semantics (a tombstone value is an empty REG_NONE).
    fn plain(mut key: Key) -> Key {
        key.semantics = Semantics::Normal;
        key.inherit_class = false;
        for v in &mut key.values {
            v.tombstone = false;
        }
        key.subkeys = key.subkeys.into_iter().map(plain).collect();
        key
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// The merge of a base hive and up to three delta hives, read from their files, is the
        /// reference merge of the trees they were written from.
        #[test]
        fn the_merge_of_written_layers_is_the_reference_merge(
            base in overlapping(),
            deltas in proptest::collection::vec(overlapping(), 0..4),
        ) {
            let mut base = plain(base);
            base.name = "ROOT".into();
            let deltas: Vec<Key> = deltas
                .into_iter()
                .map(|mut d| {
                    d.name = "ROOT".into();
                    d.semantics = Semantics::Normal;
                    d
                })
                .collect();
            let mut hives = vec![Hive::parse(write(&base, &WriteOptions::default()).unwrap()).unwrap()];
            for d in &deltas {
                hives.push(Hive::parse(write(d, &WriteOptions { layered: true, ..WriteOptions::default() }).unwrap()).unwrap());
            }
            let merged = strata_hive::Stack::new(hives).root().unwrap().unwrap().to_key().unwrap();
            let nearest_first: Vec<&Key> = deltas.iter().rev().chain([&base]).collect();
            prop_assert_eq!(Some(merged), reference(&nearest_first));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Any tree the writer accepts reads back exactly, delta semantics included.
        #[test]
        fn written_trees_read_back_exactly(mut root in tree()) {
            root.semantics = Semantics::Normal;
            let bytes = write(&root, &WriteOptions { layered: true, ..WriteOptions::default() }).unwrap();
            let hive = Hive::parse(bytes).unwrap();
            prop_assert_eq!(Key::load(&hive.root().unwrap()).unwrap(), sorted(root));
        }
    }
}
