//! Hostile hives: offsets past the end, cyclic and shared subkey lists, counts the cells
//! cannot hold, value data that claims gigabytes or is read through shared cells over and
//! over, bad checksums, truncation, and random corruption (fuzzed). Every one is a clear error
//! or a result; none panics, loops or allocates without bound.

use proptest::prelude::*;
use strata_hive::testing::{binary, dword, key, scenario};
use strata_hive::{Hive, HiveError, Key, Stack, WriteOptions, write};

fn bytes_of(root: &Key, layered: bool) -> Vec<u8> {
    let options = WriteOptions {
        layered,
        ..WriteOptions::default()
    };
    write(root, &options).unwrap()
}

/// Where the data of the cell at `offset` starts in the file.
fn at(offset: u32) -> usize {
    4096 + offset as usize + 4
}

fn put32(bytes: &mut [u8], pos: usize, v: u32) {
    bytes[pos..pos + 4].copy_from_slice(&v.to_le_bytes());
}

fn fix_checksum(bytes: &mut [u8]) {
    let sum = (0..127).fold(0u32, |acc, i| {
        acc ^ u32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap())
    });
    put32(bytes, 508, sum);
}

/// Offsets of the cells of interest in the written base hive.
struct Cells {
    vendor: u32,
    vendor_list: u32,
    app: u32,
    blob_vk: u32,
}

fn cells(bytes: &[u8]) -> Cells {
    let hive = Hive::parse(bytes.to_vec()).unwrap();
    let root = hive.root().unwrap();
    let vendor = root.subkey("Vendor").unwrap().unwrap();
    let app = vendor.subkey("App").unwrap().unwrap();
    let big = root.subkey("Big").unwrap().unwrap();
    let list = u32::from_le_bytes(
        bytes[at(vendor.offset()) + 28..at(vendor.offset()) + 32]
            .try_into()
            .unwrap(),
    );
    let blob_list = u32::from_le_bytes(bytes[at(big.offset()) + 40..at(big.offset()) + 44].try_into().unwrap());
    let blob_vk = u32::from_le_bytes(bytes[at(blob_list)..at(blob_list) + 4].try_into().unwrap());
    Cells {
        vendor: vendor.offset(),
        vendor_list: list,
        app: app.offset(),
        blob_vk,
    }
}

/// Walks everything a reader would: every merged key, its class and values.
fn read_all(bytes: Vec<u8>) -> Result<usize, HiveError> {
    let stack = Stack::new(vec![Hive::parse(bytes)?]);
    let mut keys = 0;
    // A corrupt delta can make its root a tombstone: then there is nothing to walk.
    if let Some(root) = stack.root()? {
        root.walk(&mut |k, _| {
            k.class()?;
            k.values()?;
            keys += 1;
            Ok(())
        })?;
    }
    Ok(keys)
}

fn base() -> Vec<u8> {
    bytes_of(&scenario().0, false)
}

#[test]
fn offsets_past_the_end_are_errors() {
    let mut b = base();
    put32(&mut b, 36, 0x7FFF_FFF8);
    fix_checksum(&mut b);
    assert!(matches!(Hive::parse(b), Err(HiveError::Corrupt { .. })));

    let mut b = base();
    let c = cells(&b);
    put32(&mut b, at(c.vendor) + 28, 0x7FFF_FFF0);
    let e = read_all(b).unwrap_err();
    assert!(e.to_string().contains("outside the hive bins"), "{e}");

    let mut b = base();
    let c = cells(&b);
    // Odd, unaligned and free-cell offsets.
    for bad in [c.app + 4, 3, 0] {
        let mut b2 = b.clone();
        put32(&mut b2, at(c.vendor_list) + 4, bad);
        assert!(read_all(b2).is_err(), "{bad:#x}");
    }
    put32(&mut b, at(c.app) + 48, 0xFFFF_0000);
    put32(&mut b, at(c.app) + 72, 0xFFFF);
    assert!(read_all(b).is_err(), "a name longer than its cell");
}

