//! Tests of docker-archive import and export.

use std::io::Write as _;
use std::process::Command;

use serde_json::json;
use strata_storage::digest::sha256;
use strata_storage::oci::media::OCI_MANIFEST;

use super::*;

/// A tar of regular files, or symlinks where the content starts with `->`.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        match data.strip_prefix(b"->") {
            Some(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                tar.append_link(&mut header, path, std::str::from_utf8(target).unwrap())
                    .unwrap();
            }
            None => {
                header.set_size(data.len() as u64);
                tar.append_data(&mut header, path, *data).unwrap();
            }
        }
    }
    tar.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn config_for(diff_ids: &[&[u8]]) -> Vec<u8> {
    let diff_ids: Vec<String> = diff_ids.iter().map(|l| sha256(l).to_string()).collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// The digests of an image: config, then layers.
#[derive(Debug, PartialEq, Eq)]
struct Digests {
    config: String,
    layers: Vec<String>,
}

/// Stores a two-layer OCI image (a plain tar layer, then a gzip one) named `name`.
async fn oci_image(layout: &OciLayout, name: &str) -> Digests {
    let plain = tar_of(&[("etc/hello", b"hello\n")]);
    let inner = tar_of(&[("usr/bin/tool", b"#!/bin/sh\necho tool\n")]);
    let zipped = gzip(&inner);
    let config = config_for(&[&plain, &inner]);
    let mut put = Vec::new();
    for blob in [&config, &plain, &zipped] {
        let digest = layout.blobs().put_bytes(Bytes::from(blob.clone())).await.unwrap();
        put.push(json!({"digest": digest.to_string(), "size": blob.len()}));
    }
    put[0]["mediaType"] = json!(OCI_CONFIG);
    put[1]["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
    put[2]["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar+gzip");
    let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": put[0], "layers": put[1..]});
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let digest = layout.blobs().put_bytes(Bytes::from(manifest.clone())).await.unwrap();
    let descriptor = Descriptor::new(OCI_MANIFEST, digest, manifest.len() as u64);
    layout.set_ref(name, &descriptor).unwrap();
    Digests {
        config: put[0]["digest"].as_str().unwrap().to_owned(),
        layers: put[1..]
            .iter()
            .map(|d| d["digest"].as_str().unwrap().to_owned())
            .collect(),
    }
}

/// The manifest named `name` in `layout`.
async fn manifest_of(layout: &OciLayout, name: &str) -> (Descriptor, strata_storage::oci::ImageManifest) {
    let descriptor = layout.find(name).unwrap().expect("named");
    let digest = descriptor.digest.clone();
    let bytes = layout.read_blob(&digest, MAX_JSON).await.unwrap();
    (descriptor, ImageManifest::parse(&bytes, &digest).unwrap())
}

fn digests(manifest: &strata_storage::oci::ImageManifest) -> Digests {
    Digests {
        config: manifest.config.digest.to_string(),
        layers: manifest.layers.iter().map(|l| l.digest.to_string()).collect(),
    }
}

/// Every entry of a tar file: name, header, content.
fn read_tar(file: &Path) -> Vec<(String, tar::Header, Vec<u8>)> {
    let mut archive = tar::Archive::new(File::open(file).unwrap());
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_str().unwrap().to_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.push((name, entry.header().clone(), data));
    }
    out
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test]
async fn export_writes_docker_archive_that_imports_to_the_same_digests() {
    let dir = tempfile::tempdir().unwrap();
    let source = OciLayout::open(&dir.path().join("source")).unwrap();
    let original = oci_image(&source, "app").await;
    let file = dir.path().join("app.tar");

    export(&source, "app", &file, Some("docker.io/example/img:v1"))
        .await
        .unwrap();

    let entries = read_tar(&file);
    let hex = |d: &str| d.strip_prefix("sha256:").unwrap().to_owned();
    let names: Vec<&str> = entries.iter().map(|(n, ..)| n.as_str()).collect();
    let expected_names = [
        "manifest.json".to_owned(),
        "repositories".to_owned(),
        format!("{}.json", hex(&original.config)),
        format!("{}.tar", hex(&original.layers[0])),
        format!("{}.tar", hex(&original.layers[1])),
    ];
    assert_eq!(names, expected_names);
    for (name, header, data) in &entries {
        assert_eq!(header.mtime().unwrap(), 0, "{name}");
        assert_eq!(header.mode().unwrap(), 0o644, "{name}");
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0), "{name}");
        if name != "manifest.json" && name != "repositories" {
            assert_eq!(
                sha256(data).to_string(),
                format!("sha256:{}", &name[..64]),
                "{name} keeps its bytes"
            );
        }
    }
    let manifest: serde_json::Value = serde_json::from_slice(&entries[0].2).unwrap();
    assert_eq!(
        manifest,
        json!([{
            "Config": expected_names[2],
            "RepoTags": ["example/img:v1"],
            "Layers": [expected_names[3], expected_names[4]],
        }])
    );
    let repositories: serde_json::Value = serde_json::from_slice(&entries[1].2).unwrap();
    assert_eq!(repositories, json!({"example/img": {"v1": hex(&original.layers[1])}}));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "no temporary file is left: {leftovers:?}");

    let target = OciLayout::open(&dir.path().join("target")).unwrap();
    let digest = import(&file, Some("example/img:v1"), &target, "copy").await.unwrap();
    let (descriptor, imported) = manifest_of(&target, "copy").await;
    assert_eq!(descriptor.digest.clone(), digest);
    assert_eq!(descriptor.media_type, DOCKER_MANIFEST);
    assert_eq!(imported.media_type.as_deref(), Some(DOCKER_MANIFEST));
    assert_eq!(imported.config.media_type, DOCKER_CONFIG);
    assert_eq!(digests(&imported), original);
    let types: Vec<&str> = imported.layers.iter().map(|l| l.media_type.as_str()).collect();
    assert_eq!(types, [DOCKER_LAYER_TAR, DOCKER_LAYER_GZIP]);

    // Without RepoTags the only image is still found.
    export(&source, "app", &file, None).await.unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&read_tar(&file)[0].2).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::Value::Null);
    let again = import(&file, None, &target, "again").await.unwrap();
    assert_eq!(again, digest, "the same archive imports to the same manifest");
}

