//! Named volumes: `STRATA_HOME/volumes/<name>/_data`, mounted past the union, kept after the
//! containers that used them are removed, shared by any number of containers.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{ContainerError, Result};
use super::record::{ContainerStore, MountSource, now, write_json};

/// What `strata volume inspect` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// The directory containers see.
    pub mountpoint: PathBuf,
}

/// The volumes of `STRATA_HOME/volumes`.
#[derive(Debug, Clone)]
pub struct VolumeStore {
    root: PathBuf,
}

/// Whether `name` is a valid volume name (docker's rule).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl VolumeStore {
    /// Opens (creating) the directory.
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| ContainerError::io(format!("create {}", root.display()), e))?;
        Ok(VolumeStore { root: root.to_owned() })
    }

    /// Creates volume `name`, or returns it if it exists.
    pub fn create(&self, name: &str) -> Result<Volume> {
        if !valid_name(name) {
            return Err(ContainerError::Usage(format!(
                "invalid volume name {name:?}: use letters, digits, `_`, `.` and `-`, starting with a letter or digit"
            )));
        }
        if let Ok(v) = self.get(name) {
            return Ok(v);
        }
        let dir = self.root.join(name);
        let data = dir.join("_data");
        std::fs::create_dir_all(&data).map_err(|e| ContainerError::io(format!("create {}", data.display()), e))?;
        let volume = Volume {
            name: name.to_owned(),
            created: now(),
            mountpoint: data,
        };
        write_json(&dir.join("volume.json"), &volume)?;
        Ok(volume)
    }

    /// Volume `name`.
    pub fn get(&self, name: &str) -> Result<Volume> {
        if !valid_name(name) {
            return Err(ContainerError::NotFound(format!("volume {name}")));
        }
        let path = self.root.join(name).join("volume.json");
        let raw = std::fs::read(&path).map_err(|_| ContainerError::NotFound(format!("volume {name}")))?;
        serde_json::from_slice(&raw).map_err(|e| ContainerError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>> {
        let mut out = Vec::new();
        for entry in
            std::fs::read_dir(&self.root).map_err(|e| ContainerError::io(format!("list {}", self.root.display()), e))?
        {
            let name = entry
                .map_err(|e| ContainerError::io(format!("list {}", self.root.display()), e))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            if let Ok(v) = self.get(&name) {
                out.push(v);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes volume `name` and its data, refusing while any container (running or not) uses it.
    pub fn remove(&self, name: &str, containers: &ContainerStore) -> Result<()> {
        self.get(name)?;
        let users: Vec<String> = containers
            .list()?
            .into_iter()
            .filter(|c| {
                c.config
                    .mounts
                    .iter()
                    .any(|m| m.source == MountSource::Volume(name.to_owned()))
            })
            .map(|c| c.config.name)
            .collect();
        if !users.is_empty() {
            return Err(ContainerError::Usage(format!(
                "volume {name} is in use by container(s) {}; remove them first",
                users.join(", ")
            )));
        }
        let dir = self.root.join(name);
        std::fs::remove_dir_all(&dir).map_err(|e| ContainerError::io(format!("remove {}", dir.display()), e))
    }
}
