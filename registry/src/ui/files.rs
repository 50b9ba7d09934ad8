//! The file browser's views: a directory of one layer (what it added, changed, deleted) or of
//! the whole image (the union), one file with its text, and a file's bytes. Reached through a
//! repository the visitor may pull and an image manifest of it, so access is the image's.

use serde::Serialize;
use strata_storage::oci::Descriptor;
use strata_storage::{ByteStream, Digest, RepositoryName};

use super::layers::{Entry, EntryKind, LayerIndex, clean};
use super::model::Ui;
use super::tree::{self, Row};
use super::visitor::Visitor;
use crate::error::{ApiError, ApiResult, Code};
use crate::route::Reference;

/// The largest file shown as text.
const MAX_TEXT: u64 = 1 << 20;

/// A layer of the image, as the browser lists it.
#[derive(Debug, Serialize)]
pub(crate) struct LayerRef {
    pub(crate) digest: String,
    pub(crate) media_type: String,
    pub(crate) size: u64,
    /// Whether the blob is here (foreign layers usually are not).
    pub(crate) stored: bool,
}

/// A directory of a layer or of the image.
#[derive(Debug, Serialize)]
pub(crate) struct FilesView {
    pub(crate) repository: String,
    /// The image manifest's digest.
    pub(crate) digest: String,
    pub(crate) layers: Vec<LayerRef>,
    /// The layer shown (0 = bottom); none: the union of all.
    pub(crate) layer: Option<usize>,
    /// The directory, `""` for the root.
    pub(crate) path: String,
    pub(crate) rows: Vec<Row>,
    /// Whether names compare case-insensitively (a Windows image).
    pub(crate) windows: bool,
    /// Entries the layers' lists left out (names with `..`).
    pub(crate) refused: u64,
}

/// One file.
#[derive(Debug, Serialize)]
pub(crate) struct FileView {
    pub(crate) repository: String,
    pub(crate) digest: String,
    pub(crate) layer: usize,
    pub(crate) path: String,
    pub(crate) entry: Entry,
    /// Its content, when it is UTF-8 text of at most 1 MiB.
    pub(crate) text: Option<String>,
}

pub(super) fn foreign(digest: &Digest) -> ApiError {
    ApiError::new(
        Code::BlobUnknown,
        format!("layer {digest} is not stored here (a foreign layer): its files cannot be shown"),
    )
}

fn not_in_image(path: &str) -> ApiError {
    ApiError::new(Code::BlobUnknown, format!("{path} is not in this image"))
}

/// The image manifest `reference` of `name` and its layers (an index has no files).
pub(super) struct Image {
    pub(super) repository: RepositoryName,
    pub(super) digest: Digest,
    pub(super) layers: Vec<Descriptor>,
    pub(super) windows: bool,
}

impl Ui {
    pub(super) async fn image_layers(&self, visitor: &Visitor, name: &str, reference: &str) -> ApiResult<Image> {
        let repository = self.readable(visitor, name)?;
        let (digest, _, manifest) = self.manifest(&repository, &Reference::parse(reference)?).await?;
        if manifest.is_index() {
            return Err(
                ApiError::new(Code::Unsupported, "an index has no files: choose one of its platforms")
                    .with_status(http::StatusCode::UNPROCESSABLE_ENTITY),
            );
        }
        let windows = self.config(&manifest).await?.is_some_and(|c| c.os() == "windows");
        Ok(Image {
            repository,
            digest,
            layers: manifest.layers,
            windows,
        })
    }

    /// The file lists of layers `..=top` (bottom first); none for a layer whose blob is not
    /// here (a foreign layer), which only the union may pass over.
    pub(super) async fn indexes(
        &self,
        image: &Image,
        top: usize,
    ) -> ApiResult<Vec<Option<std::sync::Arc<LayerIndex>>>> {
        let mut indexes = Vec::with_capacity(top + 1);
        for layer in &image.layers[..=top] {
            indexes.push(if self.app.meta.blob_linked(&image.repository, &layer.digest).await? {
                Some(self.layers.index(&self.app.blobs, &layer.digest).await?)
            } else {
                None
            });
        }
        Ok(indexes)
    }

    pub(super) fn top(image: &Image, layer: Option<usize>) -> ApiResult<usize> {
        let last = image
            .layers
            .len()
            .checked_sub(1)
            .ok_or_else(|| ApiError::new(Code::BlobUnknown, "the image has no layers"))?;
        match layer {
            Some(n) if n > last => Err(ApiError::new(
                Code::BlobUnknown,
                format!("the image has no layer {}", n + 1),
            )),
            Some(n) => Ok(n),
            None => Ok(last),
        }
    }

