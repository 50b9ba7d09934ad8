//! Value types and data: their names (`REG_SZ`…), how data is shown, and how text given on a
//! command line becomes data.

use crate::error::{HiveError, Result};

/// `REG_NONE`.
pub const REG_NONE: u32 = 0;
/// `REG_SZ`: a NUL-terminated UTF-16LE string.
pub const REG_SZ: u32 = 1;
/// `REG_EXPAND_SZ`: a string with `%VARIABLES%`.
pub const REG_EXPAND_SZ: u32 = 2;
/// `REG_BINARY`.
pub const REG_BINARY: u32 = 3;
/// `REG_DWORD`: a little-endian u32.
pub const REG_DWORD: u32 = 4;
/// `REG_DWORD_BIG_ENDIAN`.
pub const REG_DWORD_BIG_ENDIAN: u32 = 5;
/// `REG_LINK`.
pub const REG_LINK: u32 = 6;
/// `REG_MULTI_SZ`: NUL-separated strings ending with two NULs.
pub const REG_MULTI_SZ: u32 = 7;
/// `REG_QWORD`: a little-endian u64.
pub const REG_QWORD: u32 = 11;

const NAMES: &[(u32, &str)] = &[
    (REG_NONE, "REG_NONE"),
    (REG_SZ, "REG_SZ"),
    (REG_EXPAND_SZ, "REG_EXPAND_SZ"),
    (REG_BINARY, "REG_BINARY"),
    (REG_DWORD, "REG_DWORD"),
    (REG_DWORD_BIG_ENDIAN, "REG_DWORD_BIG_ENDIAN"),
    (REG_LINK, "REG_LINK"),
    (REG_MULTI_SZ, "REG_MULTI_SZ"),
    (8, "REG_RESOURCE_LIST"),
    (9, "REG_FULL_RESOURCE_DESCRIPTOR"),
    (10, "REG_RESOURCE_REQUIREMENTS_LIST"),
    (REG_QWORD, "REG_QWORD"),
];

/// The name of a registry type (`REG_SZ`), or `REG_0x…` for one without a name.
pub fn type_name(kind: u32) -> String {
    NAMES
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or_else(|| format!("REG_{kind:#x}"), |(_, n)| (*n).to_owned())
}

/// The type a name (`REG_SZ`, any case) stands for.
pub fn parse_type(name: &str) -> Result<u32> {
    NAMES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(k, _)| *k)
        .ok_or_else(|| {
            HiveError::Invalid(format!(
                "unknown value type {name:?} (REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ, REG_DWORD, REG_QWORD, REG_BINARY, REG_NONE)"
            ))
        })
}

fn utf16(data: &[u8]) -> Vec<u16> {
    data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
}

/// A string value's text, up to its first NUL.
fn string(data: &[u8]) -> String {
    let units = utf16(data);
    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    String::from_utf16_lossy(&units[..end])
}

/// A `REG_MULTI_SZ` value's strings.
pub fn multi_string(data: &[u8]) -> Vec<String> {
    let units = utf16(data);
    let mut out: Vec<String> = units.split(|&u| u == 0).map(String::from_utf16_lossy).collect();
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02X}")).collect()
}

/// Data as `reg query` shows it: strings as text, multi-strings joined with `\0`, numbers in
/// hex, anything else (or a number of the wrong size) as hex bytes.
pub fn display(kind: u32, data: &[u8]) -> String {
    match kind {
        REG_SZ | REG_EXPAND_SZ | REG_LINK => string(data),
        REG_MULTI_SZ => multi_string(data).join("\\0"),
        REG_DWORD if data.len() == 4 => format!("{:#x}", u32::from_le_bytes(data.try_into().expect("4"))),
        REG_DWORD_BIG_ENDIAN if data.len() == 4 => format!("{:#x}", u32::from_be_bytes(data.try_into().expect("4"))),
        REG_QWORD if data.len() == 8 => format!("{:#x}", u64::from_le_bytes(data.try_into().expect("8"))),
        _ => hex(data),
    }
}

