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

    // One comes back: ready again within 2 s, and everything is there.
    server.restart_endpoint(1).await;
    until(&r, "/readyz", StatusCode::OK, flip).await;
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
    let server = strata_storage::testing::S3TestServer::start().await;
    server.bucket("killed").await;
    let storage = Storage::S3 {
        endpoint: server.endpoint(),
        bucket: "killed".into(),
    };
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
