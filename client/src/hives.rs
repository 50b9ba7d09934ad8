//! `strata reg`: the registry of Windows images and containers, read through
//! [`strata_hive`]'s merge of each hive's base and delta files
//! ([`strata_runtime::windows::registry`]), edited in a container's scratch layer.

use std::path::PathBuf;

use strata_hive::{HiveName, RegPath, Stack, Value};
use strata_runtime::store::StoreError;
use strata_runtime::windows::registry;

use crate::commands::{Context, local_name};
use crate::error::{ClientError, Result};

/// Where a registry comes from: an image's layers (base first), and a container's scratch layer.
#[derive(Debug, Clone)]
pub struct RegistrySource {
    /// The image layer directories, base first.
    pub layers: Vec<PathBuf>,
    /// A container's scratch layer.
    pub upper: Option<PathBuf>,
}

impl RegistrySource {
    /// Only the first `n + 1` layers (`n` = 0: the base alone), without a scratch layer.
    pub fn up_to(mut self, n: usize) -> Result<Self> {
        if n >= self.layers.len() {
            return Err(ClientError::Usage(format!(
                "--layer {n}: the image has layers 0 to {}",
                self.layers.len() - 1
            )));
        }
        self.layers.truncate(n + 1);
        self.upper = None;
        Ok(self)
    }

    /// The merged files of `hive`; an error naming the hive when the image has none.
    pub fn stack(&self, hive: HiveName) -> Result<Stack> {
        self.try_stack(hive)?.ok_or_else(|| {
            ClientError::NotFound(format!(
                "{}: the image has no such hive (no Windows/System32/config/{} in its base layer)",
                hive.root(),
                hive.config_file()
            ))
        })
    }

    /// The merged files of `hive`, when the image has it.
    pub fn try_stack(&self, hive: HiveName) -> Result<Option<Stack>> {
        Ok(registry::stack(&self.layers, self.upper.as_deref(), hive)?)
    }
}

/// Parses a registry path as users write it.
pub fn parse_path(text: &str) -> Result<RegPath> {
    Ok(RegPath::parse(text)?)
}

/// A value for `strata reg set`: its name (`@` or `(Default)` for the default value), type
/// name and data as text.
pub fn parse_value(name: &str, kind: &str, data: &str) -> Result<Value> {
    let kind = strata_hive::data::parse_type(kind)?;
    let data = strata_hive::data::parse_data(kind, data)?;
    let name = if name == "@" || name.eq_ignore_ascii_case("(default)") {
        ""
    } else {
        name
    };
    Ok(Value {
        name: name.to_owned(),
        kind,
        data,
        tombstone: false,
    })
}

impl Context {
    /// The registry of unpacked Windows image `target`, or of Windows container `target`
    /// (its image's layers under its scratch layer).
    pub fn registry_source(&self, target: &str) -> Result<RegistrySource> {
        let layers = self.layers()?;
        match layers.image(&local_name(target)) {
            Ok(image) => {
                if image.os != "windows" {
                    return Err(ClientError::Usage(format!(
                        "{target} is a {} image, not a Windows one",
                        image.os
                    )));
                }
                return Ok(RegistrySource {
                    layers: layers.image_dirs(&image)?,
                    upper: None,
                });
            }
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let container = self.containers()?.find(target).map_err(|_| {
            ClientError::NotFound(format!(
                "{target}: no unpacked image (strata pull it) and no container of that name"
            ))
        })?;
        if container.config.os != "windows" {
            return Err(ClientError::Usage(format!(
                "container {target} is not a Windows container"
            )));
        }
        Ok(RegistrySource {
            upper: Some(container.upper()),
            layers: container.config.layers,
        })
    }

    /// The scratch layer of Windows container `name`, refused while it runs.
    fn windows_container(&self, name: &str) -> Result<RegistrySource> {
        let source = self.registry_source(name)?;
        if source.upper.is_none() {
            return Err(ClientError::Usage(format!(
                "{name} is an image: registry edits go into a container (strata create --name NAME {name})"
            )));
        }
        Ok(source)
    }

    /// `strata reg set`: sets a value in a Windows container's scratch layer.
    pub fn reg_set(&self, container: &str, path: &RegPath, value: Value) -> Result<()> {
        let source = self.windows_container(container)?;
        let upper = source.upper.as_deref().expect("a container");
        Ok(registry::set_value(&source.layers, upper, path, value)?)
    }

    /// `strata reg delete`: deletes a key, or one of its values, in a Windows container.
    pub fn reg_delete(&self, container: &str, path: &RegPath, value: Option<&str>) -> Result<()> {
        let source = self.windows_container(container)?;
        let upper = source.upper.as_deref().expect("a container");
        match value {
            Some(name) => Ok(registry::delete_value(&source.layers, upper, path, name)?),
            None => Ok(registry::delete_key(&source.layers, upper, path)?),
        }
    }
}
