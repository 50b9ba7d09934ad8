//! skopeo (Debian's package, a real containers/image client) against strata-registry: copy a
//! three-layer busybox image in and back out with identical digests, convert it to Docker
//! schema 2 on the way, inspect, list tags and delete.

use std::path::Path;

use strata_tests::LocalRegistry;
use strata_tests::oci::write_busybox_layout;

/// Runs skopeo with `args`; panics with its output unless it succeeds.
async fn skopeo(args: &[&str]) -> String {
    let output = tokio::process::Command::new("skopeo")
        .args(args)
        .output()
        .await
        .expect("run skopeo (install the Debian package skopeo; scripts/test does)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "skopeo {} failed:\n{stdout}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The digests of every blob in an OCI layout.
fn blobs_of(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn manifest_digest_of(dir: &Path) -> String {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_string()
}

/// A busybox image written to `work/source` and copied by skopeo to `repository:v1` of
/// `registry`; the image, its source layout, and the `docker://` reference (without the tag).
async fn pushed_busybox(
    registry: &LocalRegistry,
    work: &Path,
    repository: &str,
) -> (strata_tests::oci::Image, std::path::PathBuf, String) {
    let source = work.join("source");
    let image = write_busybox_layout(&source, "v1");
    let reference = format!("docker://{}/{repository}", registry.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", source.display()),
        &format!("{reference}:v1"),
    ])
    .await;
    (image, source, reference)
}

/// Copies `reference` (with its tag) back into `work/back` with skopeo and checks that the
/// manifest and every blob of `image` (written at `source`) came back.
async fn pulls_back(reference: &str, work: &Path, image: &strata_tests::oci::Image, source: &Path, why: &str) {
    let back = work.join("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        reference,
        &format!("oci:{}:v1", back.display()),
    ])
    .await;
    assert_eq!(manifest_digest_of(&back), image.manifest.to_string());
    assert_eq!(blobs_of(&back), blobs_of(source), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_an_image_in_and_out_with_identical_digests() {
    let registry = LocalRegistry::start().await;
    let work = tempfile::tempdir().unwrap();
    let (image, source, reference) = pushed_busybox(&registry, work.path(), "interop/busybox").await;

    let inspect: serde_json::Value =
        serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", &format!("{reference}:v1")]).await).unwrap();
    assert_eq!(inspect["Digest"], image.manifest.to_string());
    let layers: Vec<String> = serde_json::from_value(inspect["Layers"].clone()).unwrap();
    assert_eq!(layers, image.layers.iter().map(|d| d.to_string()).collect::<Vec<_>>());
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("{reference}:v1")]).await;
    let original = std::fs::read(source.join("blobs/sha256").join(image.manifest.digest())).unwrap();
    assert_eq!(raw.as_bytes(), &original[..], "the manifest comes back byte for byte");
    let config = skopeo(&[
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        &format!("{reference}:v1"),
    ])
    .await;
    assert_eq!(strata_storage::digest::sha256(config.as_bytes()), image.config);

    pulls_back(
        &format!("{reference}:v1"),
        work.path(),
        &image,
        &source,
        "every blob comes back with the same digest",
    )
    .await;

    // Docker schema 2 on the way in (skopeo converts the manifest; the layers stay as they are).
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &format!("oci:{}:v1", source.display()),
        &format!("{reference}:v2s2"),
    ])
    .await;
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("{reference}:v2s2")]).await;
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );

    let tags: serde_json::Value =
        serde_json::from_str(&skopeo(&["list-tags", "--tls-verify=false", &reference]).await).unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["v1", "v2s2"]));

    // A second repository gets the layers by cross-repository mount and pulls the same image.
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("{reference}:v1"),
        &format!("docker://{}/interop/copy:v1", registry.addr),
    ])
    .await;
    let copied: serde_json::Value = serde_json::from_str(
        &skopeo(&[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/interop/copy:v1", registry.addr),
        ])
        .await,
    )
    .unwrap();
    assert_eq!(copied["Digest"], image.manifest.to_string());

    skopeo(&["delete", "--tls-verify=false", &format!("{reference}:v1")]).await;
    let gone = tokio::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("{reference}:v1")])
        .output()
        .await
        .unwrap();
    assert!(!gone.status.success(), "the deleted image is still there");
    let tags: serde_json::Value =
        serde_json::from_str(&skopeo(&["list-tags", "--tls-verify=false", &reference]).await).unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["v2s2"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pulls_blobs_straight_from_the_object_store_when_redirected() {
    use strata_storage::testing::{Fixture, S3Fixture};
    let fixture = S3Fixture::new().await.configured(|c| c.redirect = true);
    let registry = LocalRegistry::start_over(strata_registry::Config::default(), fixture.backend().await).await;
    let work = tempfile::tempdir().unwrap();
    let (image, source, reference) = pushed_busybox(&registry, work.path(), "redirect/busybox").await;
    let reference = format!("{reference}:v1");
    let server = fixture.server().unwrap();
    server.take_requests();

    pulls_back(
        &reference,
        work.path(),
        &image,
        &source,
        "every blob comes back, by the object store",
    )
    .await;
    // The layer's bytes came from the object store through presigned URLs.
    let presigned = server
        .take_requests()
        .into_iter()
        .filter(|r| r.starts_with("GET ") && r.contains("X-Amz-Signature="))
        .count();
    assert!(
        presigned >= image.layers.len(),
        "{presigned} presigned GETs for {} layers",
        image.layers.len()
    );
}
