//! The storage key layout: the one place that turns validated names and digests into [`Key`]s.
//!
//! ```text
//! <root>
//! ├── blobs/<alg>/<hh>/<hex>                  content, published only after its digest verified
//! │                                           (<hh>: first two hex digits, to spread directories)
//! ├── repositories/<name>/                    <name> has one or more segments (library/busybox)
//! │   ├── _layers/<alg>/<hex>                 link: the blob may be read through this repository
//! │   ├── _manifests/revisions/<alg>/<hex>    link: the manifest belongs to this repository
//! │   ├── _manifests/tags/<tag>               the digest the tag points to
//! │   ├── _manifests/index/<alg>/<hex>/<tag>  marker: the tag was pointed at this manifest (the
//! │   │                                       tags to check when it is deleted; may be stale)
//! │   ├── _manifests/index/_complete          marker: every tag of the repository is indexed
//! │   ├── _referrers/<alg>/<subject-hex>/<alg>/<hex>
//! │   │                                       descriptor of a manifest whose `subject` is the
//! │   │                                       first digest
//! │   └── _deleting/<alg>/<hex>               garbage collection is removing this digest's
//! │                                           link and revision here (an intent; see registry gc)
//! ├── _catalog/<name>/_repository             marker: the repository exists (for /v2/_catalog)
//! ├── _gc/claims/<alg>/<hex>                  a push used this digest lately (its mtime counts)
//! ├── _gc/deleting/<alg>/<hex>                garbage collection is deleting this blob (intent)
//! ├── _gc/clock, _gc/lease, _gc/report        the storage's clock, the cycle lease, last report
//! ├── _index/layers/<alg>/<hex>               the file list of layer blob <digest> (the web UI's;
//! │                                           derived data: rebuilt when missing, deleted with
//! │                                           the blob)
//! ├── _upkeep/<task>                          lease of a periodic task (purge, sweep): one
//! │                                           replica runs it per interval
//! ├── _multipart/<id>                         (S3 backend) a multipart upload in flight: its key,
//! │                                           then its id; written before it starts, removed
//! │                                           when it ends, so a sweep can abort any orphan
//! └── _uploads/<id>/                         one upload session
//!     ├── data/...                            a backend upload (the backend owns everything here)
//!     ├── info                                the registry's record of the upload session
//!     └── staged                              content being re-hashed (non-SHA-256 digests)
//! ```
//!
//! Why it looks like this:
//! - Every object is written by one writer and is either immutable (blobs, links, referrers,
//!   markers) or replaced whole by an atomic `put` (tags, upload info). Two replicas never do a
//!   read-modify-write of one shared object, so S3 needs no locking.
//! - Segments we add start with `_`, which no repository-name component can, so a repository
//!   called `a/_layers` cannot exist to collide with them; and no key is both an object and the
//!   prefix of another object (the filesystem could not hold that).
//! - Listing a prefix returns keys in byte order, so tags come back sorted and a page can resume
//!   with `start_after`. Catalog entries sort by `name + "/"`, which differs from plain name order
//!   only where one name is a prefix of another followed by a character below `/` (`a` vs `a-b`);
//!   pagination stays consistent because `start_after` uses the same order.

use crate::digest::{Algorithm, Digest};
use crate::error::Result;
use crate::key::Key;
use crate::names::{RepositoryName, Tag, UploadId};

fn key(s: String) -> Key {
    Key::parse(s).expect("layout builds keys from validated parts")
}

/// `<alg>/<hex>` for a digest we can store.
fn digest_path(digest: &Digest) -> Result<String> {
    let alg = Algorithm::of(digest)?;
    Ok(format!("{}/{}", alg.name(), digest.digest()))
}

fn digest_from(alg: &str, hex: &str) -> Option<Digest> {
    crate::digest::parse_digest(&format!("{alg}:{hex}")).ok()
}

