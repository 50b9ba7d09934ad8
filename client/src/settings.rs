//! The client's own settings file, TOML: `$STRATA_CONFIG`, else
//! `$XDG_CONFIG_HOME/strata/config.toml`, else `~/.config/strata/config.toml`. A missing file is
//! empty settings. It holds the mirrors to pull through:
//!
//! ```toml
//! [[mirror]]
//! url = "http://cache.internal:5000"
//! registries = ["docker.io", "ghcr.io"]   # optional; default: every registry
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{ClientError, Result};

/// Largest settings file read.
const MAX_BYTES: u64 = 1 << 20;

/// What the settings file says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Mirrors to pull through, in order, after any given with `--mirror`.
    #[serde(default, rename = "mirror")]
    pub mirrors: Vec<Mirror>,
}

/// A registry that mirrors others (a pull-through cache), asked with `?ns=REGISTRY`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// `http://host:port` or `https://host` (a bare host means https).
    pub url: String,
    /// The registries it mirrors, as references name them (`docker.io`, `ghcr.io`); empty:
    /// every registry.
    #[serde(default)]
    pub registries: Vec<String>,
}

impl Mirror {
    /// Whether pulls from `registry` go through this mirror.
    pub fn serves(&self, registry: &str) -> bool {
        self.registries.is_empty() || self.registries.iter().any(|r| r.eq_ignore_ascii_case(registry))
    }
}

impl Settings {
    /// Where the settings file is, from the environment.
    pub fn default_path(env: impl Fn(&str) -> Option<String>) -> PathBuf {
        if let Some(path) = env("STRATA_CONFIG") {
            return PathBuf::from(path);
        }
        let config = env("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env("HOME").unwrap_or_else(|| "/root".into())).join(".config"));
        config.join("strata/config.toml")
    }

    /// Loads the file at `path`; a missing file is empty settings.
    pub fn load(path: &Path) -> Result<Self> {
        use std::io::Read;
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => return Err(ClientError::io(format!("read {}", path.display()), e)),
        };
        let mut text = String::new();
        file.take(MAX_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| ClientError::io(format!("read {}", path.display()), e))?;
        if text.len() as u64 > MAX_BYTES {
            return Err(ClientError::Config(format!(
                "{}: larger than {MAX_BYTES} bytes",
                path.display()
            )));
        }
        let settings: Settings = toml::from_str(&text).map_err(|e| {
            let message = e.message().to_owned();
            ClientError::Config(format!("{}: {message}", path.display()))
        })?;
        for mirror in &settings.mirrors {
            if let Some((scheme, _)) = mirror.url.split_once("://")
                && scheme != "http"
                && scheme != "https"
            {
                return Err(ClientError::Config(format!(
                    "{}: mirror {:?}: scheme {scheme} is not http or https",
                    path.display(),
                    mirror.url
                )));
            }
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_load_in_order_and_serve_their_registries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        assert_eq!(Settings::load(&path).unwrap(), Settings::default(), "missing: empty");
        std::fs::write(
            &path,
            "[[mirror]]\nurl = \"http://cache:5000\"\nregistries = [\"docker.io\"]\n\n[[mirror]]\nurl = \"https://all.example\"\n",
        )
        .unwrap();
        let settings = Settings::load(&path).unwrap();
        assert_eq!(settings.mirrors.len(), 2);
        assert!(settings.mirrors[0].serves("docker.io") && !settings.mirrors[0].serves("ghcr.io"));
        assert!(settings.mirrors[1].serves("ghcr.io"));
    }

    #[test]
    fn bad_settings_are_one_line_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        for bad in [
            "[[mirror]]\nurl = \"ftp://x\"\n",
            "[[mirror]]\nurl = \"http://x\"\nregistrys = []\n",
            "mirror = 3\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = Settings::load(&path).unwrap_err().to_string();
            assert!(e.contains("config.toml") && !e.contains('\n'), "{bad:?}: {e}");
        }
        std::fs::write(&path, "#".repeat(2 << 20)).unwrap();
        assert!(Settings::load(&path).unwrap_err().to_string().contains("larger than"));
    }

    #[test]
    fn the_path_follows_strata_config_then_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        };
        assert_eq!(
            Settings::default_path(env(&[("STRATA_CONFIG", "/etc/s.toml"), ("HOME", "/h")])),
            PathBuf::from("/etc/s.toml")
        );
        assert_eq!(
            Settings::default_path(env(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")])),
            PathBuf::from("/x/strata/config.toml")
        );
        assert_eq!(
            Settings::default_path(env(&[("HOME", "/h")])),
            PathBuf::from("/h/.config/strata/config.toml")
        );
    }
}
