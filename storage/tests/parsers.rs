//! Property tests of every storage parser that sees bytes from the network: repository names,
//! tags, upload ids, keys, digests and `Range` values. For any input: no panic, and what is
//! accepted satisfies the type's promise; well-formed inputs are accepted and round-trip.

use proptest::prelude::*;
use strata_storage::digest::parse_digest;
use strata_storage::{ByteRange, Key, RepositoryName, Tag, UploadId};

/// Strings that look like what arrives in a URL, plus arbitrary Unicode.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._/:-]{0,300}",
        "[ -~]{0,300}",
        any::<String>(),
        "(\\.\\./|/|%2e|\\x00|sha256:|-){0,20}",
    ]
}

/// A valid repository name component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn component() -> impl Strategy<Value = String> {
    (
        "[a-z0-9]{1,8}",
        prop::collection::vec(("(\\.|_|__|-{1,3})", "[a-z0-9]{1,8}"), 0..3),
    )
        .prop_map(|(first, rest)| {
            let mut s = first;
            for (sep, part) in rest {
                s.push_str(&sep);
                s.push_str(&part);
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn names_never_panic_and_accept_only_what_they_promise(value in hostile()) {
        if let Ok(name) = RepositoryName::parse(&value) {
            prop_assert!(name.as_str().len() <= 255);
            prop_assert!(!name.as_str().contains(".."));
            prop_assert!(!name.as_str().starts_with('/') && !name.as_str().ends_with('/'));
            prop_assert!(name.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b)));
        }
        if let Ok(tag) = Tag::parse(&value) {
            prop_assert!(tag.as_str().len() <= 128 && !tag.as_str().starts_with(['.', '-']));
        }
        if let Ok(id) = UploadId::parse(&value) {
            prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
        if let Ok(key) = Key::parse(value.clone()) {
            prop_assert!(!key.as_str().starts_with('/'));
            prop_assert!(key.as_str().split('/').all(|s| !s.is_empty() && s != ".." && !s.starts_with('.')));
        }
        let _ = parse_digest(&value);
    }

    #[test]
    fn well_formed_names_are_accepted_as_they_are(parts in prop::collection::vec(component(), 1..5)) {
        let value = parts.join("/");
        prop_assume!(value.len() <= 255);
        let name = RepositoryName::parse(&value).unwrap();
        prop_assert_eq!(name.as_str(), value.as_str());
        prop_assert!(RepositoryName::parse(&value.to_uppercase()).is_err() || value == value.to_uppercase());
    }

    #[test]
    fn digests_round_trip(data in prop::collection::vec(any::<u8>(), 0..64)) {
        let digest = strata_storage::digest::sha256(&data);
        let text = digest.to_string();
        prop_assert!(parse_digest(&text[..text.len() - 1]).is_err());
        prop_assert_eq!(parse_digest(&text).unwrap(), digest);
    }

    #[test]
    fn ranges_never_panic_and_resolve_inside_the_object(value in hostile(), size in 0u64..u64::MAX) {
        for range in [ByteRange::parse(&value), ByteRange::parse_header(&value)].into_iter().flatten() {
            if let Ok(span) = range.resolve(size) {
                prop_assert!(span.start < span.end && span.end <= size, "{range} of {size}: {span:?}");
            }
        }
    }

    #[test]
    fn numeric_ranges_resolve_like_http_says(a in any::<u64>(), b in any::<u64>(), size in 0u64..1 << 40) {
        let header = format!("bytes={a}-{b}");
        match ByteRange::parse_header(&header) {
            Ok(range) => {
                prop_assert!(a <= b);
                match range.resolve(size) {
                    Ok(span) => prop_assert_eq!(span, a..b.min(size - 1) + 1),
                    Err(_) => prop_assert!(a >= size),
                }
            }
            Err(_) => prop_assert!(a > b),
        }
        if let Ok(span) = ByteRange::parse_header(&format!("bytes=-{a}")).unwrap().resolve(size) {
            prop_assert_eq!(span, size.saturating_sub(a)..size);
        }
    }
}
