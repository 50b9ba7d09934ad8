//! The client against our registry, in process, with a misbehaving proxy between them when a test
//! needs one: round trips, multi-platform indexes with Windows entries, chunked uploads, resumed
//! downloads and pushes, retries, Basic and Bearer auth, redirects, lying servers, exit codes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::proxy::{Fail, Proxy, Rules};
use common::{LocalRegistry, all_platforms, blobs_of, context, context_with, layout_entry, store_dir, target};
use serde_json::{Value, json};
use strata_client::commands::Inspection;
use strata_client::registry::ClientOptions;
use strata_client::transfer::{Options, Selection};
use strata_client::{ClientError, Reference};
use strata_storage::oci::PlatformSpec;
use strata_tests::oci::{Entry, Image, noise, write_index_layout, write_layout};

const MIB: usize = 1024 * 1024;

/// A three-layer image whose middle layer is `big` bytes of noise.
fn write_app(dir: &Path, tag: &str, big: usize, seed: u64) -> Image {
    write_layout(
        dir,
        tag,
        &[
            vec![
                Entry::Dir("etc/"),
                Entry::File("etc/os-release", b"ID=strata\n".to_vec(), 0o644),
            ],
            vec![Entry::Named(format!("data/blob-{seed}"), noise(big, seed))],
            vec![Entry::Symlink("etc/alias", "os-release")],
        ],
    )
}

