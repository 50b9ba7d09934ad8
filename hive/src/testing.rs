//! Hives for tests and benchmarks (feature `testing`): value builders and a synthetic base hive
//! with three delta hives that exercise every layered-key rule. Generated here, never taken
//! from Microsoft images.

use crate::data::{REG_BINARY, REG_DWORD, REG_MULTI_SZ, REG_QWORD, REG_SZ, parse_data};
use crate::model::{Key, Value};
use crate::read::Semantics;

/// A `REG_SZ` value.
pub fn sz(name: &str, text: &str) -> Value {
    Value {
        name: name.into(),
        kind: REG_SZ,
        data: parse_data(REG_SZ, text).expect("string"),
        tombstone: false,
    }
}

/// A `REG_DWORD` value.
pub fn dword(name: &str, v: u32) -> Value {
    Value {
        name: name.into(),
        kind: REG_DWORD,
        data: v.to_le_bytes().to_vec(),
        tombstone: false,
    }
}

/// A `REG_QWORD` value.
pub fn qword(name: &str, v: u64) -> Value {
    Value {
        name: name.into(),
        kind: REG_QWORD,
        data: v.to_le_bytes().to_vec(),
        tombstone: false,
    }
}

/// A `REG_MULTI_SZ` value.
pub fn multi(name: &str, items: &[&str]) -> Value {
    Value {
        name: name.into(),
        kind: REG_MULTI_SZ,
        data: parse_data(REG_MULTI_SZ, &items.join("\\0")).expect("strings"),
        tombstone: false,
    }
}

/// A `REG_BINARY` value of `len` bytes of a pattern seeded by `seed`.
pub fn binary(name: &str, len: usize, seed: u8) -> Value {
    Value {
        name: name.into(),
        kind: REG_BINARY,
        data: (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect(),
        tombstone: false,
    }
}

/// A value tombstone.
pub fn deleted(name: &str) -> Value {
    Value {
        name: name.into(),
        tombstone: true,
        ..Value::default()
    }
}

/// A class name as stored (UTF-16LE).
pub fn class(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// A key with `values` and `subkeys`, written at `time`.
pub fn key(name: &str, values: Vec<Value>, subkeys: Vec<Key>) -> Key {
    Key {
        name: name.into(),
        values,
        subkeys,
        last_written: 132_000_000_000_000_000,
        ..Key::default()
    }
}

/// The same key with other semantics.
pub fn with(mut key: Key, semantics: Semantics) -> Key {
    key.semantics = semantics;
    key
}

/// The synthetic `SOFTWARE` stack: a base hive and three delta hives, base first.
///
/// - base: `Vendor` (class `VendorClass`) with `App` {Version 1.0, Path, Count 1} and `Old`
///   {X} over `Deep` {Y}; `Tree` {T base} over `A` {a 1} and `B` {b 1}; `Local` {L1, L2} over
///   `Kid` {k base}; `Classy` (class `BaseClass`); `Ключ` {Имя значение}; `Big` {Blob: 100,000
///   bytes}; `Lists` {Multi: a b c}.
/// - delta 1: `Vendor` inherits its class; `App` {Version 2.0, Path deleted, New qword}; `Old`
///   is a tombstone; `Added` {v 1} is new; `Tree\C` {c 1} is new.
/// - delta 2: `Tree` supersedes its tree: `A` {a 2} and a tombstone for `C`; `Local`
///   supersedes locally: {L1 delta}; `Classy` gets class `DeltaClass`.
/// - delta 3: `Vendor\\Old` again, {Fresh 1}; `ключ` (other case) {Имя новое}; `App` {Version 3.0};
///   `Big` {Blob2: 40,000 bytes}.
pub fn scenario() -> (Key, [Key; 3]) {
    let mut classy = key("Classy", vec![], vec![]);
    classy.class = Some(class("BaseClass"));
    let mut vendor = key(
        "Vendor",
        vec![],
        vec![
            key(
                "App",
                vec![sz("Version", "1.0"), sz("Path", "C:\\App"), dword("Count", 1)],
                vec![],
            ),
            key("Old", vec![sz("X", "1")], vec![key("Deep", vec![sz("Y", "1")], vec![])]),
        ],
    );
    vendor.class = Some(class("VendorClass"));
    let base = key(
        "ROOT",
        vec![],
        vec![
            vendor,
            key(
                "Tree",
                vec![sz("T", "base")],
                vec![
                    key("A", vec![dword("a", 1)], vec![]),
                    key("B", vec![dword("b", 1)], vec![]),
                ],
            ),
            key(
                "Local",
                vec![sz("L1", "base"), sz("L2", "base")],
                vec![key("Kid", vec![sz("k", "base")], vec![])],
            ),
            classy,
            key("Ключ", vec![sz("Имя", "значение")], vec![]),
            key("Big", vec![binary("Blob", 100_000, 7)], vec![]),
            key("Lists", vec![multi("Multi", &["a", "b", "c"])], vec![]),
        ],
    );

    let mut vendor1 = key(
        "Vendor",
        vec![],
        vec![
            key(
                "App",
                vec![
                    sz("Version", "2.0"),
                    deleted("Path"),
                    qword("New", 0x1122_3344_5566_7788),
                ],
                vec![],
            ),
            with(key("Old", vec![], vec![]), Semantics::Tombstone),
        ],
    );
    vendor1.last_written += 10;
    let delta1 = key(
        "ROOT",
        vec![],
        vec![
            vendor1,
            key("Added", vec![dword("v", 1)], vec![]),
            key("Tree", vec![], vec![key("C", vec![dword("c", 1)], vec![])]),
        ],
    );

    let mut classy2 = key("Classy", vec![], vec![]);
    classy2.class = Some(class("DeltaClass"));
    let delta2 = key(
        "ROOT",
        vec![],
        vec![
            with(
                key(
                    "Tree",
                    vec![sz("T", "delta")],
                    vec![
                        with(key("A", vec![dword("a", 2)], vec![]), Semantics::SupersedeTree),
                        with(key("C", vec![], vec![]), Semantics::Tombstone),
                    ],
                ),
                Semantics::SupersedeTree,
            ),
            with(key("Local", vec![sz("L1", "delta")], vec![]), Semantics::SupersedeLocal),
            classy2,
        ],
    );

    let mut app3 = key("App", vec![sz("Version", "3.0")], vec![]);
    app3.last_written += 30;
    let delta3 = key(
        "ROOT",
        vec![],
        vec![
            key("ключ", vec![sz("Имя", "новое")], vec![]),
            key(
                "Vendor",
                vec![],
                vec![app3, key("Old", vec![dword("Fresh", 1)], vec![])],
            ),
            key("Big", vec![binary("Blob2", 40_000, 9)], vec![]),
        ],
    );
    (base, [delta1, delta2, delta3].map(inheriting))
}

/// `key` with every node that has no class of its own inheriting it, as Windows writes the
/// nodes of a delta hive that only lead to a change.
fn inheriting(mut key: Key) -> Key {
    key.inherit_class |= key.class.is_none() && key.semantics != Semantics::Tombstone;
    key.subkeys = key.subkeys.into_iter().map(inheriting).collect();
    key
}
