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
