//! Online garbage collection against real storage (filesystem and the in-process S3 server):
//! what a cycle frees and keeps, retention, the push guard, a soak with pushers and collectors
//! on two replicas, a collector killed mid-sweep, the CLI, upload purging and the admin
//! endpoint.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{OCI_MANIFEST, TestRegistry, error_code, image_manifest};
use reqwest::{Method, StatusCode};
use strata_registry::config::Retention;
use strata_registry::{Config, gc};
use strata_storage::digest::sha256;
use strata_storage::testing::{Fixture, FsFixture, S3Fixture};
use strata_storage::{BackendExt, Digest, RepositoryName, layout};

/// The claim window the in-process tests run with (the configuration's floor is 4 s; 3 s keeps
/// the tests short and is still wider than any hold here).
const CLAIM: Duration = Duration::from_secs(3);

/// Collection with no grace period, a short claim window and lease.
fn gc_config(delete_untagged: bool) -> Config {
    let mut config = Config {
        delete_enabled: true,
        ..Config::default()
    };
    config.gc.interval = Duration::ZERO;
    config.gc.grace = Duration::ZERO;
    config.gc.claim_ttl = CLAIM;
    config.gc.lease = Duration::from_secs(1);
    config.gc.delete_untagged = delete_untagged;
    config
}

/// Waits until the claims made so far are older than the claim window (S3 times are whole
/// seconds: one more second).
async fn past_claims(claim: Duration) {
    tokio::time::sleep(claim + Duration::from_millis(1200)).await;
}

/// An image as pushed: manifest bytes and digest, and its blobs' contents.
#[derive(Clone, Debug)]
struct Image {
    manifest: Bytes,
    digest: Digest,
    blobs: Vec<Bytes>,
}

impl Image {
    fn new(config: &str, layers: &[&str], extra: &str) -> Image {
        let blobs: Vec<Bytes> = std::iter::once(config)
            .chain(layers.iter().copied())
            .map(|s| Bytes::from(s.to_owned()))
            .collect();
        let digests: Vec<Digest> = blobs.iter().map(|b| sha256(b)).collect();
        let layers: Vec<(&Digest, &str, Vec<&str>)> = digests[1..]
            .iter()
            .map(|d| (d, "application/vnd.oci.image.layer.v1.tar", vec![]))
            .collect();
        let manifest = image_manifest(&digests[0], &layers, extra);
        Image {
            digest: sha256(&manifest),
            manifest,
            blobs,
        }
    }

    fn blob_digests(&self) -> Vec<Digest> {
        self.blobs.iter().map(|b| sha256(b)).collect()
    }

    /// Every digest the image stores: the manifest and its blobs.
    fn all_digests(&self) -> Vec<Digest> {
        let mut all = self.blob_digests();
        all.push(self.digest.clone());
        all
    }

    fn bytes(&self) -> u64 {
        (self.manifest.len() + self.blobs.iter().map(Bytes::len).sum::<usize>()) as u64
    }

    /// Pushes the blobs and the manifest under `reference`.
    async fn push(&self, r: &TestRegistry, name: &str, reference: &str) {
        for blob in &self.blobs {
            r.push_blob(name, blob.clone()).await;
        }
        let response = r
            .put_manifest(name, reference, OCI_MANIFEST, self.manifest.clone())
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{}",
            response.text().await.unwrap()
        );
    }

    /// Pulls the manifest by digest and every blob, verifying each.
    async fn assert_pulls(&self, r: &TestRegistry, name: &str) {
        let response = r.get(&format!("/v2/{name}/manifests/{}", self.digest)).await;
        assert_eq!(response.status(), StatusCode::OK, "manifest {} of {name}", self.digest);
        assert_eq!(response.bytes().await.unwrap(), self.manifest);
        for (digest, blob) in self.blob_digests().iter().zip(&self.blobs) {
            let response = r.get(&format!("/v2/{name}/blobs/{digest}")).await;
            assert_eq!(response.status(), StatusCode::OK, "blob {digest} of {name}");
            assert_eq!(&response.bytes().await.unwrap(), blob);
        }
    }
}

/// Digests as a sorted set of strings.
fn set(digests: impl IntoIterator<Item = Digest>) -> BTreeSet<String> {
    digests.into_iter().map(|d| d.to_string()).collect()
}

/// The digests of every blob in storage.
async fn stored(r: &TestRegistry) -> BTreeSet<String> {
    r.state
        .blobs
        .backend()
        .list_all(&layout::blobs())
        .await
        .unwrap()
        .iter()
        .filter_map(|meta| layout::blob_digest(&meta.key))
        .map(|d| d.to_string())
        .collect()
}

async fn cycle(r: &TestRegistry, dry_run: bool) -> gc::Report {
    let report = gc::cycle(&r.state, "test", dry_run).await.expect("gc cycle");
    assert!(!report.skipped, "nothing else holds the lease");
    report
}

fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start).map(|v| v.trim().parse().unwrap()))
}

/// An image deleted by digest and one untagged by a retag lose what only they used; shared
/// blobs, the live images and the other repository stay; a dry run reports exactly what the
/// real cycle then frees; a second cycle frees nothing; the metrics count it.
async fn deleted_and_untagged_images_free_only_their_own_blobs(r: &TestRegistry) {
    let base = "shared base layer";
    let deleted = Image::new("config deleted", &[base, "layer only the deleted image has"], "");
    let untagged = Image::new("config untagged", &[base, "layer only the untagged image has"], "");
    let live = Image::new("config live", &[base, "layer of the live image"], "");
    let elsewhere = Image::new("config elsewhere", &[base, "layer of the deleted image's twin"], "");
    deleted.push(r, "app", "old").await;
    untagged.push(r, "app", "moving").await;
    live.push(r, "app", "latest").await;
    elsewhere.push(r, "other/app", "v1").await;
    // The untagged image loses its tag to the live one; the deleted one is deleted.
    live.push(r, "app", "moving").await;
    let response = r
        .request(Method::DELETE, &format!("/v2/app/manifests/{}", deleted.digest))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    // Within the claim window nothing a push just used goes. (A second later: storage times
    // may be whole seconds, and what is as new as the cycle's start counts as young, not
    // claimed.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let early = cycle(r, true).await;
    assert_eq!(
        (early.blobs_deleted, early.links_deleted, early.manifests_deleted),
        (0, 0, 0),
        "{early:?}"
    );
    assert!(!early.incomplete && early.kept_claimed > 0, "{early:?}");

    past_claims(r.state.config.gc.claim_ttl).await;
    let gone = set([deleted.all_digests(), untagged.all_digests()]
        .concat()
        .into_iter()
        .filter(|d| *d != sha256(base.as_bytes())));
    let freed: u64 = deleted.bytes() + untagged.bytes() - 2 * base.len() as u64;
    let before = stored(r).await;

    let dry = cycle(r, true).await;
    assert_eq!(dry.blobs_deleted, 6, "{dry:?}");
    assert_eq!(dry.bytes_freed, freed);
    assert_eq!(
        dry.manifests_deleted, 1,
        "the untagged revision (the deleted one has none)"
    );
    assert_eq!(dry.links_deleted, 4, "two configs and two layers");
    assert_eq!(stored(r).await, before, "a dry run deletes nothing");

    let real = cycle(r, false).await;
    assert_eq!(
        (
            real.blobs_deleted,
            real.bytes_freed,
            real.manifests_deleted,
            real.links_deleted
        ),
        (
            dry.blobs_deleted,
            dry.bytes_freed,
            dry.manifests_deleted,
            dry.links_deleted
        ),
        "the dry run said exactly what the cycle did"
    );
    assert_eq!(real.repositories, 2);
    let after = stored(r).await;
    assert_eq!(before.difference(&after).cloned().collect::<BTreeSet<_>>(), gone);
    let expected = set([live.all_digests(), elsewhere.all_digests()].concat());
    assert_eq!(after, expected, "exactly the live images are stored");

    live.assert_pulls(r, "app").await;
    elsewhere.assert_pulls(r, "other/app").await;
    for tag in ["latest", "moving"] {
        let response = r.get(&format!("/v2/app/manifests/{tag}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.bytes().await.unwrap(), live.manifest);
    }
    for digest in gone
        .iter()
        .filter(|d| **d != untagged.digest.to_string() && **d != deleted.digest.to_string())
    {
        let response = r.get(&format!("/v2/app/blobs/{digest}")).await;
        assert_eq!(error_code(response).await, "BLOB_UNKNOWN");
    }
    let response = r.get(&format!("/v2/app/manifests/{}", untagged.digest)).await;
    assert_eq!(error_code(response).await, "MANIFEST_UNKNOWN");

    let again = cycle(r, false).await;
    assert_eq!(
        (
            again.blobs_deleted,
            again.links_deleted,
            again.manifests_deleted,
            again.bytes_freed
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(stored(r).await, expected);
    let last = gc::last_report(&r.state).await.unwrap().expect("a report is kept");
    assert_eq!(last, again);

    let metrics = r.get("/metrics").await.text().await.unwrap();
    assert_eq!(metric(&metrics, "strata_gc_cycles_total "), Some(2.0), "{metrics}");
    assert_eq!(metric(&metrics, "strata_gc_deleted_total{kind=\"blob\"} "), Some(6.0));
    assert_eq!(
        metric(&metrics, "strata_gc_deleted_total{kind=\"manifest\"} "),
        Some(1.0)
    );
    assert_eq!(metric(&metrics, "strata_gc_freed_bytes_total "), Some(freed as f64));
    assert_eq!(
        metric(&metrics, "strata_storage_bytes{repository=\"app\"} "),
        Some(live.bytes() as f64)
    );
    assert!(metric(&metrics, "strata_gc_last_duration_seconds ").is_some());
}

async fn fs(config: Config) -> TestRegistry {
    TestRegistry::start(Arc::new(FsFixture::new()), config).await
}

async fn s3(config: Config) -> TestRegistry {
    TestRegistry::start(Arc::new(S3Fixture::new().await), config).await
}

/// A claim window wide enough for the early cycle of that test on a busy machine.
fn wide_claims() -> Config {
    let mut config = gc_config(true);
    config.gc.claim_ttl = Duration::from_secs(6);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_deleted_and_untagged_images_free_only_their_own_blobs() {
    deleted_and_untagged_images_free_only_their_own_blobs(&fs(wide_claims()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_deleted_and_untagged_images_free_only_their_own_blobs() {
    deleted_and_untagged_images_free_only_their_own_blobs(&s3(wide_claims()).await).await;
}

/// A referrer (a signature) of `subject`.
fn signature(subject: &Image, seed: &str) -> Image {
    let extra = format!(
        r#","artifactType":"application/vnd.example.sig","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{}}}"#,
        subject.digest,
        subject.manifest.len()
    );
    Image::new(&format!("sig config {seed}"), &[&format!("signature {seed}")], &extra)
}

async fn tags(r: &TestRegistry, name: &str) -> Vec<String> {
    let body: serde_json::Value = r.get(&format!("/v2/{name}/tags/list")).await.json().await.unwrap();
    let mut tags: Vec<String> = body["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    tags.sort();
    tags
}

/// Retention on `ci/**`: the two newest tags and `release-*` stay, older tags go with their
/// images and their referrers; untagged manifests stay unless `delete_untagged`; a repository
/// outside the rule keeps everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_newest_and_the_matching_tags_and_referrers_follow() {
    let mut config = gc_config(false);
    config.gc.retention = vec![Retention {
        repositories: vec!["ci/**".into()],
        keep_last: Some(2),
        keep_tags: Some("^release-".into()),
        delete_older_than: None,
    }];
    let r = fs(config).await;
    let images: Vec<Image> = (0..5)
        .map(|i| Image::new(&format!("ci config {i}"), &[&format!("ci layer {i}")], ""))
        .collect();
    let names = ["release-1", "b1", "b2", "b3", "b4"];
    for (image, tag) in images.iter().zip(names) {
        image.push(&r, "ci/app", tag).await;
        image.push(&r, "prod/app", tag).await;
        // Tags are ordered by their push time.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let old_sig = signature(&images[1], "b1");
    old_sig.push(&r, "ci/app", old_sig.digest.as_ref()).await;
    let new_sig = signature(&images[4], "b4");
    new_sig.push(&r, "ci/app", new_sig.digest.as_ref()).await;
    let untagged = Image::new("ci untagged config", &["ci untagged layer"], "");
    untagged.push(&r, "ci/app", untagged.digest.as_ref()).await;
    past_claims(CLAIM).await;

    let report = cycle(&r, false).await;
    assert_eq!(report.tags_deleted, 2, "{report:?}");
    assert_eq!(report.manifests_deleted, 3, "b1, b2 and b1's signature: {report:?}");
    assert_eq!(tags(&r, "ci/app").await, ["b3", "b4", "release-1"]);
    assert_eq!(tags(&r, "prod/app").await, ["b1", "b2", "b3", "b4", "release-1"]);
    for image in [&images[0], &images[3], &images[4], &new_sig, &untagged] {
        image.assert_pulls(&r, "ci/app").await;
    }
    for image in &images {
        image.assert_pulls(&r, "prod/app").await;
    }
    for gone in [&images[1], &images[2], &old_sig] {
        let response = r.get(&format!("/v2/ci/app/manifests/{}", gone.digest)).await;
        assert_eq!(error_code(response).await, "MANIFEST_UNKNOWN");
        let layer = &gone.blob_digests()[1];
        let response = r.get(&format!("/v2/ci/app/blobs/{layer}")).await;
        assert_eq!(error_code(response).await, "BLOB_UNKNOWN", "unlinked from ci/app");
    }
    // The old signature's blobs were only in ci/app: gone from storage; b1's layer is still
    // in prod/app.
    let now = stored(&r).await;
    assert!(old_sig.all_digests().iter().all(|d| !now.contains(&d.to_string())));
    assert!(images[1].all_digests().iter().all(|d| now.contains(&d.to_string())));
    let referrers: serde_json::Value = r
        .get(&format!("/v2/ci/app/referrers/{}", images[4].digest))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(referrers["manifests"][0]["digest"], new_sig.digest.to_string());

    // With delete_untagged, the untagged manifest goes too; the rest stays.
    let mut config = gc_config(true);
    config.gc.retention = r.state.config.gc.retention.clone();
    let collector = r.replica(config).await;
    let report = cycle(&collector, false).await;
    assert_eq!((report.tags_deleted, report.manifests_deleted), (0, 1), "{report:?}");
    // Another replica deleted it: this one sees that within its reference cache's TTL.
    tokio::time::sleep(r.state.config.server.reference_cache_ttl).await;
    let response = r.get(&format!("/v2/ci/app/manifests/{}", untagged.digest)).await;
    assert_eq!(error_code(response).await, "MANIFEST_UNKNOWN");
    for image in [&images[0], &images[3], &images[4], &new_sig] {
        image.assert_pulls(&r, "ci/app").await;
    }
}

/// The push side, step by step: a HEAD protects a blob for the claim window, after which a
/// cycle may take it and the manifest fails cleanly; a push waits out a collector's open
/// intent, then fails cleanly (the blob went, and so does the new revision) or succeeds (the
/// blob stayed).
async fn pushes_hold_what_they_use_and_fail_cleanly_when_it_went(r: &TestRegistry) {
    let name = RepositoryName::parse("guarded").unwrap();
    let backend = r.state.blobs.backend().clone();

    // Uploaded long ago, nothing references it yet; a HEAD by a pusher protects it.
    let first = Image::new("guard config 1", &["guard layer 1"], "");
    for blob in &first.blobs {
        r.push_blob("guarded", blob.clone()).await;
    }
    past_claims(CLAIM).await;
    for digest in first.blob_digests() {
        assert_eq!(
            r.head(&format!("/v2/guarded/blobs/{digest}")).await.status(),
            StatusCode::OK
        );
    }
    let report = cycle(r, false).await;
    assert_eq!((report.blobs_deleted, report.links_deleted), (0, 0), "{report:?}");
    assert!(report.kept_claimed >= 2);
    let response = r
        .put_manifest("guarded", "one", OCI_MANIFEST, first.manifest.clone())
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    first.assert_pulls(r, "guarded").await;

    // A HEAD, then a manifest later than the claim window: the cycle between took the blobs,
    // the manifest is refused and nothing of it is stored.
    let late = Image::new("guard config 2", &["guard layer 2"], "");
    for blob in &late.blobs {
        r.push_blob("guarded", blob.clone()).await;
    }
    for digest in late.blob_digests() {
        assert_eq!(
            r.head(&format!("/v2/guarded/blobs/{digest}")).await.status(),
            StatusCode::OK
        );
    }
    past_claims(CLAIM).await;
    let report = cycle(r, false).await;
    assert_eq!(report.blobs_deleted, 2, "{report:?}");
    let response = r
        .put_manifest("guarded", "two", OCI_MANIFEST, late.manifest.clone())
        .await;
    assert_eq!(error_code(response).await, "MANIFEST_BLOB_UNKNOWN");
    let response = r.get(&format!("/v2/guarded/manifests/{}", late.digest)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // A collector's intent is open on a layer when the manifest arrives: the push waits.
    let third = Image::new("guard config 3", &["guard layer 3"], "");
    for blob in &third.blobs {
        r.push_blob("guarded", blob.clone()).await;
    }
    let layer = third.blob_digests()[1].clone();
    let intent = layout::blob_intent(&layer).unwrap();
    let put = |image: &Image, tag: &'static str| {
        let request = r
            .request(Method::PUT, &format!("/v2/guarded/manifests/{tag}"))
            .header("content-type", OCI_MANIFEST)
            .body(image.manifest.clone());
        tokio::spawn(async move { request.send().await.unwrap() })
    };
    backend.touch(&intent).await.unwrap();
    let waiting = put(&third, "three");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiting.is_finished(), "the push waits while the intent is open");
    // The collector deletes the link, the blob and its claim, then closes its intent.
    r.state.meta.unlink_blob(&name, &layer).await.unwrap();
    backend.delete(&layout::blob(&layer).unwrap()).await.unwrap();
    backend.delete(&layout::claim(&layer).unwrap()).await.unwrap();
    backend.delete(&intent).await.unwrap();
    let response = waiting.await.unwrap();
    let detail = response.text().await.unwrap();
    assert!(
        detail.contains("MANIFEST_BLOB_UNKNOWN") && detail.contains(&layer.to_string()),
        "{detail}"
    );
    let response = r.get(&format!("/v2/guarded/manifests/{}", third.digest)).await;
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "the refused manifest's revision is gone"
    );
    assert_eq!(
        r.get("/v2/guarded/manifests/three").await.status(),
        StatusCode::NOT_FOUND
    );

    // The same with the collector keeping the blob (it saw the claim): the push succeeds.
    r.push_blob("guarded", third.blobs[1].clone()).await;
    backend.touch(&intent).await.unwrap();
    let waiting = put(&third, "three");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiting.is_finished());
    backend.delete(&intent).await.unwrap();
    assert_eq!(waiting.await.unwrap().status(), StatusCode::CREATED);
    third.assert_pulls(r, "guarded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_pushes_hold_what_they_use_and_fail_cleanly_when_it_went() {
    pushes_hold_what_they_use_and_fail_cleanly_when_it_went(&fs(gc_config(true)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_pushes_hold_what_they_use_and_fail_cleanly_when_it_went() {
    pushes_hold_what_they_use_and_fail_cleanly_when_it_went(&s3(gc_config(true)).await).await;
}

/// Soak sizes.
const PUSHERS: usize = 16;
const ROUNDS: usize = 6;
const REPOSITORIES: usize = 4;
const SHARED_LAYERS: usize = 4;

/// An acknowledged push.
struct Ack {
    repository: String,
    image: Image,
    deleted: bool,
}

/// Pushes `image` as docker does (HEAD each blob, mount a shared one from another repository,
/// else upload; `slow`: a client that takes longer than the claim window before its manifest),
/// then tags it. `Err(code)` when the registry refuses the manifest.
async fn push_like_a_client(r: &TestRegistry, name: &str, tag: &str, image: &Image, slow: bool) -> Result<(), String> {
    for (i, (digest, blob)) in image.blob_digests().iter().zip(&image.blobs).enumerate() {
        if r.head(&format!("/v2/{name}/blobs/{digest}")).await.status() == StatusCode::OK {
            continue;
        }
        if i == 1 {
            let from = format!("soak/r{}", (name.len() + digest.to_string().len()) % REPOSITORIES);
            let response = r
                .request(
                    Method::POST,
                    &format!("/v2/{name}/blobs/uploads/?mount={digest}&from={from}"),
                )
                .send()
                .await
                .unwrap();
            if response.status() == StatusCode::CREATED {
                continue;
            }
            if let Some(location) = response.headers().get("location") {
                let location = location.to_str().unwrap().to_owned();
                r.request(Method::DELETE, &location).send().await.unwrap();
            }
        }
        let response = r
            .request(Method::POST, &format!("/v2/{name}/blobs/uploads/?digest={digest}"))
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        if response.status() != StatusCode::CREATED {
            return Err(error_code(response).await);
        }
    }
    if slow {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let response = r.put_manifest(name, tag, OCI_MANIFEST, image.manifest.clone()).await;
    if response.status() == StatusCode::CREATED {
        return Ok(());
    }
    Err(error_code(response).await)
}

/// 16 pushers on two replicas (shared layers, mounts, slow clients, retags, deletes) while a
/// collector on each replica runs a cycle every 100 ms. Every tag ends on a complete image;
/// after a last cycle, storage holds exactly the blobs the tags reach.
async fn soak(fixture: Arc<dyn Fixture>) {
    let mut config = gc_config(true);
    config.gc.claim_ttl = strata_registry::config::Gc::MIN_CLAIM_TTL;
    let claim = config.gc.claim_ttl;
    let first = TestRegistry::start(fixture, config.clone()).await;
    let second = first.replica(config).await;
    let replicas = Arc::new([first, second]);
    let stop = Arc::new(AtomicBool::new(false));

    let collectors: Vec<_> = (0..2)
        .map(|i| {
            let (replicas, stop) = (replicas.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut cycles, mut deleted) = (0u64, 0u64);
                while !stop.load(Ordering::SeqCst) {
                    let report = gc::cycle(&replicas[i].state, &format!("collector-{i}"), false)
                        .await
                        .expect("gc cycle");
                    if !report.skipped {
                        cycles += 1;
                        deleted += report.blobs_deleted;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                (cycles, deleted)
            })
        })
        .collect();

    let pushers: Vec<_> = (0..PUSHERS)
        .map(|p| {
            let replicas = replicas.clone();
            tokio::spawn(async move {
                let mut acks = Vec::new();
                let mut refused = 0;
                for round in 0..ROUNDS {
                    let r = &replicas[(p + round) % 2];
                    let repository = format!("soak/r{}", (p + round) % REPOSITORIES);
                    let tag = format!("t{}", (p * 3 + round) % 4);
                    let shared = format!("shared layer {}", (p + 2 * round) % SHARED_LAYERS);
                    let image = Image::new(
                        &format!("config {p}/{round}"),
                        &[&shared, &format!("layer {p}/{round}")],
                        "",
                    );
                    let slow = (p + round) % 5 == 0;
                    let mut tries = 0;
                    loop {
                        tries += 1;
                        match push_like_a_client(r, &repository, &tag, &image, slow && tries == 1).await {
                            Ok(()) => break,
                            Err(code) if code == "MANIFEST_BLOB_UNKNOWN" && tries < 5 => refused += 1,
                            Err(code) => panic!("pusher {p} round {round}: {code} (try {tries})"),
                        }
                    }
                    let deleted = round % 3 == 2;
                    if deleted {
                        let response = r
                            .request(Method::DELETE, &format!("/v2/{repository}/manifests/{}", image.digest))
                            .send()
                            .await
                            .unwrap();
                        let status = response.status();
                        assert_eq!(status, StatusCode::ACCEPTED, "{}", response.text().await.unwrap());
                    }
                    acks.push(Ack {
                        repository,
                        image,
                        deleted,
                    });
                }
                (acks, refused)
            })
        })
        .collect();
    let mut acks = Vec::new();
    let mut refused = 0;
    for pusher in pushers {
        let (mine, n) = pusher.await.expect("pusher");
        acks.extend(mine);
        refused += n;
    }
    stop.store(true, Ordering::SeqCst);
    let (mut cycles, mut deleted) = (0, 0);
    for collector in collectors {
        let (c, d) = collector.await.expect("collector");
        cycles += c;
        deleted += d;
    }
    eprintln!(
        "soak: {} pushes acknowledged, {refused} refused cleanly and pushed again; {cycles} cycles deleted {deleted} blobs meanwhile",
        acks.len()
    );
    assert!(cycles >= 5, "the collectors ran ({cycles} cycles)");
    assert!(deleted > 0, "the collectors freed something while pushes ran");

    // Every tag names an acknowledged, complete image.
    let by_digest: HashMap<(String, Digest), &Ack> = acks
        .iter()
        .map(|a| ((a.repository.clone(), a.image.digest.clone()), a))
        .collect();
    let r = &replicas[0];
    let mut live = BTreeSet::new();
    for i in 0..REPOSITORIES {
        let repository = format!("soak/r{i}");
        for tag in tags(r, &repository).await {
            let response = r.get(&format!("/v2/{repository}/manifests/{tag}")).await;
            assert_eq!(response.status(), StatusCode::OK, "{repository}:{tag}");
            let digest = sha256(&response.bytes().await.unwrap());
            let ack = by_digest
                .get(&(repository.clone(), digest.clone()))
                .expect("an acknowledged image");
            assert!(!ack.deleted, "{repository}:{tag} names a deleted manifest");
            ack.image.assert_pulls(r, &repository).await;
            replicas[1]
                .get(&format!("/v2/{repository}/manifests/{tag}"))
                .await
                .error_for_status()
                .unwrap();
            live.extend(set(ack.image.all_digests()));
        }
    }
    assert!(!live.is_empty());

    // One more cycle once the claims are old: exactly what the tags reach is stored.
    past_claims(claim).await;
    let report = cycle(r, false).await;
    assert!(!report.incomplete);
    assert_eq!(
        stored(r).await,
        live,
        "stored blobs are exactly the live ones ({report:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_soak_pushes_deletes_and_collectors_on_two_replicas_lose_nothing() {
    soak(Arc::new(FsFixture::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_soak_pushes_deletes_and_collectors_on_two_replicas_lose_nothing() {
    soak(Arc::new(S3Fixture::new().await)).await;
}

/// Runs `strata-registry gc` over the filesystem store at `root` with collection settings for
/// tests; returns the child (stdout piped).
fn gc_command(root: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_strata-registry"));
    command
        .arg("gc")
        .args(args)
        .arg("--root")
        .arg(root)
        .env("RUST_LOG", "warn")
        .env("STRATA_GC_GRACE", "0s")
        .env("STRATA_GC_CLAIM_TTL", "4s")
        .env("STRATA_GC_LEASE", "1s")
        .env("STRATA_GC_DELETE_UNTAGGED", "true")
        .stdout(std::process::Stdio::piped());
    command
}

/// The number of blob files under a filesystem store's root.
fn blob_files(root: &std::path::Path) -> usize {
    let Ok(algorithms) = std::fs::read_dir(root.join("blobs")) else {
        return 0;
    };
    algorithms
        .flatten()
        .flat_map(|alg| std::fs::read_dir(alg.path()).into_iter().flatten().flatten())
        .map(|shard| std::fs::read_dir(shard.path()).map_or(0, |files| files.count()))
        .sum()
}

/// `strata-registry gc`: a dry run with `-v` prints what would go per repository and deletes
/// nothing; a cycle killed with SIGKILL in the middle of its sweep leaves storage consistent
/// (every blob still linked reads back whole and correct, or is cleanly unknown); the next run
/// finishes the work exactly (`--json`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reports_and_a_collector_killed_mid_sweep_loses_nothing() {
    use futures::StreamExt;
    const JUNK: usize = 3000;
    let fixture = Arc::new(FsFixture::new());
    let root = fixture.root().to_path_buf();
    let r = TestRegistry::start(fixture.clone(), gc_config(true)).await;
    let live = Image::new("cli live config", &["cli live layer"], "");
    live.push(&r, "keep/app", "v1").await;
    let junk_repository = RepositoryName::parse("junk/app").unwrap();
    let junk: Vec<Bytes> = (0..JUNK).map(|i| Bytes::from(format!("junk blob {i}"))).collect();
    futures::stream::iter(&junk)
        .for_each_concurrent(32, |blob| {
            let (state, name) = (&r.state, &junk_repository);
            async move {
                let digest = state.blobs.put_bytes(blob.clone()).await.unwrap();
                state.meta.link_blob(name, &digest).await.unwrap();
            }
        })
        .await;
    r.state.meta.ensure_repository(&junk_repository).await.unwrap();
    let total = blob_files(&root);
    assert_eq!(total, JUNK + 3);
    past_claims(Duration::from_secs(4)).await;

    let dry = gc_command(&root, &["--dry-run", "-v"]).output().unwrap();
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{text}{}", String::from_utf8_lossy(&dry.stderr));
    let freed = junk.iter().map(Bytes::len).sum::<usize>() as u64;
    assert!(text.starts_with(&format!("would free {JUNK} blobs (")), "{text}");
    assert!(text.contains(&format!("{JUNK} links")), "{text}");
    assert!(
        text.contains(&format!("junk/app: 0 B stored, {JUNK} tags/manifests/links to delete")),
        "{text}"
    );
    assert!(text.contains("keep/app: "), "{text}");
    assert_eq!(blob_files(&root), total, "a dry run deletes nothing");

    // Killed once the sweep is under way: the cycle runs in slices of a few milliseconds
    // (SIGCONT, SIGSTOP) and is looked at between them, so it cannot finish unseen.
    let mut child = gc_command(&root, &[]).spawn().unwrap();
    let pid = child.id().to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill").args([name, &pid]).status().unwrap();
        assert!(status.success(), "kill {name} {pid}");
    };
    signal("-STOP");
    let started = std::time::Instant::now();
    loop {
        signal("-CONT");
        std::thread::sleep(Duration::from_millis(5));
        signal("-STOP");
        std::thread::sleep(Duration::from_millis(2));
        if let Some(status) = child.try_wait().unwrap() {
            let mut stdout = String::new();
            std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
            panic!("the cycle ended ({status}) before it could be killed: {stdout}");
        }
        if blob_files(&root) <= total - 100 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the sweep never started");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = blob_files(&root) - 3;
    assert!(left > 0 && left < JUNK, "killed mid-sweep ({left} junk blobs left)");

    // Consistent meanwhile: the live image pulls; each junk blob reads whole or is unknown.
    live.assert_pulls(&r, "keep/app").await;
    for blob in junk.iter().step_by(10) {
        let response = r.get(&format!("/v2/junk/app/blobs/{}", sha256(blob))).await;
        match response.status() {
            StatusCode::OK => assert_eq!(&response.bytes().await.unwrap(), blob),
            StatusCode::NOT_FOUND => assert_eq!(error_code(response).await, "BLOB_UNKNOWN"),
            other => panic!("junk blob answered {other}"),
        }
    }

    // The next run (once the dead one's lease ran out) finishes exactly.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let output = gc_command(&root, &["--json"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: gc::Report = serde_json::from_slice(&output.stdout).expect("a JSON report");
    assert!(!report.skipped && !report.dry_run);
    assert_eq!(report.blobs_deleted, left as u64, "{report:?}");
    assert!(report.bytes_freed < freed);
    assert_eq!(stored(&r).await, set(live.all_digests()));
    assert!(
        r.state
            .blobs
            .backend()
            .list_all(&layout::layer_links(&junk_repository))
            .await
            .unwrap()
            .is_empty()
    );
    live.assert_pulls(&r, "keep/app").await;
}

/// Abandoned upload sessions — on S3 with multipart parts stored — are purged by a cycle once
/// older than `upload_purge_age`; a session in use is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_a_cycle_purges_abandoned_uploads_and_their_parts() {
    let fixture = Arc::new(S3Fixture::new().await);
    let data_dir = fixture.server().expect("in-process server").data_dir().to_path_buf();
    let mut config = gc_config(true);
    config.upload_purge_age = Duration::from_secs(2);
    let r = TestRegistry::start(fixture, config).await;
    let parts = || {
        walk(&data_dir)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".upload_id-"))
            })
            .count()
    };
    let start = |r: &TestRegistry| {
        let request = r.request(Method::POST, "/v2/uploads/app/blobs/uploads/");
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::ACCEPTED);
            response.headers()["location"].to_str().unwrap().to_owned()
        }
    };
    let abandoned = start(&r).await;
    let response = r
        .request(Method::PATCH, &abandoned)
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 6 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(parts() > 0, "a 6 MiB chunk is stored as a multipart part");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fresh = start(&r).await;

    let report = cycle(&r, false).await;
    assert_eq!(report.uploads_purged, 1, "{report:?}");
    assert_eq!(parts(), 0, "the parts went with the session");
    assert_eq!(error_code(r.get(&abandoned).await).await, "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(
        r.get(&fresh).await.status(),
        StatusCode::NO_CONTENT,
        "the fresh session stays"
    );
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `/admin/gc` under access control: anonymous callers are challenged, users who are not
/// admins refused, an admin runs a dry run and a cycle and reads the last report; without a
/// finished cycle there is no report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_is_for_admins_only() {
    use strata_registry::config::{AccessRule, Action, Auth};
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let line = |user: &str, password: &str| format!("{user}:{}\n", bcrypt::hash(password, 4).unwrap());
    std::fs::write(&htpasswd, line("admin", "a-pass") + &line("alice", "x-pass")).unwrap();
    let mut config = gc_config(true);
    config.auth = Some(Auth {
        htpasswd: Some(htpasswd),
        admin_users: vec!["admin".into()],
        ..Auth::default()
    });
    config.access = vec![AccessRule {
        repositories: vec!["**".into()],
        users: vec!["admin".into(), "alice".into()],
        groups: Vec::new(),
        actions: vec![Action::Pull, Action::Push, Action::Delete],
    }];
    let r = fs(config).await;
    let call = |method: Method, path: &str, user: Option<(&str, &str)>| {
        let request = r.request(method, path);
        let request = match user {
            Some((u, p)) => request.basic_auth(u, Some(p)),
            None => request,
        };
        async move { request.send().await.unwrap() }
    };
    let admin = Some(("admin", "a-pass"));

    let response = call(Method::POST, "/admin/gc", None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    let response = call(Method::GET, "/admin/gc", Some(("alice", "x-pass"))).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    let response = call(Method::POST, "/admin/gc", Some(("alice", "x-pass"))).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        call(Method::POST, "/admin/gc", Some(("admin", "wrong"))).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(Method::GET, "/admin/gc", admin).await.status(),
        StatusCode::NOT_FOUND
    );

    // Something to free: blobs alice pushed and never used.
    let image = Image::new("admin config", &["admin layer"], "");
    for blob in &image.blobs {
        let response = r
            .request(
                Method::POST,
                &format!("/v2/team/app/blobs/uploads/?digest={}", sha256(blob)),
            )
            .basic_auth("alice", Some("x-pass"))
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    past_claims(CLAIM).await;

    let response = call(Method::POST, "/admin/gc?dry_run=true", admin).await;
    assert_eq!(response.status(), StatusCode::OK);
    let dry: gc::Report = response.json().await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.blobs_deleted, 2, "{dry:?}");
    assert_eq!(stored(&r).await.len(), 2, "a dry run deletes nothing");
    assert_eq!(
        call(Method::GET, "/admin/gc", admin).await.status(),
        StatusCode::NOT_FOUND,
        "dry runs leave no report"
    );

    let response = call(Method::POST, "/admin/gc", admin).await;
    assert_eq!(response.status(), StatusCode::OK);
    let real: gc::Report = response.json().await.unwrap();
    assert_eq!((real.dry_run, real.blobs_deleted, real.links_deleted), (false, 2, 2));
    assert!(stored(&r).await.is_empty());
    let response = call(Method::GET, "/admin/gc", admin).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<gc::Report>().await.unwrap(), real);
    assert_eq!(
        call(Method::DELETE, "/admin/gc", admin).await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

/// With `[gc] interval` set, the registry collects by itself: an orphan blob goes once its
/// claim is old, and the cycles show in `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_collector_runs_every_interval() {
    let mut config = gc_config(true);
    config.gc.interval = Duration::from_millis(300);
    let r = fs(config).await;
    let orphan = r.push_blob("background/app", "nobody references me").await;
    past_claims(CLAIM).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = r.get("/metrics").await.text().await.unwrap();
        if metric(&metrics, "strata_gc_deleted_total{kind=\"blob\"} ") == Some(1.0) {
            assert!(
                metric(&metrics, "strata_gc_cycles_total ").is_some_and(|n| n >= 2.0),
                "{metrics}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no background cycle deleted the orphan: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = r.get(&format!("/v2/background/app/blobs/{orphan}")).await;
    assert_eq!(error_code(response).await, "BLOB_UNKNOWN");
    assert!(stored(&r).await.is_empty());
    assert!(
        gc::last_report(&r.state).await.unwrap().is_some(),
        "each cycle leaves its report"
    );
}
