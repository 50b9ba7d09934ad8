//! The conformance suite against the S3 backend, over HTTP to an S3 server (s3s + s3s-fs) running
//! in the test process, plus S3-specific checks.

use bytes::Bytes;
use strata_storage::testing::conformance::{generated, pattern};
use strata_storage::testing::{Fixture, S3Fixture, S3TestServer};
use strata_storage::{Backend, BackendExt, Key, S3Backend, stream};

strata_storage::conformance_tests!(S3Fixture::new().await);

fn key(s: &str) -> Key {
    Key::parse(s).unwrap()
}

async fn etag(backend: &S3Backend, bucket: &str, s3_key: &str) -> String {
    let out = backend
        .client()
        .head_object()
        .bucket(bucket)
        .key(s3_key)
        .send()
        .await
        .unwrap();
    out.e_tag.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_puts_are_multipart_uploads_and_small_ones_are_not() {
    let fixture = S3Fixture::new().await;
    let backend = S3Backend::new(fixture.config()).await.unwrap();
    backend
        .put(&key("mp/big"), generated(12 * 1024 * 1024, 1 << 20, 1))
        .await
        .unwrap();
    backend.put_bytes(&key("mp/small"), pattern(1000, 2)).await.unwrap();
    // S3 marks multipart objects' ETags with "-<parts>": 12 MiB in 5 MiB parts is 3 parts.
    assert!(
        etag(&backend, "strata-test", "mp/big")
            .await
            .trim_matches('"')
            .ends_with("-3")
    );
    assert!(!etag(&backend, "strata-test", "mp/small").await.contains('-'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_prefix_keeps_stores_in_one_bucket_apart() {
    let server = S3TestServer::start().await;
    let mut one = server.bucket("shared").await;
    let mut two = one.clone();
    one.prefix = Some("one".into());
    two.prefix = Some("two/nested".into());
    let (one, two) = (S3Backend::new(&one).await.unwrap(), S3Backend::new(&two).await.unwrap());
    one.put_bytes(&key("k/x"), Bytes::from_static(b"1")).await.unwrap();
    two.put_bytes(&key("k/x"), Bytes::from_static(b"2")).await.unwrap();
    assert_eq!(one.get_bytes(&key("k/x")).await.unwrap(), Bytes::from_static(b"1"));
    assert_eq!(two.list_all(&key("k")).await.unwrap().len(), 1);
    assert!(server.data_dir().join("shared/two/nested/k/x").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_state_lives_in_the_bucket() {
    let fixture = S3Fixture::new().await;
    let backend = fixture.backend().await;
    let home = key("_uploads/u1/data");
    backend.upload_create(&home).await.unwrap();
    backend
        .upload_append(&home, 0, stream::once(pattern(1000, 3)), Box::new(|| b"cp".to_vec()))
        .await
        .unwrap();
    let objects: Vec<String> = backend
        .list_all(&key("_uploads/u1"))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key.to_string())
        .collect();
    assert_eq!(objects, vec!["_uploads/u1/data/state", "_uploads/u1/data/tail-1000"]);
    // A brand-new client (another replica, nothing shared in memory) sees the same state.
    let other = S3Backend::new(fixture.config()).await.unwrap();
    let status = other.upload_status(&home).await.unwrap();
    assert_eq!((status.length, &status.checkpoint[..]), (1000, &b"cp"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_server_errors_are_retried_a_bounded_number_of_times() {
    // Every second request fails with a 500 before the server looks at it.
    let server = S3TestServer::start_with_faults(2).await;
    let mut cfg = server.bucket("flaky").await;
    // Parts go up in parallel and the server counts requests globally, so one request's retries
    // can land on failing turns several times in a row: enough attempts that this never runs out.
    cfg.max_attempts = 10;
    let backend = S3Backend::new(&cfg).await.unwrap();
    let size = 12 * 1024 * 1024;
    backend.put(&key("f/big"), generated(size, 1 << 20, 5)).await.unwrap();
    backend.copy(&key("f/big"), &key("f/copy")).await.unwrap();
    let got = strata_storage::stream::collect(backend.get(&key("f/copy"), None).await.unwrap().body)
        .await
        .unwrap();
    let expected = strata_storage::stream::collect(generated(size, 1 << 20, 5))
        .await
        .unwrap();
    assert!(got == expected);
    assert_eq!(backend.list_all(&key("f")).await.unwrap().len(), 2);

    // Without retries the same server's failures reach the caller.
    cfg.max_attempts = 1;
    let fragile = S3Backend::new(&cfg).await.unwrap();
    let mut failures = 0;
    for _ in 0..4 {
        if fragile.head(&key("f/big")).await.is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, 2, "every second request fails, and nothing retried it");
}

/// Runs `credentials_chain_child` in a new process of this test binary with `env` set, since the
/// AWS credential chain reads the process environment.
fn run_chain_child(endpoint: &str, access: &str, secret: &str) -> std::process::Output {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "credentials_chain_child", "--ignored", "--nocapture"])
        .env("STRATA_CHILD_S3_ENDPOINT", endpoint)
        .env("AWS_ACCESS_KEY_ID", access)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_in_the_config_credentials_come_from_the_aws_chain() {
    let server = S3TestServer::start().await;
    server.bucket("chain").await;
    let (access, secret) = server.credentials();
    let endpoint = server.endpoint();
    let (good, bad) = tokio::task::spawn_blocking(move || {
        (
            run_chain_child(&endpoint, access, secret),
            run_chain_child(&endpoint, access, "wrong-secret"),
        )
    })
    .await
    .unwrap();
    let output = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(
        good.status.success(),
        "the environment's credentials were not used:\n{}",
        output(&good)
    );
    assert!(output(&good).contains("1 passed"), "{}", output(&good));
    assert!(
        !bad.status.success(),
        "wrong credentials from the environment were accepted:\n{}",
        output(&bad)
    );
}

#[tokio::test]
#[ignore = "a child process of without_keys_in_the_config_credentials_come_from_the_aws_chain"]
async fn credentials_chain_child() {
    let mut cfg = strata_storage::S3Config::new("chain");
    cfg.endpoint = Some(std::env::var("STRATA_CHILD_S3_ENDPOINT").expect("run by the parent test"));
    cfg.path_style = true;
    cfg.max_attempts = 1;
    let backend = S3Backend::new(&cfg).await.unwrap();
    backend
        .put_bytes(&key("c/x"), Bytes::from_static(b"from the chain"))
        .await
        .unwrap();
    assert_eq!(
        backend.get_bytes(&key("c/x")).await.unwrap(),
        Bytes::from_static(b"from the chain")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_over_between_endpoints_and_fail_fast_when_every_probe_fails() {
    use std::time::{Duration, Instant};
    let server = S3TestServer::start().await;
    let mut cfg = server.bucket("failover").await;
    let second = server.add_endpoint().await;
    cfg.endpoints = vec![cfg.endpoint.take().unwrap(), second];
    let backend = S3Backend::new(&cfg).await.unwrap();
    let within = Duration::from_secs(1);
    backend.put_bytes(&key("a"), pattern(100, 1)).await.unwrap();

    // The preferred endpoint stops: requests go to the other, at once.
    server.stop_endpoint(0);
    let started = Instant::now();
    backend.put_bytes(&key("b"), pattern(100, 2)).await.unwrap();
    assert_eq!(backend.get_bytes(&key("a")).await.unwrap(), pattern(100, 1));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    backend.probe(within).await.expect("one endpoint answers");

    // Both stopped: the probe says so, and requests fail at once without being sent.
    server.stop_endpoint(1);
    let down = backend.probe(within).await.unwrap_err();
    assert!(matches!(down, strata_storage::Error::Unavailable { .. }), "{down:?}");
    server.take_requests();
    let started = Instant::now();
    let refused = backend.get_bytes(&key("a")).await.unwrap_err();
    assert!(
        matches!(refused, strata_storage::Error::Unavailable { .. }),
        "{refused:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    assert!(server.take_requests().is_empty());

    // Back: the next probe clears it.
    server.restart_endpoint(0).await;
    backend.probe(within).await.expect("endpoint 0 answers again");
    assert_eq!(backend.get_bytes(&key("b")).await.unwrap(), pattern(100, 2));
}

/// The conformance suite again with 1 MiB read parts, so that small objects and every range form
/// are read in several ranged GETs.
mod small_read_parts {
    use strata_storage::testing::S3Fixture;
    strata_storage::conformance_tests!(S3Fixture::new().await.configured(|c| c.read_part_size = 1 << 20));
}

/// The GETs of `s3_key` in the server's request log since the last look.
fn gets_of(server: &S3TestServer, s3_key: &str) -> usize {
    server
        .take_requests()
        .iter()
        .filter(|r| r.starts_with("GET ") && r.split('?').next().unwrap().ends_with(s3_key))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_are_read_in_parallel_ranges_and_in_order() {
    const MIB: usize = 1 << 20;
    let fixture = S3Fixture::new().await.configured(|c| c.read_part_size = 4 * MIB as u64);
    let server = fixture.server().unwrap();
    let backend = S3Backend::new(fixture.config()).await.unwrap();
    let k = key("ranged/obj");
    backend.put(&k, generated(18 * MIB, MIB, 7)).await.unwrap();
    let whole = stream::collect(generated(18 * MIB, MIB, 7)).await.unwrap();
    server.take_requests();

    // 18 MiB in 4 MiB parts: five GETs, the bytes in order.
    let got = backend.get(&k, None).await.unwrap();
    assert_eq!(
        (got.meta.size, got.range.clone()),
        (18 * MIB as u64, 0..18 * MIB as u64)
    );
    assert_eq!(stream::collect(got.body).await.unwrap(), whole);
    assert_eq!(gets_of(server, "ranged/obj"), 5);

    // A range across parts: bytes 3 MiB ..= 13 MiB - 1 is three GETs (3-7, 7-11, 11-13).
    let range = strata_storage::ByteRange::Inclusive {
        first: 3 * MIB as u64,
        last: 13 * MIB as u64 - 1,
    };
    let got = backend.get(&k, Some(range)).await.unwrap();
    assert_eq!(got.range, 3 * MIB as u64..13 * MIB as u64);
    assert_eq!(stream::collect(got.body).await.unwrap(), whole.slice(3 * MIB..13 * MIB));
    assert_eq!(gets_of(server, "ranged/obj"), 3);

    // read_concurrency = 1: one GET.
    let single = S3Backend::new(&{
        let mut c = fixture.config().clone();
        c.read_concurrency = 1;
        c
    })
    .await
    .unwrap();
    let got = single.get(&k, None).await.unwrap();
    assert_eq!(stream::collect(got.body).await.unwrap(), whole);
    assert_eq!(gets_of(server, "ranged/obj"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_without_budget_streams_its_rest_in_one_request() {
    const MIB: u64 = 1 << 20;
    // A budget of two 5 MiB parts, of which downloads may take one (the other half is kept for
    // uploads): the first download reads one part ahead.
    let fixture = S3Fixture::new().await.configured(|c| {
        c.part_size = 5 * MIB;
        c.buffer_budget = 10 * MIB;
        c.read_part_size = 5 * MIB;
    });
    let server = fixture.server().unwrap();
    let backend = S3Backend::new(fixture.config()).await.unwrap();
    let k = key("budget/obj");
    backend.put(&k, generated(30 << 20, 1 << 20, 3)).await.unwrap();
    let whole = stream::collect(generated(30 << 20, 1 << 20, 3)).await.unwrap();
    server.take_requests();

    let first = backend.get(&k, None).await.unwrap();
    let second = backend.get(&k, None).await.unwrap();
    assert_eq!(stream::collect(second.body).await.unwrap(), whole);
    // The second found no room: its first part and then the other 25 MiB in one GET. The
    // first's part ahead was requested but not yet sent (nothing polled it).
    assert_eq!(gets_of(server, "budget/obj"), 3);
    assert_eq!(stream::collect(first.body).await.unwrap(), whole);
    // One part ahead at a time, as the room came back: the other five parts (six GETs in all).
    assert_eq!(gets_of(server, "budget/obj"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_replaced_during_a_download_fails_it_instead_of_mixing_bytes() {
    const MIB: usize = 1 << 20;
    let fixture = S3Fixture::new().await.configured(|c| c.read_part_size = MIB as u64);
    let backend = S3Backend::new(fixture.config()).await.unwrap();
    let k = key("replaced/obj");
    backend.put(&k, generated(4 * MIB, MIB, 1)).await.unwrap();
    let got = backend.get(&k, None).await.unwrap();
    backend.put(&k, generated(4 * MIB, MIB, 2)).await.unwrap();
    let err = stream::collect(got.body).await.unwrap_err();
    assert!(format!("{err:?}").contains("changed during the download"), "{err:?}");
}
