//! The `strata` binary against real third-party peers: the reference registry (CNCF distribution,
//! Debian's `docker-registry`, started per test on a free loopback port) and skopeo, which must
//! read the OCI layouts strata writes (its local store included) while strata reads skopeo's.
//!
//! Needs the Debian packages docker-registry, skopeo and busybox-static (scripts/test installs
//! them); a missing tool fails the test rather than skipping it.

#[path = "peers/cli.rs"]
#[allow(dead_code)] // shared with the layer store tests
mod cli;
#[path = "peers/distribution.rs"]
mod distribution;

use std::path::Path;
use std::time::{Duration, Instant};

use cli::{Strata, blobs_of, layout_blob, layout_digest, oci, skopeo};
use distribution::DockerRegistry;
use serde_json::{Value, json};
use strata_tests::oci::{
    Entry, Image, noise, write_busybox_layout, write_index_layout, write_layout, write_typed_index_layout,
};

const MIB: usize = 1024 * 1024;
/// The Windows build the multi-platform index carries, and the host build the test selects for.
const WINDOWS_BUILD: &str = "10.0.20348.2113";

/// The digests of an image's blobs (config and layers) as layout file names, sorted.
fn blob_names(image: &Image) -> Vec<String> {
    let mut names: Vec<String> = std::iter::once(&image.config)
        .chain(&image.layers)
        .map(|d| d.digest().to_owned())
        .collect();
    names.sort();
    names
}

/// The `digest` strata's `inspect` reports for `image`.
fn inspected_digest(strata: &Strata, image: &str) -> String {
    strata.json(&["inspect", image])["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("inspect {image} printed no digest"))
        .to_owned()
}

/// The local store entry `strata images --format json` lists as `name`.
fn store_image(strata: &Strata, name: &str) -> Value {
    let images = strata.json(&["images"]);
    images
        .as_array()
        .expect("images prints an array")
        .iter()
        .find(|i| i["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} is not in strata images: {images:#}"))
}

#[test]
fn cli_pushes_pulls_tags_lists_and_deletes_on_the_reference_registry() {
    let registry = DockerRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let src = work.path().join("src");
    let image = write_busybox_layout(&src, "v1");
    let manifest = image.manifest.to_string();
    let busybox = registry.at("peer/busybox");
    let busybox_v1 = format!("{busybox}:v1");

    // Layout → registry.
    let pushed = strata.ok(&["copy", &oci(&src, "v1"), &busybox_v1]);
    assert_eq!(pushed.trim(), manifest, "copy prints the digest it wrote");
    assert_eq!(strata.ok(&["tags", &busybox]).lines().collect::<Vec<_>>(), ["v1"]);

    let summary = strata.json(&["inspect", &busybox_v1]);
    assert_eq!(summary["digest"], manifest.as_str(), "{summary:#}");
    assert_eq!(summary["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        summary["layers"],
        json!(image.layers.iter().map(|d| d.to_string()).collect::<Vec<_>>())
    );
    assert_eq!(summary["os"], "linux");
    let raw = strata.ok(&["inspect", "--raw", &busybox_v1]);
    let original: Value = serde_json::from_slice(&layout_blob(&src, &manifest)).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&raw).unwrap(), original);

    // Registry → local store, named by the full reference.
    strata.ok(&["pull", &busybox_v1]);
    let images = strata.ok(&["images"]);
    assert!(
        images.lines().any(|l| l == format!("{busybox_v1}\t{manifest}")),
        "strata images does not list {busybox_v1} at {manifest}:\n{images}"
    );
    assert_eq!(store_image(&strata, &busybox_v1)["digest"], manifest.as_str());

    // Local store → another repository of the same registry.
    let other_v2 = registry.at("peer/other:v2");
    let report = strata.json(&["push", &busybox_v1, &other_v2]);
    assert_eq!(report["digest"], manifest.as_str(), "{report:#}");
    let blobs = ["blobs_copied", "blobs_existing", "blobs_mounted"].map(|k| report[k].as_u64().unwrap());
    assert_eq!(blobs.iter().sum::<u64>(), 4, "config and three layers: {report:#}");
    assert_eq!(inspected_digest(&strata, &other_v2), manifest);

    // Registry → a new layout: every blob comes back with its digest.
    let dir2 = work.path().join("dir2");
    strata.ok(&["copy", &busybox_v1, &oci(&dir2, "x")]);
    assert_eq!(layout_digest(&dir2, "x"), manifest);
    assert_eq!(blobs_of(&dir2), blobs_of(&src));

    // Another tag in the same repository, without moving blobs.
    let tagged = strata.ok(&["tag", &busybox_v1, &format!("{busybox}:stable")]);
    assert_eq!(tagged.trim(), manifest);
    let mut tags: Vec<String> = strata.ok(&["tags", &busybox]).lines().map(String::from).collect();
    tags.sort();
    assert_eq!(tags, ["stable", "v1"]);
    assert_eq!(inspected_digest(&strata, &format!("{busybox}:stable")), manifest);

    let catalog = strata.json(&["catalog", &registry.addr.to_string()]);
    assert_eq!(catalog, json!({ "repositories": ["peer/busybox", "peer/other"] }));

    // Delete: the manifest goes from that repository only.
    let deleted = strata.run(&["delete", &busybox_v1]);
    assert_eq!(deleted.code, 0, "delete failed:\n{}", deleted.stderr);
    assert!(deleted.stderr.contains(&manifest), "{}", deleted.stderr);
    let gone = strata.run(&["inspect", &busybox_v1]);
    assert_eq!(
        gone.code, 3,
        "inspect of a deleted image must exit 3 (not found):\n{}{}",
        gone.stdout, gone.stderr
    );
    assert_eq!(
        inspected_digest(&strata, &other_v2),
        manifest,
        "the other repository keeps it"
    );
}

