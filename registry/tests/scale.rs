//! Scale-out over S3: readiness and failover between S3 endpoints.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestRegistry;
use reqwest::StatusCode;
use strata_registry::Config;
use strata_storage::testing::S3Fixture;

/// Waits up to `within` for `path` to answer `status`; how long it took.
async fn until(r: &TestRegistry, path: &str, status: StatusCode, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if r.get(path).await.status() == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{path} did not answer {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_storage_and_requests_fail_over_between_endpoints() {
    let fixture = Arc::new(S3Fixture::clustered(2).await);
    let r = TestRegistry::start(fixture.clone(), Config::default()).await;
    let server = fixture.server().unwrap();
    let flip = Duration::from_secs(2);
    until(&r, "/readyz", StatusCode::OK, flip).await;
    assert_eq!(r.get("/v2/").await.status(), StatusCode::OK);
    let before = r.push_blob("ha/app", "stored while both answer").await;

    // One endpoint stops: the registry keeps working through the other, and stays ready.
    server.stop_endpoint(0);
    let during = r.push_blob("ha/app", "stored through the second endpoint").await;
    for digest in [&before, &during] {
        let got = r.get(&format!("/v2/ha/app/blobs/{digest}")).await;
        assert_eq!(got.status(), StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.get("/readyz").await.status(), StatusCode::OK);

    // Both stop: not ready within 2 s; the version check and storage requests say 503 at once;
    // the process is still alive.
    server.stop_endpoint(1);
    until(&r, "/readyz", StatusCode::SERVICE_UNAVAILABLE, flip).await;
    let base = r.get("/v2/").await;
    assert_eq!(base.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(base.headers()["retry-after"], "1");
    assert!(base.text().await.unwrap().contains("UNAVAILABLE"));
    let started = Instant::now();
    let blob = r.get(&format!("/v2/ha/app/blobs/{before}")).await;
    assert_eq!(blob.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.get("/healthz").await.status(), StatusCode::OK);
    let reason = r.get("/readyz").await.text().await.unwrap();
    assert!(reason.contains("storage unavailable"), "{reason}");
    let metrics = r.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("strata_storage_ready 0"), "{metrics}");

    // One comes back: ready again within 2 s, and everything is there.
    server.restart_endpoint(1).await;
    until(&r, "/readyz", StatusCode::OK, flip).await;
    let metrics = r.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("strata_storage_ready 1"), "{metrics}");
    assert_eq!(r.get("/v2/").await.status(), StatusCode::OK);
    for digest in [&before, &during] {
        let got = r.get(&format!("/v2/ha/app/blobs/{digest}")).await;
        assert_eq!(got.status(), StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_monolithic_push_leaves_a_multipart_upload_the_sweep_aborts() {
    use common::process::{Registry, Start, Storage};
    use futures::StreamExt;
    let (server, storage) = Storage::s3("killed").await;
    let registry = Registry::spawn(&storage, None).await;

    // A monolithic push (POST ?digest=) whose body stops after 40 MiB: two 16 MiB parts are up.
    let body = futures::stream::iter((0..40).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![7u8; 1 << 20]))))
        .chain(futures::stream::pending());
    let digest = format!("sha256:{}", "ab".repeat(32));
    let url = registry.url(&format!("/v2/big/blobs/uploads/?digest={digest}"));
    let push = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header("content-length", (64u64 << 20).to_string())
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
    });
    let started = Instant::now();
    while server.open_multipart_uploads() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no multipart upload started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its record names the upload once CreateMultipartUpload answered (a kill before that
    // leaves a record without an id, which only ListMultipartUploads, missing in the test
    // server, could resolve).
    let recorded = || {
        std::fs::read_dir(server.data_dir().join("killed/_multipart")).is_ok_and(|dir| {
            dir.flatten()
                .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("\"upload_id\":\"")))
        })
    };
    while !recorded() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the upload was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The registry dies mid-body (nothing runs its cleanup).
    drop(registry);
    let _ = push.await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.open_multipart_uploads(), 1, "the killed push left its upload");

    // Another replica's sweep finds the record written before the upload started, and aborts it.
    let start = Start {
        env: vec![
            ("STRATA_SERVER_SWEEP_INTERVAL", "200ms".into()),
            ("STRATA_SERVER_SWEEP_AGE", "1s".into()),
        ],
        ..Start::default()
    };
    let _replica = Registry::start(&storage, None, start).await;
    let started = Instant::now();
    while server.open_multipart_uploads() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the sweep did not abort it"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let records = std::fs::read_dir(server.data_dir().join("killed/_multipart")).map_or(0, |d| d.count());
    assert_eq!(records, 0, "the record goes with the upload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_does_each_round_of_upkeep() {
    use strata_registry::upkeep::{Task, round};
    use strata_storage::testing::Fixture;
    let fixture = S3Fixture::new().await;
    let config = Config::default();
    // Two replicas' state over one bucket, without their background loops: rounds run by hand.
    let a = strata_registry::AppState::new(config.clone(), fixture.backend().await).unwrap();
    let b = strata_registry::AppState::new(config, fixture.backend().await).unwrap();
    for task in [Task::Purge, Task::Sweep] {
        assert!(
            round(&a, task, "replica-a").await.unwrap().is_some(),
            "{task:?}: a does it"
        );
        assert!(
            round(&b, task, "replica-b").await.unwrap().is_none(),
            "{task:?}: b does not"
        );
        // The holder keeps its turn.
        assert!(
            round(&a, task, "replica-a").await.unwrap().is_some(),
            "{task:?}: a again"
        );
    }
}

