//! The image config (OCI image-spec `config.md`, Docker's image JSON): what a container runs
//! and which layers (by diff_id) make its root. Unknown fields are kept, so a config derived
//! from another (a commit, an import on top of a parent) loses nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OciError, parse_json};
use crate::Digest;

/// An image config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// When the image was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Operating system (`linux` when missing).
    #[serde(default)]
    pub os: String,
    /// Windows build.
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// How to run a container from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    /// The layers, by diff_id.
    #[serde(default)]
    pub rootfs: RootFs,
    /// How each layer was made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields this model does not know, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageConfig {
    /// Parses config `digest` (named in the error).
    pub fn parse(bytes: &[u8], digest: &Digest) -> Result<Self, OciError> {
        parse_json(bytes, &format!("config {digest}"))
    }

    /// The operating system, `linux` when the config does not say.
    pub fn os(&self) -> &str {
        if self.os.is_empty() { "linux" } else { &self.os }
    }

    /// The container config, created empty if missing.
    pub fn container_mut(&mut self) -> &mut ContainerConfig {
        self.config.get_or_insert_with(ContainerConfig::default)
    }
}

/// What a container of the image runs, and how (Docker's capitalized field names).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `user`, `user:group`, `uid`, `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `NAME=value` pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// The executable and its first arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments (or the command, without an entrypoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `port/proto` keys (values are empty objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// Volume paths (values are empty objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    /// The signal that stops the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Fields this model does not know, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The layers of an image, by the digest of their uncompressed tar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Base first.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        }
    }
}

/// How a layer was made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Whether the step made no layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
    /// Fields this model does not know, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn docker_configs_parse_and_keep_what_the_model_does_not_know() {
        let raw = format!(
            r#"{{"architecture":"amd64","os":"linux","container":"abc","docker_version":"24",
                "config":{{"Env":["PATH=/bin"],"Cmd":null,"Entrypoint":["/bin/sh"],"Hostname":"x"}},
                "rootfs":{{"type":"layers","diff_ids":["{D}"]}},
                "history":[{{"created_by":"ADD","empty_layer":true,"x":1}}]}}"#
        );
        let config = ImageConfig::parse(raw.as_bytes(), &D.parse().unwrap()).unwrap();
        assert_eq!(config.os(), "linux");
        assert_eq!(config.rootfs.diff_ids[0].to_string(), D);
        let c = config.config.as_ref().unwrap();
        assert_eq!(c.entrypoint.as_deref(), Some(&["/bin/sh".to_owned()][..]));
        assert_eq!(c.cmd, None);
        let back = serde_json::to_value(&config).unwrap();
        assert_eq!(back["container"], "abc");
        assert_eq!(back["config"]["Hostname"], "x");
        assert_eq!(back["history"][0]["x"], 1);
        assert!(
            ImageConfig::parse(
                br#"{"rootfs":{"type":"layers","diff_ids":["bad"]}}"#,
                &D.parse().unwrap()
            )
            .is_err()
        );
    }
}
