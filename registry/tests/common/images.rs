//! Real images for the UI tests: configs with history, labels and Windows versions, layers,
//! foreign layers, multi-platform indexes and referrers, pushed through the API with their true
//! sizes; and a catalogue of them with hostile text in every field a page shows.

use bytes::Bytes;
use reqwest::StatusCode;
use serde_json::{Value, json};
use strata_storage::Digest;
use strata_storage::digest::sha256;

use std::path::Path;

use strata_registry::Config;
use strata_registry::config::{Action, Auth, Token};

use super::{OCI_INDEX, OCI_MANIFEST, TestRegistry, rule};

/// What the hostile image carries in labels, history, annotations and its entrypoint: markup
/// that would set `window.pwned` if it ever ran.
pub const HOSTILE: &str = r#"<script>window.pwned=1</script><img src=x onerror="window.pwned=2">"#;

/// A pushed manifest: its digest, size and media type.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: Digest,
    pub size: u64,
    pub media_type: &'static str,
}

impl TestRegistry {
    /// Pushes `config` (JSON) and `layers` (bytes, or foreign: size and URLs, not pushed) as an
    /// image manifest tagged `tag` (none: by digest), with `annotations`.
    pub async fn push_real_image(
        &self,
        name: &str,
        tag: Option<&str>,
        config: Value,
        layers: &[Layer<'_>],
        annotations: Value,
    ) -> Pushed {
        let config = Bytes::from(serde_json::to_vec(&config).unwrap());
        let config_digest = self.push_blob(name, config.clone()).await;
        let mut descriptors = Vec::new();
        for layer in layers {
            descriptors.push(match layer {
                Layer::Tar(bytes) => {
                    let digest = self.push_blob(name, Bytes::copy_from_slice(bytes)).await;
                    let media_type = if bytes.starts_with(&[0x1f, 0x8b]) {
                        "application/vnd.oci.image.layer.v1.tar+gzip"
                    } else {
                        "application/vnd.oci.image.layer.v1.tar"
                    };
                    json!({ "mediaType": media_type, "digest": digest.to_string(), "size": bytes.len() })
                }
                Layer::Foreign { seed, size, url } => json!({
                    "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                    "digest": sha256(seed.as_bytes()).to_string(),
                    "size": size,
                    "urls": [url],
                }),
            });
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len() },
            "layers": descriptors,
            "annotations": annotations,
        });
        self.put_json(name, tag, OCI_MANIFEST, &manifest).await
    }

    /// Puts `manifest` under `tag` (or its digest).
    pub async fn put_json(&self, name: &str, tag: Option<&str>, media_type: &'static str, manifest: &Value) -> Pushed {
        let bytes = Bytes::from(serde_json::to_vec(manifest).unwrap());
        let digest = sha256(&bytes);
        let reference = tag.map_or_else(|| digest.to_string(), str::to_owned);
        let response = self.put_manifest(name, &reference, media_type, bytes.clone()).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{}",
            response.text().await.unwrap()
        );
        Pushed {
            digest,
            size: bytes.len() as u64,
            media_type,
        }
    }

    /// An index of `entries` (pushed manifest and its platform) tagged `tag`.
    pub async fn push_index(&self, name: &str, tag: &str, entries: &[(&Pushed, Value)]) -> Pushed {
        let manifests: Vec<Value> = entries
            .iter()
            .map(|(p, platform)| {
                json!({ "mediaType": p.media_type, "digest": p.digest.to_string(), "size": p.size, "platform": platform })
            })
            .collect();
        let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
        self.put_json(name, Some(tag), OCI_INDEX, &index).await
    }
}

