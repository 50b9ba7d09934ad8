//! The registry view of a Windows image: a key of one of its hives as the image's layers make
//! it (each hive's base in the bottom layer under the delta hives of the layers above), merged
//! by `strata_hive`, the same resolver `strata reg query` uses. The hive files are read out of
//! the layer blobs through their file lists; the merged stacks of the last few images looked
//! at stay in memory ([`super::hive_cache`]).

use std::sync::Arc;

use serde::Serialize;
use strata_hive::data::{display, type_name};
use strata_hive::{Hive, HiveName, RegPath, Stack};

use super::files::{Image, foreign};
use super::layers::{EntryKind, LayerIndex};
use super::model::Ui;
use super::visitor::Visitor;
use crate::error::{ApiError, ApiResult, Code};

/// Largest hive file read out of a layer.
const MAX_HIVE: u64 = 256 << 20;
/// Data shown of one value (the rest is cut).
const MAX_SHOWN: usize = 4096;

/// A value as the page shows it.
#[derive(Debug, Serialize)]
pub(crate) struct ValueRow {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// As `reg query` shows it, cut after 4096 characters.
    pub(crate) data: String,
    pub(crate) size: usize,
}

/// One key of a Windows image's registry.
#[derive(Debug, Serialize)]
pub(crate) struct RegistryView {
    pub(crate) repository: String,
    /// The image manifest's digest.
    pub(crate) digest: String,
    /// The layer it is seen as of (0 = bottom); none: all layers.
    pub(crate) layer: Option<usize>,
    /// The key, from its hive's root (`HKLM\SOFTWARE\…`).
    pub(crate) key: String,
    /// How many hive files the hive is merged from.
    pub(crate) files: usize,
    pub(crate) class: Option<String>,
    pub(crate) values: Vec<ValueRow>,
    /// Subkey names.
    pub(crate) subkeys: Vec<String>,
    /// The hives the image has (their roots).
    pub(crate) hives: Vec<&'static str>,
}

fn unprocessable(message: String) -> ApiError {
    ApiError::new(Code::Unsupported, message).with_status(http::StatusCode::UNPROCESSABLE_ENTITY)
}

/// The entry at `path` of a layer, compared without case (a Windows layer).
fn find<'a>(index: &'a LayerIndex, path: &str) -> Option<&'a super::layers::Entry> {
    let wanted = strata_hive::fold(path);
    index
        .entries
        .iter()
        .rev()
        .find(|e| e.kind == EntryKind::File && strata_hive::fold(&e.path) == wanted)
}

impl Ui {
    /// The bytes of the file at `path` of layer `n`, when it has one.
    async fn hive_file(
        &self,
        image: &Image,
        indexes: &[Option<Arc<LayerIndex>>],
        n: usize,
        path: &str,
    ) -> ApiResult<Option<Vec<u8>>> {
        let index = indexes[n].as_ref().ok_or_else(|| foreign(&image.layers[n].digest))?;
        let Some(entry) = find(index, path) else {
            return Ok(None);
        };
        if entry.size > MAX_HIVE {
            return Err(unprocessable(format!(
                "{path} of layer {} is larger than {MAX_HIVE} bytes",
                n + 1
            )));
        }
        let stream = super::layers::file(&self.app.blobs, &image.layers[n].digest, entry).await?;
        Ok(Some(
            strata_storage::stream::collect_limited(stream, MAX_HIVE)
                .await?
                .to_vec(),
        ))
    }

    /// The merged files of `hive` in the image's layers up to `top`; none when the bottom layer
    /// has no such hive.
    async fn hive_stack(
        &self,
        image: &Image,
        indexes: &[Option<Arc<LayerIndex>>],
        top: usize,
        hive: HiveName,
    ) -> ApiResult<Option<Arc<Stack>>> {
        let key = (image.digest.clone(), top, hive);
        if let Some(stack) = self.hives.get(&key) {
            return Ok(Some(stack));
        }
        let name = hive.layer_name();
        let base = match self.hive_file(image, indexes, 0, &format!("Hives/{name}_BASE")).await? {
            Some(bytes) => bytes,
            None => match self
                .hive_file(
                    image,
                    indexes,
                    0,
                    &format!("Files/Windows/System32/config/{}", hive.config_file()),
                )
                .await?
            {
                Some(bytes) => bytes,
                None => return Ok(None),
            },
        };
        let parse = |bytes, n: usize| {
            Hive::parse(bytes).map_err(|e| unprocessable(format!("the {} hive of layer {}: {e}", hive.root(), n + 1)))
        };
        let mut hives = vec![parse(base, 0)?];
        for n in 1..=top {
            if let Some(bytes) = self
                .hive_file(image, indexes, n, &format!("Hives/{name}_Delta"))
                .await?
            {
                hives.push(parse(bytes, n)?);
            }
        }
        let stack = Arc::new(Stack::new(hives));
        self.hives.put(key, stack.clone());
        Ok(Some(stack))
    }

    /// Key `key` (`HKLM\SOFTWARE\…`) of Windows image `reference` of `name`, as of layer
    /// `layer` (none: all layers).
    pub(crate) async fn registry(
        &self,
        visitor: &Visitor,
        name: &str,
        reference: &str,
        layer: Option<usize>,
        key: &str,
    ) -> ApiResult<RegistryView> {
        let image = self.image_layers(visitor, name, reference).await?;
        if !image.windows {
            return Err(unprocessable("only Windows images have a registry".into()));
        }
        let top = Self::top(&image, layer)?;
        let indexes = self.indexes(&image, top).await?;
        let path = RegPath::parse(key).map_err(|e| ApiError::new(Code::NameInvalid, e.to_string()))?;
        let mut hives = Vec::new();
        let mut wanted = None;
        for hive in HiveName::ALL {
            if let Some(stack) = self.hive_stack(&image, &indexes, top, hive).await? {
                hives.push(hive.root());
                if hive == path.hive {
                    wanted = Some(stack);
                }
            }
        }
        let stack = wanted
            .ok_or_else(|| ApiError::new(Code::BlobUnknown, format!("the image has no {} hive", path.hive.root())))?;
        let corrupt = |e: strata_hive::HiveError| unprocessable(format!("{}: {e}", path.hive.root()));
        let merged = stack
            .open(&path.keys)
            .map_err(corrupt)?
            .ok_or_else(|| ApiError::new(Code::BlobUnknown, format!("{}: no such key", path.display())))?;
        let values = merged
            .values()
            .map_err(corrupt)?
            .into_iter()
            .map(|v| {
                let mut data = display(v.kind, &v.data);
                if data.len() > MAX_SHOWN {
                    let cut = (0..=MAX_SHOWN).rev().find(|i| data.is_char_boundary(*i)).unwrap_or(0);
                    data.truncate(cut);
                    data.push('…');
                }
                ValueRow {
                    name: v.name,
                    kind: type_name(v.kind),
                    data,
                    size: v.data.len(),
                }
            })
            .collect();
        let subkeys = merged
            .subkeys()
            .map_err(corrupt)?
            .iter()
            .map(strata_hive::MergedKey::name)
            .collect();
        let class = merged.class().map_err(corrupt)?.map(|c| {
            String::from_utf16_lossy(
                &c.chunks_exact(2)
                    .map(|p| u16::from_le_bytes([p[0], p[1]]))
                    .collect::<Vec<_>>(),
            )
        });
        Ok(RegistryView {
            repository: image.repository.to_string(),
            digest: image.digest.to_string(),
            layer,
            key: path.display(),
            files: stack.len(),
            class,
            values,
            subkeys,
            hives,
        })
    }
}