#[tokio::test]
async fn uncompressed_layer_not_matching_its_diff_id_is_rejected_and_nothing_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let layer = tar_of(&[("etc/hello", b"hello\n")]);
    let config = config_for(&[b"some other layer"]);
    let manifest = br#"[{"Config":"config.json","RepoTags":["a:1"],"Layers":["l/layer.tar"]}]"#;
    let file = write_file(
        dir.path(),
        "bad.tar",
        &tar_of(&[
            ("manifest.json", manifest),
            ("config.json", &config),
            ("l/layer.tar", &layer),
        ]),
    );
    let layout = OciLayout::open(&dir.path().join("layout")).unwrap();

    let err = import(&file, None, &layout, "bad").await.unwrap_err();

    assert!(matches!(err, ClientError::Integrity(_)), "{err}");
    assert_eq!(layout.find("bad").unwrap(), None);
    assert!(
        !layout.has_blob(&sha256(&layer)).await.unwrap(),
        "the layer is not published"
    );
}

#[tokio::test]
async fn gzip_layer_whose_content_does_not_match_its_diff_id_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let layer = gzip(&tar_of(&[("etc/hello", b"hello\n")]));
    let config = config_for(&[&tar_of(&[("etc/hello", b"bye\n")])]);
    let manifest = br#"[{"Config":"c.json","Layers":["l.tar"]}]"#;
    let file = write_file(
        dir.path(),
        "bad.tar",
        &tar_of(&[("manifest.json", manifest), ("c.json", &config), ("l.tar", &layer)]),
    );
    let layout = OciLayout::open(&dir.path().join("layout")).unwrap();

    let err = import(&file, None, &layout, "bad").await.unwrap_err();

    assert!(matches!(err, ClientError::Integrity(_)), "{err}");
    assert_eq!(layout.find("bad").unwrap(), None);
}

#[tokio::test]
async fn layer_count_must_match_diff_ids() {
    let dir = tempfile::tempdir().unwrap();
    let layer = tar_of(&[("a", b"a")]);
    let config = config_for(&[&layer, &layer]);
    let manifest = br#"[{"Config":"c.json","Layers":["l.tar"]}]"#;
    let file = write_file(
        dir.path(),
        "short.tar",
        &tar_of(&[("manifest.json", manifest), ("c.json", &config), ("l.tar", &layer)]),
    );
    let layout = OciLayout::open(&dir.path().join("layout")).unwrap();
    let err = import(&file, None, &layout, "x").await.unwrap_err();
    assert!(matches!(err, ClientError::Integrity(_)), "{err}");
}