#[test]
fn registry_to_registry_copy_mounts_every_blob() {
    let registry = DockerRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let src = work.path().join("src");
    let image = write_busybox_layout(&src, "v1");
    let from = registry.at("peer/busybox:v1");
    strata.ok(&["copy", &oci(&src, "v1"), &from]);

    let report = strata.json(&["copy", &from, &registry.at("peer/mounted:v1")]);
    assert_eq!(report["digest"], image.manifest.to_string().as_str());
    assert_eq!(
        report["blobs_mounted"], 4,
        "config and three layers mounted: {report:#}"
    );
    assert_eq!(report["bytes"], 0, "a mount moves no bytes: {report:#}");
    assert_eq!(
        inspected_digest(&strata, &registry.at("peer/mounted:v1")),
        image.manifest.to_string()
    );
}

#[test]
fn pushing_a_pulled_image_to_another_repository_of_its_registry_uploads_nothing() {
    let registry = DockerRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let src = work.path().join("src");
    let image = write_busybox_layout(&src, "v1");
    let busybox_v1 = registry.at("peer/busybox:v1");
    strata.ok(&["copy", &oci(&src, "v1"), &busybox_v1]);
    strata.ok(&["pull", &busybox_v1]);

    // The store knows where the image came from (its name), and the registry holds every blob.
    let report = strata.json(&["push", &busybox_v1, &registry.at("peer/other:v2")]);
    assert_eq!(report["digest"], image.manifest.to_string().as_str());
    assert_eq!(
        report["blobs_copied"], 0,
        "every blob is already on the registry (in peer/busybox), so none should be uploaded \
         again; expected them mounted: {report:#}"
    );
}

fn platform(os: &str, architecture: &str, os_version: Option<&str>) -> Value {
    let mut p = json!({ "os": os, "architecture": architecture });
    if let Some(v) = os_version {
        p["os.version"] = json!(v);
    }
    p
}

fn layers_for(name: &str, seed: u64) -> Vec<Vec<Entry>> {
    vec![
        vec![
            Entry::Dir("etc/"),
            Entry::Named(format!("etc/{name}"), format!("{name}\n").into_bytes()),
        ],
        vec![Entry::Named(format!("data/{name}"), noise(64 * 1024, seed))],
    ]
}

