//! The pull-through cache, with another strata registry (in process) as the upstream: cold and
//! warm pulls by tag, digest and `?ns=`, mirrors read-only, tags revalidated after their TTL and
//! served stale when the upstream is gone, a corrupt upstream blob stored nowhere and refused
//! to the client, concurrent cold pulls sharing one upstream download, an upstream behind
//! Bearer tokens, the size limit; and real clients through it: skopeo, and containerd with the
//! cache as its mirror in `hosts.toml`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestRegistry;
use common::images::{Layer, config};
use reqwest::{Method, StatusCode};
use strata_registry::Config;
use strata_storage::testing::FsFixture;

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// `url` mirrored under prefix `mirror`, named `upstream.test`, tags kept for `ttl`.
fn mirror_of(url: &str, ttl: Duration) -> Config {
    Config {
        upstreams: vec![strata_registry::config::Upstream {
            name: "upstream.test".into(),
            url: url.to_owned(),
            prefix: "mirror".into(),
            username: None,
            password_file: None,
            tag_ttl: ttl,
            on_demand: true,
            sync: Vec::new(),
        }],
        ..Config::default()
    }
}

/// A cache of `upstream` (see [`mirror_of`]).
async fn cache_of(upstream: &TestRegistry, ttl: Duration) -> TestRegistry {
    TestRegistry::start(Arc::new(FsFixture::new()), mirror_of(&upstream.base, ttl)).await
}

async fn manifest(r: &TestRegistry, path: &str) -> (StatusCode, Option<String>) {
    let response = r
        .request(Method::GET, path)
        .header("accept", MANIFEST_ACCEPT)
        .send()
        .await
        .unwrap();
    let digest = response
        .headers()
        .get("docker-content-digest")
        .map(|d| d.to_str().unwrap().to_owned());
    (response.status(), digest)
}

/// Pushes a linux/amd64 image of one layer to `r` (config `extra` merged in).
async fn linux_image(
    r: &TestRegistry,
    repository: &str,
    tag: &str,
    extra: serde_json::Value,
    layer: &[u8],
) -> common::images::Pushed {
    r.push_real_image(
        repository,
        Some(tag),
        config("linux", "amd64", None, extra),
        &[Layer::Tar(layer)],
        serde_json::json!({}),
    )
    .await
}

