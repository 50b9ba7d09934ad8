//! `load-bench`: many concurrent clients against one registry for a fixed time, mixing manifest
//! GETs, blob GETs and small pushes (blob + manifest) like a busy CI fleet. Prints one JSON line:
//! requests, requests/s, p50/p99 latency per kind, errors by kind.
//!
//! Usage: load-bench URL [--clients N] [--seconds S]

use std::sync::Arc;
use std::time::{Duration, Instant};

mod push;

use push::OCI_MANIFEST;
use serde_json::json;
/// Images pushed before the run, which the GETs read.
const IMAGES: usize = 16;
/// Size of their layer blobs.
const BLOB_SIZE: usize = 64 * 1024;

#[derive(Clone, Copy)]
enum Kind {
    Manifest,
    Blob,
    Push,
}

/// Latencies (µs) and errors of one kind of request.
#[derive(Default)]
struct Tally {
    micros: Vec<u32>,
    errors: u64,
}

struct Args {
    base: String,
    clients: usize,
    seconds: u64,
}

fn args() -> Args {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        base: String::new(),
        clients: 500,
        seconds: 60,
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--clients" => parsed.clients = args.next().and_then(|v| v.parse().ok()).expect("--clients N"),
            "--seconds" => parsed.seconds = args.next().and_then(|v| v.parse().ok()).expect("--seconds S"),
            url => parsed.base = url.trim_end_matches('/').to_owned(),
        }
    }
    assert!(
        !parsed.base.is_empty(),
        "usage: load-bench URL [--clients N] [--seconds S]"
    );
    parsed
}

/// A config and a layer blob and a manifest naming them, at `repo:tag`; the layer's digest.
async fn push_image(http: &reqwest::Client, base: &str, repo: &str, tag: &str, seed: u64) -> Result<String, String> {
    let mut layers = push::image(http, base, repo, Some(tag), seed, 1, BLOB_SIZE).await?;
    Ok(layers.remove(0))
}

async fn one(http: &reqwest::Client, base: &str, kind: Kind, image: usize, layers: &[String], n: u64) -> bool {
    let ok_body = |r: reqwest::Response| async move { r.status().is_success() && r.bytes().await.is_ok() };
    match kind {
        Kind::Manifest => match http
            .get(format!("{base}/v2/load/img{image}/manifests/v1"))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
        {
            Ok(r) => ok_body(r).await,
            Err(_) => false,
        },
        Kind::Blob => match http
            .get(format!("{base}/v2/load/img{image}/blobs/{}", layers[image]))
            .send()
            .await
        {
            Ok(r) => ok_body(r).await,
            Err(_) => false,
        },
        Kind::Push => push_image(http, base, &format!("load/push{}", n % 8), &format!("t{n}"), n + 1000)
            .await
            .is_ok(),
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[at]) / 1000.0
}

#[tokio::main]
async fn main() {
    let args = args();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client");
    let mut layers = Vec::new();
    for i in 0..IMAGES {
        let layer = push_image(&http, &args.base, &format!("load/img{i}"), "v1", i as u64)
            .await
            .unwrap_or_else(|e| panic!("setting up image {i}: {e}"));
        layers.push(layer);
    }
    let layers = Arc::new(layers);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..args.clients {
        let (http, base, layers) = (http.clone(), args.base.clone(), layers.clone());
        tasks.push(tokio::spawn(async move {
            let mut tallies: [Tally; 3] = Default::default();
            let mut n = client as u64 * 1_000_003;
            while Instant::now() < deadline {
                n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                // 60 % manifest GETs, 30 % blob GETs, 10 % pushes.
                let (kind, slot) = match (n >> 33) % 10 {
                    0..=5 => (Kind::Manifest, 0),
                    6..=8 => (Kind::Blob, 1),
                    _ => (Kind::Push, 2),
                };
                let image = ((n >> 40) as usize) % IMAGES;
                let t = Instant::now();
                let ok = one(&http, &base, kind, image, &layers, n >> 20).await;
                let tally = &mut tallies[slot];
                tally
                    .micros
                    .push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                if !ok {
                    tally.errors += 1;
                }
            }
            tallies
        }));
    }
    let mut all: [Tally; 3] = Default::default();
    for task in tasks {
        for (total, part) in all.iter_mut().zip(task.await.expect("client task")) {
            total.micros.extend(part.micros);
            total.errors += part.errors;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut kinds = serde_json::Map::new();
    for (name, tally) in ["manifest_get", "blob_get", "push"].iter().zip(all.iter_mut()) {
        tally.micros.sort_unstable();
        kinds.insert(
            (*name).to_owned(),
            json!({
                "requests": tally.micros.len(),
                "errors": tally.errors,
                "p50_ms": percentile(&tally.micros, 0.5),
                "p99_ms": percentile(&tally.micros, 0.99),
            }),
        );
    }
    let mut everything: Vec<u32> = all.iter().flat_map(|t| t.micros.iter().copied()).collect();
    everything.sort_unstable();
    let errors: u64 = all.iter().map(|t| t.errors).sum();
    println!(
        "{}",
        json!({
            "clients": args.clients,
            "seconds": elapsed,
            "requests": everything.len(),
            "rps": everything.len() as f64 / elapsed,
            "errors": errors,
            "p50_ms": percentile(&everything, 0.5),
            "p99_ms": percentile(&everything, 0.99),
            "kinds": kinds,
        })
    );
}
