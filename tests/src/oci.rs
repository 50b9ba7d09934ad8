//! Builds OCI image layouts for tests: real tar layers (gzip), a config with the layers'
//! diff_ids, a manifest and `index.json`, as `docker save`-free tools (skopeo, umoci) read them.

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use strata_storage::Digest;
use strata_storage::digest::sha256;

pub use strata_storage::oci::media::{OCI_INDEX, OCI_MANIFEST};

/// One entry of a test layer.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A directory.
    Dir(&'static str),
    /// A regular file with contents and mode.
    File(&'static str, Vec<u8>, u32),
    /// A regular file with an owned name.
    Named(String, Vec<u8>),
    /// A symbolic link and its target.
    Symlink(&'static str, &'static str),
    /// A hard link to an earlier entry of the same layer.
    HardLink(&'static str, &'static str),
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Image {
    /// Digest of the manifest.
    pub manifest: Digest,
    /// Digest of the config.
    pub config: Digest,
    /// Digests of the (compressed) layers, base first.
    pub layers: Vec<Digest>,
}

fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(1_700_000_000);
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .expect("tar dir");
            }
            Entry::File(path, data, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                builder
                    .append_data(&mut header, path, data.as_slice())
                    .expect("tar file");
            }
            Entry::Named(path, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(data.len() as u64);
                builder
                    .append_data(&mut header, path, data.as_slice())
                    .expect("tar file");
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target).expect("tar symlink");
            }
            Entry::HardLink(path, target) => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_mode(0o644);
                header.set_size(0);
                builder.append_link(&mut header, path, target).expect("tar hard link");
            }
        }
    }
    builder.into_inner().expect("finish tar")
}

fn write_blob(dir: &Path, data: &[u8]) -> Digest {
    let digest = sha256(data);
    let path = dir.join("blobs/sha256").join(digest.digest());
    std::fs::write(path, data).expect("write blob");
    digest
}

/// Writes an OCI image layout at `dir` holding one linux/amd64 image tagged `tag`, with one
/// gzip layer per entry list.
pub fn write_layout(dir: &Path, tag: &str, layers: &[Vec<Entry>]) -> Image {
    init_layout(dir);
    let platform = serde_json::json!({ "os": "linux", "architecture": "amd64" });
    let (image, manifest) = write_image(dir, &platform, layers);
    write_index(dir, &[(tag, OCI_MANIFEST, image.manifest.clone(), manifest.len())]);
    image
}

/// Creates the `oci-layout` marker and the blob directory.
pub fn init_layout(dir: &Path) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("create layout");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
}

/// Writes `index.json` naming each (tag, media type, digest, size).
pub fn write_index(dir: &Path, entries: &[(&str, &str, Digest, usize)]) {
    let manifests: Vec<_> = entries
        .iter()
        .map(|(tag, media_type, digest, size)| {
            serde_json::json!({
                "mediaType": media_type,
                "digest": digest.to_string(),
                "size": size,
                "annotations": { "org.opencontainers.image.ref.name": tag },
            })
        })
        .collect();
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": manifests });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).expect("index")).expect("index.json");
}

/// Writes the blobs of one image for `platform` (an OCI platform object: `os`, `architecture`,
/// maybe `os.version`, `variant`) into the layout at `dir`; returns it and its manifest bytes.
pub fn write_image(dir: &Path, platform: &serde_json::Value, layers: &[Vec<Entry>]) -> (Image, Vec<u8>) {
    write_typed_image(dir, platform, layers, &[])
}

/// [`write_image`] with the media type of the first layers given (the others are OCI gzip
/// layers): `application/vnd.oci.image.layer.nondistributable.v1.tar+gzip` and the like.
pub fn write_typed_image(
    dir: &Path,
    platform: &serde_json::Value,
    layers: &[Vec<Entry>],
    media_types: &[&str],
) -> (Image, Vec<u8>) {
    let mut diff_ids = Vec::new();
    let mut descriptors = Vec::new();
    let mut digests = Vec::new();
    for entries in layers {
        let tar = tar_of(entries);
        diff_ids.push(sha256(&tar).to_string());
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&tar).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let digest = write_blob(dir, &gz);
        descriptors.push(serde_json::json!({
            "mediaType": media_types.get(descriptors.len()).copied().unwrap_or("application/vnd.oci.image.layer.v1.tar+gzip"),
            "digest": digest.to_string(),
            "size": gz.len(),
        }));
        digests.push(digest);
    }
    let history: Vec<_> = layers
        .iter()
        .map(|_| serde_json::json!({ "created_by": "strata-tests" }))
        .collect();
    let mut config = serde_json::json!({
        "config": { "Cmd": ["/bin/sh"], "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": history,
    });
    for (k, v) in platform.as_object().expect("platform object") {
        config[k] = v.clone();
    }
    let config = serde_json::to_vec(&config).expect("config json");
    let config_digest = write_blob(dir, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
        "layers": descriptors,
    }))
    .expect("manifest json");
    let manifest_digest = write_blob(dir, &manifest);
    let image = Image {
        manifest: manifest_digest,
        config: config_digest,
        layers: digests,
    };
    (image, manifest)
}

/// Writes a layout at `dir` whose `tag` names an image index over one image per platform
/// (each with the given layers). Returns the index digest and the images in order.
pub fn write_index_layout(
    dir: &Path,
    tag: &str,
    images: &[(serde_json::Value, Vec<Vec<Entry>>)],
) -> (Digest, Vec<Image>) {
    write_typed_index_layout(dir, tag, images, &[])
}

/// [`write_index_layout`] with the first layers of every image of the media types given (see
/// [`write_typed_image`]).
pub fn write_typed_index_layout(
    dir: &Path,
    tag: &str,
    images: &[(serde_json::Value, Vec<Vec<Entry>>)],
    media_types: &[&str],
) -> (Digest, Vec<Image>) {
    init_layout(dir);
    let mut written = Vec::new();
    let mut entries = Vec::new();
    for (platform, layers) in images {
        let (image, manifest) = write_typed_image(dir, platform, layers, media_types);
        entries.push(serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": image.manifest.to_string(),
            "size": manifest.len(),
            "platform": platform,
        }));
        written.push(image);
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": entries,
    }))
    .expect("index json");
    let digest = write_blob(dir, &index);
    write_index(dir, &[(tag, OCI_INDEX, digest.clone(), index.len())]);
    (digest, written)
}

/// `n` bytes that do not compress (a xorshift stream from `seed`).
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// A three-layer busybox image from the host's static busybox (Debian `busybox-static`):
/// the binary, its applet links, and a file of our own.
pub fn write_busybox_layout(dir: &Path, tag: &str) -> Image {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (install busybox-static)");
    let layers = vec![
        vec![Entry::Dir("bin/"), Entry::File("bin/busybox", busybox, 0o755)],
        vec![
            Entry::Symlink("bin/sh", "busybox"),
            Entry::Symlink("bin/ls", "busybox"),
            Entry::Symlink("bin/echo", "busybox"),
        ],
        vec![
            Entry::Dir("etc/"),
            Entry::File("etc/motd", b"built by strata-tests\n".to_vec(), 0o644),
        ],
    ];
    write_layout(dir, tag, &layers)
}
