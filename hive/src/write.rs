//! The regf writer: a [`Key`] tree as a hive file. A base hive is version 1.5; a delta hive is
//! version 1.6 with the layered-keys flag in its base block, each key's semantics and inherit-
//! class bit in byte 13 of its `nk`, and value tombstones flagged `0x0002` with type `REG_NONE`,
//! no data and data offset `0xFFFFFFFF`, as Windows writes them (the size field says zero
//! resident bytes, which readers without layered keys take as empty).
//!
//! Layout: the base block (with its checksum), then hive bins of 4096 bytes (larger when one
//! cell needs it), each filled with 8-byte aligned cells and closed with one free cell. One
//! `sk` cell (Administrators and SYSTEM full control, Everyone read) is shared by every key.
//! Subkeys are sorted by their upper-cased names in `lh` lists (split under an `ri` beyond 512);
//! data over 16344 bytes goes into big-data (`db`) segments.

use std::collections::HashSet;

use crate::error::{HiveError, Result};
use crate::model::{Key, MAX_DEPTH, Value};
use crate::names::{encode_name, fold, name_hash};
use crate::read::{
    BASE_BLOCK, BIG_DATA_SEGMENT, FLAG_LAYERED, KEY_COMP_NAME, NONE, Semantics, VALUE_COMP_NAME, VALUE_TOMBSTONE,
    checksum,
};

/// `nk` flags of the root key: `KEY_HIVE_ENTRY | KEY_NO_DELETE`.
const ROOT_FLAGS: u16 = 0x0004 | 0x0008;
/// Subkeys per `lh` list.
const LIST_CHUNK: usize = 512;
/// Largest value data written.
const MAX_DATA: usize = 1 << 30;

/// How to write a hive.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// A delta (differencing) hive: version 1.6, layered keys. Otherwise a base hive, 1.5.
    pub layered: bool,
    /// The name kept in the base block (the hive's file name; the last 31 characters).
    pub file_name: String,
    /// The base block's last-written time (FILETIME).
    pub timestamp: u64,
}

/// Writes `root` and everything below it as a hive file.
pub fn write(root: &Key, options: &WriteOptions) -> Result<Vec<u8>> {
    let mut bins = Bins {
        data: Vec::new(),
        bin_end: 0,
        timestamp: options.timestamp,
        layered: options.layered,
        keys: 0,
        sk: 0,
    };
    let root_offset = bins.key(root, 0, 0)?;
    bins.close();
    // Every key shares the one security cell.
    let keys = bins.keys;
    bins.put(bins.sk, 12, &keys.to_le_bytes());

    let mut out = vec![0u8; BASE_BLOCK];
    out[0..4].copy_from_slice(b"regf");
    let field = |out: &mut Vec<u8>, at: usize, v: u32| out[at..at + 4].copy_from_slice(&v.to_le_bytes());
    field(&mut out, 4, 1);
    field(&mut out, 8, 1);
    out[12..20].copy_from_slice(&options.timestamp.to_le_bytes());
    field(&mut out, 20, 1);
    field(&mut out, 24, if options.layered { 6 } else { 5 });
    field(&mut out, 28, 0);
    field(&mut out, 32, 1);
    field(&mut out, 36, root_offset);
    field(
        &mut out,
        40,
        u32::try_from(bins.data.len()).map_err(|_| too_big("the hive"))?,
    );
    field(&mut out, 44, 1);
    let name: Vec<u16> = options.file_name.encode_utf16().collect();
    let name = &name[name.len().saturating_sub(31)..];
    for (i, unit) in name.iter().enumerate() {
        out[48 + i * 2..50 + i * 2].copy_from_slice(&unit.to_le_bytes());
    }
    field(&mut out, 144, if options.layered { FLAG_LAYERED } else { 0 });
    let sum = checksum(&out[..512]);
    field(&mut out, 508, sum);
    out.extend_from_slice(&bins.data);
    Ok(out)
}

fn too_big(what: &str) -> HiveError {
    HiveError::Invalid(format!("{what} is too large for a hive"))
}

/// The hive bins being written.
struct Bins {
    data: Vec<u8>,
    bin_end: usize,
    timestamp: u64,
    layered: bool,
    keys: u32,
    sk: u32,
}

