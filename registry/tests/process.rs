//! The registry as real processes: killed with SIGKILL mid-upload and restarted, two replicas on
//! one storage (filesystem directory or S3 bucket), and a graceful SIGTERM.

mod common;

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::process::{Registry, Storage};
use reqwest::{Method, StatusCode};
use strata_storage::digest::sha256;

async fn start_upload(client: &reqwest::Client, registry: &Registry, name: &str) -> String {
    let response = client
        .post(registry.url(&format!("/v2/{name}/blobs/uploads/")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.headers()["location"].to_str().unwrap().to_string()
}

async fn send_chunk(client: &reqwest::Client, registry: &Registry, location: &str, start: usize, data: &Bytes) {
    let response = client
        .request(Method::PATCH, registry.url(location))
        .header("content-range", format!("{start}-{}", start + data.len() - 1))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "{}",
        response.text().await.unwrap()
    );
    assert_eq!(
        response.headers()["range"],
        format!("0-{}", start + data.len() - 1).as_str()
    );
}

async fn finish(client: &reqwest::Client, registry: &Registry, location: &str, whole: &[u8], name: &str) {
    let digest = sha256(whole);
    let response = client
        .put(registry.url(&format!("{location}?digest={digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        response.text().await.unwrap()
    );
    let blob = client
        .get(registry.url(&format!("/v2/{name}/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert!(blob.bytes().await.unwrap() == whole);
}

fn chunks() -> (Bytes, Bytes, Vec<u8>) {
    let one = strata_storage::testing::conformance::pattern(6 * 1024 * 1024 + 3, 1);
    let two = strata_storage::testing::conformance::pattern(1024 * 1024, 2);
    let whole = [one.clone(), two.clone()].concat();
    (one, two, whole)
}

async fn killed_and_restarted_registry_continues_the_upload(storage: Storage) {
    let client = reqwest::Client::new();
    let (one, two, whole) = chunks();
    let mut first = Registry::spawn(&storage, None).await;
    let location = start_upload(&client, &first, "restart").await;
    send_chunk(&client, &first, &location, 0, &one).await;
    first.kill_hard();
    let port = first.port();
    drop(first);

    let second = Registry::spawn(&storage, Some(port)).await;
    let status = client.get(second.url(&location)).send().await.unwrap();
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(status.headers()["range"], format!("0-{}", one.len() - 1).as_str());
    send_chunk(&client, &second, &location, one.len(), &two).await;
    finish(&client, &second, &location, &whole, "restart").await;
}

async fn a_second_replica_continues_an_upload_the_first_started(storage: Storage) {
    let client = reqwest::Client::new();
    let (one, two, whole) = chunks();
    let (a, b) = (
        Registry::spawn(&storage, None).await,
        Registry::spawn(&storage, None).await,
    );
    let location = start_upload(&client, &a, "replicas").await;
    send_chunk(&client, &b, &location, 0, &one).await;
    send_chunk(&client, &a, &location, one.len(), &two).await;
    finish(&client, &b, &location, &whole, "replicas").await;
    let digest = sha256(&whole);
    let from_a = client
        .head(a.url(&format!("/v2/replicas/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(from_a.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_killed_and_restarted_registry_continues_the_upload() {
    let dir = tempfile::tempdir().unwrap();
    killed_and_restarted_registry_continues_the_upload(Storage::Fs(dir.path().to_owned())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_killed_and_restarted_registry_continues_the_upload() {
    let (_server, storage) = Storage::s3("restart").await;
    killed_and_restarted_registry_continues_the_upload(storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_a_second_replica_continues_an_upload_the_first_started() {
    let dir = tempfile::tempdir().unwrap();
    a_second_replica_continues_an_upload_the_first_started(Storage::Fs(dir.path().to_owned())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_a_second_replica_continues_an_upload_the_first_started() {
    let (_server, storage) = Storage::s3("replicas").await;
    a_second_replica_continues_an_upload_the_first_started(storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::spawn(&Storage::Fs(dir.path().to_owned()), None).await;
    let client = reqwest::Client::new();
    let location = start_upload(&client, &registry, "term").await;
    // A slow streamed PATCH is in flight when SIGTERM arrives.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"first part "))]).chain(
        futures::stream::once(async move {
            let _ = rx.await;
            Ok(Bytes::from_static(b"second part"))
        }),
    );
    use futures::StreamExt;
    let url = registry.url(&location);
    let request = tokio::spawn(async move {
        client
            .request(Method::PATCH, url)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = registry.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        registry.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );
    tx.send(()).unwrap();
    let response = request.await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["range"], "0-21");
    let status = tokio::task::spawn_blocking(move || {
        let status = registry.child.wait().unwrap();
        drop(registry);
        status
    })
    .await
    .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn start_up_errors_are_one_line_even_with_rust_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let missing = dir.path().join("missing.toml");
    let cases: [(&[&str], &str); 2] = [
        (&["--listen", &address], "listen on"),
        (&["--config", missing.to_str().unwrap()], "missing.toml"),
    ];
    let start = |args: &[&str], verbose: bool| {
        let output = Command::new(env!("CARGO_BIN_EXE_strata-registry"))
            .args(args)
            .args(verbose.then_some("-v"))
            .arg("--root")
            .arg(dir.path().join("data"))
            .env("RUST_BACKTRACE", "1")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    for (args, names) in cases {
        let stderr = start(args, false);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("strata-registry: ") && stderr.contains(names),
            "{stderr}"
        );
        // With -v the details come back, backtrace included.
        let stderr = start(args, true);
        assert!(stderr.contains("backtrace"), "{args:?}: {stderr}");
    }
    drop(busy);
}

#[test]
fn a_public_address_without_auth_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_strata-registry"))
        .args(["--listen", "0.0.0.0:0", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("without [auth]") && stderr.contains("--insecure-open"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_tokens_never_reach_the_log() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("very-secret-password", 4).unwrap();
    std::fs::write(dir.path().join("htpasswd"), format!("alice:{hash}\n")).unwrap();
    let config = dir.path().join("registry.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nhtpasswd = \"{}\"\ntoken.key = \"{}\"\n[[access]]\nrepositories = [\"**\"]\nusers = [\"alice\"]\nactions = [\"pull\", \"push\"]\n",
            dir.path().join("htpasswd").display(),
            dir.path().join("token.pem").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("registry.log");
    let registry = Registry::start(
        &Storage::Fs(dir.path().join("data")),
        None,
        common::process::Start {
            args: vec!["--config".into(), config.display().to_string()],
            env: vec![("RUST_LOG", "debug".into())],
            log: Some(log.clone()),
            ..Default::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:very-secret-password");
    let token: serde_json::Value = client
        .get(registry.url("/token?service=strata-registry&scope=repository:x:pull"))
        .header("authorization", format!("Basic {basic}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    for auth in [
        format!("Bearer {token}"),
        format!("Basic {basic}"),
        "Basic d3Jvbmc6d3Jvbmc=".into(),
    ] {
        let _ = client
            .get(registry.url("/v2/x/tags/list"))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
    }
    drop(registry);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("request"), "the log has request lines:\n{log}");
    for secret in [
        "very-secret-password",
        basic.as_str(),
        token.as_str(),
        "d3Jvbmc6d3Jvbmc=",
    ] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
}
