//! `ui-bench`: the piece of bench/ui.sh that needs a program.
//!
//! `ui-bench fill URL [--repositories N] [--tags T] [--concurrency C]` pushes, through the OCI
//! distribution API:
//! - N repositories `bench/repo-00000`.. with one image each, tagged `latest`: a small image
//!   config (the same in every repository), a layer of its own, and the manifest naming them;
//! - one repository `bench/tags` with T tags `t0000`.., each pointing at its own manifest (its
//!   own config, with a `created` that differs; one layer shared by all).
//!
//! Blobs go up as monolithic uploads (`POST /v2/<name>/blobs/uploads/?digest=` with the body,
//! answered 201), with C images in flight (32 unless told). Every answer is checked; the
//! first failure stops the run. Prints one JSON line: repositories, tags, requests, seconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use strata_storage::digest::sha256;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

fn flag(args: &[String], name: &str, default: u64) -> u64 {
    args.windows(2).find(|w| w[0] == name).map_or(default, |w| {
        w[1].parse().unwrap_or_else(|_| panic!("{name} takes a number"))
    })
}

/// Pushes with a count of the requests made.
struct Pusher {
    http: reqwest::Client,
    base: String,
    requests: AtomicU64,
}

/// A descriptor of a pushed blob: its digest and true length.
struct Pushed {
    digest: String,
    size: usize,
}

impl Pusher {
    /// A monolithic upload: `POST /v2/<repo>/blobs/uploads/?digest=` with the body.
    async fn blob(&self, repo: &str, data: Bytes) -> Result<Pushed, String> {
        let digest = sha256(&data).to_string();
        let size = data.len();
        let url = format!("{}/v2/{repo}/blobs/uploads/?digest={digest}", self.base);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let answer = self
            .http
            .post(&url)
            .header("content-type", "application/octet-stream")
            .body(data)
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = answer.status();
        if status != reqwest::StatusCode::CREATED {
            let body = answer.text().await.unwrap_or_default();
            return Err(format!("POST {url} answered {status}: {body}"));
        }
        Ok(Pushed { digest, size })
    }

    /// An OCI image manifest naming `config` and `layer`, at `repo:tag`.
    async fn manifest(&self, repo: &str, tag: &str, config: &Pushed, layer: &Pushed) -> Result<(), String> {
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer.digest, "size": layer.size}],
        })
        .to_string();
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.base);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let answer = self
            .http
            .put(&url)
            .header("content-type", OCI_MANIFEST)
            .body(manifest)
            .send()
            .await
            .map_err(|e| format!("PUT {url}: {e}"))?;
        let status = answer.status();
        if status != reqwest::StatusCode::CREATED {
            let body = answer.text().await.unwrap_or_default();
            return Err(format!("PUT {url} answered {status}: {body}"));
        }
        Ok(())
    }
}

fn config(created: Option<u64>) -> Bytes {
    let mut config = json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    if let Some(i) = created {
        // A distinct, valid timestamp per image: 2024-01-01T00:00:00Z plus i seconds.
        let (h, m, s) = (i / 3600, i / 60 % 60, i % 60);
        config["created"] = json!(format!("2024-01-01T{h:02}:{m:02}:{s:02}Z"));
    }
    Bytes::from(config.to_string())
}

async fn fill(base: &str, args: &[String]) -> Result<(), String> {
    let repositories = flag(args, "--repositories", 10_000);
    let tags = flag(args, "--tags", 1_000);
    let concurrency = flag(args, "--concurrency", 32) as usize;
    if tags > 86_400 {
        return Err("--tags takes at most 86400".into());
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(concurrency)
        .build()
        .map_err(|e| e.to_string())?;
    let pusher = &Pusher {
        http,
        base: base.trim_end_matches('/').to_owned(),
        requests: AtomicU64::new(0),
    };
    let started = Instant::now();

    futures::stream::iter(0..repositories)
        .map(|i| async move {
            let repo = format!("bench/repo-{i:05}");
            let config = pusher.blob(&repo, config(None)).await?;
            let layer = pusher
                .blob(&repo, Bytes::from(format!("the layer of {repo}\n")))
                .await?;
            pusher.manifest(&repo, "latest", &config, &layer).await
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;
    let repositories_done = started.elapsed();

    if tags > 0 {
        let repo = "bench/tags";
        let layer = &pusher
            .blob(repo, Bytes::from_static(b"the layer of every tag\n"))
            .await?;
        futures::stream::iter(0..tags)
            .map(|i| async move {
                let config = pusher.blob(repo, config(Some(i))).await?;
                pusher.manifest(repo, &format!("t{i:04}"), &config, layer).await
            })
            .buffer_unordered(concurrency)
            .try_collect::<()>()
            .await?;
    }

    println!(
        "{}",
        json!({
            "repositories": repositories,
            "tags": tags,
            "requests": pusher.requests.load(Ordering::Relaxed),
            "seconds_repositories": repositories_done.as_secs_f64(),
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: ui-bench fill URL [--repositories N] [--tags T] [--concurrency C]";
    let result = match (args.first().map(String::as_str), args.get(1)) {
        (Some("fill"), Some(base)) => fill(base, &args).await,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("ui-bench: {e}");
        std::process::exit(1);
    }
}
