//! The registry process under hostile and unlucky traffic: connection floods past the open-file
//! limit, bursts of large slow manifests, and SIGTERM with requests half sent. Each test checks
//! what a well-behaved client sees meanwhile, and what the process costs.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::process::{Registry, Start, Storage};
use reqwest::StatusCode;
use strata_storage::digest::sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Lets this test process hold thousands of sockets.
fn raise_own_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .unwrap();
}

async fn connect(registry: &Registry) -> Option<TcpStream> {
    TcpStream::connect(registry.base.trim_start_matches("http://"))
        .await
        .ok()
}

/// A push (config blob, layer blob, manifest) and a pull of it, as a client would.
async fn push_and_pull(client: &reqwest::Client, registry: &Registry, round: usize) {
    let name = format!("steady/app{}", round % 3);
    let mut digests = Vec::new();
    for part in ["config", "layer"] {
        let data = Bytes::from(format!("{part} of round {round}"));
        let (digest, size) = (sha256(&data), data.len());
        let url = registry.url(&format!("/v2/{name}/blobs/uploads/?digest={digest}"));
        let response = client.post(url).body(data).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "round {round}");
        digests.push((digest, size));
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        digests[0].0, digests[0].1, digests[1].0, digests[1].1
    );
    let response = client
        .put(registry.url(&format!("/v2/{name}/manifests/r{round}")))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "round {round}");
    let pulled = client
        .get(registry.url(&format!("/v2/{name}/manifests/r{round}")))
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), StatusCode::OK);
    assert_eq!(pulled.bytes().await.unwrap(), manifest.as_bytes());
    let blob = client
        .get(registry.url(&format!("/v2/{name}/blobs/{}", digests[1].0)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        blob.bytes().await.unwrap(),
        format!("layer of round {round}").as_bytes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_header_floods_past_the_soft_file_limit_do_not_stop_a_client() {
    raise_own_open_file_limit();
    let dir = tempfile::tempdir().unwrap();
    // systemd's default: a soft limit of 1024 under a high hard limit.
    let registry = Registry::start(
        &Storage::Fs(dir.path().join("data")),
        None,
        Start {
            nofile: Some((1024, 8192)),
            ..Start::default()
        },
    )
    .await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", registry.pid())).unwrap();
    let open_files = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    assert!(
        open_files.contains("8192                 8192"),
        "soft limit not raised: {open_files}"
    );

    let mut flood = Vec::new();
    for i in 0..1600 {
        let Some(mut stream) = connect(&registry).await else {
            panic!("the registry stopped accepting at connection {i}");
        };
        if i % 2 == 1 {
            // Half a request head, then nothing.
            stream
                .write_all(b"GET /v2/ HTTP/1.1\r\nHost: flood\r\nX-Slow: ")
                .await
                .unwrap();
        }
        flood.push(stream);
    }
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let started = Instant::now();
    for round in 0..20 {
        push_and_pull(&client, &registry, round).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "20 push/pull rounds beside the flood took {:?}",
        started.elapsed()
    );
    drop(flood);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_at_the_hard_file_limit_leaves_room_for_open_connections_and_heals() {
    raise_own_open_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("registry.log");
    let registry = Registry::start(
        &Storage::Fs(dir.path().join("data")),
        None,
        Start {
            nofile: Some((128, 128)),
            env: vec![("STRATA_SERVER_HEADER_READ_TIMEOUT", "2s".into())],
            log: Some(log.clone()),
            ..Start::default()
        },
    )
    .await;
    // Only 128 descriptors. A client whose connection was open before the flood keeps being
    // served (its requests need files too).
    let client = reqwest::Client::new();
    push_and_pull(&client, &registry, 0).await;
    let mut flood = Vec::new();
    for _ in 0..300 {
        if let Some(stream) = connect(&registry).await {
            flood.push(stream);
        }
    }
    push_and_pull(&client, &registry, 1).await;
    // The flood's connections time out; new connections are served again.
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = tokio::time::timeout(Duration::from_secs(3), fresh.get(registry.url("/v2/")).send())
            .await
            .is_ok_and(|r| r.is_ok_and(|r| r.status() == StatusCode::OK));
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "new connections were never served again");
    }
    push_and_pull(&fresh, &registry, 2).await;
    drop(flood);
    // The connection cap kept a quarter of the descriptors for storage: nothing failed.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_large_slow_manifests_stays_within_the_memory_budget() {
    raise_own_open_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let budget: u64 = 64 << 20;
    let registry = Registry::start(
        &Storage::Fs(dir.path().join("data")),
        None,
        Start {
            env: vec![("STRATA_LIMITS_BUFFERED_BODY_BYTES", budget.to_string())],
            ..Start::default()
        },
    )
    .await;
    let baseline = registry.status_kib("VmRSS");
    let body_len: usize = (4 << 20) - 4096;
    let body = vec![b' '; body_len - 1];
    let (mut held, mut refused) = (Vec::new(), 0);
    for i in 0..200 {
        let mut stream = connect(&registry).await.unwrap();
        let head = format!(
            "PUT /v2/burst/manifests/m{i} HTTP/1.1\r\nHost: x\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {body_len}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut answer)).await {
            Ok(Ok(n)) if n > 0 => {
                let answer = String::from_utf8_lossy(&answer[..n]);
                assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
                assert!(answer.to_ascii_lowercase().contains("retry-after"), "{answer}");
                refused += 1;
            }
            _ => {
                // Accepted: everything but the last byte, and hold it.
                stream.write_all(&body).await.unwrap();
                held.push(stream);
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fits = (budget / body_len as u64) as usize;
    assert_eq!(held.len(), fits, "{refused} refused");
    let peak = registry.status_kib("VmHWM");
    assert!(
        peak < baseline + (budget >> 10) + 48 * 1024,
        "peak RSS {peak} KiB (baseline {baseline} KiB, budget {} KiB)",
        budget >> 10
    );

    // 20 manifests naming 10,000 missing blobs each, at once: refused fast, memory bounded.
    drop(held);
    let client = reqwest::Client::new();
    let layers: Vec<String> = (0..9_999)
        .map(|i| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":1}}"#,
                sha256(format!("missing {i}").as_bytes())
            )
        })
        .collect();
    let wide = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":1}},"layers":[{}]}}"#,
        sha256(b"missing config"),
        layers.join(",")
    );
    let puts = (0..20).map(|i| {
        client
            .put(registry.url(&format!("/v2/wide/manifests/w{i}")))
            .header("content-type", OCI_MANIFEST)
            .body(wide.clone())
            .send()
    });
    let started = Instant::now();
    for response in futures::future::join_all(puts).await {
        assert_eq!(response.unwrap().status(), StatusCode::BAD_REQUEST);
    }
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    let after = registry.status_kib("VmRSS");
    eprintln!(
        "RSS: baseline {baseline} KiB, peak {peak} KiB with {fits} held and {refused} refused, {after} KiB after"
    );
    assert!(
        after < baseline + (budget >> 10) + 48 * 1024,
        "RSS after the bursts {after} KiB (baseline {baseline} KiB)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_half_sent_requests_exits_by_the_deadline_and_uploads_resume() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::Fs(dir.path().join("data"));
    let start = || Start {
        env: vec![("STRATA_SERVER_SHUTDOWN_TIMEOUT", "2s".into())],
        ..Start::default()
    };
    let mut registry = Registry::start(&storage, None, start()).await;
    let client = reqwest::Client::new();
    let mut sessions = Vec::new();
    let mut half_sent = Vec::new();
    for i in 0..10 {
        let started = client
            .post(registry.url(&format!("/v2/cut/b{i}/blobs/uploads/")))
            .send()
            .await
            .unwrap();
        let location = started.headers()["location"].to_str().unwrap().to_owned();
        let first = client
            .patch(registry.url(&location))
            .header("content-range", "0-4")
            .body("first")
            .send()
            .await
            .unwrap();
        assert_eq!(first.status(), StatusCode::ACCEPTED);
        let mut stream = connect(&registry).await.unwrap();
        let head = format!("PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nhalf of it");
        stream.write_all(head.as_bytes()).await.unwrap();
        half_sent.push(stream);
        sessions.push(location);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    registry.terminate();
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = registry.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(stopping.elapsed() < Duration::from_secs(5), "{:?}", stopping.elapsed());
    drop(half_sent);

    let port = registry.port();
    drop(registry);
    let registry = Registry::start(&storage, Some(port), start()).await;
    for location in &sessions {
        let status = client.get(registry.url(location)).send().await.unwrap();
        assert_eq!(status.status(), StatusCode::NO_CONTENT, "{location}");
        assert_eq!(status.headers()["range"], "0-4");
        let finished = client
            .put(registry.url(&format!("{location}?digest={}", sha256(b"first second"))))
            .header("content-range", "5-11")
            .body(" second")
            .send()
            .await
            .unwrap();
        assert_eq!(finished.status(), StatusCode::CREATED, "{location}");
    }
}
