//! What the pages and the JSON API show, read from storage once and shared by both: repository
//! rows, tag rows and image views. Manifests are immutable, so what is learned from one (its
//! platforms, its size) is kept by digest; repository sizes are kept until the repository's tags
//! change.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures::future::try_join_all;
use serde::Serialize;
use strata_storage::oci::{Descriptor, ImageConfig, Manifest, windows_host_builds};
use strata_storage::{Digest, RepositoryName, Tag};

use super::visitor::Visitor;
use crate::config::Action;
use crate::error::{ApiError, ApiResult, Code};
use crate::handlers::manifests;
use crate::route::Reference;
use crate::state::SharedState;

/// Repositories on one page of the list.
pub(super) const REPOSITORIES_PER_PAGE: usize = 50;
/// Tags on one page of a repository.
pub(super) const TAGS_PER_PAGE: usize = 100;
/// Catalog entries one page looks at before it stops (and links to the next).
const CATALOG_SCAN: usize = 5_000;
/// Tags a repository row counts and sizes (more shows as "1000+").
const TAGS_COUNTED: usize = 1_000;
/// Storage reads in flight for one page.
const READS_IN_FLIGHT: usize = 16;
/// Largest image config read.
const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// Manifest summaries remembered (then forgotten all at once).
const SUMMARIES: usize = 20_000;

/// The UI's view of the registry (the state of its routes; cheap to clone).
#[derive(Clone)]
pub(crate) struct Ui {
    pub(super) app: SharedState,
    summaries: Arc<Mutex<HashMap<Digest, Arc<Summary>>>>,
    /// Repository sizes, with the tags they were computed for.
    sizes: Arc<Mutex<HashMap<String, (TagsSeen, u64)>>>,
    /// Layers' file lists.
    pub(super) layers: Arc<super::layers::Layers>,
    /// Windows images' merged registry hives.
    pub(super) hives: Arc<super::hive_cache::Hives>,
}

impl axum::extract::FromRef<Ui> for SharedState {
    fn from_ref(ui: &Ui) -> Self {
        ui.app.clone()
    }
}

impl std::fmt::Debug for Ui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ui").finish_non_exhaustive()
    }
}

/// How many tags a repository had and when the newest was pushed: when neither changed, its
/// size did not either.
type TagsSeen = (usize, SystemTime);

/// What one manifest amounts to.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    /// Its media type.
    pub(crate) media_type: String,
    /// The bytes of everything it references (each blob once), itself excluded.
    pub(crate) size: u64,
    /// `os/arch[/variant]` of each platform (an image: its config's; an index: its entries').
    pub(crate) platforms: Vec<String>,
    /// The artifact type, for artifacts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) artifact_type: Option<String>,
    #[serde(skip)]
    blobs: Vec<(Digest, u64)>,
}

/// One row of the repository list.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RepositoryRow {
    pub(crate) name: String,
    /// Tags counted (at most [`TAGS_COUNTED`]).
    pub(crate) tags: usize,
    /// Whether there are more than counted.
    pub(crate) more_tags: bool,
    /// When a tag was last pushed (RFC 3339).
    pub(crate) last_push: Option<String>,
    /// The bytes of every blob the counted tags reference, each once.
    pub(crate) size: u64,
}

/// One page of repositories.
#[derive(Debug, Serialize)]
pub(crate) struct RepositoryPage {
    pub(crate) repositories: Vec<RepositoryRow>,
    /// Where the next page starts (`after`), when there is one.
    pub(crate) next: Option<String>,
}

/// One row of a repository's tags.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TagRow {
    pub(crate) tag: String,
    pub(crate) digest: String,
    pub(crate) pushed: String,
    #[serde(flatten)]
    pub(crate) summary: Summary,
}

/// One page of tags.
#[derive(Debug, Serialize)]
pub(crate) struct TagPage {
    pub(crate) repository: String,
    pub(crate) tags: Vec<TagRow>,
    pub(crate) next: Option<String>,
    /// Whether the visitor may delete here.
    pub(crate) may_delete: bool,
}

