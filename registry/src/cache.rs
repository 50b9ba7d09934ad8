//! A small in-process cache of manifest bytes by digest. Content-addressed bytes never change, so
//! the cache needs no invalidation across replicas; whether a repository still holds a manifest is
//! always read from storage (its revision link) before the cache is consulted.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use strata_storage::Digest;

/// Manifest bytes by digest, at most `capacity` bytes in all.
#[derive(Debug)]
pub struct ManifestCache {
    capacity: usize,
    inner: Mutex<(HashMap<Digest, Bytes>, usize)>,
}

impl ManifestCache {
    /// An empty cache holding at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        ManifestCache {
            capacity,
            inner: Mutex::new((HashMap::new(), 0)),
        }
    }

    /// The bytes of `digest`, if cached.
    pub fn get(&self, digest: &Digest) -> Option<Bytes> {
        self.inner.lock().expect("cache lock").0.get(digest).cloned()
    }

    /// Caches `bytes` as the content of `digest`. When full, the cache starts over: simpler than
    /// LRU bookkeeping, and hot manifests come back on their next read.
    pub fn insert(&self, digest: Digest, bytes: Bytes) {
        if bytes.len() > self.capacity / 8 {
            return;
        }
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.1 + bytes.len() > self.capacity {
            inner.0.clear();
            inner.1 = 0;
        }
        inner.1 += bytes.len();
        if let Some(old) = inner.0.insert(digest, bytes) {
            inner.1 -= old.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_storage::digest::sha256;

    #[test]
    fn holds_entries_up_to_its_capacity() {
        let cache = ManifestCache::new(100);
        cache.insert(sha256(b"a"), Bytes::from(vec![0; 10]));
        assert_eq!(cache.get(&sha256(b"a")).unwrap().len(), 10);
        cache.insert(sha256(b"big"), Bytes::from(vec![0; 50]));
        assert!(
            cache.get(&sha256(b"big")).is_none(),
            "entries over an eighth of the capacity are not cached"
        );
        for i in 0..12u8 {
            cache.insert(sha256(&[i]), Bytes::from(vec![i; 10]));
        }
        let total: usize = (0..12u8)
            .filter_map(|i| cache.get(&sha256(&[i])))
            .map(|b| b.len())
            .sum();
        assert!(total <= 100);
    }
}