/// Prefix of all blobs.
pub fn blobs() -> Key {
    key("blobs".into())
}

/// Where the content of `digest` lives.
pub fn blob(digest: &Digest) -> Result<Key> {
    let alg = Algorithm::of(digest)?;
    let hex = digest.digest();
    Ok(key(format!("blobs/{}/{}/{hex}", alg.name(), &hex[..2])))
}

/// Where the content of `digest` lives in an OCI image layout (`blobs/<alg>/<hex>`, no
/// sharding), for stores that other OCI tools read.
pub fn oci_layout_blob(digest: &Digest) -> Result<Key> {
    Ok(key(format!("blobs/{}", digest_path(digest)?)))
}

/// The digest whose content lives at `key`, if `key` is a blob key.
pub fn blob_digest(key: &Key) -> Option<Digest> {
    match key.segments().collect::<Vec<_>>()[..] {
        ["blobs", alg, shard, hex] if hex.starts_with(shard) => digest_from(alg, hex),
        ["blobs", alg, hex] => digest_from(alg, hex),
        _ => None,
    }
}

/// Prefix of everything that belongs to one repository.
pub fn repository(name: &RepositoryName) -> Key {
    key(format!("repositories/{name}"))
}

/// Link saying `digest` may be read as a blob of repository `name`.
pub fn layer_link(name: &RepositoryName, digest: &Digest) -> Result<Key> {
    Ok(key(format!("repositories/{name}/_layers/{}", digest_path(digest)?)))
}

/// Prefix of the blob links of a repository.
pub fn layer_links(name: &RepositoryName) -> Key {
    key(format!("repositories/{name}/_layers"))
}

/// Link saying manifest `digest` belongs to repository `name`.
pub fn manifest_revision(name: &RepositoryName, digest: &Digest) -> Result<Key> {
    Ok(key(format!(
        "repositories/{name}/_manifests/revisions/{}",
        digest_path(digest)?
    )))
}

/// Prefix of the manifest links of a repository.
pub fn manifest_revisions(name: &RepositoryName) -> Key {
    key(format!("repositories/{name}/_manifests/revisions"))
}

/// The digest named by a layer link or manifest revision key (its last two segments).
pub fn linked_digest(key: &Key) -> Option<Digest> {
    let mut rev = key.segments().rev();
    let hex = rev.next()?;
    let alg = rev.next()?;
    digest_from(alg, hex)
}

/// Where tag `tag` of repository `name` records its digest.
pub fn tag(name: &RepositoryName, tag: &Tag) -> Key {
    key(format!("repositories/{name}/_manifests/tags/{tag}"))
}

/// Marker that `tag` was pointed at manifest `digest` in `name`: deleting the manifest checks
/// these tags instead of every tag of the repository.
pub fn tag_index_entry(name: &RepositoryName, digest: &Digest, tag: &Tag) -> Result<Key> {
    Ok(key(format!(
        "repositories/{name}/_manifests/index/{}/{tag}",
        digest_path(digest)?
    )))
}

/// Prefix of the markers of the tags ever pointed at `digest` in `name`.
pub fn tag_index(name: &RepositoryName, digest: &Digest) -> Result<Key> {
    Ok(key(format!(
        "repositories/{name}/_manifests/index/{}",
        digest_path(digest)?
    )))
}

/// Marker that every tag of `name` has its index entry (repositories from before the index
/// get it on their first manifest delete).
pub fn tag_index_complete(name: &RepositoryName) -> Key {
    key(format!("repositories/{name}/_manifests/index/_complete"))
}

/// Prefix of the tags of a repository; listing it yields the tags in byte order.
pub fn tags(name: &RepositoryName) -> Key {
    key(format!("repositories/{name}/_manifests/tags"))
}

/// The tag recorded at `key`, if it is a tag key.
pub fn tag_name(key: &Key) -> Option<Tag> {
    let (rest, tag) = key.as_str().rsplit_once('/')?;
    rest.ends_with("/_manifests/tags").then(|| Tag::parse(tag).ok())?
}

