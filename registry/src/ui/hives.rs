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
use super::layers::{Entry, EntryKind, LayerIndex};
use super::model::Ui;
use super::visitor::Visitor;
use crate::error::{ApiError, ApiResult, Code};

/// Largest size of one hive's files together (base and deltas) read out of an image's layers.
const MAX_STACK: u64 = 256 << 20;
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
fn find<'a>(index: &'a LayerIndex, path: &str) -> Option<&'a Entry> {
    let wanted = strata_hive::fold(path);
    // For an ASCII name (most of them) folding is ASCII case: no allocation per entry.
    let same = |name: &str| {
        if name.is_ascii() && path.is_ascii() {
            name.eq_ignore_ascii_case(path)
        } else {
            strata_hive::fold(name) == wanted
        }
    };
    index
        .entries
        .iter()
        .rev()
        .find(|e| e.kind == EntryKind::File && same(&e.path))
}

/// The files of `hive` in layers `..=top` (layer, entry), base first; none when the bottom
/// layer has no such hive. Their sizes together are bounded.
fn hive_entries(
    image: &Image,
    indexes: &[Option<Arc<LayerIndex>>],
    top: usize,
    hive: HiveName,
) -> ApiResult<Option<Vec<(usize, Entry)>>> {
    let layer = |n: usize| indexes[n].as_deref().ok_or_else(|| foreign(&image.layers[n].digest));
    let name = hive.layer_name();
    let base = layer(0)?;
    let Some(base) = find(base, &format!("Hives/{name}_BASE"))
        .or_else(|| find(base, &format!("Files/Windows/System32/config/{}", hive.config_file())))
    else {
        return Ok(None);
    };
    let mut entries = vec![(0, base.clone())];
    for n in 1..=top {
        if let Some(delta) = find(layer(n)?, &format!("Hives/{name}_Delta")) {
            entries.push((n, delta.clone()));
        }
    }
    let total: u64 = entries.iter().map(|(_, e)| e.size).sum();
    if total > MAX_STACK {
        return Err(unprocessable(format!(
            "the {} hive's files are {total} bytes together, more than {MAX_STACK}",
            hive.root()
        )));
    }
    Ok(Some(entries))
}

impl Ui {
    /// The merged files of `hive` in the image's layers up to `top`; none when the bottom layer
    /// has no such hive. A few stacks are built at a time, each of bounded size.
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
        let Some(entries) = hive_entries(image, indexes, top, hive)? else {
            return Ok(None);
        };
        let _building = self.hives.building().await;
        // Built by another request while this one waited.
        if let Some(stack) = self.hives.get(&key) {
            return Ok(Some(stack));
        }
        let mut hives = Vec::with_capacity(entries.len());
        for (n, entry) in &entries {
            let stream = super::layers::file(&self.app.blobs, &image.layers[*n].digest, entry).await?;
            let bytes = strata_storage::stream::collect_limited(stream, entry.size)
                .await?
                .to_vec();
            hives.push(
                Hive::parse(bytes)
                    .map_err(|e| unprocessable(format!("the {} hive of layer {}: {e}", hive.root(), n + 1)))?,
            );
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
        for hive in HiveName::ALL {
            if hive_entries(&image, &indexes, top, hive)?.is_some() {
                hives.push(hive.root());
            }
        }
        let stack = self
            .hive_stack(&image, &indexes, top, path.hive)
            .await?
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