#[test]
fn cyclic_and_shared_subkey_lists_end_the_walk() {
    let b = base();
    let c = cells(&b);
    // Vendor lists itself.
    let mut cyclic = b.clone();
    put32(&mut cyclic, at(c.vendor_list) + 4, c.vendor);
    let e = read_all(cyclic.clone()).unwrap_err();
    assert!(e.to_string().contains("reached twice"), "{e}");
    let hive = Hive::parse(cyclic).unwrap();
    assert!(Key::load(&hive.root().unwrap()).is_err());
    // Both of Vendor's entries name App: a shared subtree, refused the same way.
    let mut shared = b;
    put32(&mut shared, at(c.vendor_list) + 12, c.app);
    assert!(read_all(shared).unwrap_err().to_string().contains("reached twice"));
}

#[test]
fn counts_the_cells_cannot_hold_are_errors() {
    let b = base();
    let c = cells(&b);
    for (field, what) in [(20, "subkey count"), (36, "value count")] {
        let mut huge = b.clone();
        put32(&mut huge, at(c.app) + field, 0xFFFF_FFFF);
        let mut target = huge.clone();
        if field == 20 {
            // Give App a list to be wrong about.
            put32(&mut target, at(c.app) + 28, c.vendor_list);
        }
        assert!(read_all(target).is_err(), "{what}");
    }
    // A big value that claims 2 GiB: an error, not an allocation.
    let mut claims = b;
    put32(&mut claims, at(c.blob_vk) + 4, 0x7FFF_FFF0);
    let started = std::time::Instant::now();
    assert!(read_all(claims).is_err());
    assert!(started.elapsed().as_secs() < 5);
}

#[test]
fn value_data_read_through_shared_cells_is_bounded() {
    // 3000 values, each entry of the list then pointed at one 100 KB value: 300 MB of reads
    // from a file of a few hundred KB.
    let values: Vec<_> = (0..3000).map(|i| dword(&format!("v{i}"), i)).collect();
    let root = key(
        "ROOT",
        vec![],
        vec![
            key("Big", vec![binary("Blob", 100_000, 1)], vec![]),
            key("Many", values, vec![]),
        ],
    );
    let mut b = bytes_of(&root, false);
    let hive = Hive::parse(b.clone()).unwrap();
    let r = hive.root().unwrap();
    let big = r.subkey("Big").unwrap().unwrap();
    let many = r.subkey("Many").unwrap().unwrap();
    let read = |pos: usize| u32::from_le_bytes(b[pos..pos + 4].try_into().unwrap());
    let blob_vk = read(at(read(at(big.offset()) + 40)));
    let list = read(at(many.offset()) + 40);
    for i in 0..3000 {
        put32(&mut b, at(list) + i * 4, blob_vk);
    }
    let started = std::time::Instant::now();
    let hive = Hive::parse(b.clone()).unwrap();
    let e = Key::load(&hive.root().unwrap()).unwrap_err();
    assert!(matches!(e, HiveError::TooLarge(_)), "{e}");
    // The merge reads each name once, so it is quick and small here anyway.
    assert_eq!(read_all(b).unwrap(), 3);
    assert!(started.elapsed().as_secs() < 5);
}

#[test]
fn bad_checksums_truncation_and_wrong_files_are_refused() {
    let b = base();
    let mut flipped = b.clone();
    flipped[48] ^= 1;
    assert!(Hive::parse(flipped).unwrap_err().to_string().contains("checksum"));
    assert!(Hive::parse(b[..b.len() / 2].to_vec()).is_err());
    assert!(Hive::parse(b[..100].to_vec()).is_err());
    assert!(Hive::parse(b"not a hive at all".repeat(400)).is_err());
    let mut version = b;
    put32(&mut version, 24, 9);
    fix_checksum(&mut version);
    assert!(Hive::parse(version).unwrap_err().to_string().contains("version 1.9"));
}

