//! The registry's limits, in process over filesystem storage: each documented limit answers with
//! its documented error, and slow or silent clients are cut without costing anyone else.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{OCI_MANIFEST, TestRegistry, error_code, image_manifest};
use reqwest::{Method, StatusCode};
use strata_registry::Config;
use strata_storage::digest::sha256;
use strata_storage::testing::FsFixture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn registry(change: impl FnOnce(&mut Config)) -> TestRegistry {
    let mut config = Config::default();
    change(&mut config);
    TestRegistry::start(Arc::new(FsFixture::new()), config).await
}

/// A raw connection to the registry.
async fn connect(r: &TestRegistry) -> TcpStream {
    TcpStream::connect(r.base.trim_start_matches("http://")).await.unwrap()
}

/// Reads until the peer closes (or `limit` passes); what arrived.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut got)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&got).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_range_that_would_wrap_is_416() {
    let r = registry(|_| {}).await;
    let started = r.request(Method::POST, "/v2/wrap/blobs/uploads/").send().await.unwrap();
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let response = r
        .request(Method::PATCH, &location)
        .header("content-range", "0-18446744073709551615")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(response.headers()["range"], "0-0");
    assert_eq!(
        r.get(&location).await.status(),
        StatusCode::NO_CONTENT,
        "the session lives on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_per_push_and_references_per_manifest_are_bounded() {
    let r = registry(|c| {
        c.limits.max_tags_per_push = 3;
        c.limits.max_manifest_references = 4;
    })
    .await;
    let config = r.push_blob("bound", "config").await;
    let layer = r.push_blob("bound", "layer").await;
    let manifest = image_manifest(
        &config,
        &[(&layer, "application/vnd.oci.image.layer.v1.tar", vec![])],
        "",
    );
    let path = |tags: usize| {
        let query: Vec<String> = (0..tags).map(|i| format!("tag=t{i}")).collect();
        format!("/v2/bound/manifests/{}?{}", sha256(&manifest), query.join("&"))
    };
    let put = |path: String, body: Bytes| {
        r.request(Method::PUT, &path)
            .header("content-type", OCI_MANIFEST)
            .body(body)
            .send()
    };
    let response = put(path(4), manifest.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(response).await, "TAG_INVALID");
    assert_eq!(
        put(path(3), manifest.clone()).await.unwrap().status(),
        StatusCode::CREATED
    );

    let layers: Vec<(&strata_storage::Digest, &str, Vec<&str>)> = (0..4)
        .map(|_| (&layer, "application/vnd.oci.image.layer.v1.tar", vec![]))
        .collect();
    let wide = image_manifest(&config, &layers, "");
    let response = r.put_manifest("bound", "wide", OCI_MANIFEST, wide).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(response).await, "MANIFEST_INVALID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_bodies_past_the_memory_budget_get_429_until_it_frees() {
    let r = registry(|c| c.limits.buffered_body_bytes = 1 << 20).await;
    // A client that announces 700 KiB and sends it slowly holds 700 KiB of the budget.
    let mut slow = connect(&r).await;
    slow.write_all(
        format!(
            "PUT /v2/budget/manifests/slow HTTP/1.1\r\nHost: x\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {}\r\n\r\n{{",
            700 << 10
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let config = r.push_blob("budget", "config").await;
    let padding = "x".repeat(600 << 10);
    let big = image_manifest(&config, &[], &format!(r#","annotations":{{"pad":"{padding}"}}"#));
    // Refused before its body is read, the connection closes under the client: not one to
    // reuse for the next request.
    let put_big = || {
        r.request(Method::PUT, "/v2/budget/manifests/big")
            .header("content-type", OCI_MANIFEST)
            .header("connection", "close")
            .body(big.clone())
            .send()
    };
    let response = put_big().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(error_code(response).await, "TOOMANYREQUESTS");
    // A small manifest still fits.
    let small = image_manifest(&config, &[], "");
    assert_eq!(
        r.put_manifest("budget", "small", OCI_MANIFEST, small).await.status(),
        StatusCode::CREATED
    );
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = put_big().await.unwrap().status();
        if status == StatusCode::CREATED {
            break;
        }
        assert!(Instant::now() < deadline, "the budget never came back: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(r.state.bodies.available(), 1 << 20, "every reservation returned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_cut_and_its_session_stays_resumable() {
    let r = registry(|c| {
        c.server.min_body_rate_bytes = 1000;
        c.server.body_rate_window = Duration::from_secs(1);
    })
    .await;
    let started = r
        .request(Method::POST, "/v2/stall/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let first = r
        .request(Method::PATCH, &location)
        .header("content-range", "0-9")
        .body("0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);

    let mut stalled = connect(&r).await;
    stalled
        .write_all(
            format!("PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabcdefghij").as_bytes(),
        )
        .await
        .unwrap();
    let cut = Instant::now();
    let answer = read_until_closed(&mut stalled, Duration::from_secs(10)).await;
    assert!(answer.is_some(), "the stalled body was never cut");
    assert!(cut.elapsed() < Duration::from_secs(5), "cut after {:?}", cut.elapsed());

    let status = r.get(&location).await;
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        status.headers()["range"],
        "0-9",
        "resumable from the last complete chunk"
    );
    let rest = Bytes::from_static(b"abcdefghij");
    let finish = r
        .request(
            Method::PUT,
            &format!("{location}?digest={}", sha256(b"0123456789abcdefghij")),
        )
        .header("content-range", "10-19")
        .body(rest)
        .send()
        .await
        .unwrap();
    assert_eq!(finish.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_takes_too_long_gets_503() {
    let r = registry(|c| {
        c.server.request_timeout = Duration::from_secs(1);
        c.server.min_body_rate_bytes = 1;
        c.server.body_rate_window = Duration::from_secs(1);
    })
    .await;
    // A manifest PUT whose body trickles in (fast enough for the rate, not for the deadline).
    let mut trickle = connect(&r).await;
    trickle
        .write_all(
            format!("PUT /v2/slow/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: 100\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while started.elapsed() < Duration::from_secs(5) {
        let _ = trickle.write_all(b" ").await;
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), trickle.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_header_connections_are_closed_and_the_cap_holds() {
    let r = registry(|c| {
        c.server.header_read_timeout = Duration::from_secs(1);
        c.server.max_connections = 3;
    })
    .await;
    let mut silent = connect(&r).await;
    let mut slow = connect(&r).await;
    slow.write_all(b"GET /v2/ HTTP/1.1\r\nHo").await.unwrap();
    let mut third = connect(&r).await;
    third.write_all(b"GET /v2/ HTTP/1.1\r\n").await.unwrap();
    // Every slot is taken: a real request waits for one, which the header timeout frees.
    let started = Instant::now();
    let response = r.get("/v2/").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "served before a slot was free: {:?}",
        started.elapsed()
    );
    for stream in [&mut silent, &mut slow, &mut third] {
        let closed = read_until_closed(stream, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "a connection that sent no complete head stayed open");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let r = registry(|c| {
        c.server.header_read_timeout = Duration::from_secs(60);
        c.server.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut idle = connect(&r).await;
    let started = Instant::now();
    assert!(read_until_closed(&mut idle, Duration::from_secs(5)).await.is_some());
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_past_the_size_limit_are_refused_whole_or_in_chunks() {
    let r = registry(|c| c.limits.max_blob_bytes = 1 << 20).await;
    // A chunk that fits, then one that would pass the limit: 413 SIZE_INVALID, nothing appended.
    let start = r
        .request(Method::POST, "/v2/capped/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let patch = |body: Vec<u8>| {
        r.request(Method::PATCH, &location)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
    };
    assert_eq!(patch(vec![1; 600 << 10]).await.unwrap().status(), StatusCode::ACCEPTED);
    let over = patch(vec![2; 600 << 10]).await.unwrap();
    assert_eq!(over.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(over).await, "SIZE_INVALID");
    // (A fresh connection: the refusal closed the one that carried the unread chunk.)
    let fresh = reqwest::Client::new();
    let status = fresh.get(r.url(&location)).send().await.unwrap();
    assert_eq!(status.headers()["range"], "0-614399", "the refused chunk left nothing");
    // A whole blob over the limit, in one request.
    let big = vec![3u8; 2 << 20];
    let digest = sha256(&big);
    let response = fresh
        .post(r.url(&format!("/v2/capped/blobs/uploads/?digest={digest}")))
        .header("content-length", big.len().to_string())
        .body(big)
        .send()
        .await;
    // Refused from the head (before the body is read): the answer, or the connection closed
    // under the body still being sent.
    if let Ok(response) = response {
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    let stored = fresh
        .head(r.url(&format!("/v2/capped/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), StatusCode::NOT_FOUND, "nothing of it was stored");
}