/// Data as JSON: a string, a list of strings, a number, or hex bytes.
pub fn to_json(kind: u32, data: &[u8]) -> JsonData {
    match kind {
        REG_SZ | REG_EXPAND_SZ | REG_LINK => JsonData::String(string(data)),
        REG_MULTI_SZ => JsonData::Strings(multi_string(data)),
        REG_DWORD if data.len() == 4 => JsonData::Number(u64::from(u32::from_le_bytes(data.try_into().expect("4")))),
        REG_DWORD_BIG_ENDIAN if data.len() == 4 => {
            JsonData::Number(u64::from(u32::from_be_bytes(data.try_into().expect("4"))))
        }
        REG_QWORD if data.len() == 8 => JsonData::Number(u64::from_le_bytes(data.try_into().expect("8"))),
        _ => JsonData::String(hex(data)),
    }
}

/// Value data in a JSON-ready form (a string, strings, or a number), without tying this crate
/// to a JSON library.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum JsonData {
    /// Text, or hex bytes.
    String(String),
    /// A multi-string's strings.
    Strings(Vec<String>),
    /// A number.
    Number(u64),
}

fn number(text: &str) -> Result<u64> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| HiveError::Invalid(format!("{text:?} is not a number")))
}

/// Encodes command-line text as data of `kind`, as `reg add` does: strings as UTF-16LE with a
/// NUL, multi-strings separated by `\0`, numbers in decimal or `0x` hex, binary as hex digits.
pub fn parse_data(kind: u32, text: &str) -> Result<Vec<u8>> {
    let utf16z = |s: &str| -> Vec<u8> { s.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect() };
    Ok(match kind {
        REG_SZ | REG_EXPAND_SZ | REG_LINK => utf16z(text),
        REG_MULTI_SZ => {
            let mut out: Vec<u8> = text.split("\\0").filter(|s| !s.is_empty()).flat_map(utf16z).collect();
            out.extend_from_slice(&[0, 0]);
            out
        }
        REG_DWORD => u32::try_from(number(text)?)
            .map_err(|_| HiveError::Invalid(format!("{text:?} does not fit a REG_DWORD")))?
            .to_le_bytes()
            .to_vec(),
        REG_DWORD_BIG_ENDIAN => u32::try_from(number(text)?)
            .map_err(|_| HiveError::Invalid(format!("{text:?} does not fit a REG_DWORD")))?
            .to_be_bytes()
            .to_vec(),
        REG_QWORD => number(text)?.to_le_bytes().to_vec(),
        _ => {
            let digits: String = text.chars().filter(|c| !c.is_whitespace() && *c != ',').collect();
            if !digits.len().is_multiple_of(2) || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(HiveError::Invalid(format!("{text:?} is not hex bytes")));
            }
            (0..digits.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex"))
                .collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_parses_and_displays_like_reg_exe() {
        for (kind, text, shown) in [
            (REG_SZ, "2.0 ✓", "2.0 ✓"),
            (REG_EXPAND_SZ, "%SystemRoot%\\x", "%SystemRoot%\\x"),
            (REG_MULTI_SZ, "a\\0b\\0c", "a\\0b\\0c"),
            (REG_DWORD, "0x10", "0x10"),
            (REG_DWORD, "4294967295", "0xffffffff"),
            (REG_QWORD, "0x1122334455667788", "0x1122334455667788"),
            (REG_BINARY, "de ad BE EF", "DEADBEEF"),
        ] {
            let data = parse_data(kind, text).unwrap();
            assert_eq!(display(kind, &data), shown, "{}", type_name(kind));
        }
        assert!(parse_data(REG_DWORD, "4294967296").is_err());
        assert!(parse_data(REG_BINARY, "abc").is_err());
        assert_eq!(parse_type("reg_multi_sz").unwrap(), REG_MULTI_SZ);
        assert!(parse_type("REG_FOO").is_err());
        assert_eq!(type_name(0x99), "REG_0x99");
    }
}