fn blob_path(dir: &Path, digest: &impl std::fmt::Display) -> std::path::PathBuf {
    let d = digest.to_string();
    dir.join("blobs/sha256").join(d.trim_start_matches("sha256:"))
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_round_trip_between_layouts_registry_and_store() {
    let registry = LocalRegistry::start().await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let image = write_app(&src, "v1", 2 * MIB, 1);
    let ctx = context(work.path());
    let host = registry.addr;
    let options = all_platforms(&ctx);

    let report = ctx
        .copy(
            &target(&format!("oci:{}:v1", src.display())),
            &target(&format!("{host}/app/one:v1")),
            &options,
        )
        .await
        .unwrap();
    assert_eq!(report.digest, image.manifest.to_string());
    assert_eq!((report.blobs_copied, report.blobs_existing), (4, 0));
    let again = ctx
        .copy(
            &target(&format!("oci:{}:v1", src.display())),
            &target(&format!("{host}/app/one:v1")),
            &options,
        )
        .await
        .unwrap();
    assert_eq!((again.blobs_copied, again.blobs_existing), (0, 4), "HEAD before upload");

    // Pull into the local store, named by the full reference.
    let one = reference(&format!("{host}/app/one:v1"));
    let pulled = ctx.download(&one, &Options::default()).await.unwrap();
    assert_eq!(pulled.digest, image.manifest.to_string());
    let store = store_dir(&ctx);
    assert_eq!(
        layout_entry(&store, &one.to_string())["digest"],
        image.manifest.to_string()
    );
    for layer in &image.layers {
        assert!(blob_path(&store, layer).exists());
    }
    let images = ctx.images().unwrap();
    assert_eq!(images.len(), 1);

    // Push from the store under another name.
    let two = reference(&format!("{host}/app/two:v2"));
    let pushed = ctx.push(&one, Some(&two), &options).await.unwrap();
    assert_eq!(pushed.digest, image.manifest.to_string());

    // Registry to registry on one host mounts every blob.
    let copied = ctx
        .copy(
            &target(&two.to_string()),
            &target(&format!("{host}/app/three:v3")),
            &options,
        )
        .await
        .unwrap();
    assert_eq!((copied.blobs_mounted, copied.blobs_copied), (4, 0));

    // And back to a layout: the same blobs, byte for byte.
    let back = work.path().join("back");
    ctx.copy(
        &target(&format!("{host}/app/three:v3")),
        &target(&format!("oci:{}:v1", back.display())),
        &options,
    )
    .await
    .unwrap();
    let mut expected = blobs_of(&src);
    expected.sort();
    assert_eq!(blobs_of(&back), expected);

    let Inspection::Json(summary) = ctx
        .inspect(&target(&format!("{host}/app/three:v3")), false, false)
        .await
        .unwrap()
    else {
        panic!("a summary");
    };
    assert_eq!(summary["digest"], image.manifest.to_string());
    assert_eq!(summary["layers"].as_array().unwrap().len(), 3);
    let tags = ctx.tags(&reference(&format!("{host}/app/one"))).await.unwrap();
    assert_eq!(tags, ["v1"]);
    let catalog = ctx.catalog(&host.to_string()).await.unwrap();
    assert_eq!(catalog, ["app/one", "app/three", "app/two"]);

    // rmi removes the name and the blobs nothing else needs.
    let freed = ctx.rmi(&one.to_string()).await.unwrap();
    assert_eq!(freed, 5, "manifest, config and three layers");
    assert!(ctx.images().unwrap().is_empty());
}

fn platform(os: &str, arch: &str, os_version: Option<&str>) -> Value {
    let mut p = json!({ "os": os, "architecture": arch });
    if let Some(v) = os_version {
        p["os.version"] = json!(v);
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_platform_indexes_copy_whole_or_by_platform() {
    let registry = LocalRegistry::start().await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let layer = |name: &'static str| vec![vec![Entry::File(name, name.as_bytes().to_vec(), 0o644)]];
    let (index, images) = write_index_layout(
        &src,
        "multi",
        &[
            (platform("linux", "amd64", None), layer("linux-amd64")),
            (platform("linux", "arm64", None), layer("linux-arm64")),
            (
                platform("windows", "amd64", Some("10.0.17763.5000")),
                layer("Files/ltsc2019"),
            ),
            (
                platform("windows", "amd64", Some("10.0.20348.2113")),
                layer("Files/ltsc2022-a"),
            ),
            (
                platform("windows", "amd64", Some("10.0.20348.2500")),
                layer("Files/ltsc2022-b"),
            ),
        ],
    );
    let ctx = context(work.path());
    let host = registry.addr;
    let all = all_platforms(&ctx);
    let report = ctx
        .copy(
            &target(&format!("oci:{}:multi", src.display())),
            &target(&format!("{host}/multi/app:1")),
            &all,
        )
        .await
        .unwrap();
    assert_eq!(report.digest, index.to_string());
    assert_eq!(report.blobs_copied, 10, "a config and a layer per platform");

    // A whole copy between repositories keeps the index digest.
    let copied = ctx
        .copy(
            &target(&format!("{host}/multi/app:1")),
            &target(&format!("{host}/multi/mirror:1")),
            &all,
        )
        .await
        .unwrap();
    assert_eq!(copied.digest, index.to_string());

    // One Windows platform: the exact build and revision.
    let pick = |platforms: &[&str], os_version: Option<&str>| Options {
        selection: Selection::Platforms(platforms.iter().map(|p| PlatformSpec::parse(p).unwrap()).collect()),
        os_version: os_version.map(String::from),
        ..Options::default()
    };
    let app = reference(&format!("{host}/multi/app:1"));
    let r = ctx
        .download(&app, &pick(&["windows/amd64"], Some("10.0.20348.2113")))
        .await
        .unwrap();
    assert_eq!(r.digest, images[3].manifest.to_string());
    // Same build, newer revision on the host: the highest revision.
    let r = ctx
        .download(&app, &pick(&["windows/amd64"], Some("10.0.20348.9000")))
        .await
        .unwrap();
    assert_eq!(r.digest, images[4].manifest.to_string());
    // containerd's syntax.
    let r = ctx
        .download(&app, &pick(&["windows(10.0.17763.1)/amd64"], None))
        .await
        .unwrap();
    assert_eq!(r.digest, images[2].manifest.to_string());
    assert_eq!(
        layout_entry(&store_dir(&ctx), &app.to_string())["digest"],
        images[2].manifest.to_string()
    );

    // Two platforms: a new index of exactly those entries, each unchanged (os.version kept).
    let r = ctx
        .download(&app, &pick(&["linux/arm64", "windows/amd64:10.0.20348.2500"], None))
        .await
        .unwrap();
    let store = store_dir(&ctx);
    let sub: Value = serde_json::from_slice(&std::fs::read(blob_path(&store, &r.digest)).unwrap()).unwrap();
    let original: Value = serde_json::from_slice(&std::fs::read(blob_path(&src, &index)).unwrap()).unwrap();
    assert_eq!(
        sub["manifests"],
        json!([original["manifests"][1], original["manifests"][4]])
    );
    assert_eq!(sub["manifests"][1]["platform"]["os.version"], "10.0.20348.2500");

    // No match: every entry and why.
    let err = ctx.download(&app, &pick(&["linux/s390x"], None)).await.unwrap_err();
    assert_eq!(err.exit_code(), 3);
    let message = err.to_string();
    for entry in [
        "linux/amd64",
        "linux/arm64",
        "windows/amd64:10.0.17763.5000",
        "windows/amd64:10.0.20348.2500",
    ] {
        assert!(message.contains(entry), "{message}");
    }
    let err = ctx
        .download(&app, &pick(&["windows/amd64"], Some("10.0.26100.1")))
        .await
        .unwrap();
    assert_eq!(
        err.digest,
        images[4].manifest.to_string(),
        "a 2025 host runs the newest 2022 image"
    );
    let err = ctx
        .download(&app, &pick(&["windows/amd64"], Some("10.0.19041.1")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("before 20348 builds must match"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_fall_back_to_chunks_on_413_and_big_blobs_go_in_chunks() {
    let registry = LocalRegistry::start().await;
    let proxy = Proxy::start(registry.addr).await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let image = write_app(&src, "v1", 300 * 1024, 2);
    let ctx = context(work.path());
    let source = target(&format!("oci:{}:v1", src.display()));

    proxy.set(Rules {
        max_put_body: Some(64 * 1024),
        ..Rules::default()
    });
    let report = ctx
        .copy(
            &source,
            &target(&format!("{}/chunked/a:v1", proxy.addr)),
            &all_platforms(&ctx),
        )
        .await
        .unwrap();
    assert_eq!(report.digest, image.manifest.to_string());
    let log = proxy.log();
    assert!(log.iter().any(|s| s.status == 413), "the proxy refused a whole blob");
    assert!(
        log.iter().any(|s| s.method == "PATCH" && s.status == 202),
        "and chunks went up instead"
    );

    // Blobs above the chunk size go up in chunks of that size, each confirmed.
    proxy.set(Rules::default());
    proxy.clear_log();
    let chunked = Options {
        chunk_size: 128 * 1024,
        ..all_platforms(&ctx)
    };
    ctx.copy(&source, &target(&format!("{}/chunked/b:v1", proxy.addr)), &chunked)
        .await
        .unwrap();
    let ranges: Vec<String> = proxy
        .log()
        .iter()
        .filter(|s| s.method == "PATCH")
        .filter_map(|s| s.content_range.clone())
        .collect();
    assert!(ranges.len() >= 3, "{ranges:?}");
    assert_eq!(ranges[0], "0-131071");
    assert_eq!(ranges[1], "131072-262143");

    let back = work.path().join("back");
    for repo in ["a", "b"] {
        let dest = back.join(repo);
        ctx.copy(
            &target(&format!("{}/chunked/{repo}:v1", registry.addr)),
            &target(&format!("oci:{}:v1", dest.display())),
            &all_platforms(&ctx),
        )
        .await
        .unwrap();
        assert_eq!(blobs_of(&dest), blobs_of(&src));
    }
}

/// Pushes `image` at `src` straight to the registry as `repo:v1`.
async fn seed(registry: &LocalRegistry, work: &Path, src: &Path, repo: &str) {
    let ctx = context(&work.join("seed"));
    ctx.copy(
        &target(&format!("oci:{}:v1", src.display())),
        &target(&format!("{}/{repo}:v1", registry.addr)),
        &all_platforms(&ctx),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_cut_mid_blob_resume_in_the_same_run_even_without_range_support() {
    let registry = LocalRegistry::start().await;
    let proxy = Proxy::start(registry.addr).await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let image = write_app(&src, "v1", 4 * MIB, 3);
    seed(&registry, work.path(), &src, "cut/app").await;
    let big = &image.layers[1];

    for (i, ignore_range) in [false, true].into_iter().enumerate() {
        let ctx = context(&work.path().join(format!("run{i}")));
        proxy.set(Rules {
            cut_blob_gets: Some((2, MIB as u64)),
            ignore_range,
            ..Rules::default()
        });
        proxy.clear_log();
        let report = ctx
            .download(&reference(&format!("{}/cut/app:v1", proxy.addr)), &Options::default())
            .await
            .unwrap();
        assert_eq!(report.digest, image.manifest.to_string());
        let size = std::fs::metadata(blob_path(&src, big)).unwrap().len();
        assert_eq!(std::fs::metadata(blob_path(&store_dir(&ctx), big)).unwrap().len(), size);
        let gets: Vec<_> = proxy
            .log()
            .into_iter()
            .filter(|s| s.method == "GET" && s.uri.contains(&big.to_string()))
            .collect();
        assert_eq!(gets.len(), 3, "two cut answers and one that finishes: {gets:?}");
        assert_eq!(gets[1].range.as_deref(), Some("bytes=1048576-"));
        // A server that ignores Range sends from 0 again: the first MiB is skipped, and the cut
        // leaves us where we were.
        let third = if ignore_range {
            "bytes=1048576-"
        } else {
            "bytes=2097152-"
        };
        assert_eq!(gets[2].range.as_deref(), Some(third));
        assert_eq!(blobs_of(&store_dir(&ctx)), blobs_of(&src));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_in_one_run_resumes_in_the_next() {
    let registry = LocalRegistry::start().await;
    let proxy = Proxy::start(registry.addr).await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let image = write_app(&src, "v1", 4 * MIB, 4);
    seed(&registry, work.path(), &src, "resume/app").await;
    let big = image.layers[1].to_string();
    let size = std::fs::metadata(blob_path(&src, &big)).unwrap().len();
    let cut = 3 * MIB as u64 / 2;
    let image_ref = reference(&format!("{}/resume/app:v1", proxy.addr));

    // First run: the layer is cut after 1.5 MiB, and then it is gone.
    proxy.set(Rules {
        cut_blob_gets: Some((1, cut)),
        fail: vec![Fail {
            method: "GET",
            path_contains: big.clone(),
            status: 404,
            retry_after: None,
            skip: 1,
            times: 1,
        }],
        ..Rules::default()
    });
    let ctx = context(work.path());
    let err = ctx.download(&image_ref, &Options::default()).await.unwrap_err();
    assert_eq!(err.exit_code(), 3, "{err}");
    assert!(ctx.images().unwrap().is_empty());

    // Second run: it asks for the rest only.
    proxy.set(Rules::default());
    proxy.clear_log();
    let ctx = context(work.path());
    let report = ctx.download(&image_ref, &Options::default()).await.unwrap();
    assert_eq!(report.digest, image.manifest.to_string());
    let gets: Vec<_> = proxy
        .log()
        .into_iter()
        .filter(|s| s.method == "GET" && s.uri.contains(&big))
        .collect();
    assert_eq!(gets.len(), 1);
    // What arrived before the cut was kept (the tail of the cut answer may be lost in transit).
    let start: u64 = gets[0]
        .range
        .as_deref()
        .unwrap()
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(start > 0 && start <= cut, "resumed at {start}");
    assert_eq!(report.bytes, size - start);
    assert_eq!(blobs_of(&store_dir(&ctx)), blobs_of(&src));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried_honouring_retry_after() {
    let registry = LocalRegistry::start().await;
    let proxy = Proxy::start(registry.addr).await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let image = write_app(&src, "v1", 64 * 1024, 5);
    seed(&registry, work.path(), &src, "retry/app").await;
    proxy.set(Rules {
        fail: vec![
            Fail {
                method: "GET",
                path_contains: "/manifests/".into(),
                status: 503,
                retry_after: None,
                skip: 0,
                times: 2,
            },
            Fail {
                method: "GET",
                path_contains: "/blobs/".into(),
                status: 429,
                retry_after: Some(1),
                skip: 0,
                times: 1,
            },
        ],
        ..Rules::default()
    });
    let ctx = context(work.path());
    let started = Instant::now();
    let report = ctx
        .download(&reference(&format!("{}/retry/app:v1", proxy.addr)), &Options::default())
        .await
        .unwrap();
    assert_eq!(report.digest, image.manifest.to_string());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    let statuses: Vec<u16> = proxy.log().iter().map(|s| s.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 1, "{statuses:?}");

    // Too many failures end in an error that names the status.
    proxy.set(Rules {
        fail: vec![Fail {
            method: "GET",
            path_contains: "/manifests/".into(),
            status: 503,
            retry_after: None,
            skip: 0,
            times: 100,
        }],
        ..Rules::default()
    });
    let ctx = context_with(
        &work.path().join("again"),
        ClientOptions {
            attempts: 3,
            backoff: Duration::from_millis(10),
            ..Default::default()
        },
    );
    let err = ctx
        .download(&reference(&format!("{}/retry/app:v1", proxy.addr)), &Options::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
}

fn write_docker_config(dir: &Path, host: &str, user: &str, pass: &str) {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    std::fs::create_dir_all(dir.join("docker")).unwrap();
    std::fs::write(
        dir.join("docker/config.json"),
        json!({ "auths": { host: { "auth": auth } } }).to_string(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_flow_gets_scoped_tokens_and_mounts_with_both_scopes() {
    let registry = LocalRegistry::start().await;
    let proxy = Proxy::start(registry.addr).await;
    proxy.set(Rules {
        bearer: Some(("alice".into(), "s3cret".into())),
        ..Rules::default()
    });
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let image = write_app(&src, "v1", 64 * 1024, 6);
    let host = proxy.addr.to_string();
    write_docker_config(work.path(), &host, "alice", "s3cret");
    let ctx = context(work.path());

    let report = ctx
        .copy(
            &target(&format!("oci:{}:v1", src.display())),
            &target(&format!("{host}/team/app:v1")),
            &all_platforms(&ctx),
        )
        .await
        .unwrap();
    assert_eq!(report.digest, image.manifest.to_string());
    let tokens = proxy.state.token_requests.lock().unwrap().clone();
    assert!(!tokens.is_empty() && tokens.len() <= 3, "tokens are cached: {tokens:?}");
    assert!(
        tokens.iter().flatten().any(|s| s == "repository:team/app:pull,push"),
        "{tokens:?}"
    );

    // A mount asks one token for the target's push and the source's pull.
    let copied = ctx
        .copy(
            &target(&format!("{host}/team/app:v1")),
            &target(&format!("{host}/team/other:v1")),
            &all_platforms(&ctx),
        )
        .await
        .unwrap();
    assert_eq!(copied.blobs_mounted, 4);
    let tokens = proxy.state.token_requests.lock().unwrap().clone();
    let grants = |t: &Vec<String>, repo: &str, action: &str| {
        t.iter().any(|s| {
            s.strip_prefix(&format!("repository:{repo}:"))
                .is_some_and(|a| a.split(',').any(|x| x == action))
        })
    };
    assert!(
        tokens
            .iter()
            .any(|t| grants(t, "team/other", "push") && grants(t, "team/app", "pull")),
        "{tokens:?}"
    );

    // Pull with a fresh context, then with a wrong password.
    let ctx = context(work.path());
    ctx.download(&reference(&format!("{host}/team/other:v1")), &Options::default())
        .await
        .unwrap();
    let bad = work.path().join("bad");
    write_docker_config(&bad, &host, "alice", "wrong");
    let err = context(&bad)
        .download(&reference(&format!("{host}/team/other:v1")), &Options::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Auth(_)), "{err:?}");
    assert_eq!(err.exit_code(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_not_sent_to_the_host_a_blob_redirects_to() {
    let registry = LocalRegistry::start().await;
    let front = Proxy::start(registry.addr).await;
    let storage = Proxy::start(registry.addr).await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let image = write_app(&src, "v1", 64 * 1024, 7);
    seed(&registry, work.path(), &src, "redirect/app").await;
    front.set(Rules {
        basic: Some(("bob".into(), "pw".into())),
        redirect_blobs: Some(format!("http://localhost:{}", storage.addr.port())),
        ..Rules::default()
    });
    write_docker_config(work.path(), &front.addr.to_string(), "bob", "pw");
    let ctx = context(work.path());
    let report = ctx
        .download(
            &reference(&format!("{}/redirect/app:v1", front.addr)),
            &Options::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.digest, image.manifest.to_string());
    assert!(
        front
            .log()
            .iter()
            .any(|s| s.authorization.as_deref().is_some_and(|a| a.starts_with("Basic ")))
    );
    let fetched = storage.log();
    assert_eq!(
        fetched.len(),
        4,
        "config and three layers came from the other host: {fetched:?}"
    );
    assert!(fetched.iter().all(|s| s.authorization.is_none()), "{fetched:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_from_a_lying_server_are_rejected_and_nothing_is_stored() {
    let registry = LocalRegistry::start().await;
    let proxy = Proxy::start(registry.addr).await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let image = write_app(&src, "v1", MIB, 8);
    seed(&registry, work.path(), &src, "liar/app").await;
    proxy.set(Rules {
        corrupt_blobs: true,
        ..Rules::default()
    });
    let ctx = context(work.path());
    let err = ctx
        .download(&reference(&format!("{}/liar/app:v1", proxy.addr)), &Options::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Integrity(_)), "{err:?}");
    assert_eq!(err.exit_code(), 5);
    let store = store_dir(&ctx);
    assert!(ctx.images().unwrap().is_empty());
    for blob in image.layers.iter().chain([&image.config]) {
        assert!(!blob_path(&store, blob).exists(), "{blob} must not be stored");
    }
    // A manifest whose bytes do not match the digest asked for is refused too.
    let by_digest = reference(&format!("{}/liar/app@{}", proxy.addr, image.manifest));
    proxy.set(Rules::default());
    ctx.download(&by_digest, &Options::default()).await.unwrap();
}

/// Runs the strata binary; returns (exit code, stdout, stderr).
fn strata(home: &Path, args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--home")
        .arg(home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_killed_mid_layer_resumes_from_the_registrys_offset() {
    let registry = LocalRegistry::start().await;
    let proxy = Proxy::start(registry.addr).await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let image = write_app(&src, "v1", 6 * MIB, 9);
    let big = image.layers[1].to_string();
    let size = std::fs::metadata(blob_path(&src, &big)).unwrap().len();
    let home = work.path().join("home");
    let source = format!("oci:{}:v1", src.display());
    let dest = format!("{}/resume/push:v1", proxy.addr);

    proxy.set(Rules {
        throttle_uploads: Some(4 * MIB as u64),
        ..Rules::default()
    });
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "--home",
            home.to_str().unwrap(),
            "-q",
            "copy",
            "--chunk-size",
            "1MiB",
            &source,
            &dest,
        ])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let confirmed = proxy
            .log()
            .iter()
            .filter(|s| s.method == "PATCH" && s.status == 202)
            .count();
        if confirmed >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no chunks confirmed: {:?}", proxy.log());
        assert!(
            child.try_wait().unwrap().is_none(),
            "the push ended before it was killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().await.unwrap();
    let records = |home: &Path| {
        std::fs::read_dir(home.join("uploads"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "json"))
            .count()
    };
    assert_eq!(records(&home), 1, "the unfinished upload is recorded");

    proxy.set(Rules::default());
    proxy.clear_log();
    let (code, stdout, stderr) = strata(&home, &["-q", "copy", "--chunk-size", "1MiB", &source, &dest]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), image.manifest.to_string());
    let log = proxy.log();
    let status = log
        .iter()
        .position(|s| s.method == "GET" && s.uri.contains("/blobs/uploads/"));
    let first_patch = log.iter().position(|s| s.method == "PATCH").unwrap();
    assert!(
        status.is_some_and(|i| i < first_patch),
        "asked the registry for the offset first: {log:?}"
    );
    let resumed_at: u64 = log[first_patch]
        .content_range
        .as_deref()
        .unwrap()
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(resumed_at >= 2 * MIB as u64, "resumed at {resumed_at}");
    // A PATCH may be refused while the registry still finishes the killed run's request; what
    // it accepted is exactly the rest.
    let accepted: u64 = log
        .iter()
        .filter(|s| s.method == "PATCH" && s.status == 202)
        .map(|s| s.body_bytes)
        .sum();
    assert_eq!(accepted, size - resumed_at, "only the rest went up: {log:?}");
    assert_eq!(records(&home), 0, "the journal is cleared");

    let back = work.path().join("back");
    let (code, _, stderr) = strata(
        &home,
        &[
            "-q",
            "copy",
            &format!("{}/resume/push:v1", registry.addr),
            &format!("oci:{}:v1", back.display()),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(blobs_of(&back), blobs_of(&src));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_data_on_stdout_and_exits_with_documented_codes() {
    let registry = LocalRegistry::start().await;
    let proxy = Proxy::start(registry.addr).await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let image = write_app(&src, "v1", 64 * 1024, 10);
    let home = work.path().join("home");
    let host = registry.addr.to_string();

    let (code, stdout, stderr) = strata(
        &home,
        &[
            "copy",
            &format!("oci:{}:v1", src.display()),
            &format!("{host}/cli/app:v1"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), image.manifest.to_string());
    let (code, stdout, _) = strata(&home, &["--format", "json", "tags", &format!("{host}/cli/app")]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap(),
        json!({ "tags": ["v1"] })
    );
    let (code, stdout, _) = strata(&home, &["inspect", "--config", &format!("{host}/cli/app:v1")]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["os"], "linux");

    let (code, _, stderr) = strata(&home, &["pull", "Not A Reference"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with("strata: ") && stderr.lines().count() == 1,
        "{stderr}"
    );
    let (code, _, stderr) = strata(&home, &["pull", &format!("{host}/cli/app:missing")]);
    assert_eq!(code, 3, "{stderr}");
    proxy.set(Rules {
        basic: Some(("u".into(), "p".into())),
        ..Rules::default()
    });
    let (code, _, stderr) = strata(&home, &["pull", &format!("{}/cli/app:v1", proxy.addr)]);
    assert_eq!(code, 4, "{stderr}");
    proxy.set(Rules {
        corrupt_blobs: true,
        ..Rules::default()
    });
    let (code, _, stderr) = strata(&home, &["pull", &format!("{}/cli/app:v1", proxy.addr)]);
    assert_eq!(code, 5, "{stderr}");

    // login checks the credentials, stores them in docker's config, logout removes them.
    proxy.set(Rules {
        basic: Some(("u".into(), "p".into())),
        ..Rules::default()
    });
    let (code, _, stderr) = strata(&home, &["login", "-u", "u", "-p", "wrong", &proxy.addr.to_string()]);
    assert_eq!(code, 4, "{stderr}");
    let (code, _, stderr) = strata(&home, &["login", "-u", "u", "-p", "p", &proxy.addr.to_string()]);
    assert_eq!(code, 0, "{stderr}");
    let config = std::fs::read_to_string(home.join("docker/config.json")).unwrap();
    assert!(config.contains(&proxy.addr.to_string()), "{config}");
    let (code, stdout, stderr) = strata(&home, &["pull", &format!("{}/cli/app:v1", proxy.addr)]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), image.manifest.to_string());
    let (code, _, _) = strata(&home, &["logout", &proxy.addr.to_string()]);
    assert_eq!(code, 0);
    assert!(
        !std::fs::read_to_string(home.join("docker/config.json"))
            .unwrap()
            .contains(&proxy.addr.to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_source_blob_is_refused_by_the_registry_and_nothing_is_tagged() {
    let registry = LocalRegistry::start().await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let image = write_app(&src, "v1", 256 * 1024, 11);
    let path = blob_path(&src, &image.layers[1]);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let ctx = context(work.path());
    let err = ctx
        .copy(
            &target(&format!("oci:{}:v1", src.display())),
            &target(&format!("{}/bad/app:v1", registry.addr)),
            &all_platforms(&ctx),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Integrity(_)), "{err:?}");
    assert_eq!(err.exit_code(), 5);
    let missing = ctx
        .inspect(&target(&format!("{}/bad/app:v1", registry.addr)), true, false)
        .await
        .unwrap_err();
    assert_eq!(missing.exit_code(), 3, "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_go_through_docker_archives_both_ways() {
    let registry = LocalRegistry::start().await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let image = write_app(&src, "v1", 128 * 1024, 12);
    let home = work.path().join("home");
    let host = registry.addr.to_string();
    let archive = work.path().join("app.tar");

    let (code, _, stderr) = strata(
        &home,
        &[
            "-q",
            "copy",
            &format!("oci:{}:v1", src.display()),
            &format!("{host}/arch/app:v1"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = strata(
        &home,
        &[
            "-q",
            "copy",
            &format!("{host}/arch/app:v1"),
            &format!("docker-archive:{}", archive.display()),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = strata(&home, &["inspect", &format!("docker-archive:{}", archive.display())]);
    assert_eq!(code, 0, "{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    let layers: Vec<String> = serde_json::from_value(summary["layers"].clone()).unwrap();
    assert_eq!(
        layers,
        image.layers.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "layer bytes kept"
    );

    // Named by the source reference; read back by that name into another repository.
    let (code, _, stderr) = strata(
        &home,
        &[
            "-q",
            "copy",
            &format!("docker-archive:{}:{host}/arch/app:v1", archive.display()),
            &format!("{host}/arch/back:v1"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = strata(&home, &["inspect", "--config", &format!("{host}/arch/back:v1")]);
    assert_eq!(code, 0);
    let config: Value = serde_json::from_str(&stdout).unwrap();
    let original: Value = serde_json::from_slice(&std::fs::read(blob_path(&src, &image.config)).unwrap()).unwrap();
    assert_eq!(config, original);
    let (code, _, stderr) = strata(
        &home,
        &[
            "copy",
            &format!("docker-archive:{}:nope:v9", archive.display()),
            &format!("{host}/arch/x:v1"),
        ],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(
        !home.join("tmp").exists() || std::fs::read_dir(home.join("tmp")).unwrap().count() == 0,
        "scratch layouts removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_go_through_a_mirror_and_fall_back_to_the_registry() {
    // The origin, and a strata pull-through cache of it (named by the origin's host, as
    // `?ns=` names it).
    let origin = LocalRegistry::start().await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let image = write_layout(&src, "v1", &[vec![Entry::File("etc/motd", b"hello\n".to_vec(), 0o644)]]);
    let host = origin.addr.to_string();
    let publisher = context(&work.path().join("publisher"));
    publisher
        .copy(
            &target(&format!("oci:{}:v1", src.display())),
            &target(&format!("{host}/team/app:v1")),
            &Options::default(),
        )
        .await
        .unwrap();
    let mirror = LocalRegistry::start_with(strata_registry::Config {
        upstreams: vec![strata_registry::config::Upstream {
            name: host.clone(),
            url: format!("http://{host}"),
            prefix: "origin".into(),
            username: None,
            password_file: None,
            tag_ttl: Duration::from_secs(600),
            on_demand: true,
            sync: Vec::new(),
        }],
        ..strata_registry::Config::default()
    })
    .await;
    let with_mirrors = |mirrors: Vec<String>, name: &str| {
        context_with(
            &work.path().join(name),
            ClientOptions {
                backoff: Duration::from_millis(20),
                attempts: 2,
                mirrors,
                ..Default::default()
            },
        )
    };

    // Through the mirror: it now holds the image under its own name.
    let ctx = with_mirrors(vec![format!("http://{}", mirror.addr)], "through");
    let pulled = ctx
        .download(&reference(&format!("{host}/team/app:v1")), &Options::default())
        .await
        .unwrap();
    assert_eq!(pulled.digest, image.manifest.to_string());
    let cached = reqwest::Client::new()
        .get(format!("http://{}/v2/origin/team/app/manifests/v1", mirror.addr))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 200, "the mirror cached it");

    // A dead mirror first: the next one (here: the registry itself) serves.
    let dead = format!("http://127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let ctx = with_mirrors(vec![dead], "fallback");
    let pulled = ctx
        .download(&reference(&format!("{host}/team/app:v1")), &Options::default())
        .await
        .unwrap();
    assert_eq!(pulled.digest, image.manifest.to_string());

    // Mirrors from the settings file serve the registries they name, and only those.
    // The catalog lists what the mirror holds without asking its upstream.
    let cached = |repository: &str| {
        let (url, name) = (
            format!("http://{}/v2/_catalog", mirror.addr),
            format!("origin/team/{repository}"),
        );
        async move {
            let catalog: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            catalog["repositories"].as_array().unwrap().iter().any(|r| *r == name)
        }
    };
    for (repository, registries, through) in [
        ("elsewhere", vec!["registry.elsewhere.example".to_owned()], false),
        ("named", vec![host.clone()], true),
        ("every", vec![], true),
    ] {
        publisher
            .copy(
                &target(&format!("oci:{}:v1", src.display())),
                &target(&format!("{host}/team/{repository}:v1")),
                &Options::default(),
            )
            .await
            .unwrap();
        let ctx = with_mirrors(vec![], repository).with_mirrors(vec![strata_client::settings::Mirror {
            url: format!("http://{}", mirror.addr),
            registries,
        }]);
        let pulled = ctx
            .download(&reference(&format!("{host}/team/{repository}:v1")), &Options::default())
            .await
            .unwrap();
        assert_eq!(pulled.digest, image.manifest.to_string());
        assert_eq!(cached(repository).await, through, "{repository}");
    }

    // The binary reads the file named by STRATA_CONFIG; a broken one is a one-line error.
    let settings = work.path().join("settings.toml");
    std::fs::write(&settings, "[[mirror]]\nurl = \"gopher://x\"\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["--home", &work.path().join("cli").display().to_string(), "pull"])
        .arg(format!("{host}/team/app:v1"))
        .env("STRATA_CONFIG", &settings)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("settings.toml") && stderr.contains("gopher") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
}
