//! Repository metadata: blob links, manifest revisions, tags, referrers, the catalog and upload
//! records. Each is a small object at a key from [`strata_storage::layout`], written whole by one
//! request and never read-modified-written, so any number of replicas can share the storage.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use strata_storage::{
    Backend, BackendExt, Digest, Error, Key, RepositoryName, Result, Tag, UploadId, digest::parse_digest, layout,
};

/// What a repository records about one of its manifests (the bytes live in the blob store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    /// The manifest's media type, served back as `Content-Type`.
    pub media_type: String,
    /// Size of the manifest in bytes.
    pub size: u64,
    /// The manifest's `subject`, so deleting it can update the referrers index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
}

/// What a registry records about an upload session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// The repository the session belongs to; the session is unknown to every other one.
    pub repository: String,
    /// When the session started (seconds since the epoch).
    pub started: u64,
    /// Who opened it, under access control: nobody else may continue, finish or cancel it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// One page of the catalog.
#[derive(Debug, Default)]
pub struct CatalogPage {
    /// The repositories, in order.
    pub names: Vec<RepositoryName>,
    /// The last repository looked at (where the next page starts).
    pub last_seen: Option<RepositoryName>,
    /// Whether more repositories follow.
    pub more: bool,
}

/// Metadata access over a backend. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metadata {
    backend: Arc<dyn Backend>,
    /// Repositories whose catalog entry this process has seen or written: entries are never
    /// removed, so a known one needs no storage request.
    known: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// How many repository names [`Metadata`] remembers before it starts over.
const KNOWN_REPOSITORIES: usize = 100_000;

fn absent_is_none<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn corrupt(key: &Key, what: impl std::fmt::Display) -> Error {
    Error::Config(format!("corrupt metadata at {key}: {what}"))
}