/// Where the descriptor of `referrer` (a manifest whose `subject` is `subject`) is kept.
pub fn referrer(name: &RepositoryName, subject: &Digest, referrer: &Digest) -> Result<Key> {
    Ok(key(format!(
        "repositories/{name}/_referrers/{}/{}",
        digest_path(subject)?,
        digest_path(referrer)?
    )))
}

/// Prefix of the referrers of `subject`.
pub fn referrers(name: &RepositoryName, subject: &Digest) -> Result<Key> {
    Ok(key(format!("repositories/{name}/_referrers/{}", digest_path(subject)?)))
}

/// Prefix of every referrers entry of a repository.
pub fn all_referrers(name: &RepositoryName) -> Key {
    key(format!("repositories/{name}/_referrers"))
}

/// The `(subject, referrer)` a referrers entry key names.
pub fn referrer_pair(key: &Key) -> Option<(Digest, Digest)> {
    let mut rev = key.segments().rev();
    let (hex, alg) = (rev.next()?, rev.next()?);
    let (subject_hex, subject_alg) = (rev.next()?, rev.next()?);
    Some((digest_from(subject_alg, subject_hex)?, digest_from(alg, hex)?))
}

/// Intent marker: garbage collection is removing `digest`'s link and revision in `name`.
pub fn link_intent(name: &RepositoryName, digest: &Digest) -> Result<Key> {
    Ok(key(format!("repositories/{name}/_deleting/{}", digest_path(digest)?)))
}

/// Prefix of the intent markers of repository `name`.
pub fn link_intents(name: &RepositoryName) -> Key {
    key(format!("repositories/{name}/_deleting"))
}

/// Claim marker: a push used `digest` lately; its modification time is when.
pub fn claim(digest: &Digest) -> Result<Key> {
    Ok(key(format!("_gc/claims/{}", digest_path(digest)?)))
}

/// Prefix of the claim markers.
pub fn claims() -> Key {
    key("_gc/claims".into())
}

/// Intent marker: garbage collection is deleting blob `digest`.
pub fn blob_intent(digest: &Digest) -> Result<Key> {
    Ok(key(format!("_gc/deleting/{}", digest_path(digest)?)))
}

/// Prefix of the blob intent markers.
pub fn blob_intents() -> Key {
    key("_gc/deleting".into())
}

/// An object garbage collection writes to read the storage's clock (its modification time).
pub fn gc_clock() -> Key {
    key("_gc/clock".into())
}

/// The lease one garbage collector holds for a cycle.
pub fn gc_lease() -> Key {
    key("_gc/lease".into())
}

/// The report of the last garbage-collection cycle.
pub fn gc_report() -> Key {
    key("_gc/report".into())
}

/// The file list of layer blob `digest` (derived from it; the web UI's).
pub fn layer_index(digest: &Digest) -> Result<Key> {
    Ok(key(format!("_index/layers/{}", digest_path(digest)?)))
}

/// The lease of periodic task `task` (`purge`, `sweep`).
pub fn upkeep_lease(task: &str) -> Key {
    key(format!("_upkeep/{task}"))
}

/// Where the S3 backend records its multipart uploads in flight.
pub fn multipart_records() -> Key {
    key("_multipart".into())
}

/// The record of multipart upload `id` (a random id of the backend's).
pub fn multipart_record(id: &str) -> Key {
    key(format!("_multipart/{id}"))
}

/// Marker object saying repository `name` exists.
pub fn catalog_entry(name: &RepositoryName) -> Key {
    key(format!("_catalog/{name}/_repository"))
}

/// Prefix of the catalog markers.
pub fn catalog() -> Key {
    key("_catalog".into())
}

