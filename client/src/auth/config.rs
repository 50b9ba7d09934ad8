//! Docker's `config.json`: where credentials live. Read from `$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`. Lookup order is docker's: `credHelpers[registry]`, then `credsStore`,
//! then `auths`. Unknown keys in the file are kept when it is rewritten.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use super::helper;
use crate::error::{ClientError, Result};
use crate::reference::DOCKER_HUB;
use strata_distribution::Credentials;

/// The key Docker Hub credentials are stored under (what `docker login` writes).
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A loaded `config.json`.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    raw: Map<String, Value>,
}

/// Keys a registry's entry may be stored under.
fn candidate_keys(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_owned(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ];
    if registry == DOCKER_HUB {
        keys.splice(
            0..0,
            [
                DOCKER_HUB_KEY.to_owned(),
                "index.docker.io".into(),
                "registry-1.docker.io".into(),
            ],
        );
    }
    keys
}

/// The key to store a registry's credentials under.
fn store_key(registry: &str) -> String {
    if registry == DOCKER_HUB {
        DOCKER_HUB_KEY.to_owned()
    } else {
        registry.to_owned()
    }
}

impl DockerConfig {
    /// Where the config lives: `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    pub fn default_path(env: impl Fn(&str) -> Option<String>) -> PathBuf {
        match env("DOCKER_CONFIG") {
            Some(dir) => PathBuf::from(dir).join("config.json"),
            None => PathBuf::from(env("HOME").unwrap_or_else(|| "/root".into())).join(".docker/config.json"),
        }
    }

    /// Loads the file at `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self> {
        let raw = match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => map,
                Ok(_) | Err(_) => {
                    return Err(ClientError::Config(format!("{} is not a JSON object", path.display())));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(ClientError::io(format!("read {}", path.display()), e)),
        };
        Ok(DockerConfig {
            path: path.to_owned(),
            raw,
        })
    }

    /// The file this config was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn helper_for(&self, registry: &str) -> Option<String> {
        let helpers = self.raw.get("credHelpers").and_then(Value::as_object);
        let specific = candidate_keys(registry)
            .iter()
            .find_map(|k| helpers?.get(k)?.as_str().map(String::from));
        specific
            .or_else(|| self.raw.get("credsStore")?.as_str().map(String::from))
            .filter(|h| !h.is_empty())
    }

    /// Credentials for `registry` (a host[:port]), if any are configured.
    pub async fn credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        if let Some(helper) = self.helper_for(registry) {
            for key in candidate_keys(registry) {
                if let Some(creds) = helper::get(&helper, &key).await? {
                    return Ok(Some(creds));
                }
            }
            return Ok(None);
        }
        let Some(auths) = self.raw.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        for key in candidate_keys(registry) {
            let Some(entry) = auths.get(&key) else { continue };
            if let Some(token) = entry.get("identitytoken").and_then(Value::as_str) {
                return Ok(Some(Credentials {
                    username: "<token>".into(),
                    secret: token.into(),
                }));
            }
            let Some(auth) = entry.get("auth").and_then(Value::as_str) else {
                continue;
            };
            let decoded = BASE64
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ClientError::Config(format!("auths[{key}].auth in {} is not base64", self.path.display()))
                })?;
            let (username, secret) = decoded
                .split_once(':')
                .ok_or_else(|| ClientError::Config(format!("auths[{key}].auth has no ':'")))?;
            return Ok(Some(Credentials {
                username: username.into(),
                secret: secret.into(),
            }));
        }
        Ok(None)
    }

    /// Stores credentials for `registry`: in the credential helper if one is configured, else
    /// in `auths`. Call [`DockerConfig::save`] afterwards.
    pub async fn store(&mut self, registry: &str, creds: &Credentials) -> Result<()> {
        let key = store_key(registry);
        if let Some(helper) = self.helper_for(registry) {
            helper::store(&helper, &key, creds).await?;
            // Docker records an empty entry so that the registry shows as logged in.
            self.auths_mut().insert(key, json!({}));
            return Ok(());
        }
        let auth = BASE64.encode(format!("{}:{}", creds.username, creds.secret));
        self.auths_mut().insert(key, json!({ "auth": auth }));
        Ok(())
    }

    /// Forgets the credentials of `registry`. Returns whether there were any.
    pub async fn erase(&mut self, registry: &str) -> Result<bool> {
        if let Some(helper) = self.helper_for(registry) {
            helper::erase(&helper, &store_key(registry)).await?;
        }
        let auths = self.auths_mut();
        let mut found = false;
        for key in candidate_keys(registry) {
            found |= auths.remove(&key).is_some();
        }
        Ok(found)
    }

    fn auths_mut(&mut self) -> &mut Map<String, Value> {
        let entry = self.raw.entry("auths").or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        entry.as_object_mut().expect("just made an object")
    }

    /// Writes the config back (temp file, mode 0600, rename).
    pub fn save(&self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| ClientError::io(format!("create {}", dir.display()), e))?;
        let json = serde_json::to_vec_pretty(&Value::Object(self.raw.clone())).expect("json");
        strata_storage::atomic::write_with_mode(&self.path, &json, 0o600)
            .map_err(|e| ClientError::io(format!("write {}", self.path.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> (tempfile::TempDir, DockerConfig) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, json).unwrap();
        let cfg = DockerConfig::load(&path).unwrap();
        (dir, cfg)
    }

    #[tokio::test]
    async fn auths_entries_are_found_under_docker_keys() {
        let auth = BASE64.encode("alice:s3cret");
        let (_d, cfg) = config(&format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"localhost:5000":{{"auth":"{auth}"}},"tok.example":{{"identitytoken":"refresh"}}}}}}"#
        ));
        let hub = cfg.credentials("docker.io").await.unwrap().unwrap();
        assert_eq!((hub.username.as_str(), hub.secret.as_str()), ("alice", "s3cret"));
        assert!(cfg.credentials("localhost:5000").await.unwrap().is_some());
        assert!(cfg.credentials("other:5000").await.unwrap().is_none());
        assert_eq!(
            cfg.credentials("tok.example").await.unwrap().unwrap().username,
            "<token>"
        );
        assert!(!format!("{hub:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn store_erase_and_save_keep_other_keys() {
        let (dir, mut cfg) = config(r#"{"psFormat":"table","auths":{}}"#);
        let creds = Credentials {
            username: "bob".into(),
            secret: "pw".into(),
        };
        cfg.store("docker.io", &creds).await.unwrap();
        cfg.save().unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        assert!(
            text.contains("https://index.docker.io/v1/") && text.contains("psFormat"),
            "{text}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("config.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let reloaded = DockerConfig::load(cfg.path()).unwrap();
        assert_eq!(reloaded.credentials("docker.io").await.unwrap(), Some(creds));
        let mut reloaded = reloaded;
        assert!(reloaded.erase("docker.io").await.unwrap());
        assert!(reloaded.credentials("docker.io").await.unwrap().is_none());
    }

    #[test]
    fn default_path_honours_docker_config() {
        let p = DockerConfig::default_path(|k| (k == "DOCKER_CONFIG").then(|| "/etc/dc".into()));
        assert_eq!(p, PathBuf::from("/etc/dc/config.json"));
        let p = DockerConfig::default_path(|k| (k == "HOME").then(|| "/home/u".into()));
        assert_eq!(p, PathBuf::from("/home/u/.docker/config.json"));
    }
}