/// A platform entry of an index.
#[derive(Debug, Serialize)]
pub(crate) struct PlatformEntry {
    pub(crate) digest: String,
    pub(crate) media_type: String,
    pub(crate) os: String,
    pub(crate) architecture: String,
    pub(crate) variant: Option<String>,
    pub(crate) os_version: Option<String>,
    /// Windows: the host builds that run it (`first..=last`, or `first` and later).
    pub(crate) host_builds: Option<(u32, Option<u32>)>,
    pub(crate) size: u64,
}

/// A layer of an image.
#[derive(Debug, Serialize)]
pub(crate) struct LayerRow {
    pub(crate) digest: String,
    pub(crate) media_type: String,
    pub(crate) size: u64,
    /// Foreign layers: where they are fetched from.
    pub(crate) urls: Vec<String>,
}

/// A history step of an image.
#[derive(Debug, Serialize)]
pub(crate) struct HistoryRow {
    pub(crate) created: Option<String>,
    pub(crate) created_by: Option<String>,
    pub(crate) author: Option<String>,
    pub(crate) comment: Option<String>,
    pub(crate) empty_layer: bool,
}

/// A manifest that refers to the image (signature, SBOM, attestation).
#[derive(Debug, Serialize)]
pub(crate) struct ReferrerRow {
    pub(crate) digest: String,
    pub(crate) artifact_type: String,
    pub(crate) size: u64,
}

/// What an image manifest says.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ImageDetails {
    pub(crate) os: String,
    pub(crate) architecture: String,
    pub(crate) variant: Option<String>,
    pub(crate) os_version: Option<String>,
    pub(crate) created: Option<String>,
    pub(crate) author: Option<String>,
    pub(crate) entrypoint: Option<Vec<String>>,
    pub(crate) cmd: Option<Vec<String>>,
    pub(crate) env: Vec<String>,
    pub(crate) user: Option<String>,
    pub(crate) working_dir: Option<String>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) history: Vec<HistoryRow>,
    pub(crate) layers: Vec<LayerRow>,
    pub(crate) config_digest: String,
    pub(crate) config_media_type: String,
}

/// An image (tag or digest): an index with its platforms, or a manifest with its details.
#[derive(Debug, Serialize)]
pub(crate) struct ImageView {
    pub(crate) repository: String,
    pub(crate) reference: String,
    pub(crate) digest: String,
    pub(crate) media_type: String,
    pub(crate) size: u64,
    pub(crate) artifact_type: Option<String>,
    pub(crate) annotations: BTreeMap<String, String>,
    /// An index's entries.
    pub(crate) platforms: Vec<PlatformEntry>,
    /// An image manifest's details (none for an index, or an artifact without an image config).
    pub(crate) image: Option<ImageDetails>,
    pub(crate) referrers: Vec<ReferrerRow>,
    pub(crate) may_delete: bool,
}

/// RFC 3339 in UTC, to the second.
pub(super) fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn platform_name(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
        _ => format!("{os}/{arch}"),
    }
}

/// What the visitor may not see looks the same as what does not exist.
fn unknown_repository(name: &str) -> ApiError {
    ApiError::new(Code::NameUnknown, format!("repository {name} is not known"))
}

impl Ui {
    pub(crate) fn new(app: SharedState) -> Self {
        Ui {
            app,
            summaries: Arc::default(),
            sizes: Arc::default(),
            layers: Arc::default(),
            hives: Arc::default(),
        }
    }

    /// The repository `name` if the visitor may pull from it.
    pub(super) fn readable(&self, visitor: &Visitor, name: &str) -> ApiResult<RepositoryName> {
        let repository = RepositoryName::parse(name).map_err(|_| unknown_repository(name))?;
        if !visitor.may(&self.app, &repository, Action::Pull) {
            return Err(unknown_repository(name));
        }
        Ok(repository)
    }