#[tokio::test]
async fn manifest_paths_leaving_the_archive_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let layer = tar_of(&[("a", b"a")]);
    let config = config_for(&[&layer]);
    let layout = OciLayout::open(&dir.path().join("layout")).unwrap();
    for (i, (config_path, layer_path)) in [
        ("c.json", "../l.tar"),
        ("c.json", "x/../../l.tar"),
        ("/c.json", "l.tar"),
        ("c.json", "escape.tar"),
    ]
    .into_iter()
    .enumerate()
    {
        let manifest = format!(r#"[{{"Config":"{config_path}","Layers":["{layer_path}"]}}]"#);
        let file = write_file(
            dir.path(),
            &format!("evil{i}.tar"),
            &tar_of(&[
                ("manifest.json", manifest.as_bytes()),
                ("c.json", &config),
                ("l.tar", &layer),
                ("escape.tar", b"->../l.tar"),
            ]),
        );

        let err = import(&file, None, &layout, "evil").await.unwrap_err();

        assert!(
            matches!(err, ClientError::Usage(_)),
            "{config_path} {layer_path}: {err}"
        );
        assert!(err.to_string().contains("outside the archive"), "{err}");
    }
    assert_eq!(layout.find("evil").unwrap(), None);
}

#[tokio::test]
async fn legacy_layer_symlinks_resolve_inside_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let layer = tar_of(&[("a", b"a")]);
    let config = config_for(&[&layer, &layer]);
    let manifest = br#"[{"Config":"c.json","RepoTags":["busybox:latest"],"Layers":["aa/layer.tar","bb/layer.tar"]}]"#;
    let file = write_file(
        dir.path(),
        "legacy.tar",
        &tar_of(&[
            ("manifest.json", manifest),
            ("./c.json", &config),
            ("aa/layer.tar", &layer),
            ("bb/layer.tar", b"->../aa/layer.tar"),
        ]),
    );
    let layout = OciLayout::open(&dir.path().join("layout")).unwrap();

    import(&file, Some("docker.io/library/busybox"), &layout, "bb")
        .await
        .unwrap();

    let (_, manifest) = manifest_of(&layout, "bb").await;
    let layer = sha256(&layer).to_string();
    assert_eq!(digests(&manifest).layers, [layer.clone(), layer]);
}

#[tokio::test]
async fn several_images_need_a_choice_and_the_error_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let one = tar_of(&[("one", b"1")]);
    let two = tar_of(&[("two", b"2")]);
    let (c1, c2) = (config_for(&[&one]), config_for(&[&two]));
    let manifest = br#"[{"Config":"1.json","RepoTags":["first:1","alias:1"],"Layers":["1.tar"]},
                         {"Config":"2.json","RepoTags":["ghcr.io/o/second:2"],"Layers":["2.tar"]},
                         {"Config":"2.json","RepoTags":null,"Layers":["2.tar"]}]"#;
    let file = write_file(
        dir.path(),
        "many.tar",
        &tar_of(&[
            ("manifest.json", manifest),
            ("1.json", &c1),
            ("1.tar", &one),
            ("2.json", &c2),
            ("2.tar", &two),
        ]),
    );
    let layout = OciLayout::open(&dir.path().join("layout")).unwrap();

    let err = import(&file, None, &layout, "x").await.unwrap_err();
    assert!(matches!(err, ClientError::Usage(_)), "{err}");
    let message = err.to_string();
    for listed in ["first:1, alias:1", "ghcr.io/o/second:2", "@2 (untagged)"] {
        assert!(message.contains(listed), "{listed} missing from {message}");
    }
    let err = import(&file, Some("third:3"), &layout, "x").await.unwrap_err();
    assert!(matches!(err, ClientError::NotFound(_)), "{err}");
    assert_eq!(layout.find("x").unwrap(), None);

    import(&file, Some("ghcr.io/o/second:2"), &layout, "second")
        .await
        .unwrap();
    import(&file, Some("docker.io/library/alias:1"), &layout, "alias")
        .await
        .unwrap();
    import(&file, Some("@2"), &layout, "untagged").await.unwrap();
    let layers = |m: &strata_storage::oci::ImageManifest| digests(m).layers;
    assert_eq!(
        layers(&manifest_of(&layout, "second").await.1),
        [sha256(&two).to_string()]
    );
    assert_eq!(
        layers(&manifest_of(&layout, "alias").await.1),
        [sha256(&one).to_string()]
    );
    assert_eq!(
        layers(&manifest_of(&layout, "untagged").await.1),
        [sha256(&two).to_string()]
    );
}