impl Bins {
    /// Allocates a zeroed cell for `len` bytes; its offset.
    fn alloc(&mut self, len: usize) -> u32 {
        let size = (len + 4).div_ceil(8) * 8;
        if self.data.len() + size > self.bin_end {
            self.close();
            self.open(size);
        }
        let offset = self.data.len();
        let size_field = -i32::try_from(size).expect("cells are bounded");
        self.data.extend_from_slice(&size_field.to_le_bytes());
        self.data.resize(offset + size, 0);
        u32::try_from(offset).expect("bins are bounded")
    }

    /// Writes `bytes` at `at` in the data of cell `cell`.
    fn put(&mut self, cell: u32, at: usize, bytes: &[u8]) {
        let start = cell as usize + 4 + at;
        self.data[start..start + bytes.len()].copy_from_slice(bytes);
    }

    fn put32(&mut self, cell: u32, at: usize, v: u32) {
        self.put(cell, at, &v.to_le_bytes());
    }

    /// Closes the current bin with one free cell over what is left of it.
    fn close(&mut self) {
        let rest = self.bin_end - self.data.len();
        if rest > 0 {
            let free = i32::try_from(rest).expect("a bin is bounded");
            self.data.extend_from_slice(&free.to_le_bytes());
            self.data.resize(self.bin_end, 0);
        }
    }

    /// Opens a bin with room for a cell of `cell` bytes.
    fn open(&mut self, cell: usize) {
        let size = (cell + 32).div_ceil(BASE_BLOCK) * BASE_BLOCK;
        let start = self.data.len();
        self.data.extend_from_slice(b"hbin");
        self.data
            .extend_from_slice(&u32::try_from(start).expect("bounded").to_le_bytes());
        self.data
            .extend_from_slice(&u32::try_from(size).expect("bounded").to_le_bytes());
        self.data.extend_from_slice(&[0; 8]);
        self.data.extend_from_slice(&self.timestamp.to_le_bytes());
        self.data.extend_from_slice(&[0; 4]);
        self.bin_end = start + size;
    }

    /// The shared `sk` cell; its offset (its reference count is written at the end).
    fn security(&mut self) -> u32 {
        let sd = default_security_descriptor();
        let cell = self.alloc(20 + sd.len());
        self.put(cell, 0, b"sk");
        self.put32(cell, 4, cell);
        self.put32(cell, 8, cell);
        self.put32(cell, 16, u32::try_from(sd.len()).expect("small"));
        self.put(cell, 20, &sd);
        cell
    }

