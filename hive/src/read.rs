//! The regf reader. Every offset, length and count comes from the file and is checked before it
//! is used: a cell must lie inside the hive bins, a structure inside its cell, a count within
//! what its cell can hold. Nothing is followed blindly: subkey lists nest at most one level
//! (`ri` → `li`/`lf`/`lh`), and value data read through shared cells is bounded per hive
//! ([`Hive::parse`]). Walks over many keys guard against cycles themselves (`merge`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{HiveError, Result};
use crate::names::{decode_name, fold};

/// Size of the base block; hive bins follow it.
pub(crate) const BASE_BLOCK: usize = 4096;
/// Largest data of one cell of a big value (`db`) segment, and the largest value stored in one
/// cell in hives of version 1.4 and later.
pub(crate) const BIG_DATA_SEGMENT: usize = 16344;
/// Base block flag: the hive uses layered keys (a differencing hive).
pub(crate) const FLAG_LAYERED: u32 = 0x2;
/// `nk` flag: the name is stored as Latin-1 bytes.
pub(crate) const KEY_COMP_NAME: u16 = 0x0020;
/// `vk` flag: the name is stored as Latin-1 bytes.
pub(crate) const VALUE_COMP_NAME: u16 = 0x0001;
/// `vk` flag: the value is a tombstone (deleted in this layer).
pub(crate) const VALUE_TOMBSTONE: u16 = 0x0002;
/// Offset meaning "none".
pub(crate) const NONE: u32 = 0xFFFF_FFFF;

/// How a key node of a layered hive combines with the same key in the layers below
/// (byte 13 of `nk`, its two low bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Semantics {
    /// Combines with the layers below.
    #[default]
    Normal,
    /// Deleted here: nothing of it from below, and it has no class, subkeys or values.
    Tombstone,
    /// Its own values and class replace those below; subkeys still combine.
    SupersedeLocal,
    /// The whole subtree replaces what is below.
    SupersedeTree,
}

impl Semantics {
    pub(crate) fn from_bits(bits: u8) -> Self {
        match bits & 0x03 {
            0 => Semantics::Normal,
            1 => Semantics::Tombstone,
            2 => Semantics::SupersedeLocal,
            _ => Semantics::SupersedeTree,
        }
    }

    pub(crate) fn bits(self) -> u8 {
        match self {
            Semantics::Normal => 0,
            Semantics::Tombstone => 1,
            Semantics::SupersedeLocal => 2,
            Semantics::SupersedeTree => 3,
        }
    }
}

/// A hive file in memory.
#[derive(Debug)]
pub struct Hive {
    bytes: Vec<u8>,
    /// End of the hive bins (4096 + their size), within `bytes`.
    end: usize,
    root: u32,
    minor: u32,
    flags: u32,
    /// Value data bytes read so far, against `data_budget`.
    data_read: AtomicU64,
    data_budget: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The base block checksum: XOR of its first 127 little-endian dwords, with 0 and `!0` mapped
/// away as Windows does.
pub(crate) fn checksum(base: &[u8]) -> u32 {
    let sum = (0..127).fold(0u32, |acc, i| acc ^ u32_at(base, i * 4).unwrap_or(0));
    match sum {
        0 => 1,
        0xFFFF_FFFF => 0xFFFF_FFFE,
        s => s,
    }
}

impl Hive {
    /// Checks the base block (signature, version 1.3–1.6, checksum, sizes) of `bytes`. Value
    /// data later read from the hive is bounded to eight times its size (plus 1 MiB), so cells
    /// shared by many values cannot make a small file expand without end.
    pub fn parse(bytes: Vec<u8>) -> Result<Self> {
        let not = |what: &str| HiveError::NotAHive(what.to_owned());
        if bytes.len() < BASE_BLOCK {
            return Err(not("shorter than its 4096-byte base block"));
        }
        if &bytes[..4] != b"regf" {
            return Err(not("no regf signature"));
        }
        let field = |at| u32_at(&bytes, at).expect("inside the base block");
        let (major, minor) = (field(20), field(24));
        if major != 1 || !(3..=6).contains(&minor) {
            return Err(not(&format!("version {major}.{minor} (1.3 to 1.6 are read)")));
        }
        if field(28) != 0 {
            return Err(not("a transaction log, not a primary hive file"));
        }
        let stored = field(508);
        let computed = checksum(&bytes[..512]);
        if stored != computed {
            return Err(not(&format!(
                "base block checksum {stored:#010x}, computed {computed:#010x}"
            )));
        }
        let size = field(40) as usize;
        if !size.is_multiple_of(BASE_BLOCK) || size == 0 {
            return Err(not(&format!(
                "hive bins size {size} is not a positive multiple of 4096"
            )));
        }
        let end = BASE_BLOCK
            .checked_add(size)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| not(&format!("hive bins size {size} is past the end of the file")))?;
        let data_budget = (bytes.len() as u64).saturating_mul(8).saturating_add(1 << 20);
        let hive = Hive {
            root: field(36),
            minor,
            flags: field(144),
            end,
            bytes,
            data_read: AtomicU64::new(0),
            data_budget,
        };
        hive.root()?;
        Ok(hive)
    }