/// Bytes that do not compress, so a gzip layer spans many chunks too.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

#[tokio::test]
async fn layers_larger_than_a_chunk_stream_in_whole() {
    let dir = tempfile::tempdir().unwrap();
    let plain = tar_of(&[("big", &noise(3 * CHUNK + 123, 1))]);
    let inner = tar_of(&[("big2", &noise(2 * CHUNK + 7, 2))]);
    // Two gzip members, as bgzip and parallel compressors write them.
    let mut zipped = gzip(&inner[..CHUNK]);
    zipped.extend_from_slice(&gzip(&inner[CHUNK..]));
    let config = config_for(&[&plain, &inner]);
    let manifest = format!(
        r#"[{{"Config":"blobs/sha256/{}","Layers":["blobs/sha256/{}","z.tar.gz"]}}]"#,
        sha256(&config).digest(),
        sha256(&plain).digest()
    );
    let file = write_file(
        dir.path(),
        "big.tar",
        &tar_of(&[
            ("manifest.json", manifest.as_bytes()),
            (&format!("blobs/sha256/{}", sha256(&config).digest()), &config),
            (&format!("blobs/sha256/{}", sha256(&plain).digest()), &plain),
            ("z.tar.gz", &zipped),
        ]),
    );
    let layout = OciLayout::open(&dir.path().join("layout")).unwrap();

    import(&file, None, &layout, "big").await.unwrap();

    let (_, manifest) = manifest_of(&layout, "big").await;
    for (layer, bytes) in manifest.layers.iter().zip([&plain, &zipped]) {
        assert_eq!(layer.size, bytes.len() as u64);
        let stored = layout.read_blob(&layer.digest.clone(), 1 << 30).await.unwrap();
        assert!(stored == bytes.as_slice(), "{} is stored whole", layer.digest);
    }
}

#[tokio::test]
async fn content_must_match_a_blobs_path_digest() {
    let dir = tempfile::tempdir().unwrap();
    let layer = tar_of(&[("a", b"a")]);
    let config = config_for(&[&layer]);
    let wrong = sha256(b"something else");
    let manifest = format!(
        r#"[{{"Config":"c.json","Layers":["blobs/sha256/{}"]}}]"#,
        wrong.digest()
    );
    let file = write_file(
        dir.path(),
        "lying.tar",
        &tar_of(&[
            ("manifest.json", manifest.as_bytes()),
            ("c.json", &config),
            (&format!("blobs/sha256/{}", wrong.digest()), &layer),
        ]),
    );
    let layout = OciLayout::open(&dir.path().join("layout")).unwrap();

    let err = import(&file, None, &layout, "x").await.unwrap_err();

    assert!(matches!(err, ClientError::Integrity(_)), "{err}");
    assert!(!layout.has_blob(&sha256(&layer)).await.unwrap());
}

#[tokio::test]
async fn compressed_archives_and_missing_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::open(&dir.path().join("layout")).unwrap();
    let zipped = write_file(dir.path(), "a.tar.gz", &gzip(&tar_of(&[("manifest.json", b"[]")])));
    let err = import(&zipped, None, &layout, "x").await.unwrap_err();
    assert!(matches!(err, ClientError::Usage(_)), "{err}");
    assert!(err.to_string().contains("compressed"), "{err}");

    let no_layer = tar_of(&[("manifest.json", br#"[{"Config":"c.json","Layers":[]}]"#)]);
    let err = import(&write_file(dir.path(), "b.tar", &no_layer), None, &layout, "x")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NotFound(_)), "{err}");
    assert!(err.to_string().contains("c.json"), "{err}");
}