/// An entry of [`tar_layer`].
pub enum TarEntry<'a> {
    File(&'a [u8]),
    Dir,
    Symlink(&'a str),
}

/// A gzip-compressed layer tar of `entries`, written raw (names as given, `..` and whiteouts
/// included), in order.
pub fn tar_layer(entries: &[(&str, TarEntry<'_>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (name, entry) in entries {
        let mut header = tar::Header::new_gnu();
        let (kind, data, mode): (tar::EntryType, &[u8], u32) = match entry {
            TarEntry::File(data) => (tar::EntryType::Regular, data, 0o644),
            TarEntry::Dir => (tar::EntryType::Directory, &[], 0o755),
            TarEntry::Symlink(target) => {
                header.set_link_name(target).unwrap();
                (tar::EntryType::Symlink, &[], 0o777)
            }
        };
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        header.set_size(data.len() as u64);
        // Raw name bytes: the tar crate's set_path refuses `..`, which hostile layers have.
        let field = &mut header.as_old_mut().name;
        field.fill(0);
        field[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// A layer of [`TestRegistry::push_real_image`].
pub enum Layer<'a> {
    /// Pushed bytes.
    Tar(&'a [u8]),
    /// A foreign layer, referenced by URL only.
    Foreign { seed: &'a str, size: u64, url: &'a str },
}

/// A config for `os/arch` (Windows: with `os_version`), with history and labels.
pub fn config(os: &str, arch: &str, os_version: Option<&str>, extra: Value) -> Value {
    let mut config = json!({
        "architecture": arch,
        "os": os,
        "created": "2026-11-01T10:00:00Z",
        "config": {
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo hello"],
            "Env": ["PATH=/usr/bin:/bin"],
            "User": "1000:1000",
            "WorkingDir": "/srv",
            "Labels": { "org.opencontainers.image.source": "https://example.com/app" },
        },
        "rootfs": { "type": "layers", "diff_ids": [] },
        "history": [
            { "created": "2026-11-01T09:00:00Z", "created_by": "ADD rootfs.tar /" },
            { "created": "2026-11-01T10:00:00Z", "created_by": "strata commit", "author": "Ann Example <ann@example.com>", "comment": "install the app" },
        ],
    });
    if let Some(v) = os_version {
        config["os.version"] = json!(v);
    }
    merge(&mut config, extra);
    config
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// The UI tests' registry content: `library/busybox` (`1.36`, `latest`), a multi-platform
/// Windows index `windows/servercore:ltsc2022` (build 20348 and 17763, foreign base layers), a
/// signature referring to busybox, `secret/app:v1` (only some users may pull it) and
/// `evil/app:hostile` with [`HOSTILE`] text everywhere.
pub struct Catalogue {
    pub busybox: Pushed,
    pub windows: Pushed,
    pub windows_2022: Pushed,
    pub secret: Pushed,
    pub hostile: Pushed,
}

/// Pushes the [`Catalogue`].
pub async fn catalogue(r: &TestRegistry) -> Catalogue {
    let base = tar_layer(&[
        ("bin/", TarEntry::Dir),
        ("bin/busybox", TarEntry::File(b"\x7fELF busybox")),
        ("bin/sh", TarEntry::Symlink("busybox")),
        ("etc/", TarEntry::Dir),
        ("etc/hosts", TarEntry::File(b"127.0.0.1 localhost\n")),
        ("etc/passwd", TarEntry::File(b"root:x:0:0:root:/root:/bin/sh\n")),
        ("etc/motd", TarEntry::File(HOSTILE.as_bytes())),
        ("etc/<img src=x onerror=alert(1)>.txt", TarEntry::File(b"hostile name")),
        ("../../escape", TarEntry::File(b"outside")),
        ("var/cache/apk/index", TarEntry::File(b"stale")),
    ]);
    let upper = tar_layer(&[
        ("etc/", TarEntry::Dir),
        ("etc/.wh.passwd", TarEntry::File(b"")),
        ("etc/hostname", TarEntry::File(b"box\n")),
        ("var/cache/apk/", TarEntry::Dir),
        ("var/cache/apk/.wh..wh..opq", TarEntry::File(b"")),
        ("var/cache/apk/fresh", TarEntry::File(b"fresh")),
    ]);
    let busybox = r
        .push_real_image(
            "library/busybox",
            Some("1.36"),
            config("linux", "amd64", None, json!({})),
            &[Layer::Tar(&base), Layer::Tar(&upper)],
            json!({}),
        )
        .await;
    r.put_manifest(
        "library/busybox",
        "latest",
        OCI_MANIFEST,
        r.get(&format!("/v2/library/busybox/manifests/{}", busybox.digest))
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .await;
    // A signature: an artifact whose subject is busybox.
    let signature_config = r.push_blob("library/busybox", Bytes::from_static(b"{}")).await;
    let signature = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": signature_config.to_string(), "size": 2 },
        "layers": [],
        "subject": { "mediaType": OCI_MANIFEST, "digest": busybox.digest.to_string(), "size": busybox.size },
    });
    r.put_json("library/busybox", None, OCI_MANIFEST, &signature).await;

    let base = |seed: &'static str| Layer::Foreign {
        seed,
        size: 1_234_567_890,
        url: "https://mcr.microsoft.com/v2/windows/servercore/blobs/sha256:0",
    };
    let update = tar_layer(&[
        ("Files/", TarEntry::Dir),
        ("Files/Windows/", TarEntry::Dir),
        ("Files/Windows/System32/", TarEntry::Dir),
        (
            "Files/Windows/System32/drivers/etc/hosts",
            TarEntry::File(b"127.0.0.1 localhost\r\n"),
        ),
        ("Files/Program Files/App/app.exe", TarEntry::File(b"MZ")),
        ("Hives/", TarEntry::Dir),
        ("Hives/Software_Delta", TarEntry::File(b"regf")),
    ]);
    let windows_2022 = r
        .push_real_image(
            "windows/servercore",
            None,
            config("windows", "amd64", Some("10.0.20348.2113"), json!({})),
            &[base("ltsc2022"), Layer::Tar(&update)],
            json!({}),
        )
        .await;
    let windows_2019 = r
        .push_real_image(
            "windows/servercore",
            None,
            config("windows", "amd64", Some("10.0.17763.5830"), json!({})),
            &[base("ltsc2019"), Layer::Tar(b"windows 2019 update layer")],
            json!({}),
        )
        .await;
    let windows = r
        .push_index(
            "windows/servercore",
            "ltsc2022",
            &[
                (
                    &windows_2022,
                    json!({ "os": "windows", "architecture": "amd64", "os.version": "10.0.20348.2113" }),
                ),
                (
                    &windows_2019,
                    json!({ "os": "windows", "architecture": "amd64", "os.version": "10.0.17763.5830" }),
                ),
            ],
        )
        .await;

    let secret = r
        .push_real_image(
            "secret/app",
            Some("v1"),
            config("linux", "amd64", None, json!({})),
            &[Layer::Tar(b"secret layer")],
            json!({}),
        )
        .await;

    let hostile_config = config(
        "linux",
        "amd64",
        None,
        json!({
            "author": HOSTILE,
            "config": { "Labels": { HOSTILE: HOSTILE }, "Env": [HOSTILE], "Entrypoint": [HOSTILE] },
            "history": [{ "created_by": HOSTILE, "author": HOSTILE, "comment": HOSTILE }],
        }),
    );
    let hostile = r
        .push_real_image(
            "evil/app",
            Some("hostile"),
            hostile_config,
            &[Layer::Tar(b"evil layer")],
            json!({ "org.opencontainers.image.title": HOSTILE }),
        )
        .await;
    Catalogue {
        busybox,
        windows,
        windows_2022,
        secret,
        hostile,
    }
}

/// Access control for the UI tests: alice may pull (and delete) everything but `secret/**`,
/// bob may pull only `secret/**`, nobody else anything.
pub fn secured(dir: &Path) -> Config {
    use Action::*;
    let htpasswd = dir.join("htpasswd");
    let users: Vec<String> = [("alice", "a-pass"), ("bob", "b-pass")]
        .iter()
        .map(|(u, p)| format!("{u}:{}", bcrypt::hash(p, 4).unwrap()))
        .collect();
    std::fs::write(&htpasswd, users.join("\n") + "\n").unwrap();
    Config {
        auth: Some(Auth {
            htpasswd: Some(htpasswd),
            token: Some(Token {
                key: Some(dir.join("token.pem")),
                ..Token::default()
            }),
            max_failed_logins: 3,
            ..Auth::default()
        }),
        access: vec![
            rule(&["secret/**"], &["bob"], &[Pull]),
            rule(
                &["library/**", "windows/**", "evil/**"],
                &["alice"],
                &[Pull, Push, Delete],
            ),
        ],
        ..Config::default()
    }
}

/// A registry seeded with the catalogue, and a replica of it with access control.
pub async fn seeded(dir: &Path) -> (TestRegistry, TestRegistry, Catalogue) {
    let open = TestRegistry::fs().await;
    let content = catalogue(&open).await;
    let secured = open.replica(secured(dir)).await;
    (open, secured, content)
}

/// A Windows image whose layers carry the registry of `strata_hive::testing::scenario` (the
/// base hive as `Files/Windows/System32/config/SOFTWARE`, each delta as `Hives/software_delta`
/// in a layer above), plus a key `Hostile` with a script in a value's name and data.
pub struct RegistryImage {
    pub pushed: Pushed,
    /// The base layer's tar.
    pub base_layer: Vec<u8>,
    /// The three delta hives' bytes.
    pub delta_hives: Vec<Vec<u8>>,
}

/// Pushes a [`RegistryImage`] as `repository:tag`.
pub async fn push_registry_image(r: &TestRegistry, repository: &str, tag: &str) -> RegistryImage {
    use strata_hive::testing::{key, scenario, sz};
    let (mut base, deltas) = scenario();
    base.subkeys.push(key(
        "Hostile",
        vec![sz("<script>window.pwned=1</script>", "<img src=x onerror=alert(1)>")],
        vec![],
    ));
    let hive = |key: &strata_hive::Key, layered: bool| {
        let options = strata_hive::WriteOptions {
            layered,
            ..strata_hive::WriteOptions::default()
        };
        strata_hive::write(key, &options).unwrap()
    };
    let base_bytes = hive(&base, false);
    let base_layer = tar_layer(&[
        ("Files/", TarEntry::Dir),
        ("Files/Windows/", TarEntry::Dir),
        ("Files/Windows/System32/", TarEntry::Dir),
        ("Files/Windows/System32/config/", TarEntry::Dir),
        ("Files/Windows/System32/config/SOFTWARE", TarEntry::File(&base_bytes)),
    ]);
    let delta_hives: Vec<Vec<u8>> = deltas.iter().map(|d| hive(d, true)).collect();
    let delta_layers: Vec<Vec<u8>> = delta_hives
        .iter()
        .map(|b| tar_layer(&[("Hives/", TarEntry::Dir), ("Hives/software_delta", TarEntry::File(b))]))
        .collect();
    let mut layers = vec![Layer::Tar(&base_layer)];
    layers.extend(delta_layers.iter().map(|l| Layer::Tar(l)));
    let pushed = r
        .push_real_image(
            repository,
            Some(tag),
            config("windows", "amd64", Some("10.0.20348.2113"), json!({})),
            &layers,
            json!({}),
        )
        .await;
    RegistryImage {
        pushed,
        base_layer,
        delta_hives,
    }
}