    /// The minor version (3 to 6).
    pub fn minor_version(&self) -> u32 {
        self.minor
    }

    /// Whether key nodes carry layered-key semantics: a version 1.6 hive, or the base block's
    /// layered flag.
    pub fn is_layered(&self) -> bool {
        self.minor >= 6 || self.flags & FLAG_LAYERED != 0
    }

    /// The size of the file.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the file is empty (never, for a parsed hive).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The root key.
    pub fn root(&self) -> Result<KeyNode<'_>> {
        KeyNode::at(self, self.root)
    }

    /// The data of the allocated cell at `offset` (relative to the first hive bin), without its
    /// size field.
    pub(crate) fn cell(&self, offset: u32) -> Result<&[u8]> {
        let start = BASE_BLOCK
            .checked_add(offset as usize)
            .filter(|s| offset.is_multiple_of(8) && s + 4 <= self.end)
            .ok_or_else(|| HiveError::corrupt(offset, "cell offset outside the hive bins"))?;
        let raw = i32::from_le_bytes(self.bytes[start..start + 4].try_into().expect("4 bytes"));
        if raw >= 0 {
            return Err(HiveError::corrupt(offset, "a free cell where data was expected"));
        }
        let size = raw.unsigned_abs() as usize;
        if size < 8 || start + size > self.end {
            return Err(HiveError::corrupt(offset, format!("cell size {size} out of bounds")));
        }
        Ok(&self.bytes[start + 4..start + size])
    }

    fn charge(&self, bytes: usize) -> Result<()> {
        let total = self.data_read.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
        if total > self.data_budget {
            return Err(HiveError::TooLarge(format!(
                "more than {} bytes of value data read from a {}-byte hive (cells shared by many values)",
                self.data_budget,
                self.bytes.len()
            )));
        }
        Ok(())
    }
}

/// The cell at `offset` if it starts with `signature`, holds its `fixed` part, and the name
/// whose length (u16) is at `name_len_at` fits after it.
fn named_cell<'h>(
    hive: &'h Hive,
    offset: u32,
    signature: &[u8; 2],
    fixed: usize,
    name_len_at: usize,
) -> Result<&'h [u8]> {
    let cell = hive.cell(offset)?;
    let what = String::from_utf8_lossy(signature);
    if cell.len() < fixed || &cell[..2] != signature {
        return Err(HiveError::corrupt(offset, format!("not a {what} cell")));
    }
    let name_len = u16_at(cell, name_len_at).expect("inside the fixed part") as usize;
    if fixed + name_len > cell.len() {
        return Err(HiveError::corrupt(offset, format!("{what} name longer than its cell")));
    }
    Ok(cell)
}

/// A key node (`nk`) of a hive.
#[derive(Debug, Clone, Copy)]
pub struct KeyNode<'h> {
    hive: &'h Hive,
    offset: u32,
    cell: &'h [u8],
}

/// Fixed part of an `nk` cell.
const NK_FIXED: usize = 76;

impl<'h> KeyNode<'h> {
    pub(crate) fn at(hive: &'h Hive, offset: u32) -> Result<Self> {
        let cell = named_cell(hive, offset, b"nk", NK_FIXED, 72)?;
        Ok(KeyNode { hive, offset, cell })
    }

    fn u16(&self, at: usize) -> u16 {
        u16_at(self.cell, at).expect("inside the fixed part")
    }

    fn u32(&self, at: usize) -> u32 {
        u32_at(self.cell, at).expect("inside the fixed part")
    }

    /// Where the node is (relative to the first hive bin): its identity within the hive.
    pub fn offset(&self) -> u32 {
        self.offset
    }