impl Metadata {
    /// Metadata stored in `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Metadata {
            backend,
            known: Arc::default(),
        }
    }

    async fn read_json<T: for<'de> Deserialize<'de>>(&self, key: &Key) -> Result<Option<T>> {
        let Some(raw) = absent_is_none(self.backend.get_bytes(key).await)? else {
            return Ok(None);
        };
        serde_json::from_slice(&raw).map(Some).map_err(|e| corrupt(key, e))
    }

    async fn write_json<T: Serialize>(&self, key: &Key, value: &T) -> Result<()> {
        let json = serde_json::to_vec(value).expect("metadata serializes");
        self.backend.put_bytes(key, Bytes::from(json)).await.map(drop)
    }

    /// Makes `digest` readable as a blob of `name`.
    pub async fn link_blob(&self, name: &RepositoryName, digest: &Digest) -> Result<()> {
        self.backend
            .put_bytes(&layout::layer_link(name, digest)?, Bytes::new())
            .await
            .map(drop)
    }

    /// Whether `digest` is readable as a blob of `name`.
    pub async fn blob_linked(&self, name: &RepositoryName, digest: &Digest) -> Result<bool> {
        self.backend.exists(&layout::layer_link(name, digest)?).await
    }

    /// Removes the blob from `name` ([`Error::NotFound`] if it was not linked).
    pub async fn unlink_blob(&self, name: &RepositoryName, digest: &Digest) -> Result<()> {
        self.backend.delete(&layout::layer_link(name, digest)?).await
    }

    /// Records manifest `digest` in `name`.
    pub async fn put_revision(&self, name: &RepositoryName, digest: &Digest, revision: &Revision) -> Result<()> {
        self.write_json(&layout::manifest_revision(name, digest)?, revision)
            .await
    }

    /// The record of manifest `digest` in `name`, if it belongs there.
    pub async fn revision(&self, name: &RepositoryName, digest: &Digest) -> Result<Option<Revision>> {
        self.read_json(&layout::manifest_revision(name, digest)?).await
    }

    /// Removes manifest `digest` from `name`.
    pub async fn delete_revision(&self, name: &RepositoryName, digest: &Digest) -> Result<()> {
        self.backend.delete(&layout::manifest_revision(name, digest)?).await
    }

    /// Points `tag` at `digest`, indexed first (an index entry without its tag is harmless).
    pub async fn set_tag(&self, name: &RepositoryName, tag: &Tag, digest: &Digest) -> Result<()> {
        self.backend
            .put_bytes(&layout::tag_index_entry(name, digest, tag)?, Bytes::new())
            .await?;
        self.backend
            .put_bytes(&layout::tag(name, tag), Bytes::from(digest.to_string()))
            .await
            .map(drop)
    }

    /// The digest `tag` points at, if the tag exists.
    pub async fn tag(&self, name: &RepositoryName, tag: &Tag) -> Result<Option<Digest>> {
        Ok(self.tag_written(name, tag).await?.map(|(digest, _)| digest))
    }

    /// The digest `tag` points at and when the tag was last written (a pull-through cache
    /// rewrites its tags each time it checks them upstream), if the tag exists.
    pub async fn tag_written(&self, name: &RepositoryName, tag: &Tag) -> Result<Option<(Digest, SystemTime)>> {
        let key = layout::tag(name, tag);
        let got = match self.backend.get(&key, None).await {
            Ok(got) => got,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let written = got.meta.modified;
        let raw = strata_storage::stream::collect(got.body).await?;
        let text = std::str::from_utf8(&raw).map_err(|e| corrupt(&key, e))?;
        let digest = parse_digest(text.trim()).map_err(|e| corrupt(&key, e))?;
        Ok(Some((digest, written)))
    }

    /// Removes `tag` ([`Error::NotFound`] if absent).
    pub async fn delete_tag(&self, name: &RepositoryName, tag: &Tag) -> Result<()> {
        self.backend.delete(&layout::tag(name, tag)).await
    }

    /// Up to `n` tags after `last`, in byte order, and whether more follow.
    pub async fn tags(&self, name: &RepositoryName, last: Option<&Tag>, n: usize) -> Result<(Vec<Tag>, bool)> {
        let (entries, more) = self.tag_entries(name, last, n).await?;
        Ok((entries.into_iter().map(|(tag, _)| tag).collect(), more))
    }

    /// Up to `n` tags after `last` with when each was last pushed, in byte order, and whether
    /// more follow (one listing; the digests are not read).
    pub async fn tag_entries(
        &self,
        name: &RepositoryName,
        last: Option<&Tag>,
        n: usize,
    ) -> Result<(Vec<(Tag, SystemTime)>, bool)> {
        let after = last.map(|t| layout::tag(name, t));
        let mut listing = self.backend.list(&layout::tags(name), after.as_ref());
        let mut tags = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            let Some(tag) = layout::tag_name(&meta.key) else {
                continue;
            };
            if tags.len() == n {
                return Ok((tags, true));
            }
            tags.push((tag, meta.modified));
        }
        Ok((tags, false))
    }

    /// Removes every tag of `name` that points at `digest`, and the digest's index entries.
    /// Only the tags once pointed at `digest` are read (the index), unless the repository's tags
    /// were never indexed: then every tag is, once, and indexed on the way.
    pub async fn untag(&self, name: &RepositoryName, digest: &Digest) -> Result<()> {
        if !self.tags_indexed(name).await? {
            self.index_tags(name).await?;
        }
        let mut listing = self.backend.list(&layout::tag_index(name, digest)?, None);
        let mut entries = Vec::new();
        while let Some(meta) = listing.next().await {
            entries.push(meta?.key);
        }
        for entry in entries {
            let tag = entry.as_str().rsplit('/').next().and_then(|t| Tag::parse(t).ok());
            if let Some(tag) = tag
                && self.tag(name, &tag).await?.as_ref() == Some(digest)
            {
                self.backend.remove(&layout::tag(name, &tag)).await?;
            }
            self.backend.remove(&entry).await?;
        }
        Ok(())
    }

    /// Whether every tag of `name` is indexed (remembered once seen: the marker stays).
    async fn tags_indexed(&self, name: &RepositoryName) -> Result<bool> {
        let remembered = format!("{name}\0indexed");
        if self.known.lock().expect("known").contains(&remembered) {
            return Ok(true);
        }
        let indexed = self.backend.exists(&layout::tag_index_complete(name)).await?;
        if indexed {
            self.known.lock().expect("known").insert(remembered);
        }
        Ok(indexed)
    }

    /// Indexes every tag of `name` (one read per tag), then marks the repository indexed.
    async fn index_tags(&self, name: &RepositoryName) -> Result<()> {
        let mut listing = self.backend.list(&layout::tags(name), None);
        let mut tags = Vec::new();
        while let Some(meta) = listing.next().await {
            if let Some(tag) = layout::tag_name(&meta?.key) {
                tags.push(tag);
            }
        }
        for tag in tags {
            if let Some(digest) = self.tag(name, &tag).await? {
                self.backend
                    .put_bytes(&layout::tag_index_entry(name, &digest, &tag)?, Bytes::new())
                    .await?;
            }
        }
        self.backend
            .put_bytes(&layout::tag_index_complete(name), Bytes::new())
            .await
            .map(drop)
    }

    /// Removes the index entries of manifest `digest` (it is gone).
    pub async fn drop_tag_index(&self, name: &RepositoryName, digest: &Digest) -> Result<()> {
        self.backend
            .delete_prefix(&layout::tag_index(name, digest)?)
            .await
            .map(drop)
    }

    /// Records `descriptor` (of manifest `referrer`) among the referrers of `subject`.
    pub async fn add_referrer(
        &self,
        name: &RepositoryName,
        subject: &Digest,
        referrer: &Digest,
        descriptor: &strata_storage::oci::Descriptor,
    ) -> Result<()> {
        self.write_json(&layout::referrer(name, subject, referrer)?, descriptor)
            .await
    }

    /// The descriptors of every manifest whose subject is `subject`.
    pub async fn referrers(&self, name: &RepositoryName, subject: &Digest) -> Result<Vec<serde_json::Value>> {
        let mut listing = self.backend.list(&layout::referrers(name, subject)?, None);
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            if let Some(descriptor) = self.read_json(&meta?.key).await? {
                out.push(descriptor);
            }
        }
        Ok(out)
    }

    /// Removes `referrer` from the referrers of `subject` (absent is fine).
    pub async fn remove_referrer(&self, name: &RepositoryName, subject: &Digest, referrer: &Digest) -> Result<()> {
        absent_is_none(self.backend.delete(&layout::referrer(name, subject, referrer)?).await).map(drop)
    }

    /// Records that `name` exists (for the catalog); free when this process knows it does.
    pub async fn ensure_repository(&self, name: &RepositoryName) -> Result<()> {
        if self.known.lock().expect("known").contains(name.as_str()) {
            return Ok(());
        }
        let key = layout::catalog_entry(name);
        if !self.backend.exists(&key).await? {
            // A new repository has no tags: all of them are indexed from the start.
            self.backend
                .put_bytes(&layout::tag_index_complete(name), Bytes::new())
                .await?;
            self.backend.put_bytes(&key, Bytes::new()).await?;
        }
        let mut known = self.known.lock().expect("known");
        if known.len() >= KNOWN_REPOSITORIES {
            known.clear();
        }
        known.insert(name.as_str().to_owned());
        Ok(())
    }

    /// Whether anything was ever pushed to `name`.
    pub async fn repository_exists(&self, name: &RepositoryName) -> Result<bool> {
        self.backend.exists(&layout::catalog_entry(name)).await
    }

    /// Up to `n` repositories after `last` that `keep` accepts, and whether more may follow.
    /// At most `scan` entries are looked at, so a caller who may see few repositories of many
    /// gets a short page (and a next link) instead of a walk through the whole catalog.
    pub async fn catalog(
        &self,
        last: Option<&RepositoryName>,
        n: usize,
        scan: usize,
        keep: impl Fn(&RepositoryName) -> bool,
    ) -> Result<CatalogPage> {
        let after = last.map(layout::catalog_entry);
        let mut listing = self.backend.list(&layout::catalog(), after.as_ref());
        let mut page = CatalogPage::default();
        let mut scanned = 0;
        while let Some(meta) = listing.next().await {
            let Some(name) = layout::catalog_name(&meta?.key) else {
                continue;
            };
            if page.names.len() == n || scanned == scan {
                page.more = true;
                return Ok(page);
            }
            scanned += 1;
            if keep(&name) {
                page.names.push(name.clone());
            }
            page.last_seen = Some(name);
        }
        Ok(page)
    }

    /// Records a new upload session for `name`, opened by `owner`.
    pub async fn put_upload(&self, id: &UploadId, name: &RepositoryName, owner: Option<&str>) -> Result<()> {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let record = UploadRecord {
            repository: name.to_string(),
            started,
            owner: owner.map(str::to_owned),
        };
        self.write_json(&layout::upload_info(id), &record).await
    }

    /// The record of upload session `id`, if it exists.
    pub async fn upload(&self, id: &UploadId) -> Result<Option<UploadRecord>> {
        self.read_json(&layout::upload_info(id)).await
    }

    /// Removes everything stored for upload session `id`.
    pub async fn delete_upload(&self, id: &UploadId) -> Result<()> {
        self.backend.delete_prefix(&layout::upload_session(id)).await.map(drop)
    }

    /// Removes the record of session `id` once the backend has finished its upload (which took
    /// its own objects with it): one request.
    pub async fn finish_upload(&self, id: &UploadId) -> Result<()> {
        self.backend.remove(&layout::upload_info(id)).await
    }
}