#[test]
fn multi_platform_index_round_trips_and_the_windows_build_is_selected() {
    let registry = DockerRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let src = work.path().join("src");
    let (index, images) = write_index_layout(
        &src,
        "multi",
        &[
            (platform("linux", "amd64", None), layers_for("linux-amd64", 1)),
            (platform("linux", "arm64", None), layers_for("linux-arm64", 2)),
            (
                platform("windows", "amd64", Some(WINDOWS_BUILD)),
                layers_for("windows-amd64", 3),
            ),
        ],
    );
    let index = index.to_string();
    let multi = registry.at("peer/multi:v1");

    let pushed = strata.ok(&["copy", "--all-platforms", &oci(&src, "multi"), &multi]);
    assert_eq!(pushed.trim(), index, "the index goes up unchanged");
    let summary = strata.json(&["inspect", &multi]);
    assert_eq!(summary["digest"], index.as_str(), "{summary:#}");
    assert_eq!(summary["mediaType"], "application/vnd.oci.image.index.v1+json");
    let children: Vec<&str> = summary["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = images.iter().map(|i| i.manifest.to_string()).collect();
    assert_eq!(children, expected);
    for image in &images {
        let child = registry.at(&format!("peer/multi@{}", image.manifest));
        assert_eq!(inspected_digest(&strata, &child), image.manifest.to_string());
    }

    let back = work.path().join("back");
    let copied = strata.ok(&["copy", "--all-platforms", &multi, &oci(&back, "multi")]);
    assert_eq!(copied.trim(), index);
    assert_eq!(layout_digest(&back, "multi"), index);
    assert_eq!(blobs_of(&back), blobs_of(&src), "every blob and manifest comes back");

    let windows = &images[2];
    // Its layers are test noise, not Windows layers: download only.
    strata.ok(&[
        "pull",
        "--no-unpack",
        "--platform",
        "windows/amd64",
        "--os-version",
        WINDOWS_BUILD,
        &multi,
    ]);
    assert_eq!(
        store_image(&strata, &multi)["digest"],
        windows.manifest.to_string().as_str(),
        "the Windows image is picked out of the index"
    );
    let store = strata.store();
    for blob in blob_names(windows) {
        assert!(
            store.join("blobs/sha256").join(&blob).exists(),
            "the Windows image's blob {blob} is in the store"
        );
    }
    for blob in blob_names(&images[0]).iter().chain(&blob_names(&images[1])) {
        assert!(
            !store.join("blobs/sha256").join(blob).exists(),
            "a Linux blob {blob} was pulled for a Windows selection"
        );
    }
}

/// How many `PATCH` requests on upload sessions the registry has logged.
fn logged_patches(registry: &DockerRegistry) -> usize {
    registry
        .log()
        .lines()
        .filter(|l| l.contains("\"PATCH /v2/") && l.contains("/blobs/uploads/"))
        .count()
}

/// How many unfinished pushes strata's upload journal records.
/// Upload records in the journal (a record write that a kill interrupted leaves a hidden
/// temporary file, which is not a record).
fn journal_entries(strata: &Strata) -> usize {
    std::fs::read_dir(strata.uploads()).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count()
    })
}

#[test]
fn a_layer_bigger_than_the_chunk_size_goes_up_in_chunks_and_round_trips() {
    let registry = DockerRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let src = work.path().join("src");
    let image = write_layout(
        &src,
        "v1",
        &[
            vec![Entry::File("etc/os-release", b"ID=strata\n".to_vec(), 0o644)],
            vec![Entry::Named("data/big".into(), noise(3 * MIB + 12345, 7))],
        ],
    );
    let big = std::fs::metadata(src.join("blobs/sha256").join(image.layers[1].digest()))
        .unwrap()
        .len();
    assert!(big > 3 * MIB as u64, "the noise layer does not compress");
    let reference = registry.at("peer/big:v1");

    let before = logged_patches(&registry);
    let report = strata.json(&["copy", "--chunk-size", "1MiB", &oci(&src, "v1"), &reference]);
    assert_eq!(report["digest"], image.manifest.to_string().as_str(), "{report:#}");
    assert_eq!(report["blobs_copied"], 3, "config and two layers: {report:#}");
    let patches = logged_patches(&registry) - before;
    assert_eq!(
        patches,
        big.div_ceil(MIB as u64) as usize,
        "one PATCH per MiB of the big layer; the registry logged:\n{}",
        registry.log()
    );
    assert!(
        !work
            .path()
            .join("home/uploads")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some()),
        "a finished upload leaves no journal entry"
    );

    assert_eq!(inspected_digest(&strata, &reference), image.manifest.to_string());
    let back = work.path().join("back");
    strata.ok(&["copy", &reference, &oci(&back, "v1")]);
    assert_eq!(layout_digest(&back, "v1"), image.manifest.to_string());
    assert_eq!(blobs_of(&back), blobs_of(&src));
}