    /// A page of the repositories the visitor may pull whose names contain `query`.
    pub(crate) async fn repositories(
        &self,
        visitor: &Visitor,
        query: &str,
        after: Option<&str>,
    ) -> ApiResult<RepositoryPage> {
        let after = after.and_then(|a| RepositoryName::parse(a).ok());
        let query = query.trim().to_lowercase();
        let page = self
            .app
            .meta
            .catalog(after.as_ref(), REPOSITORIES_PER_PAGE, CATALOG_SCAN, |name| {
                name.as_str().contains(&query) && visitor.may(&self.app, name, Action::Pull)
            })
            .await?;
        let mut rows = Vec::with_capacity(page.names.len());
        for names in page.names.chunks(READS_IN_FLIGHT / 4) {
            rows.extend(try_join_all(names.iter().map(|name| self.repository_row(name))).await?);
        }
        Ok(RepositoryPage {
            repositories: rows,
            next: page.more.then(|| page.last_seen.map(|n| n.to_string())).flatten(),
        })
    }

    async fn repository_row(&self, name: &RepositoryName) -> ApiResult<RepositoryRow> {
        let (entries, more) = self.app.meta.tag_entries(name, None, TAGS_COUNTED).await?;
        let newest = entries.iter().map(|(_, t)| *t).max();
        let key = (entries.len(), newest.unwrap_or(SystemTime::UNIX_EPOCH));
        let known = self
            .sizes
            .lock()
            .expect("sizes")
            .get(name.as_str())
            .filter(|(k, _)| *k == key)
            .map(|(_, size)| *size);
        let size = match known {
            Some(size) => size,
            None => {
                let mut summaries = Vec::with_capacity(entries.len());
                for tags in entries.chunks(READS_IN_FLIGHT) {
                    summaries.extend(try_join_all(tags.iter().map(|(tag, _)| self.tag_summary(name, tag))).await?);
                }
                let mut blobs = HashMap::new();
                for (_, summary) in summaries.iter().flatten() {
                    blobs.extend(summary.blobs.iter().cloned());
                }
                let size = blobs.values().sum();
                let mut sizes = self.sizes.lock().expect("sizes");
                if sizes.len() >= SUMMARIES {
                    sizes.clear();
                }
                sizes.insert(name.to_string(), (key, size));
                size
            }
        };
        Ok(RepositoryRow {
            name: name.to_string(),
            tags: entries.len(),
            more_tags: more,
            last_push: newest.map(timestamp),
            size,
        })
    }

