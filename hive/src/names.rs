//! Key and value names: how they are stored (Latin-1 or UTF-16LE) and compared (case-
//! insensitively, as the registry does).

/// Decodes a stored name: Latin-1 bytes when `compressed`, else UTF-16LE (unpaired surrogates
/// become U+FFFD).
pub(crate) fn decode_name(bytes: &[u8], compressed: bool) -> String {
    if compressed {
        bytes.iter().map(|&b| char::from(b)).collect()
    } else {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    }
}

/// Encodes a name for storage: Latin-1 when every character fits (and whether it did), else
/// UTF-16LE.
pub(crate) fn encode_name(name: &str) -> (Vec<u8>, bool) {
    if name.chars().all(|c| u32::from(c) <= 0xFF) {
        (
            name.chars()
                .map(|c| u8::try_from(u32::from(c)).expect("Latin-1"))
                .collect(),
            true,
        )
    } else {
        (name.encode_utf16().flat_map(u16::to_le_bytes).collect(), false)
    }
}

/// The form two names are compared in: upper case, as the registry compares them.
pub fn fold(name: &str) -> String {
    name.chars().map(upcase).collect()
}

/// A character's upper case when that is one character, else itself.
fn upcase(c: char) -> char {
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// The `lh` list hash of a name: over its UTF-16 code units, upper-cased, `h = h * 37 + c`.
pub(crate) fn name_hash(name: &str) -> u32 {
    fold(name)
        .encode_utf16()
        .fold(0u32, |h, c| h.wrapping_mul(37).wrapping_add(u32::from(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_both_encodings_and_compare_without_case() {
        for name in ["Software", "Ünïcödé-Latin1", "ключ", "鍵", "emoji 🗝"] {
            let (bytes, compressed) = encode_name(name);
            assert_eq!(decode_name(&bytes, compressed), name);
        }
        assert!(encode_name("Äpfel").1, "Latin-1 is stored compressed");
        assert!(!encode_name("ключ").1);
        assert_eq!(fold("Microsoft\\Windows ключ"), fold("MICROSOFT\\windows КЛЮЧ"));
        // Known hash: "A" is 65.
        assert_eq!(name_hash("a"), 65);
        assert_eq!(name_hash("ab"), 65 * 37 + 66);
    }
}