    /// The key's name.
    pub fn name(&self) -> String {
        let len = self.u16(72) as usize;
        decode_name(&self.cell[NK_FIXED..NK_FIXED + len], self.u16(2) & KEY_COMP_NAME != 0)
    }

    /// Last written, as a Windows FILETIME.
    pub fn last_written(&self) -> u64 {
        u64_at(self.cell, 4).expect("inside the fixed part")
    }

    /// How it combines with the layers below (always normal in a hive without layered keys).
    pub fn semantics(&self) -> Semantics {
        if self.hive.is_layered() {
            Semantics::from_bits(self.cell[13])
        } else {
            Semantics::Normal
        }
    }

    /// Whether its class comes from the layers below.
    pub fn inherits_class(&self) -> bool {
        self.hive.is_layered() && self.cell[13] & 0x80 != 0
    }

    /// The class name's bytes (UTF-16LE), when it has one.
    pub fn class(&self) -> Result<Option<Vec<u8>>> {
        let (offset, len) = (self.u32(48), self.u16(74) as usize);
        if offset == NONE || len == 0 {
            return Ok(None);
        }
        let cell = self.hive.cell(offset)?;
        let class = cell
            .get(..len)
            .ok_or_else(|| HiveError::corrupt(offset, "class name longer than its cell"))?;
        Ok(Some(class.to_vec()))
    }

    /// The security descriptor's bytes, when the `sk` cell it names is readable.
    pub fn security(&self) -> Option<Vec<u8>> {
        let cell = self.hive.cell(self.u32(44)).ok()?;
        if cell.get(..2)? != b"sk" {
            return None;
        }
        let len = u32_at(cell, 16)? as usize;
        Some(cell.get(20..20usize.checked_add(len)?)?.to_vec())
    }

    /// The subkeys, in stored order. A list that names something other than a key node, or
    /// nests deeper than `ri` → list, is an error.
    pub fn subkeys(&self) -> Result<Vec<KeyNode<'h>>> {
        let count = self.u32(20) as usize;
        if count == 0 {
            return Ok(Vec::new());
        }
        // Each subkey is a cell of at least NK_FIXED bytes: more cannot fit in the file. The
        // lists are read only up to `count`, so an `ri` naming one long list many times
        // cannot make the listing (or its memory) grow past what the file could hold.
        if count > self.hive.len() / NK_FIXED {
            return Err(HiveError::corrupt(
                self.offset,
                format!("{count} subkeys counted, more than the file can hold"),
            ));
        }
        let mut out = Vec::with_capacity(count);
        self.list(self.u32(28), true, count, &mut out)?;
        if out.len() != count {
            return Err(HiveError::corrupt(
                self.offset,
                format!("{count} subkeys counted, {} listed", out.len()),
            ));
        }
        Ok(out)
    }

    fn list(&self, offset: u32, top: bool, count: usize, out: &mut Vec<KeyNode<'h>>) -> Result<()> {
        let cell = self.hive.cell(offset)?;
        let n = u16_at(cell, 2).ok_or_else(|| HiveError::corrupt(offset, "subkey list too short"))? as usize;
        let (stride, nested) = match cell.get(..2) {
            Some(b"li") => (4, false),
            Some(b"lf" | b"lh") => (8, false),
            Some(b"ri") if top => (4, true),
            Some(b"ri") => return Err(HiveError::corrupt(offset, "an ri list inside an ri list")),
            _ => return Err(HiveError::corrupt(offset, "not a subkey list")),
        };
        if 4 + n * stride > cell.len() {
            return Err(HiveError::corrupt(offset, "subkey list longer than its cell"));
        }
        for i in 0..n {
            let element = u32_at(cell, 4 + i * stride).expect("checked");
            if nested {
                self.list(element, false, count, out)?;
            } else if out.len() == count {
                return Err(HiveError::corrupt(
                    offset,
                    format!("more than the {count} subkeys counted"),
                ));
            } else {
                out.push(KeyNode::at(self.hive, element)?);
            }
        }
        Ok(())
    }

    /// The subkey named `name` (compared case-insensitively).
    pub fn subkey(&self, name: &str) -> Result<Option<KeyNode<'h>>> {
        let wanted = fold(name);
        Ok(self.subkeys()?.into_iter().find(|k| fold(&k.name()) == wanted))
    }

    /// The values, in stored order.
    pub fn values(&self) -> Result<Vec<ValueNode<'h>>> {
        let count = self.u32(36) as usize;
        if count == 0 {
            return Ok(Vec::new());
        }
        let offset = self.u32(40);
        let list = self.hive.cell(offset)?;
        if count * 4 > list.len() {
            return Err(HiveError::corrupt(offset, "value list longer than its cell"));
        }
        (0..count)
            .map(|i| ValueNode::at(self.hive, u32_at(list, i * 4).expect("checked")))
            .collect()
    }
}