/// The S3 requests the registry made since the last call (background probes and upkeep left
/// out), printed for the test log.
fn requests(server: &strata_storage::testing::S3TestServer, what: &str) -> Vec<String> {
    let made: Vec<String> = server
        .take_requests()
        .into_iter()
        .filter(|r| !r.contains("_health") && !r.contains("_upkeep"))
        .collect();
    eprintln!("{what}: {} requests\n  {}", made.len(), made.join("\n  "));
    made
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_requests_per_operation_stay_within_their_budgets() {
    use reqwest::Method;
    use strata_storage::digest::sha256;
    let fixture = Arc::new(S3Fixture::new().await);
    let mut config = Config::default();
    config.server.readiness_interval = Duration::from_secs(3600);
    let r = TestRegistry::start(fixture.clone(), config).await;
    let server = fixture.server().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // the first purge round
    let name = "counted/app";
    r.push_blob(name, "first blob: the repository exists").await;
    server.take_requests();

    // A chunked upload: start, two small chunks, finish without a body.
    let start = r
        .request(Method::POST, &format!("/v2/{name}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::ACCEPTED);
    let mut location = start.headers()["location"].to_str().unwrap().to_owned();
    requests(server, "POST (start)");
    let (one, two) = (vec![1u8; 1 << 20], vec![2u8; 1 << 20]);
    let mut counts = Vec::new();
    for chunk in [&one, &two] {
        let patch = r
            .request(Method::PATCH, &location)
            .header("content-type", "application/octet-stream")
            .body(chunk.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(patch.status(), StatusCode::ACCEPTED);
        location = patch.headers()["location"].to_str().unwrap().to_owned();
        counts.push(requests(server, "PATCH").len());
    }
    // First chunk: info, state, tail, state; later ones also read and drop the old tail.
    assert!(counts[0] <= 4 && counts[1] <= 6, "PATCH requests {counts:?}");
    let digest = sha256(&[one.clone(), two.clone()].concat());
    let sep = if location.contains('?') { '&' } else { '?' };
    let finish = r
        .request(Method::PUT, &format!("{location}{sep}digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(finish.status(), StatusCode::CREATED);
    let finished = requests(server, "PUT (finish)").len();
    // info, state, claim and two intents, state twice (commit, complete), the copy into place,
    // the listing and batch delete of the session's objects, the link, the record.
    assert!(finished <= 12, "finishing a session took {finished} requests");

    // A manifest with a config and a layer, pushed by tag: 5 per reference (claim, two intents,
    // link, blob) and a handful of its own.
    let config_blob = r.push_blob(name, "{\"config\":1}").await;
    server.take_requests();
    let manifest = common::image_manifest(
        &config_blob,
        &[(&digest, "application/vnd.oci.image.layer.v1.tar", vec![])],
        "",
    );
    let put = r.put_manifest(name, "v1", common::OCI_MANIFEST, manifest.clone()).await;
    assert_eq!(put.status(), StatusCode::CREATED);
    let pushed = requests(server, "PUT manifest").len();
    assert!(pushed <= 5 * 2 + 8, "a manifest push took {pushed} requests");

    // GET by tag: the tag and the revision (the bytes are cached since the push); again within
    // the cache TTL: none.
    let first = r.get(&format!("/v2/{name}/manifests/v1")).await;
    assert_eq!(first.status(), StatusCode::OK);
    let cold = requests(server, "GET manifest by tag").len();
    assert!(cold <= 2, "{cold}");
    let again = r.get(&format!("/v2/{name}/manifests/v1")).await;
    assert_eq!(again.bytes().await.unwrap(), manifest);
    assert_eq!(requests(server, "GET manifest by tag, cached").len(), 0);

    // Deleting a manifest by digest touches its own tags, not the repository's 300 others.
    let (_, other) = r.push_image(name, "other", "another image").await;
    for i in 0..300 {
        let tag = format!("t{i}");
        let bytes = r
            .get(&format!("/v2/{name}/manifests/{other}"))
            .await
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            r.put_manifest(name, &tag, common::OCI_MANIFEST, bytes).await.status(),
            StatusCode::CREATED
        );
    }
    server.take_requests();
    let manifest_digest = sha256(&manifest);
    let delete = r
        .request(Method::DELETE, &format!("/v2/{name}/manifests/{manifest_digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::ACCEPTED);
    let deleted = requests(server, "DELETE manifest by digest").len();
    // The revision; the index marker (once per process); the digest's index entries listed; the
    // tag read, removed, and its entry; the revision removed (HEAD + DELETE).
    assert!(
        deleted <= 8,
        "deleting a manifest among 302 tags took {deleted} requests"
    );
    assert_eq!(
        r.get(&format!("/v2/{name}/manifests/v1")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        r.get(&format!("/v2/{name}/manifests/t299")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_from_before_the_tag_index_is_indexed_on_its_first_delete() {
    use reqwest::Method;
    use strata_storage::{RepositoryName, layout};
    let r = TestRegistry::fs().await;
    let (_, digest) = r.push_image("old/app", "v1", "old image").await;
    let (_, other) = r.push_image("old/app", "keep", "kept image").await;
    // Strip the index, as a repository written before it has none.
    let name = RepositoryName::parse("old/app").unwrap();
    let backend = r.state.blobs.backend().clone();
    backend.remove(&layout::tag_index_complete(&name)).await.unwrap();
    for d in [&digest, &other] {
        backend
            .delete_prefix(&layout::tag_index(&name, d).unwrap())
            .await
            .unwrap();
    }
    let again = r.get("/v2/old/app/manifests/v1").await.bytes().await.unwrap();
    assert_eq!(
        r.put_manifest("old/app", "v1-again", common::OCI_MANIFEST, again)
            .await
            .status(),
        StatusCode::CREATED
    );
    backend.remove(&layout::tag_index_complete(&name)).await.unwrap();
    backend
        .delete_prefix(&layout::tag_index(&name, &digest).unwrap())
        .await
        .unwrap();

    let delete = r
        .request(Method::DELETE, &format!("/v2/old/app/manifests/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::ACCEPTED);
    for tag in ["v1", "v1-again"] {
        let gone = r.get(&format!("/v2/old/app/manifests/{tag}")).await;
        assert_eq!(
            gone.status(),
            StatusCode::NOT_FOUND,
            "{tag} still points at the deleted manifest"
        );
    }
    assert_eq!(r.get("/v2/old/app/manifests/keep").await.status(), StatusCode::OK);
    assert!(
        backend.head(&layout::tag_index_complete(&name)).await.is_ok(),
        "indexed now"
    );
    let entry = layout::tag_index_entry(&name, &other, &strata_storage::Tag::parse("keep").unwrap()).unwrap();
    assert!(
        backend.head(&entry).await.is_ok(),
        "the other tags were indexed on the way"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_to_s3_share_one_buffer_budget() {
    use common::process::{Registry, Start, Storage};
    use futures::StreamExt;
    let (_server, storage) = Storage::s3("budget").await;
    let budget: u64 = 48 << 20;
    let registry = Registry::start(
        &storage,
        None,
        Start {
            env: vec![("STRATA_STORAGE_S3_BUFFER_BUDGET", budget.to_string())],
            ..Start::default()
        },
    )
    .await;
    let baseline = registry.status_kib("VmRSS");
    // Six streamed 64 MiB pushes at once: 16 MiB parts, 4 in flight each, would hold 480 MiB.
    let chunk = bytes::Bytes::from((0..1u32 << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let chunks = 64;
    let mut hasher = strata_storage::digest::Hasher::new(strata_storage::digest::Algorithm::Sha256);
    for _ in 0..chunks {
        hasher.update(&chunk);
    }
    let digest = hasher.finish();
    let pushes = (0..6).map(|i| {
        let body = futures::stream::iter((0..chunks).map({
            let chunk = chunk.clone();
            move |_| Ok::<_, std::io::Error>(chunk.clone())
        }));
        reqwest::Client::new()
            .post(registry.url(&format!("/v2/budget/r{i}/blobs/uploads/?digest={digest}")))
            .header("content-length", (chunks << 20).to_string())
            .body(reqwest::Body::wrap_stream(body.boxed()))
            .send()
    });
    for response in futures::future::join_all(pushes).await {
        let response = response.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{}",
            response.text().await.unwrap()
        );
    }
    let peak = registry.status_kib("VmHWM");
    eprintln!(
        "RSS: baseline {baseline} KiB, peak {peak} KiB, budget {} KiB",
        budget >> 10
    );
    // Without the budget this peaks near 370 MiB over the baseline.
    assert!(
        peak < baseline + (budget >> 10) + 64 * 1024,
        "peak RSS {peak} KiB (baseline {baseline} KiB, budget {} KiB)",
        budget >> 10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_downloads_can_go_straight_from_the_object_store() {
    let fixture = Arc::new(S3Fixture::new().await.configured(|c| c.redirect = true));
    let r = TestRegistry::start(fixture.clone(), Config::default()).await;
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let digest = r.push_blob("direct/app", content.clone()).await;
    let path = format!("/v2/direct/app/blobs/{digest}");

    // GET: a redirect to a presigned URL of the object store, which serves the blob to anyone
    // holding the URL, ranges included.
    let response = r.get(&path).await;
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(response.headers()["docker-content-digest"], digest.to_string().as_str());
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let endpoint = fixture.server().unwrap().endpoint();
    assert!(location.starts_with(&endpoint), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    let direct = reqwest::get(&location).await.unwrap();
    assert_eq!(direct.status(), StatusCode::OK);
    assert_eq!(direct.bytes().await.unwrap(), content);
    let ranged = reqwest::Client::new()
        .get(&location)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.bytes().await.unwrap(), &content[10..20]);
    // A tampered URL is refused by the object store.
    let at = location.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &location[at..at + 1] == "0" { "1" } else { "0" };
    let tampered = format!("{}{flipped}{}", &location[..at], &location[at + 1..]);
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), StatusCode::FORBIDDEN);

    // A client that follows redirects (as docker, containerd and strata's own do) just gets
    // the bytes.
    let followed = reqwest::get(r.url(&path)).await.unwrap();
    assert_eq!(followed.status(), StatusCode::OK);
    assert_eq!(followed.bytes().await.unwrap(), content);

    // HEAD stays with the registry; an unknown blob is not redirected.
    let head = r.head(&path).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], content.len().to_string().as_str());
    let missing = r.get(&format!("/v2/direct/app/blobs/sha256:{}", "0".repeat(64))).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // Off by default: the registry serves the bytes itself.
    let plain = TestRegistry::s3().await;
    let digest = plain.push_blob("direct/app", content.clone()).await;
    let served = plain.get(&format!("/v2/direct/app/blobs/{digest}")).await;
    assert_eq!(served.status(), StatusCode::OK);
}
