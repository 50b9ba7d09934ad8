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
//!
//! For the file browser:
//! - `ui-bench tree URL [--dirs D] [--files F]` pushes `bench/files:tree`, an image of one
//!   plain-tar layer holding D directories `d000`.. (200 unless told) of F files `f000`.. (100
//!   unless told) of a few bytes each, built in memory. Prints one JSON line: digest (the
//!   manifest's), layer, layer_size, entries.
//! - `ui-bench big-tar FILE [--files N] [--mib M]` writes a plain tar of N files `r0000.bin`..
//!   (1024 unless told) of M MiB (1 unless told) of pseudo-random bytes to FILE, one file's
//!   bytes in memory at a time. Prints one JSON line: files, bytes, seconds.
//! - `ui-bench image URL REPO TAG LAYER_DIGEST LAYER_SIZE` pushes a config and the manifest of
//!   an image of that one (already pushed) layer at `REPO:TAG`. Prints one JSON line: digest.

use std::io::Write;
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

    /// An OCI image manifest naming `config` and `layer`, at `repo:tag`; its digest.
    async fn manifest(&self, repo: &str, tag: &str, config: &Pushed, layer: &Pushed) -> Result<String, String> {
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer.digest, "size": layer.size}],
        })
        .to_string();
        let digest = sha256(manifest.as_bytes()).to_string();
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
        Ok(digest)
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

fn pusher(base: &str, concurrency: usize) -> Result<Pusher, String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(concurrency)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Pusher {
        http,
        base: base.trim_end_matches('/').to_owned(),
        requests: AtomicU64::new(0),
    })
}

async fn fill(base: &str, args: &[String]) -> Result<(), String> {
    let repositories = flag(args, "--repositories", 10_000);
    let tags = flag(args, "--tags", 1_000);
    let concurrency = flag(args, "--concurrency", 32) as usize;
    if tags > 86_400 {
        return Err("--tags takes at most 86400".into());
    }
    let pusher = &pusher(base, concurrency)?;
    let started = Instant::now();

    futures::stream::iter(0..repositories)
        .map(|i| async move {
            let repo = format!("bench/repo-{i:05}");
            let config = pusher.blob(&repo, config(None)).await?;
            let layer = pusher
                .blob(&repo, Bytes::from(format!("the layer of {repo}\n")))
                .await?;
            pusher.manifest(&repo, "latest", &config, &layer).await.map(drop)
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
                pusher
                    .manifest(repo, &format!("t{i:04}"), &config, layer)
                    .await
                    .map(drop)
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

/// A tar header of a regular file (`size` bytes) or a directory, with a fixed time and owner
/// so a layer's digest depends on its names and bytes only.
fn header(path: &str, dir: bool, size: u64) -> Result<tar::Header, String> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).map_err(|e| format!("{path}: {e}"))?;
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_size(size);
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_mtime(1_704_067_200); // 2024-01-01T00:00:00Z
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    Ok(h)
}

/// `bench/files:tree`: one layer of `--dirs` directories of `--files` small files each.
async fn tree(base: &str, args: &[String]) -> Result<(), String> {
    let dirs = flag(args, "--dirs", 200);
    let files = flag(args, "--files", 100);
    if dirs > 1000 || files > 1000 {
        return Err("--dirs and --files take at most 1000".into());
    }
    let mut tar = tar::Builder::new(Vec::new());
    for d in 0..dirs {
        let dir = format!("d{d:03}");
        tar.append(&header(&format!("{dir}/"), true, 0)?, std::io::empty())
            .map_err(|e| e.to_string())?;
        for f in 0..files {
            let path = format!("{dir}/f{f:03}");
            let content = format!("{path}\n");
            tar.append(&header(&path, false, content.len() as u64)?, content.as_bytes())
                .map_err(|e| e.to_string())?;
        }
    }
    let layer = Bytes::from(tar.into_inner().map_err(|e| e.to_string())?);

    let repo = "bench/files";
    let pusher = pusher(base, 1)?;
    let config = pusher.blob(repo, config(None)).await?;
    let layer = pusher.blob(repo, layer).await?;
    let digest = pusher.manifest(repo, "tree", &config, &layer).await?;
    println!(
        "{}",
        json!({
            "digest": digest,
            "layer": layer.digest,
            "layer_size": layer.size,
            "entries": dirs * (files + 1),
        })
    );
    Ok(())
}

/// xorshift64*: pseudo-random bytes at memory speed (incompressible enough for a layer).
fn fill_random(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let word = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// A big plain-tar layer written to `file`, one file's bytes in memory at a time.
fn big_tar(file: &str, args: &[String]) -> Result<(), String> {
    let files = flag(args, "--files", 1024);
    let mib = flag(args, "--mib", 1);
    if files > 10_000 {
        return Err("--files takes at most 10000".into());
    }
    let started = Instant::now();
    let size = mib << 20;
    let mut buf = vec![0u8; usize::try_from(size).map_err(|e| e.to_string())?];
    let out = std::fs::File::create(file).map_err(|e| format!("{file}: {e}"))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, out));
    for i in 0..files {
        fill_random(&mut buf, i + 1);
        tar.append(&header(&format!("r{i:04}.bin"), false, size)?, &buf[..])
            .map_err(|e| format!("{file}: {e}"))?;
    }
    let mut out = tar.into_inner().map_err(|e| format!("{file}: {e}"))?;
    out.flush().map_err(|e| format!("{file}: {e}"))?;
    let bytes = out.get_ref().metadata().map_err(|e| format!("{file}: {e}"))?.len();
    println!(
        "{}",
        json!({"files": files, "bytes": bytes, "seconds": started.elapsed().as_secs_f64()})
    );
    Ok(())
}

/// A config and the manifest of an image whose one layer is already pushed.
async fn image(base: &str, args: &[String]) -> Result<(), String> {
    let [repo, tag, digest, size] = &args[2..] else {
        return Err("image takes REPO TAG LAYER_DIGEST LAYER_SIZE".into());
    };
    let layer = Pushed {
        digest: digest.clone(),
        size: size.parse().map_err(|_| format!("LAYER_SIZE {size} is not a number"))?,
    };
    let pusher = pusher(base, 1)?;
    let config = pusher.blob(repo, config(None)).await?;
    let digest = pusher.manifest(repo, tag, &config, &layer).await?;
    println!("{}", json!({ "digest": digest }));
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: ui-bench fill URL [--repositories N] [--tags T] [--concurrency C]\n\
                 \x20      ui-bench tree URL [--dirs D] [--files F]\n\
                 \x20      ui-bench big-tar FILE [--files N] [--mib M]\n\
                 \x20      ui-bench image URL REPO TAG LAYER_DIGEST LAYER_SIZE";
    let result = match (args.first().map(String::as_str), args.get(1)) {
        (Some("fill"), Some(base)) => fill(base, &args).await,
        (Some("tree"), Some(base)) => tree(base, &args).await,
        (Some("big-tar"), Some(file)) => big_tar(file, &args),
        (Some("image"), Some(base)) => image(base, &args).await,
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