#[tokio::test]
async fn exporting_an_index_asks_for_a_platform_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::open(&dir.path().join("layout")).unwrap();
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let digest = layout.blobs().put_bytes(Bytes::from_static(index)).await.unwrap();
    let descriptor = Descriptor::new(strata_storage::oci::media::OCI_INDEX, digest, index.len() as u64);
    layout.set_ref("multi", &descriptor).unwrap();
    let file = dir.path().join("out.tar");

    let err = export(&layout, "multi", &file, None).await.unwrap_err();

    assert!(matches!(err, ClientError::Usage(_)), "{err}");
    assert!(err.to_string().contains("--platform"), "{err}");
    assert!(!file.exists());
    let err = export(&layout, "absent", &file, None).await.unwrap_err();
    assert!(matches!(err, ClientError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn export_with_a_missing_or_corrupt_blob_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::open(&dir.path().join("layout")).unwrap();
    let image = oci_image(&layout, "app").await;
    let blob_path = |d: &str| {
        dir.path()
            .join("layout/blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap())
    };
    let file = dir.path().join("out.tar");

    // Same size, different bytes: caught by hashing while copying.
    let top = blob_path(&image.layers[1]);
    let mut bytes = std::fs::read(&top).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&top, &bytes).unwrap();
    let err = export(&layout, "app", &file, Some("a:b")).await.unwrap_err();
    assert!(matches!(err, ClientError::Integrity(_)), "{err}");

    std::fs::remove_file(&top).unwrap();
    let err = export(&layout, "app", &file, Some("a:b")).await.unwrap_err();
    assert!(matches!(err, ClientError::NotFound(_)), "{err}");

    let err = export(
        &layout,
        "app",
        &file,
        Some("a@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Usage(_)), "{err}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["layout"], "neither the archive nor a temporary file is left");
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let bin = Path::new("/usr/bin/skopeo");
    assert!(
        bin.exists(),
        "these tests need skopeo: install it with `apt-get install skopeo` (scripts/test does)"
    );
    let out = Command::new(bin).arg("--insecure-policy").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test]
async fn archives_skopeo_writes_import_with_the_same_config() {
    let dir = tempfile::tempdir().unwrap();
    let source_dir = dir.path().join("source");
    let source = OciLayout::open(&source_dir).unwrap();
    let original = oci_image(&source, "app").await;
    let file = dir.path().join("skopeo.tar");

    skopeo(&[
        "copy",
        &format!("oci:{}:app", source_dir.display()),
        &format!("docker-archive:{}:example/img:v1", file.display()),
    ]);

    let target = OciLayout::open(&dir.path().join("target")).unwrap();
    import(&file, Some("example/img:v1"), &target, "app").await.unwrap();
    let (_, manifest) = manifest_of(&target, "app").await;
    assert_eq!(
        manifest.config.digest.to_string(),
        original.config,
        "skopeo keeps the config bytes"
    );
    assert_eq!(manifest.layers.len(), 2);
}

#[tokio::test]
async fn archives_we_export_are_read_by_skopeo() {
    let dir = tempfile::tempdir().unwrap();
    let source = OciLayout::open(&dir.path().join("source")).unwrap();
    let original = oci_image(&source, "app").await;
    let file = dir.path().join("ours.tar");
    export(&source, "app", &file, Some("example/img:v1")).await.unwrap();

    let archive = format!("docker-archive:{}", file.display());
    let inspect: serde_json::Value = serde_json::from_slice(&skopeo(&["inspect", &archive])).unwrap();
    let config: serde_json::Value = serde_json::from_slice(&skopeo(&["inspect", "--config", &archive])).unwrap();
    // skopeo names docker-archive layers by their uncompressed digest.
    assert_eq!(inspect["Layers"], config["rootfs"]["diff_ids"], "{inspect}");
    assert_eq!(inspect["Layers"][0], json!(original.layers[0]), "{inspect}");

    // Naming the image by its tag proves skopeo read our RepoTags; `dir:` keeps the manifest
    // format, so the config is copied byte for byte (converting to OCI would rewrite it).
    let back = dir.path().join("back");
    skopeo(&[
        "copy",
        &format!("{archive}:example/img:v1"),
        &format!("dir:{}", back.display()),
    ]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(back.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["config"]["digest"], json!(original.config), "{manifest}");
}
