//! Storage benchmark: put and get of one large blob through the filesystem backend's
//! `BlobStore`, beside `openssl dgst -sha256` (hashing with the CPU's SHA instructions) and
//! `dd bs=1M conv=fsync` (writing and syncing) of the same file, measured in the same run.
//!
//! Usage: `storage-bench [--size-mib N] [--runs R] [--dir DIR]` (defaults: 1024 MiB, 3 runs,
//! a fresh directory under `./target/bench`). Prints medians, ratios against the slower peer,
//! and this process's peak resident memory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use strata_storage::{Algorithm, Backend, BlobStore, Digest, FsBackend, Hasher, Key, stream};

const MIB: u64 = 1024 * 1024;

struct Args {
    size_mib: u64,
    runs: usize,
    dir: PathBuf,
}

fn parse_args() -> Args {
    let mut args = Args {
        size_mib: 1024,
        runs: 3,
        dir: PathBuf::from("target/bench/storage"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--size-mib" => args.size_mib = value.parse().expect("--size-mib takes a number"),
            "--runs" => args.runs = value.parse().expect("--runs takes a number"),
            "--dir" => args.dir = value.into(),
            other => panic!("unknown flag {other}; flags: --size-mib N --runs R --dir DIR"),
        }
    }
    args
}

/// Writes `size` bytes of pseudo-random data to `path` and returns their SHA-256 digest.
fn make_source(path: &Path, size: u64) -> Digest {
    let mut file = std::io::BufWriter::with_capacity(MIB as usize, std::fs::File::create(path).expect("create source"));
    let mut hasher = Hasher::new(Algorithm::Sha256);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut chunk = vec![0u8; MIB as usize];
    let mut left = size;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(MIB) as usize;
        hasher.update(&chunk[..n]);
        file.write_all(&chunk[..n]).expect("write source");
        left -= n as u64;
    }
    file.into_inner()
        .expect("flush source")
        .sync_all()
        .expect("sync source");
    hasher.finish()
}

fn run_peer(program: &str, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

/// The source file as a stream read by a blocking thread (what the fs backend's `get` does), so
/// that reading it costs the measured pipeline as little as a network socket would.
async fn source_stream(source: &FsBackend) -> stream::ByteStream {
    source.get(&source_key(), None).await.expect("open source").body
}

fn source_key() -> Key {
    Key::parse("source").expect("valid key")
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let size = args.size_mib * MIB;
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir).expect("create bench dir");
    let source_store = FsBackend::new(args.dir.join("src")).expect("open source dir");
    let source = source_store.root().join(source_key().as_str());
    let digest = make_source(&source, size);
    let source_str = source.to_str().expect("utf-8 path");
    let dd_out = args.dir.join("dd.out");
    let dd_of = format!("of={}", dd_out.display());
    let dd_if = format!("if={source_str}");
    let blobs = BlobStore::new(Arc::new(FsBackend::new(args.dir.join("store")).expect("open store")));

    let (mut openssl, mut dd, mut put, mut writer, mut get, mut get_verify) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..args.runs {
        openssl.push(run_peer("openssl", &["dgst", "-sha256", source_str]));
        let _ = std::fs::remove_file(&dd_out);
        dd.push(run_peer("dd", &[&dd_if, &dd_of, "bs=1M", "conv=fsync", "status=none"]));
        let _ = std::fs::remove_file(&dd_out);

        let _ = blobs.delete(&digest).await;
        let start = Instant::now();
        blobs
            .put(&digest, Some(size), source_stream(&source_store).await)
            .await
            .expect("put");
        put.push(start.elapsed());

        blobs.delete(&digest).await.expect("delete");
        let start = Instant::now();
        let mut w = blobs.writer().await.expect("writer");
        w.write_stream(source_stream(&source_store).await).await.expect("write");
        w.commit(&digest, Some(size)).await.expect("commit");
        writer.push(start.elapsed());

        let start = Instant::now();
        let mut body = blobs.open(&digest, None).await.expect("open").body;
        let mut n = 0;
        while let Some(chunk) = body.next().await {
            n += chunk.expect("read").len() as u64;
        }
        assert_eq!(n, size);
        get.push(start.elapsed());

        let start = Instant::now();
        let mut body = blobs.open(&digest, None).await.expect("open").body;
        let mut hasher = Hasher::new(Algorithm::Sha256);
        while let Some(chunk) = body.next().await {
            hasher.update(&chunk.expect("read"));
        }
        assert_eq!(hasher.finish(), digest);
        get_verify.push(start.elapsed());
    }

    let rate = |d: Duration| size as f64 / d.as_secs_f64() / 1e9;
    let (openssl, dd) = (rate(median(openssl)), rate(median(dd)));
    let slower_peer = openssl.min(dd);
    println!(
        "storage bench: {} MiB blob, {} runs (medians), fs backend in {}",
        args.size_mib,
        args.runs,
        args.dir.display()
    );
    println!("  peer   openssl dgst -sha256                {openssl:6.2} GB/s");
    println!("  peer   dd bs=1M conv=fsync                 {dd:6.2} GB/s");
    for (name, samples) in [
        ("BlobStore::put (digest known)", put),
        ("BlobWriter write+commit", writer),
        ("BlobStore::open, read", get),
        ("BlobStore::open, read+sha256", get_verify),
    ] {
        let r = rate(median(samples));
        println!(
            "  strata {name:<36}{r:6.2} GB/s  {:5.2}x the slower peer",
            r / slower_peer
        );
    }
    println!(
        "  peak resident memory (VmHWM)               {:6.1} MiB",
        peak_rss_mib()
    );
    let _ = std::fs::remove_dir_all(&args.dir);
}