/// Upstream GETs of blobs so far, from its metrics.
async fn upstream_blob_gets(upstream: &TestRegistry) -> u64 {
    let metrics = upstream.get("/metrics").await.text().await.unwrap();
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("strata_http_requests_total{")
                && l.contains("endpoint=\"blob\"")
                && l.contains("method=\"GET\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_go_through_the_cache_which_stays_read_only_and_serves_when_the_upstream_is_gone() {
    let upstream = TestRegistry::fs().await;
    let layer = vec![7u8; 3 << 20];
    let image = linux_image(&upstream, "library/app", "1.0", serde_json::json!({}), &layer).await;
    let cache = cache_of(&upstream, Duration::from_secs(3600)).await;

    // Cold: by tag through the prefix, by digest, and with containerd's ?ns=.
    let (status, digest) = manifest(&cache, "/v2/mirror/library/app/manifests/1.0").await;
    assert_eq!(
        (status, digest.as_deref()),
        (StatusCode::OK, Some(image.digest.to_string().as_str()))
    );
    let (status, _) = manifest(&cache, &format!("/v2/mirror/library/app/manifests/{}", image.digest)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, digest) = manifest(&cache, "/v2/library/app/manifests/1.0?ns=upstream.test").await;
    assert_eq!(
        (status, digest.as_deref()),
        (StatusCode::OK, Some(image.digest.to_string().as_str()))
    );
    let layer_digest = strata_storage::digest::sha256(&layer);
    let blob = cache.get(&format!("/v2/mirror/library/app/blobs/{layer_digest}")).await;
    assert_eq!(blob.status(), StatusCode::OK);
    let got = blob.bytes().await.unwrap();
    assert_eq!(
        (got.len(), strata_storage::digest::sha256(&got)),
        (layer.len(), layer_digest.clone())
    );
    let before = upstream_blob_gets(&upstream).await;
    let metrics = cache.get("/metrics").await.text().await.unwrap();
    let fetched = metrics
        .lines()
        .find_map(|l| l.strip_prefix("strata_upstream_bytes_total "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(
        fetched.is_some_and(|b| b >= layer.len() as f64),
        "the blob's bytes are counted: {fetched:?}"
    );

    // Warm: no upstream request; and the cache is read-only to clients.
    let again = cache
        .get(&format!("/v2/library/app/blobs/{layer_digest}?ns=upstream.test"))
        .await;
    assert_eq!(again.bytes().await.unwrap().len(), layer.len());
    assert_eq!(upstream_blob_gets(&upstream).await, before, "served from the cache");
    for (method, path) in [
        (Method::POST, "/v2/mirror/library/app/blobs/uploads/"),
        (Method::PUT, "/v2/mirror/library/app/manifests/evil"),
        (Method::DELETE, "/v2/mirror/library/app/manifests/1.0"),
    ] {
        let refused = cache.request(method.clone(), path).body("{}").send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{method} {path}");
    }
    let tags: serde_json::Value = cache
        .get("/v2/mirror/library/app/tags/list")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["1.0"]));

    // The upstream gone: what is cached still pulls; what is not says the upstream is down.
    let missing = upstream.push_blob("library/app", vec![9u8; 100]).await;
    drop(upstream);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        manifest(&cache, "/v2/mirror/library/app/manifests/1.0").await.0,
        StatusCode::OK
    );
    let blob = cache.get(&format!("/v2/mirror/library/app/blobs/{layer_digest}")).await;
    assert_eq!(blob.bytes().await.unwrap().len(), layer.len());
    let down = cache.get(&format!("/v2/mirror/library/app/blobs/{missing}")).await;
    assert_eq!(down.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_blob_over_the_size_limit_is_not_fetched() {
    let upstream = TestRegistry::fs().await;
    let big = upstream.push_blob("team/app", vec![1u8; 4096]).await;
    let mut config = mirror_of(&upstream.base, Duration::from_secs(60));
    config.limits.max_blob_bytes = 1024;
    let cache = TestRegistry::start(Arc::new(FsFixture::new()), config).await;
    let refused = cache.get(&format!("/v2/mirror/team/app/blobs/{big}")).await;
    assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!cache.state.blobs.exists(&big).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_rechecked_after_their_ttl_and_served_stale_when_the_upstream_fails() {
    let upstream = TestRegistry::fs().await;
    let first = linux_image(
        &upstream,
        "team/app",
        "latest",
        serde_json::json!({"created": "1"}),
        b"one",
    )
    .await;
    let cache = cache_of(&upstream, Duration::from_secs(2)).await;
    let path = "/v2/mirror/team/app/manifests/latest";
    assert_eq!(manifest(&cache, path).await.1, Some(first.digest.to_string()));

    let second = linux_image(
        &upstream,
        "team/app",
        "latest",
        serde_json::json!({"created": "2"}),
        b"two",
    )
    .await;
    assert_eq!(
        manifest(&cache, path).await.1,
        Some(first.digest.to_string()),
        "within the TTL"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        manifest(&cache, path).await.1,
        Some(second.digest.to_string()),
        "after the TTL"
    );

    drop(upstream);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        manifest(&cache, path).await,
        (StatusCode::OK, Some(second.digest.to_string())),
        "stale, served"
    );
    assert_eq!(
        manifest(&cache, "/v2/mirror/team/other/manifests/latest").await.0,
        StatusCode::BAD_GATEWAY
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_upstream_blob_is_stored_nowhere_and_concurrent_pulls_share_one_download() {
    let fixture = Arc::new(FsFixture::new());
    let upstream = TestRegistry::start(fixture.clone(), Config::default()).await;
    let layer: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    linux_image(&upstream, "team/big", "v1", serde_json::json!({}), &layer).await;
    let digest = strata_storage::digest::sha256(&layer);
    let cache = cache_of(&upstream, Duration::from_secs(3600)).await;
    let path = format!("/v2/mirror/team/big/blobs/{digest}");

    // The upstream's copy goes bad (same size): the client's download fails, nothing is kept.
    let hex = digest.to_string().split_once(':').unwrap().1.to_owned();
    let file = fixture.root().join("blobs/sha256").join(&hex[..2]).join(&hex);
    let good = std::fs::read(&file).unwrap();
    let mut bad = good.clone();
    bad[1000] ^= 0xff;
    std::fs::write(&file, &bad).unwrap();
    let response = cache.get(&path).await;
    assert_eq!(response.status(), StatusCode::OK, "headers go before the bytes");
    assert!(
        response.bytes().await.is_err(),
        "the body ends in an error, not a wrong blob"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!cache.state.blobs.exists(&digest).await.unwrap(), "nothing stored");

    // Repaired: 8 pulls at once, one upstream download, every client gets the right bytes.
    std::fs::write(&file, &good).unwrap();
    let before = upstream_blob_gets(&upstream).await;
    let pulls: Vec<_> = (0..8)
        .map(|_| {
            let request = cache.request(Method::GET, &path);
            tokio::spawn(async move { request.send().await.unwrap().bytes().await.unwrap() })
        })
        .collect();
    for pull in pulls {
        assert_eq!(strata_storage::digest::sha256(&pull.await.unwrap()), digest);
    }
    assert_eq!(upstream_blob_gets(&upstream).await - before, 1, "one upstream download");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_needs_a_bearer_token_is_signed_in_to() {
    use strata_registry::config::{Action, Auth, Token};
    let dir = tempfile::tempdir().unwrap();
    let open = TestRegistry::fs().await;
    let image = linux_image(&open, "team/app", "v1", serde_json::json!({}), b"secret layer").await;
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("puller:{}\n", bcrypt::hash("p-pass", 4).unwrap())).unwrap();
    let secured = open
        .replica(Config {
            auth: Some(Auth {
                htpasswd: Some(htpasswd),
                token: Some(Token {
                    key: Some(dir.path().join("token.pem")),
                    ..Token::default()
                }),
                ..Auth::default()
            }),
            access: vec![common::rule(&["team/**"], &["puller"], &[Action::Pull])],
            ..Config::default()
        })
        .await;
    let mirror = |password: &str| {
        let file = dir.path().join(format!("password-{password}"));
        std::fs::write(&file, format!("{password}\n")).unwrap();
        let mut config = mirror_of(&secured.base, Duration::from_secs(60));
        config.upstreams[0].username = Some("puller".into());
        config.upstreams[0].password_file = Some(file);
        config
    };
    let cache = TestRegistry::start(Arc::new(FsFixture::new()), mirror("p-pass")).await;
    assert_eq!(
        manifest(&cache, "/v2/mirror/team/app/manifests/v1").await,
        (StatusCode::OK, Some(image.digest.to_string()))
    );
    let refused = TestRegistry::start(Arc::new(FsFixture::new()), mirror("wrong")).await;
    assert_eq!(
        manifest(&refused, "/v2/mirror/team/app/manifests/v1").await.0,
        StatusCode::FORBIDDEN
    );
}

/// Runs a command; panics with its output unless it succeeds.
async fn run(program: &str, args: &[&str]) -> String {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {program} (scripts/test installs it): {e}"));
    assert!(
        output.status.success(),
        "{program} {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pulls_through_the_cache_cold_and_warm() {
    let upstream = TestRegistry::fs().await;
    let layer = vec![3u8; 1 << 20];
    let image = linux_image(&upstream, "team/app", "v1", serde_json::json!({}), &layer).await;
    let cache = cache_of(&upstream, Duration::from_secs(3600)).await;
    let host = cache.base.trim_start_matches("http://").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let layer_file = strata_storage::digest::sha256(&layer)
        .to_string()
        .replace("sha256:", "");
    let mut fetched = Vec::new();
    for layout in ["cold", "warm"] {
        let dest = format!("oci:{}:v1", dir.path().join(layout).display());
        run(
            "skopeo",
            &[
                "copy",
                "--preserve-digests",
                "--src-tls-verify=false",
                &format!("docker://{host}/mirror/team/app:v1"),
                &dest,
            ],
        )
        .await;
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(layout).join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["digest"], image.digest.to_string(), "{layout}");
        let blob = std::fs::read(dir.path().join(layout).join("blobs/sha256").join(&layer_file)).unwrap();
        assert!(blob == layer, "{layout}: the layer's bytes");
        fetched.push(upstream_blob_gets(&upstream).await);
    }
    assert_eq!(fetched[0], fetched[1], "the warm pull fetched nothing upstream");
}

/// containerd (Debian's, started here with its own root and socket), stopped on drop.
struct Containerd {
    child: std::process::Child,
    socket: std::path::PathBuf,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn containerd(dir: &std::path::Path) -> Containerd {
    let socket = dir.join("containerd.sock");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "version = 2\nroot = {:?}\nstate = {:?}\n[grpc]\n  address = {:?}\n",
            dir.join("root"),
            dir.join("state"),
            socket
        ),
    )
    .unwrap();
    let child = std::process::Command::new("containerd")
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("containerd.log")).unwrap())
        .spawn()
        .expect("containerd (apt-get install containerd; scripts/test installs it)");
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(socket.exists(), "containerd started");
    Containerd { child, socket }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_uses_the_cache_as_a_mirror_through_hosts_toml() {
    let upstream = TestRegistry::fs().await;
    let layer = vec![5u8; 1 << 20];
    let image = linux_image(&upstream, "team/app", "v1", serde_json::json!({}), &layer).await;
    let cache = cache_of(&upstream, Duration::from_secs(3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = containerd(dir.path()).await;
    // containerd's mirror configuration: upstream.test is reached through the cache, which it
    // asks for /v2/team/app/...?ns=upstream.test.
    let hosts = dir.path().join("hosts/upstream.test");
    std::fs::create_dir_all(&hosts).unwrap();
    std::fs::write(
        hosts.join("hosts.toml"),
        format!(
            "server = \"https://upstream.test\"\n[host.\"{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            cache.base
        ),
    )
    .unwrap();
    let socket = daemon.socket.to_str().unwrap().to_owned();
    let hosts_dir = dir.path().join("hosts").to_str().unwrap().to_owned();
    run(
        "ctr",
        &[
            "--address",
            &socket,
            "content",
            "fetch",
            "--hosts-dir",
            &hosts_dir,
            "upstream.test/team/app:v1",
        ],
    )
    .await;
    let listed = run("ctr", &["--address", &socket, "content", "ls", "-q"]).await;
    assert!(listed.contains(&image.digest.to_string()), "{listed}");
    assert!(
        listed.contains(&strata_storage::digest::sha256(&layer).to_string()),
        "{listed}"
    );
    // The cache has it now, under the mirror's name.
    assert!(
        cache
            .state
            .blobs
            .exists(&strata_storage::digest::sha256(&layer))
            .await
            .unwrap()
    );
    let (status, _) = manifest(&cache, "/v2/mirror/team/app/manifests/v1").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_keeps_chosen_tags_cached_and_without_on_demand_nothing_else_is_fetched() {
    let upstream = TestRegistry::fs().await;
    let mut pushed = Vec::new();
    for (tag, seed) in [("1.0", "a"), ("1.1", "b"), ("2.0", "c")] {
        let layer = format!("layer {seed}").into_bytes();
        let image = linux_image(
            &upstream,
            "team/app",
            tag,
            serde_json::json!({ "created": seed }),
            &layer,
        )
        .await;
        pushed.push((tag, image.digest, strata_storage::digest::sha256(&layer)));
    }
    let mut config = mirror_of(&upstream.base, Duration::from_secs(3600));
    config.upstreams[0].on_demand = false;
    config.upstreams[0].sync = vec![strata_registry::config::SyncRule {
        repositories: vec!["team/app".into()],
        tags: Some(r"^1\.".into()),
        every: Duration::from_secs(1),
    }];
    let cache = TestRegistry::start(Arc::new(FsFixture::new()), config).await;
    // The first round runs at start; give it a moment, then take the upstream away.
    let started = std::time::Instant::now();
    while !cache.state.blobs.exists(&pushed[1].2).await.unwrap() {
        assert!(started.elapsed() < Duration::from_secs(10), "sync never cached 1.1");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(upstream);
    for (tag, digest, layer) in &pushed[..2] {
        assert_eq!(
            manifest(&cache, &format!("/v2/mirror/team/app/manifests/{tag}")).await,
            (StatusCode::OK, Some(digest.to_string())),
            "{tag} synced"
        );
        let blob = cache.get(&format!("/v2/mirror/team/app/blobs/{layer}")).await;
        assert_eq!(blob.status(), StatusCode::OK, "{tag}'s layer synced");
    }
    // 2.0 matches no rule, and pulls do not fetch.
    assert_eq!(
        manifest(&cache, "/v2/mirror/team/app/manifests/2.0").await.0,
        StatusCode::NOT_FOUND
    );
    assert!(!cache.state.blobs.exists(&pushed[2].2).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_and_retention_apply_to_mirrors_like_any_repository() {
    let upstream = TestRegistry::fs().await;
    let old = linux_image(
        &upstream,
        "team/app",
        "old",
        serde_json::json!({ "created": "1" }),
        b"old layer",
    )
    .await;
    let new = linux_image(
        &upstream,
        "team/app",
        "new",
        serde_json::json!({ "created": "2" }),
        b"new layer",
    )
    .await;
    let mut config = mirror_of(&upstream.base, Duration::from_secs(3600));
    config.gc.interval = Duration::ZERO;
    config.gc.grace = Duration::ZERO;
    config.gc.claim_ttl = Duration::from_secs(1);
    config.gc.lease = Duration::from_secs(1);
    config.gc.delete_untagged = true;
    config.gc.retention = vec![strata_registry::config::Retention {
        repositories: vec!["mirror/**".into()],
        keep_last: Some(1),
        keep_tags: None,
        delete_older_than: None,
    }];
    let cache = TestRegistry::start(Arc::new(FsFixture::new()), config).await;
    let old_layer = strata_storage::digest::sha256(b"old layer");
    let new_layer = strata_storage::digest::sha256(b"new layer");
    for (tag, layer) in [("old", &old_layer), ("new", &new_layer)] {
        assert_eq!(
            manifest(&cache, &format!("/v2/mirror/team/app/manifests/{tag}"))
                .await
                .0,
            StatusCode::OK
        );
        let blob = cache.get(&format!("/v2/mirror/team/app/blobs/{layer}")).await;
        assert_eq!(blob.bytes().await.unwrap().len(), 9);
        tokio::time::sleep(Duration::from_millis(1100)).await; // distinct push times
    }
    tokio::time::sleep(Duration::from_millis(2300)).await; // past the claims
    let report = strata_registry::gc::cycle(&cache.state, "test", false).await.unwrap();
    assert!(!report.skipped);
    // Retention keeps the newest tag of the mirror; the old image goes, cached blobs included.
    assert!(cache.state.blobs.exists(&new_layer).await.unwrap());
    assert!(!cache.state.blobs.exists(&old_layer).await.unwrap(), "{report:?}");
    assert!(
        cache
            .state
            .meta
            .revision(
                &strata_storage::RepositoryName::parse("mirror/team/app").unwrap(),
                &old.digest
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        cache
            .state
            .meta
            .revision(
                &strata_storage::RepositoryName::parse("mirror/team/app").unwrap(),
                &new.digest
            )
            .await
            .unwrap()
            .is_some()
    );
}

/// Requests per path.
type Hits = Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>;
/// Bodies by path.
type Files = Arc<std::collections::HashMap<&'static str, Vec<u8>>>;

/// Serves `files` (path → body) on 127.0.0.1; its base URL and the requests per path.
async fn file_server(files: Vec<(&'static str, Vec<u8>)>) -> (String, Hits) {
    use axum::extract::{Request, State};
    let hits: Hits = Arc::default();
    let files: Files = Arc::new(files.into_iter().collect());
    let app = axum::Router::new()
        .fallback(
            |State((files, hits)): State<(Files, Hits)>, request: Request| async move {
                let path = request.uri().path().to_owned();
                *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
                match files.get(path.as_str()) {
                    Some(body) => (StatusCode::OK, body.clone()),
                    None => (StatusCode::NOT_FOUND, Vec::new()),
                }
            },
        )
        .with_state((files, hits.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_layers_the_upstream_lacks_come_from_their_urls_only_where_the_policy_allows() {
    let good = "a foreign base layer ".repeat(100_000);
    let (corrupt_seed, denied_seed) = ("what the manifest promises", "a layer from a denied host");
    let (base, hits) = file_server(vec![
        ("/layers/good", good.clone().into_bytes()),
        ("/layers/corrupt", b"something else entirely!!!".to_vec()),
        ("/denied/layer", denied_seed.as_bytes().to_vec()),
    ])
    .await;
    let local = "^http://127\\.0\\.0\\.1:".to_owned();
    let mut upstream_config = Config::default();
    upstream_config.foreign_layers.allow = vec![local.clone()];
    let upstream = TestRegistry::start(Arc::new(FsFixture::new()), upstream_config).await;
    let urls = ["/layers/good", "/layers/corrupt", "/denied/layer"].map(|p| format!("{base}{p}"));
    let foreign = |seed: &'static str, url: &'static str| Layer::Foreign {
        seed,
        size: seed.len() as u64,
        url,
    };
    let url = |i: usize| -> &'static str { Box::leak(urls[i].clone().into_boxed_str()) };
    let good_seed: &'static str = Box::leak(good.into_boxed_str());
    upstream
        .push_real_image(
            "windows/base",
            Some("ltsc"),
            config("windows", "amd64", Some("10.0.20348.1"), serde_json::json!({})),
            &[
                foreign(good_seed, url(0)),
                foreign(corrupt_seed, url(1)),
                foreign(denied_seed, url(2)),
            ],
            serde_json::json!({}),
        )
        .await;
    let digest = |seed: &str| strata_storage::digest::sha256(seed.as_bytes());
    let hit = |path: &str| hits.lock().unwrap().get(path).copied().unwrap_or(0);

    // By default the cache fetches nothing the upstream's manifests point at.
    let closed = cache_of(&upstream, Duration::from_secs(3600)).await;
    let (status, _) = manifest(&closed, "/v2/mirror/windows/base/manifests/ltsc").await;
    assert_eq!(status, StatusCode::OK);
    let refused = closed
        .get(&format!("/v2/mirror/windows/base/blobs/{}", digest(good_seed)))
        .await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    assert!(refused.text().await.unwrap().contains("BLOB_UNKNOWN"));
    assert_eq!(hit("/layers/good"), 0);

    let mut open = mirror_of(&upstream.base, Duration::from_secs(3600));
    open.foreign_layers.fetch = vec![local];
    open.foreign_layers.deny = vec!["/denied/".into()];
    let cache = TestRegistry::start(Arc::new(FsFixture::new()), open).await;
    let (status, _) = manifest(&cache, "/v2/mirror/windows/base/manifests/ltsc").await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/v2/mirror/windows/base/blobs/{}", digest(good_seed));
    let head = cache.head(&path).await;
    assert_eq!(
        (
            head.status(),
            head.headers().get("content-length").unwrap().to_str().unwrap()
        ),
        (StatusCode::OK, good_seed.len().to_string().as_str())
    );
    assert_eq!(hit("/layers/good"), 0, "a HEAD fetches nothing");
    for round in 1..=2 {
        let got = cache.get(&path).await;
        assert_eq!(got.status(), StatusCode::OK);
        let body = got.bytes().await.unwrap();
        assert_eq!(
            strata_storage::digest::sha256(&body),
            digest(good_seed),
            "round {round}"
        );
    }
    assert_eq!(hit("/layers/good"), 1, "fetched once, then served from the cache");

    // A denied URL is not asked; a corrupt one is stored nowhere.
    let denied = cache
        .get(&format!("/v2/mirror/windows/base/blobs/{}", digest(denied_seed)))
        .await;
    assert_eq!(denied.status(), StatusCode::NOT_FOUND);
    assert!(
        denied
            .text()
            .await
            .unwrap()
            .contains("[foreign_layers] fetch allows none of its URLs")
    );
    assert_eq!(hit("/denied/layer"), 0);
    let corrupt_path = format!("/v2/mirror/windows/base/blobs/{}", digest(corrupt_seed));
    for attempt in 1..=2 {
        let response = cache.get(&corrupt_path).await;
        let whole = match response.bytes().await {
            Ok(body) => strata_storage::digest::sha256(&body) == digest(corrupt_seed),
            Err(_) => false,
        };
        assert!(!whole, "attempt {attempt}: the corrupt layer is not served as if whole");
    }
    assert_eq!(
        hit("/layers/corrupt"),
        2,
        "nothing was stored, so the second pull asked again"
    );
}