    /// A directory of layer `layer` (none: of the image).
    pub(crate) async fn files(
        &self,
        visitor: &Visitor,
        name: &str,
        reference: &str,
        layer: Option<usize>,
        path: &str,
    ) -> ApiResult<FilesView> {
        let image = self.image_layers(visitor, name, reference).await?;
        let top = Self::top(&image, layer)?;
        let indexes = self.indexes(&image, top).await?;
        if let Some(n) = layer
            && indexes[n].is_none()
        {
            return Err(foreign(&image.layers[n].digest));
        }
        // Layers not stored here show nothing (the page says which).
        let empty = LayerIndex::default();
        let refs: Vec<&LayerIndex> = indexes.iter().map(|i| i.as_deref().unwrap_or(&empty)).collect();
        let dir = clean(path).unwrap_or_default();
        let rows = match layer {
            Some(n) => tree::layer(&refs, n, &dir, image.windows),
            None => tree::union(&refs, &dir, image.windows),
        };
        if layer.is_none() && !dir.is_empty() {
            let (parent, base) = dir.rsplit_once('/').unwrap_or(("", dir.as_str()));
            let same = |a: &str| {
                if image.windows {
                    a.to_lowercase() == base.to_lowercase()
                } else {
                    a == base
                }
            };
            if !tree::union(&refs, parent, image.windows)
                .iter()
                .any(|r| r.kind == EntryKind::Dir && same(&r.name))
            {
                return Err(not_in_image(&dir));
            }
        }
        let mut layers = Vec::new();
        for (i, d) in image.layers.iter().enumerate() {
            // The layers up to the one shown were looked up for their lists already.
            let stored = match indexes.get(i) {
                Some(index) => index.is_some(),
                None => self.app.meta.blob_linked(&image.repository, &d.digest).await?,
            };
            layers.push(LayerRef {
                digest: d.digest.to_string(),
                media_type: d.media_type.clone(),
                size: d.size,
                stored,
            });
        }
        Ok(FilesView {
            repository: image.repository.to_string(),
            digest: image.digest.to_string(),
            layers,
            layer,
            path: dir,
            rows,
            windows: image.windows,
            refused: indexes.iter().flatten().map(|i| i.refused).sum(),
        })
    }

    /// The file at `path` of layer `layer`, and the entry its bytes are in (a hard link's
    /// target).
    async fn entry(&self, image: &Image, layer: usize, path: &str) -> ApiResult<(Entry, Entry)> {
        let top = Self::top(image, Some(layer))?;
        let indexes = self.indexes(image, top).await?;
        let path = clean(path).ok_or_else(|| not_in_image(path))?;
        let index = indexes[top]
            .as_ref()
            .ok_or_else(|| foreign(&image.layers[top].digest))?;
        let entry = index.get(&path).cloned().ok_or_else(|| not_in_image(&path))?;
        let content = match (&entry.kind, &entry.link) {
            (EntryKind::File, _) => entry.clone(),
            (EntryKind::Hardlink, Some(target)) => index
                .get(target)
                .filter(|t| t.kind == EntryKind::File)
                .cloned()
                .ok_or_else(|| not_in_image(target))?,
            _ => {
                return Err(
                    ApiError::new(Code::Unsupported, format!("{path} is not a regular file"))
                        .with_status(http::StatusCode::UNPROCESSABLE_ENTITY),
                );
            }
        };
        Ok((entry, content))
    }

    /// One file, with its text when it has some.
    pub(crate) async fn file(
        &self,
        visitor: &Visitor,
        name: &str,
        reference: &str,
        layer: usize,
        path: &str,
    ) -> ApiResult<FileView> {
        let image = self.image_layers(visitor, name, reference).await?;
        let (entry, content) = self.entry(&image, layer, path).await?;
        let text = if content.size <= MAX_TEXT {
            let digest = &image.layers[layer].digest;
            let bytes =
                strata_storage::stream::collect(super::layers::file(&self.app.blobs, digest, &content).await?).await?;
            String::from_utf8(bytes.to_vec()).ok().filter(|t| !t.contains('\0'))
        } else {
            None
        };
        Ok(FileView {
            repository: image.repository.to_string(),
            digest: image.digest.to_string(),
            layer,
            path: entry.path.clone(),
            entry,
            text,
        })
    }

    /// A file's bytes: its name, size and stream.
    pub(crate) async fn download(
        &self,
        visitor: &Visitor,
        name: &str,
        reference: &str,
        layer: usize,
        path: &str,
    ) -> ApiResult<(String, u64, ByteStream)> {
        let image = self.image_layers(visitor, name, reference).await?;
        let (entry, content) = self.entry(&image, layer, path).await?;
        let stream = super::layers::file(&self.app.blobs, &image.layers[layer].digest, &content).await?;
        let file_name = entry.path.rsplit('/').next().unwrap_or("file").to_owned();
        Ok((file_name, content.size, stream))
    }
}