    fn key(&mut self, key: &Key, parent: u32, depth: usize) -> Result<u32> {
        if depth > MAX_DEPTH {
            return Err(HiveError::Invalid(format!("keys nest deeper than {MAX_DEPTH} levels")));
        }
        let (name, compressed) = encode_name(&key.name);
        let name_len = u16::try_from(name.len()).map_err(|_| too_big("a key name"))?;
        let nk = self.alloc(76 + name.len());
        if depth == 0 {
            // The root is the first cell (readers such as regipy expect it there), the
            // security cell every key shares the next.
            self.sk = self.security();
        }
        self.keys += 1;
        let mut flags = if compressed { KEY_COMP_NAME } else { 0 };
        if depth == 0 {
            flags |= ROOT_FLAGS;
        }
        self.put(nk, 0, b"nk");
        self.put(nk, 2, &flags.to_le_bytes());
        self.put(nk, 4, &key.last_written.to_le_bytes());
        if self.layered {
            let bits = key.semantics.bits() | if key.inherit_class { 0x80 } else { 0 };
            self.put(nk, 13, &[bits]);
        }
        self.put32(nk, 16, parent);
        self.put32(nk, 28, NONE);
        self.put32(nk, 32, NONE);
        self.put32(nk, 40, NONE);
        self.put32(nk, 44, self.sk);
        self.put32(nk, 48, NONE);
        self.put(nk, 72, &name_len.to_le_bytes());
        self.put(nk, 76, &name);
        if key.semantics == Semantics::Tombstone {
            // A tombstone has no class, subkeys or values.
            return Ok(nk);
        }
        if let Some(class) = &key.class {
            let len = u16::try_from(class.len()).map_err(|_| too_big("a class name"))?;
            let cell = self.alloc(class.len());
            self.put(cell, 0, class);
            self.put32(nk, 48, cell);
            self.put(nk, 74, &len.to_le_bytes());
            self.put32(nk, 56, u32::from(len));
        }

        let mut seen = HashSet::new();
        let mut offsets = Vec::with_capacity(key.values.len());
        let (mut longest_name, mut largest_data) = (0u32, 0u32);
        for value in &key.values {
            if !seen.insert(fold(&value.name)) {
                return Err(HiveError::Invalid(format!(
                    "key {:?} has two values named {:?}",
                    key.name, value.name
                )));
            }
            longest_name = longest_name.max(u32::try_from(value.name.encode_utf16().count() * 2).unwrap_or(u32::MAX));
            largest_data = largest_data.max(u32::try_from(value.data.len()).unwrap_or(u32::MAX));
            offsets.push(self.value(value)?);
        }
        if !offsets.is_empty() {
            let list = self.alloc(offsets.len() * 4);
            for (i, offset) in offsets.iter().enumerate() {
                self.put32(list, i * 4, *offset);
            }
            self.put32(
                nk,
                36,
                u32::try_from(offsets.len()).map_err(|_| too_big("a value list"))?,
            );
            self.put32(nk, 40, list);
            self.put32(nk, 60, longest_name);
            self.put32(nk, 64, largest_data);
        }

        let mut children: Vec<(String, &Key)> = key.subkeys.iter().map(|k| (fold(&k.name), k)).collect();
        children.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
        if let Some(pair) = children.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(HiveError::Invalid(format!(
                "key {:?} has two subkeys named {:?}",
                key.name, pair[1].1.name
            )));
        }
        let mut entries = Vec::with_capacity(children.len());
        let mut longest_subkey = 0u32;
        for (_, child) in &children {
            longest_subkey =
                longest_subkey.max(u32::try_from(child.name.encode_utf16().count() * 2).unwrap_or(u32::MAX));
            entries.push((self.key(child, nk, depth + 1)?, name_hash(&child.name)));
        }
        if !entries.is_empty() {
            let list = self.subkey_list(&entries);
            self.put32(
                nk,
                20,
                u32::try_from(entries.len()).map_err(|_| too_big("a subkey list"))?,
            );
            self.put32(nk, 28, list);
            self.put32(nk, 52, longest_subkey & 0xFFFF);
        }
        Ok(nk)
    }

    /// `lh` lists of (key offset, name hash), under an `ri` when more than one is needed.
    fn subkey_list(&mut self, entries: &[(u32, u32)]) -> u32 {
        let lh = |bins: &mut Bins, chunk: &[(u32, u32)]| {
            let cell = bins.alloc(4 + chunk.len() * 8);
            bins.put(cell, 0, b"lh");
            bins.put(cell, 2, &u16::try_from(chunk.len()).expect("chunked").to_le_bytes());
            for (i, (offset, hash)) in chunk.iter().enumerate() {
                bins.put32(cell, 4 + i * 8, *offset);
                bins.put32(cell, 8 + i * 8, *hash);
            }
            cell
        };
        if entries.len() <= LIST_CHUNK {
            return lh(self, entries);
        }
        let lists: Vec<u32> = entries.chunks(LIST_CHUNK).map(|c| lh(self, c)).collect();
        let ri = self.alloc(4 + lists.len() * 4);
        self.put(ri, 0, b"ri");
        self.put(ri, 2, &u16::try_from(lists.len()).expect("bounded").to_le_bytes());
        for (i, list) in lists.iter().enumerate() {
            self.put32(ri, 4 + i * 4, *list);
        }
        ri
    }

    fn value(&mut self, value: &Value) -> Result<u32> {
        let (name, compressed) = encode_name(&value.name);
        let name_len = u16::try_from(name.len()).map_err(|_| too_big("a value name"))?;
        let vk = self.alloc(20 + name.len());
        self.put(vk, 0, b"vk");
        self.put(vk, 2, &name_len.to_le_bytes());
        let mut flags = if compressed { VALUE_COMP_NAME } else { 0 };
        if value.tombstone {
            flags |= VALUE_TOMBSTONE;
            // No data, type REG_NONE, data offset 0xFFFFFFFF, as Windows writes a tombstone;
            // the size is marked resident (0x80000000: zero bytes in the node) so readers
            // without layered keys (hivex) do not follow the offset.
            self.put32(vk, 4, 0x8000_0000);
            self.put32(vk, 8, NONE);
            self.put32(vk, 12, 0);
        } else {
            let data = &value.data;
            if data.len() > MAX_DATA {
                return Err(too_big("a value's data"));
            }
            let len = u32::try_from(data.len()).expect("bounded");
            if data.len() <= 4 {
                self.put32(vk, 4, len | 0x8000_0000);
                self.put(vk, 8, data);
            } else {
                self.put32(vk, 4, len);
                let cell = self.data_cell(data);
                self.put32(vk, 8, cell);
            }
            self.put32(vk, 12, value.kind);
        }
        self.put(vk, 16, &flags.to_le_bytes());
        self.put(vk, 20, &name);
        Ok(vk)
    }

    /// One cell of data, or a big-data `db` cell over segments of 16344 bytes.
    fn data_cell(&mut self, data: &[u8]) -> u32 {
        if data.len() <= BIG_DATA_SEGMENT {
            let cell = self.alloc(data.len());
            self.put(cell, 0, data);
            return cell;
        }
        let segments: Vec<u32> = data
            .chunks(BIG_DATA_SEGMENT)
            .map(|chunk| {
                let cell = self.alloc(chunk.len());
                self.put(cell, 0, chunk);
                cell
            })
            .collect();
        let list = self.alloc(segments.len() * 4);
        for (i, segment) in segments.iter().enumerate() {
            self.put32(list, i * 4, *segment);
        }
        let db = self.alloc(8);
        self.put(db, 0, b"db");
        self.put(
            db,
            2,
            &u16::try_from(segments.len()).expect("under 1 GiB").to_le_bytes(),
        );
        self.put32(db, 4, list);
        db
    }
}