fn corpus() -> Vec<Vec<u8>> {
    let (mut base, deltas) = scenario();
    // Keep cases fast: a smaller big value, still in db segments.
    base.subkey_or_insert("Big").values = vec![binary("Blob", 20_000, 7)];
    let mut out = vec![bytes_of(&base, false)];
    out.extend(deltas.iter().map(|d| bytes_of(d, true)));
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Random corruption anywhere past the base block (whose checksum is then fixed, so the
    /// reader goes in): a result or an error, never a panic or a hang.
    #[test]
    fn corrupt_hives_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<u32>(), any::<u32>(), 0u8..3), 1..8),
    ) {
        let mut b = corpus().swap_remove(which);
        for (pos, value, kind) in edits {
            let pos = 4096 + (pos as usize % (b.len() - 4096 - 4));
            match kind {
                // A small number: offsets and counts that point somewhere plausible.
                0 => put32(&mut b, pos & !3, value % 0x8000),
                1 => put32(&mut b, pos & !3, value),
                _ => b[pos] = value as u8,
            }
        }
        fix_checksum(&mut b);
        let _ = read_all(b);
    }
}

#[test]
fn an_ri_list_naming_one_long_list_many_times_is_refused_quickly() {
    // The root's subkey list becomes an ri whose entries all name Wide's list of 400: listed
    // without a bound, that is entries × 400 key nodes (and their memory).
    let many: Vec<Key> = (0..400).map(|i| key(&format!("k{i}"), vec![], vec![])).collect();
    let root = key(
        "ROOT",
        vec![],
        vec![key("Wide", vec![], many), key("Other", vec![], vec![])],
    );
    let mut b = bytes_of(&root, false);
    let hive = Hive::parse(b.clone()).unwrap();
    let root_nk = at(hive.root().unwrap().offset());
    let read = |b: &[u8], pos: usize| u32::from_le_bytes(b[pos..pos + 4].try_into().unwrap());
    let wide_list = read(
        &b,
        at(hive.root().unwrap().subkey("Wide").unwrap().unwrap().offset()) + 28,
    );
    // The root's lh list of two (4 + 2 × 8 bytes) has room for an ri of three entries.
    let root_list = read(&b, root_nk + 28);
    b[at(root_list)..at(root_list) + 2].copy_from_slice(b"ri");
    b[at(root_list) + 2..at(root_list) + 4].copy_from_slice(&3u16.to_le_bytes());
    for i in 0..3 {
        put32(&mut b, at(root_list) + 4 + i * 4, wide_list);
    }
    let started = std::time::Instant::now();
    // As many subkeys counted as the file could hold: the listing stops there.
    let most = u32::try_from(b.len() / 76).unwrap();
    put32(&mut b, root_nk + 20, most);
    let e = Hive::parse(b.clone()).unwrap().root().unwrap().subkeys().unwrap_err();
    assert!(
        e.to_string().contains(&format!("more than the {most} subkeys counted")),
        "{e}"
    );
    // More than it could hold: refused before any list is read.
    put32(&mut b, root_nk + 20, u32::MAX);
    let e = Hive::parse(b).unwrap().root().unwrap().subkeys().unwrap_err();
    assert!(e.to_string().contains("more than the file can hold"), "{e}");
    assert!(started.elapsed().as_secs() < 2);
}

#[test]
fn lf_and_li_subkey_lists_read_like_lh() {
    // Windows and other writers use lf (name hints) and li (offsets only) lists too.
    let b = base();
    let c = cells(&b);
    let names = |b: Vec<u8>| -> Vec<String> {
        let hive = Hive::parse(b).unwrap();
        let vendor = hive.root().unwrap().subkey("Vendor").unwrap().unwrap();
        vendor
            .subkeys()
            .unwrap()
            .iter()
            .map(strata_hive::KeyNode::name)
            .collect()
    };
    let expected = names(b.clone());
    assert_eq!(expected, ["App", "Old"]);
    let mut lf = b.clone();
    lf[at(c.vendor_list)..at(c.vendor_list) + 2].copy_from_slice(b"lf");
    assert_eq!(names(lf), expected);
    let mut li = b;
    let list = at(c.vendor_list);
    let entries: Vec<u32> = (0..2)
        .map(|i| u32::from_le_bytes(li[list + 4 + i * 8..list + 8 + i * 8].try_into().unwrap()))
        .collect();
    li[list..list + 2].copy_from_slice(b"li");
    for (i, e) in entries.iter().enumerate() {
        put32(&mut li, list + 4 + i * 4, *e);
    }
    assert_eq!(names(li), expected);
}
