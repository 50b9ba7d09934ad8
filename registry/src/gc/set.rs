//! A compact set of digests: SHA-256 digests as 32-byte arrays in a sorted vector (a million of
//! them take 32 MB), anything else in a small hash set.

use std::collections::HashSet;

use strata_storage::Digest;

/// A set of digests, built by inserting and then frozen for lookups by [`DigestSet::seal`]
/// (lookups seal it themselves when needed).
#[derive(Debug, Default, Clone)]
pub(crate) struct DigestSet {
    sha256: Vec<[u8; 32]>,
    sorted: bool,
    other: HashSet<Digest>,
}

fn raw(digest: &Digest) -> Option<[u8; 32]> {
    if digest.algorithm().to_string() != "sha256" {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(digest.digest(), &mut out).ok()?;
    Some(out)
}

impl DigestSet {
    pub(crate) fn insert(&mut self, digest: &Digest) {
        match raw(digest) {
            Some(r) => {
                self.sha256.push(r);
                self.sorted = false;
            }
            None => {
                self.other.insert(digest.clone());
            }
        }
    }

    /// Sorts and deduplicates; call after a run of inserts.
    pub(crate) fn seal(&mut self) {
        if !self.sorted {
            self.sha256.sort_unstable();
            self.sha256.dedup();
            self.sorted = true;
        }
    }

    /// Whether `digest` is in the set (the set must be sealed).
    pub(crate) fn contains(&self, digest: &Digest) -> bool {
        debug_assert!(self.sorted || self.sha256.is_empty(), "seal before lookups");
        match raw(digest) {
            Some(r) => self.sha256.binary_search(&r).is_ok(),
            None => self.other.contains(digest),
        }
    }

    pub(crate) fn extend(&mut self, other: &DigestSet) {
        self.sha256.extend_from_slice(&other.sha256);
        self.sorted = false;
        self.other.extend(other.other.iter().cloned());
    }

    pub(crate) fn len(&self) -> usize {
        self.sha256.len() + self.other.len()
    }
}

/// Sizes of the blobs present in storage, kept as compactly as [`DigestSet`] (40 bytes a
/// SHA-256 blob): the listing comes in key order, which is digest order.
#[derive(Debug, Default)]
pub(crate) struct Sizes {
    sha256: Vec<([u8; 32], u64)>,
    sorted: bool,
    other: std::collections::HashMap<Digest, u64>,
}

impl Sizes {
    pub(crate) fn insert(&mut self, digest: &Digest, size: u64) {
        match raw(digest) {
            Some(r) => {
                if self.sha256.last().is_some_and(|(last, _)| *last > r) {
                    self.sorted = false;
                }
                self.sha256.push((r, size));
            }
            None => {
                self.other.insert(digest.clone(), size);
            }
        }
    }

    /// Sorts if the inserts came out of order; call before lookups.
    pub(crate) fn seal(&mut self) {
        if !self.sorted {
            self.sha256.sort_unstable_by_key(|(r, _)| *r);
            self.sorted = true;
        }
    }

    /// The size of `digest`, if present.
    pub(crate) fn get(&self, digest: &Digest) -> Option<u64> {
        match raw(digest) {
            Some(r) => self.get_raw(&r),
            None => self.other.get(digest).copied(),
        }
    }

    fn get_raw(&self, r: &[u8; 32]) -> Option<u64> {
        self.sha256
            .binary_search_by_key(r, |(k, _)| *k)
            .ok()
            .map(|i| self.sha256[i].1)
    }

    /// Bytes of the members of `set` that are present.
    pub(crate) fn total(&self, set: &DigestSet) -> u64 {
        set.sha256.iter().filter_map(|r| self.get_raw(r)).sum::<u64>()
            + set.other.iter().filter_map(|d| self.other.get(d)).sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_after_sealing() {
        let mut set = DigestSet::default();
        let a = strata_storage::digest::sha256(b"a");
        let b = strata_storage::digest::sha256(b"b");
        let long: Digest = format!("sha512:{}", "a".repeat(128)).parse().unwrap();
        set.insert(&a);
        set.insert(&a);
        set.insert(&long);
        set.seal();
        assert!(set.contains(&a) && set.contains(&long) && !set.contains(&b));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn sizes_in_any_order_and_totals() {
        let a = strata_storage::digest::sha256(b"a");
        let b = strata_storage::digest::sha256(b"b");
        let c = strata_storage::digest::sha256(b"c");
        let mut sizes = Sizes::default();
        sizes.insert(&b, 2);
        sizes.insert(&a, 1);
        sizes.seal();
        assert_eq!((sizes.get(&a), sizes.get(&b), sizes.get(&c)), (Some(1), Some(2), None));
        let mut set = DigestSet::default();
        set.insert(&a);
        set.insert(&c);
        set.seal();
        assert_eq!(sizes.total(&set), 1);
    }
}