/// The repository a catalog marker stands for.
pub fn catalog_name(key: &Key) -> Option<RepositoryName> {
    let name = key.as_str().strip_prefix("_catalog/")?.strip_suffix("/_repository")?;
    RepositoryName::parse(name).ok()
}

/// Prefix of all upload sessions.
pub fn uploads() -> Key {
    key("_uploads".into())
}

/// Prefix of everything stored for one upload session.
pub fn upload_session(id: &UploadId) -> Key {
    key(format!("_uploads/{id}"))
}

/// Home of the backend upload that holds an upload session's bytes.
pub fn upload_data(id: &UploadId) -> Key {
    key(format!("_uploads/{id}/data"))
}

/// The registry's record of an upload session (repository, start time).
pub fn upload_info(id: &UploadId) -> Key {
    key(format!("_uploads/{id}/info"))
}

/// Where a session's completed content waits while it is re-hashed with a non-SHA-256 algorithm.
pub fn upload_staged(id: &UploadId) -> Key {
    key(format!("_uploads/{id}/staged"))
}

/// The upload session a key under [`uploads`] belongs to.
pub fn upload_id(key: &Key) -> Option<UploadId> {
    let mut segments = key.segments();
    (segments.next()? == "_uploads").then_some(())?;
    UploadId::parse(segments.next()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256;

    #[test]
    fn keys_round_trip_to_the_values_they_were_built_from() {
        let d = sha256(b"x");
        let name = RepositoryName::parse("library/busybox").unwrap();
        let t = Tag::parse("v1").unwrap();
        let id = UploadId::random();

        let b = blob(&d).unwrap();
        assert!(b.as_str().starts_with("blobs/sha256/2d/2d711642"));
        assert_eq!(blob_digest(&b), Some(d.clone()));
        let o = oci_layout_blob(&d).unwrap();
        assert!(o.as_str().starts_with("blobs/sha256/2d711642"));
        assert_eq!(blob_digest(&o), Some(d.clone()));
        assert_eq!(linked_digest(&layer_link(&name, &d).unwrap()), Some(d.clone()));
        assert_eq!(linked_digest(&manifest_revision(&name, &d).unwrap()), Some(d.clone()));
        assert_eq!(tag_name(&tag(&name, &t)), Some(t));
        assert_eq!(catalog_name(&catalog_entry(&name)), Some(name.clone()));
        assert_eq!(upload_id(&upload_data(&id).join("state").unwrap()), Some(id.clone()));
        assert_eq!(upload_id(&upload_info(&id)), Some(id.clone()));
        assert!(upload_session(&id).is_prefix_of(&upload_staged(&id)));
        assert_eq!(linked_digest(&claim(&d).unwrap()), Some(d.clone()));
        let subject = crate::digest::sha256(b"subject");
        let entry = referrer(&name, &subject, &d).unwrap();
        assert!(all_referrers(&name).is_prefix_of(&entry));
        assert_eq!(referrer_pair(&entry), Some((subject, d.clone())));
        assert_eq!(linked_digest(&blob_intent(&d).unwrap()), Some(d.clone()));
        assert_eq!(linked_digest(&link_intent(&name, &d).unwrap()), Some(d.clone()));
        assert!(claims().is_prefix_of(&claim(&d).unwrap()));
        assert!(!repository(&name).is_prefix_of(&claim(&d).unwrap()));
        assert!(
            referrers(&name, &d)
                .unwrap()
                .is_prefix_of(&referrer(&name, &d, &sha256(b"y")).unwrap())
        );
    }

    #[test]
    fn unsupported_digests_build_no_key() {
        let d: Digest = format!("sha384:{}", "a".repeat(96)).parse().unwrap();
        assert!(blob(&d).is_err());
    }

    #[test]
    fn repository_prefixes_do_not_capture_longer_names() {
        let a = RepositoryName::parse("a").unwrap();
        let ab = RepositoryName::parse("a-b").unwrap();
        assert!(!repository(&a).is_prefix_of(&tags(&ab)));
    }
}