    /// What `tag` points at and its summary (none when it vanished meanwhile).
    async fn tag_summary(&self, name: &RepositoryName, tag: &Tag) -> ApiResult<Option<(Digest, Arc<Summary>)>> {
        match manifests::lookup(&self.app, name, &Reference::Tag(tag.clone())).await {
            Ok((digest, _)) => {
                let summary = self.summary(name, &digest, 0).await?;
                Ok(Some((digest, summary)))
            }
            Err(e) if e.code == Code::ManifestUnknown => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The manifest `reference` names, parsed, with its digest.
    pub(super) async fn manifest(
        &self,
        name: &RepositoryName,
        reference: &Reference,
    ) -> ApiResult<(Digest, u64, Manifest)> {
        let (digest, revision) = manifests::lookup(&self.app, name, reference).await?;
        let bytes = manifests::read(&self.app, &digest, &revision, reference).await?;
        let manifest = Manifest::parse(&bytes, Some(&revision.media_type))
            .map_err(|e| ApiError::new(Code::ManifestInvalid, format!("stored manifest {digest}: {e}")))?;
        Ok((digest, revision.size, manifest))
    }

    /// What the manifest `digest` amounts to (kept by digest: manifests never change).
    async fn summary(&self, name: &RepositoryName, digest: &Digest, depth: u8) -> ApiResult<Arc<Summary>> {
        if let Some(known) = self.summaries.lock().expect("summaries").get(digest) {
            return Ok(known.clone());
        }
        let (_, _, manifest) = self.manifest(name, &Reference::Digest(digest.clone())).await?;
        let mut blobs: Vec<(Digest, u64)> = manifest
            .config
            .iter()
            .chain(&manifest.layers)
            .map(|d| (d.digest.clone(), d.size))
            .collect();
        let mut platforms = Vec::new();
        if manifest.is_index() {
            for entry in &manifest.manifests {
                if let Some(p) = &entry.platform {
                    platforms.push(platform_name(&p.os, &p.architecture, p.variant.as_deref()));
                }
                blobs.push((entry.digest.clone(), entry.size));
                // An index two levels deep is unusual; its children are counted by size only.
                if depth < 1
                    && let Ok(child) = Box::pin(self.summary(name, &entry.digest, depth + 1)).await
                {
                    blobs.extend(child.blobs.iter().cloned());
                }
            }
        } else if let Some(config) = self.config(&manifest).await? {
            platforms.push(platform_name(
                config.os(),
                &config.architecture,
                config.variant.as_deref(),
            ));
        }
        let blobs: Vec<(Digest, u64)> = blobs.into_iter().collect::<HashMap<_, _>>().into_iter().collect();
        let summary = Arc::new(Summary {
            media_type: manifest.media_type.clone(),
            size: blobs.iter().map(|(_, s)| s).sum(),
            platforms,
            // Images are not artifacts; an artifact says so, or carries a config of its own.
            artifact_type: manifest.artifact_type.clone().or_else(|| {
                manifest
                    .config
                    .as_ref()
                    .map(|c| c.media_type.clone())
                    .filter(|t| !strata_storage::oci::media::is_image_config(t))
            }),
            blobs,
        });
        let mut summaries = self.summaries.lock().expect("summaries");
        if summaries.len() >= SUMMARIES {
            summaries.clear();
        }
        summaries.insert(digest.clone(), summary.clone());
        Ok(summary)
    }

    /// An image manifest's config, when it is an image config (artifacts may carry others).
    pub(super) async fn config(&self, manifest: &Manifest) -> ApiResult<Option<ImageConfig>> {
        let Some(config) = &manifest.config else {
            return Ok(None);
        };
        if !strata_storage::oci::media::is_image_config(&config.media_type) || config.size > MAX_CONFIG_BYTES {
            return Ok(None);
        }
        let bytes = match self.app.blobs.read_limited(&config.digest, config.size).await {
            Ok(bytes) => bytes,
            Err(strata_storage::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(ImageConfig::parse(&bytes, &config.digest).ok())
    }

    /// A page of `name`'s tags.
    pub(crate) async fn tags(&self, visitor: &Visitor, name: &str, after: Option<&str>) -> ApiResult<TagPage> {
        let repository = self.readable(visitor, name)?;
        let after = after.and_then(|a| Tag::parse(a).ok());
        let (entries, more) = self
            .app
            .meta
            .tag_entries(&repository, after.as_ref(), TAGS_PER_PAGE)
            .await?;
        if entries.is_empty() && after.is_none() && !self.app.meta.repository_exists(&repository).await? {
            return Err(unknown_repository(name));
        }
        let next = more.then(|| entries.last().map(|(t, _)| t.to_string())).flatten();
        let mut rows = Vec::with_capacity(entries.len());
        for chunk in entries.chunks(READS_IN_FLIGHT) {
            rows.extend(
                try_join_all(
                    chunk
                        .iter()
                        .map(|(tag, pushed)| self.tag_row(&repository, tag, *pushed)),
                )
                .await?,
            );
        }
        Ok(TagPage {
            repository: repository.to_string(),
            tags: rows.into_iter().flatten().collect(),
            next,
            may_delete: self.app.config.delete_enabled && visitor.may(&self.app, &repository, Action::Delete),
        })
    }

    async fn tag_row(&self, repository: &RepositoryName, tag: &Tag, pushed: SystemTime) -> ApiResult<Option<TagRow>> {
        let Some((digest, summary)) = self.tag_summary(repository, tag).await? else {
            return Ok(None);
        };
        Ok(Some(TagRow {
            tag: tag.to_string(),
            digest: digest.to_string(),
            pushed: timestamp(pushed),
            summary: (*summary).clone(),
        }))
    }

    /// An image by tag or digest.
    pub(crate) async fn image(&self, visitor: &Visitor, name: &str, reference: &str) -> ApiResult<ImageView> {
        let repository = self.readable(visitor, name)?;
        let reference = Reference::parse(reference)?;
        let (digest, _, manifest) = self.manifest(&repository, &reference).await?;
        let summary = self.summary(&repository, &digest, 0).await?;
        let platforms = manifest.manifests.iter().map(platform_entry).collect();
        let image = match self.config(&manifest).await? {
            Some(config) if !manifest.is_index() => Some(details(&manifest, config)),
            _ => None,
        };
        let referrers = self
            .app
            .meta
            .referrers(&repository, &digest)
            .await?
            .into_iter()
            .filter_map(|d| serde_json::from_value::<Descriptor>(d).ok())
            .map(|d| ReferrerRow {
                digest: d.digest.to_string(),
                artifact_type: d.artifact_type.unwrap_or_else(|| d.media_type.clone()),
                size: d.size,
            })
            .collect();
        Ok(ImageView {
            repository: repository.to_string(),
            reference: reference.to_string(),
            digest: digest.to_string(),
            media_type: manifest.media_type.clone(),
            size: summary.size,
            artifact_type: summary.artifact_type.clone(),
            annotations: manifest.annotations.clone(),
            platforms,
            image,
            referrers,
            may_delete: self.app.config.delete_enabled && visitor.may(&self.app, &repository, Action::Delete),
        })
    }
}

fn platform_entry(d: &Descriptor) -> PlatformEntry {
    let p = d.platform.as_ref();
    let os = p.map(|p| p.os.clone()).unwrap_or_default();
    let os_version = p.and_then(|p| p.os_version.clone()).filter(|v| !v.is_empty());
    PlatformEntry {
        digest: d.digest.to_string(),
        media_type: d.media_type.clone(),
        host_builds: (os == "windows")
            .then(|| os_version.as_deref().and_then(windows_host_builds))
            .flatten(),
        os,
        architecture: p.map(|p| p.architecture.clone()).unwrap_or_default(),
        variant: p.and_then(|p| p.variant.clone()),
        os_version,
        size: d.size,
    }
}

fn details(manifest: &Manifest, config: ImageConfig) -> ImageDetails {
    let c = config.config.clone().unwrap_or_default();
    ImageDetails {
        os: config.os().to_owned(),
        architecture: config.architecture.clone(),
        variant: config.variant.clone(),
        os_version: config.os_version.clone(),
        created: config.created.clone(),
        author: config.author.clone(),
        entrypoint: c.entrypoint,
        cmd: c.cmd,
        env: c.env.unwrap_or_default(),
        user: c.user.filter(|u| !u.is_empty()),
        working_dir: c.working_dir.filter(|w| !w.is_empty()),
        labels: c.labels.unwrap_or_default(),
        history: config
            .history
            .into_iter()
            .map(|h| HistoryRow {
                created: h.created,
                created_by: h.created_by,
                author: h.author,
                comment: h.comment,
                empty_layer: h.empty_layer.unwrap_or(false),
            })
            .collect(),
        layers: manifest
            .layers
            .iter()
            .map(|l| LayerRow {
                digest: l.digest.to_string(),
                media_type: l.media_type.clone(),
                size: l.size,
                urls: l.urls.clone(),
            })
            .collect(),
        config_digest: manifest
            .config
            .as_ref()
            .map(|c| c.digest.to_string())
            .unwrap_or_default(),
        config_media_type: manifest
            .config
            .as_ref()
            .map(|c| c.media_type.clone())
            .unwrap_or_default(),
    }
}
