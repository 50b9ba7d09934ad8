//! Small in-process caches.
//!
//! - [`ManifestCache`]: manifest bytes by digest. Content-addressed bytes never change, so it
//!   needs no invalidation across replicas.
//! - [`ReferenceCache`]: what a manifest reference (tag or digest) of a repository resolved to,
//!   for `server.reference_cache_ttl` (1 s). Within one replica, pushes and deletes through it
//!   invalidate their entries at once; another replica's push or delete shows here at most one
//!   TTL late (the staleness bound). With the manifest cache, a hot `GET /manifests/latest` costs
//!   no storage request within the TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_storage::Digest;

use crate::meta::Revision;

/// Entries [`ReferenceCache`] holds before it starts over.
const REFERENCES: usize = 65_536;

/// `(repository, reference)`.
type ReferenceKey = (String, String);

/// What `(repository, reference)` resolved to, and when.
#[derive(Debug, Default)]
pub struct ReferenceCache {
    ttl: Duration,
    inner: Mutex<HashMap<ReferenceKey, (Digest, Revision, Instant)>>,
}

impl ReferenceCache {
    /// An empty cache whose entries live `ttl` (zero: caches nothing).
    pub fn new(ttl: Duration) -> Self {
        ReferenceCache {
            ttl,
            inner: Mutex::default(),
        }
    }

    /// The digest and revision `reference` of `repository` resolved to less than a TTL ago.
    pub fn get(&self, repository: &str, reference: &str) -> Option<(Digest, Revision)> {
        let inner = self.inner.lock().expect("cache lock");
        let (digest, revision, at) = inner.get(&(repository.to_owned(), reference.to_owned()))?;
        (at.elapsed() < self.ttl).then(|| (digest.clone(), revision.clone()))
    }

    /// Remembers what `reference` of `repository` resolved to.
    pub fn insert(&self, repository: &str, reference: &str, digest: Digest, revision: Revision) {
        if self.ttl.is_zero() {
            return;
        }
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.len() >= REFERENCES {
            let ttl = self.ttl;
            inner.retain(|_, (_, _, at)| at.elapsed() < ttl);
            if inner.len() >= REFERENCES {
                inner.clear();
            }
        }
        inner.insert(
            (repository.to_owned(), reference.to_owned()),
            (digest, revision, Instant::now()),
        );
    }

    /// Forgets `reference` of `repository` (a tag pushed or deleted here).
    pub fn forget(&self, repository: &str, reference: &str) {
        self.inner
            .lock()
            .expect("cache lock")
            .remove(&(repository.to_owned(), reference.to_owned()));
    }

    /// Forgets every reference of `repository` that resolved to `digest` (a manifest deleted here).
    pub fn forget_digest(&self, repository: &str, digest: &Digest) {
        self.inner
            .lock()
            .expect("cache lock")
            .retain(|(r, _), (d, _, _)| !(r == repository && d == digest));
    }
}

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
    fn references_live_one_ttl_and_go_when_forgotten() {
        let revision = Revision {
            media_type: "m".into(),
            size: 1,
            subject: None,
        };
        let cache = ReferenceCache::new(Duration::from_millis(50));
        cache.insert("r", "latest", sha256(b"a"), revision.clone());
        cache.insert("r", "v1", sha256(b"a"), revision.clone());
        cache.insert("r", "v2", sha256(b"b"), revision.clone());
        assert_eq!(cache.get("r", "latest").unwrap().0, sha256(b"a"));
        assert!(cache.get("other", "latest").is_none());
        cache.forget("r", "latest");
        assert!(cache.get("r", "latest").is_none());
        cache.forget_digest("r", &sha256(b"a"));
        assert!(cache.get("r", "v1").is_none());
        assert!(cache.get("r", "v2").is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get("r", "v2").is_none(), "expired");
        let off = ReferenceCache::new(Duration::ZERO);
        off.insert("r", "latest", sha256(b"a"), revision);
        assert!(off.get("r", "latest").is_none());
    }

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
