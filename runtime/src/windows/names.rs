//! Windows names on Linux: NTFS's case-insensitive identity and escaping of names Linux cannot
//! hold (or that Windows reserves).

use strata_storage::digest::sha256;

/// The longest component Linux holds, in bytes.
const NAME_MAX: usize = 255;

/// The identity NTFS gives a name: each character mapped to its simple uppercase (one character
/// to one character; `ß` stays `ß`), no normalization.
pub fn fold_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// Whether a character needs escaping in a stored name: controls, and what Win32 reserves.
fn reserved(c: char) -> bool {
    c.is_control() || matches!(c, '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' | '%')
}

/// The on-disk form of one name component: itself when Linux can hold it and it has no reserved
/// character; else `%XX`-escaped, and past 255 bytes cut and suffixed with a hash of the name.
pub(super) fn escape_component(name: &str) -> String {
    if name.len() <= NAME_MAX && !name.chars().any(reserved) {
        return name.to_owned();
    }
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if reserved(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.len() > NAME_MAX {
        let hash = sha256(name.as_bytes());
        let suffix = format!("~{}", &hash.digest()[..16]);
        let mut cut = NAME_MAX - suffix.len();
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str(&suffix);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_is_simple_uppercase() {
        assert_eq!(fold_key("Files/Windows/win.ini"), "FILES/WINDOWS/WIN.INI");
        assert_eq!(fold_key("straße"), "STRAßE");
        assert_eq!(fold_key("été"), "ÉTÉ");
    }

    #[test]
    fn escaping_keeps_ordinary_names_and_bounds_long_ones() {
        assert_eq!(escape_component("notepad.exe"), "notepad.exe");
        assert_eq!(escape_component("a*b?"), "a%2Ab%3F");
        let long = "漢".repeat(255);
        let escaped = escape_component(&long);
        assert!(escaped.len() <= 255, "{}", escaped.len());
        assert_ne!(escape_component(&"漢".repeat(254)), escaped);
    }
}