/// A value (`vk`) of a key node.
#[derive(Debug, Clone, Copy)]
pub struct ValueNode<'h> {
    hive: &'h Hive,
    offset: u32,
    cell: &'h [u8],
}

/// Fixed part of a `vk` cell.
const VK_FIXED: usize = 20;

impl<'h> ValueNode<'h> {
    fn at(hive: &'h Hive, offset: u32) -> Result<Self> {
        let cell = named_cell(hive, offset, b"vk", VK_FIXED, 2)?;
        Ok(ValueNode { hive, offset, cell })
    }

    fn flags(&self) -> u16 {
        u16_at(self.cell, 16).expect("fixed")
    }

    /// The value's name (empty: the key's default value).
    pub fn name(&self) -> String {
        let len = u16_at(self.cell, 2).expect("fixed") as usize;
        decode_name(
            &self.cell[VK_FIXED..VK_FIXED + len],
            self.flags() & VALUE_COMP_NAME != 0,
        )
    }

    /// The registry type (`REG_SZ` = 1, …), as stored.
    pub fn kind(&self) -> u32 {
        u32_at(self.cell, 12).expect("fixed")
    }

    /// Whether it is a tombstone: deleted in this layer.
    pub fn is_tombstone(&self) -> bool {
        self.hive.is_layered() && self.flags() & VALUE_TOMBSTONE != 0
    }

    /// The data: kept in the node (4 bytes or less), in one cell, or in big-data segments.
    pub fn data(&self) -> Result<Vec<u8>> {
        if self.is_tombstone() {
            return Ok(Vec::new());
        }
        let raw_len = u32_at(self.cell, 4).expect("fixed");
        let offset = u32_at(self.cell, 8).expect("fixed");
        if raw_len & 0x8000_0000 != 0 {
            let len = (raw_len & 0x7FFF_FFFF) as usize;
            if len > 4 {
                return Err(HiveError::corrupt(self.offset, "resident data longer than 4 bytes"));
            }
            return Ok(self.cell[8..8 + len].to_vec());
        }
        let len = raw_len as usize;
        if len == 0 {
            return Ok(Vec::new());
        }
        self.hive.charge(len)?;
        let cell = self.hive.cell(offset)?;
        if self.hive.minor >= 4 && len > BIG_DATA_SEGMENT && cell.starts_with(b"db") {
            return self.big_data(offset, cell, len);
        }
        cell.get(..len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| HiveError::corrupt(offset, format!("value data of {len} bytes longer than its cell")))
    }

    fn big_data(&self, offset: u32, db: &[u8], len: usize) -> Result<Vec<u8>> {
        let count = u16_at(db, 2).ok_or_else(|| HiveError::corrupt(offset, "big data cell too short"))? as usize;
        let list_offset = u32_at(db, 4).ok_or_else(|| HiveError::corrupt(offset, "big data cell too short"))?;
        if count != len.div_ceil(BIG_DATA_SEGMENT) {
            return Err(HiveError::corrupt(
                offset,
                format!("{count} big data segments for {len} bytes"),
            ));
        }
        let list = self.hive.cell(list_offset)?;
        if count * 4 > list.len() {
            return Err(HiveError::corrupt(list_offset, "segment list longer than its cell"));
        }
        // Grown as segments prove to be there, not trusted from the length field.
        let mut data = Vec::with_capacity(len.min(1 << 20));
        for i in 0..count {
            let segment_offset = u32_at(list, i * 4).expect("checked");
            let segment = self.hive.cell(segment_offset)?;
            let want = (len - data.len()).min(BIG_DATA_SEGMENT);
            let part = segment
                .get(..want)
                .ok_or_else(|| HiveError::corrupt(segment_offset, "big data segment shorter than its share"))?;
            data.extend_from_slice(part);
        }
        Ok(data)
    }
}