#[test]
fn a_chunked_push_killed_midway_completes_on_the_next_run() {
    let registry = DockerRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let src = work.path().join("src");
    let image = write_layout(
        &src,
        "v1",
        &[vec![Entry::Named("data/big".into(), noise(12 * MIB, 11))]],
    );
    let reference = registry.at("peer/resumed:v1");
    let layout = oci(&src, "v1");
    let args = ["copy", "--chunk-size", "1MiB", layout.as_str(), reference.as_str()];

    let mut push = strata.spawn(&args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while logged_patches(&registry) < 2 {
        assert!(
            push.try_wait().unwrap().is_none(),
            "the push ended before it could be interrupted"
        );
        assert!(
            Instant::now() < deadline,
            "no chunk arrived within a minute:\n{}",
            registry.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    push.kill().unwrap();
    push.wait().unwrap();
    assert_eq!(journal_entries(&strata), 1, "the unfinished upload is recorded");

    // distribution resumes the session if the kill fell between chunks, and refuses it (the
    // session's state lags the bytes it holds) if it fell inside one: either way the run ends
    // with the image on the registry.
    let report = strata.json(&args);
    assert_eq!(report["digest"], image.manifest.to_string().as_str(), "{report:#}");
    assert_eq!(
        journal_entries(&strata),
        0,
        "the journal entry is gone once the blob is in"
    );
    let back = work.path().join("back");
    strata.ok(&["copy", &reference, &oci(&back, "v1")]);
    assert_eq!(blobs_of(&back), blobs_of(&src));
}

/// The manifest digest `skopeo inspect` reports.
fn skopeo_digest(image: &str) -> String {
    let inspect: Value = serde_json::from_str(&skopeo(&["inspect", image])).expect("skopeo inspect prints JSON");
    inspect["Digest"]
        .as_str()
        .unwrap_or_else(|| panic!("skopeo inspect {image}: no Digest in {inspect:#}"))
        .to_owned()
}

/// Pushes a busybox image to `reference` with strata; returns it.
fn seed(strata: &Strata, dir: &Path, reference: &str) -> Image {
    let image = write_busybox_layout(dir, "v1");
    strata.ok(&["copy", &oci(dir, "v1"), reference]);
    image
}

#[test]
fn skopeo_reads_a_layout_strata_wrote_from_a_registry() {
    let registry = DockerRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let image = seed(&strata, &work.path().join("src"), &registry.at("x:v1"));
    let manifest = image.manifest.to_string();

    let dir = work.path().join("dir");
    strata.ok(&["copy", &registry.at("x:v1"), &oci(&dir, "v1")]);
    assert_eq!(skopeo_digest(&oci(&dir, "v1")), manifest);
    let layers: Value = serde_json::from_str(&skopeo(&["inspect", &oci(&dir, "v1")])).unwrap();
    assert_eq!(
        layers["Layers"],
        json!(image.layers.iter().map(|d| d.to_string()).collect::<Vec<_>>())
    );

    let dir3 = work.path().join("dir3");
    skopeo(&["copy", &oci(&dir, "v1"), &oci(&dir3, "v1")]);
    assert_eq!(layout_digest(&dir3, "v1"), manifest);
    assert_eq!(blobs_of(&dir3), blobs_of(&dir));
}

#[test]
fn strata_reads_a_layout_skopeo_wrote() {
    let registry = DockerRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let src = work.path().join("src");
    let image = write_busybox_layout(&src, "v1");
    let manifest = image.manifest.to_string();

    let dir4 = work.path().join("dir4");
    skopeo(&["copy", &oci(&src, "v1"), &oci(&dir4, "v1")]);
    let y = registry.at("y:v1");
    let pushed = strata.ok(&["copy", &oci(&dir4, "v1"), &y]);
    assert_eq!(pushed.trim(), manifest);
    assert_eq!(inspected_digest(&strata, &y), manifest);
    assert_eq!(inspected_digest(&strata, &oci(&dir4, "v1")), manifest);
}

#[test]
fn skopeo_reads_the_local_store_strata_pulled_into() {
    let registry = DockerRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let reference = registry.at("x:v1");
    let image = seed(&strata, &work.path().join("src"), &reference);

    strata.ok(&["pull", &reference]);
    let name = store_image(&strata, &reference)["name"].as_str().unwrap().to_owned();
    assert_eq!(name, reference, "the store names the image by its full reference");
    let in_store = oci(&strata.store(), &name);
    assert_eq!(skopeo_digest(&in_store), image.manifest.to_string());

    let out = work.path().join("out");
    skopeo(&["copy", &in_store, &oci(&out, "v1")]);
    assert_eq!(layout_digest(&out, "v1"), image.manifest.to_string());
    let mut expected = blob_names(&image);
    expected.push(image.manifest.digest().to_owned());
    expected.sort();
    assert_eq!(blobs_of(&out), expected);
}

#[test]
fn a_docker_schema2_image_is_kept_byte_for_byte_in_the_store() {
    let registry = DockerRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let src = work.path().join("src");
    write_busybox_layout(&src, "v1");
    let reference = registry.at("docker/busybox:v1");
    // Most images on Docker Hub are Docker schema 2; skopeo converts ours on the way up.
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &oci(&src, "v1"),
        &format!("docker://{reference}"),
    ]);
    let summary = strata.json(&["inspect", &reference]);
    assert_eq!(
        summary["mediaType"], "application/vnd.docker.distribution.manifest.v2+json",
        "{summary:#}"
    );
    let digest = summary["digest"].as_str().unwrap().to_owned();

    // The store keeps the manifest as it is (so a push gives the same digest), named with its own
    // media type. containers/image only looks up OCI-typed entries by name, so skopeo cannot name
    // this one (README says so); strata reads and pushes it unchanged.
    strata.ok(&["pull", &reference]);
    let entry = store_image(&strata, &reference);
    assert_eq!(entry["digest"], digest.as_str());
    assert_eq!(
        entry["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let again = registry.at("docker/again:v1");
    strata.ok(&["push", &reference, &again]);
    assert_eq!(strata.json(&["inspect", &again])["digest"], digest.as_str());
}

/// A non-distributable layer without `urls` exists nowhere else: `copy --all-platforms` must
/// push it like any other layer (skopeo does), to our registry and to the reference registry,
/// and the copy must read back byte for byte.
#[test]
fn non_distributable_layers_without_urls_are_pushed_to_both_registries() {
    let (_runtime, ours) = strata_tests::local_registry();
    let reference = DockerRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let src = work.path().join("src");
    let nondistributable = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    let (index, images) = write_typed_index_layout(
        &src,
        "nd",
        &[
            (platform("linux", "amd64", None), layers_for("nd-amd64", 7)),
            (platform("linux", "arm64", None), layers_for("nd-arm64", 8)),
        ],
        &[nondistributable],
    );
    for (name, host) in [
        ("ours", ours.addr.to_string()),
        ("distribution", reference.addr.to_string()),
    ] {
        let target = format!("{host}/nd/image:v1");
        let report = strata.json(&["copy", "--all-platforms", &oci(&src, "nd"), &target]);
        assert_eq!(report["digest"], index.to_string().as_str(), "{name}: {report:#}");
        assert_eq!(report["blobs_skipped"], 0, "{name}: nothing is left out: {report:#}");
        let back = work.path().join(format!("back-{name}"));
        strata.ok(&["copy", "--all-platforms", &target, &oci(&back, "nd")]);
        assert_eq!(blobs_of(&back), blobs_of(&src), "{name}: every blob comes back");
        for image in &images {
            let layer = image.layers[0].to_string();
            assert_eq!(layout_blob(&back, &layer), layout_blob(&src, &layer), "{name}: {layer}");
        }
    }
}