/// A SID as bytes: revision 1, authority, sub-authorities.
fn sid(authority: u8, subs: &[u32]) -> Vec<u8> {
    let mut out = vec![1, u8::try_from(subs.len()).expect("few"), 0, 0, 0, 0, 0, authority];
    for s in subs {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// A self-relative security descriptor: owner Administrators, group SYSTEM, a DACL giving
/// Administrators and SYSTEM full control and Everyone read, inherited by subkeys.
fn default_security_descriptor() -> Vec<u8> {
    let (admins, system, everyone) = (sid(5, &[32, 544]), sid(5, &[18]), sid(1, &[0]));
    let mut aces = Vec::new();
    for (mask, who) in [
        (0x000F_003Fu32, &admins),
        (0x000F_003F, &system),
        (0x0002_0019, &everyone),
    ] {
        aces.push(0u8); // ACCESS_ALLOWED_ACE_TYPE
        aces.push(0x02); // CONTAINER_INHERIT_ACE
        aces.extend_from_slice(&u16::try_from(8 + who.len()).expect("small").to_le_bytes());
        aces.extend_from_slice(&mask.to_le_bytes());
        aces.extend_from_slice(who);
    }
    let acl_len = u16::try_from(8 + aces.len()).expect("small");
    let mut acl = vec![2u8, 0];
    acl.extend_from_slice(&acl_len.to_le_bytes());
    acl.extend_from_slice(&3u16.to_le_bytes());
    acl.extend_from_slice(&[0, 0]);
    acl.extend_from_slice(&aces);
    let dacl = 20u32;
    let owner = dacl + u32::from(acl_len);
    let group = owner + u32::try_from(admins.len()).expect("small");
    let mut sd = vec![1u8, 0];
    sd.extend_from_slice(&0x8004u16.to_le_bytes()); // SE_SELF_RELATIVE | SE_DACL_PRESENT
    sd.extend_from_slice(&owner.to_le_bytes());
    sd.extend_from_slice(&group.to_le_bytes());
    sd.extend_from_slice(&0u32.to_le_bytes());
    sd.extend_from_slice(&dacl.to_le_bytes());
    sd.extend_from_slice(&acl);
    sd.extend_from_slice(&admins);
    sd.extend_from_slice(&system);
    sd
}
