//! `gc-bench`: the pieces of bench/gc.sh that need a program.
//!
//! - `gc-bench populate URL [--manifests N] [--layers L]`: N images of a config and L small
//!   layers each (all distinct), over 10 repositories; half of each repository's tagged, the
//!   rest pushed by digest only (garbage once untagged manifests are collected).
//! - `gc-bench push URL [--seconds S] [--clients C]`: C clients push images (config + 2 layers
//!   of 64 KiB) for S seconds, each moving its repository's `latest` tag to every new image
//!   (the previous one becomes garbage). Prints one JSON line: pushes, pushes/s, errors.
//! - `gc-bench s3`: serves the in-process S3 server the tests use (s3s-fs over a temporary
//!   directory) with a bucket `bench`; prints its endpoint, runs until killed.

mod push;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

fn flag(args: &[String], name: &str, default: u64) -> u64 {
    args.windows(2).find(|w| w[0] == name).map_or(default, |w| {
        w[1].parse().unwrap_or_else(|_| panic!("{name} takes a number"))
    })
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("http client")
}

async fn populate(base: &str, args: &[String]) {
    let manifests = flag(args, "--manifests", 1000);
    let layers = flag(args, "--layers", 9) as usize;
    let http = http();
    let started = Instant::now();
    let failures = futures::stream::iter(0..manifests)
        .map(|i| {
            let http = http.clone();
            async move {
                let tag = format!("v{i}");
                // Half of each repository's images tagged.
                let tag = ((i / 10) % 2 == 0).then_some(tag.as_str());
                push::image(&http, base, &format!("bench/app{}", i % 10), tag, i, layers, 1024)
                    .await
                    .err()
            }
        })
        .buffer_unordered(16)
        .filter_map(|e| async move { e })
        .collect::<Vec<_>>()
        .await;
    assert!(
        failures.is_empty(),
        "populate failed: {:?}",
        &failures[..failures.len().min(3)]
    );
    println!(
        "{}",
        json!({
            "manifests": manifests,
            "blobs": manifests * (layers as u64 + 1),
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
}

async fn pushes(base: &str, args: &[String]) {
    let seconds = flag(args, "--seconds", 20);
    let clients = flag(args, "--clients", 8);
    let http = http();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (http, base) = (http.clone(), base.to_owned());
            tokio::spawn(async move {
                let (mut done, mut errors) = (0u64, Vec::new());
                let mut n = c * 1_000_000;
                while Instant::now() < deadline {
                    n += 1;
                    match push::image(&http, &base, &format!("push/c{c}"), Some("latest"), n, 2, 64 * 1024).await {
                        Ok(_) => done += 1,
                        Err(e) => errors.push(e),
                    }
                }
                (done, errors)
            })
        })
        .collect();
    let (mut done, mut errors) = (0, Vec::new());
    for task in tasks {
        let (d, e) = task.await.expect("push task");
        done += d;
        errors.extend(e);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "pushes": done,
            "pushes_per_second": done as f64 / elapsed,
            "errors": errors.len(),
            "first_errors": &errors[..errors.len().min(3)],
        })
    );
}

async fn s3() {
    let server = strata_storage::testing::S3TestServer::start().await;
    server.bucket("bench").await;
    println!("{}", server.endpoint());
    std::future::pending::<()>().await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: gc-bench populate URL [--manifests N] [--layers L] | push URL [--seconds S] [--clients C] | s3";
    match args.first().map(String::as_str) {
        Some("populate") => populate(args.get(1).expect(usage), &args).await,
        Some("push") => pushes(args.get(1).expect(usage), &args).await,
        Some("s3") => s3().await,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
