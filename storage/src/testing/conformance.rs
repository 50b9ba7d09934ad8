//! The backend conformance suite: every promise of [`Backend`] and [`BlobStore`] as a test case.
//! A backend is done when all of these pass against it. Each case takes a [`Fixture`] with fresh
//! storage; [`crate::conformance_tests!`] turns the list into `#[tokio::test]`s.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};

use super::Fixture;
use crate::digest::{Algorithm, Digest, Hasher, parse_digest, sha256};
use crate::stream::{self, ByteStream};
use crate::{Backend, BackendExt, BlobStore, ByteRange, Error, Key, RepositoryName, Tag, UploadId, layout};

const MIB: usize = 1024 * 1024;

/// Expands to one `#[tokio::test]` per conformance case, each with a fixture made by `$fixture`
/// (an expression evaluated inside the async test). Extra attributes (`#[ignore = "..."]`) are
/// added to every test.
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:expr $(, #[$attr:meta])* $(,)?) => {
        $crate::conformance_tests!(@cases ($fixture) ($(#[$attr])*)
            empty_and_one_byte_blobs,
            large_streamed_blob,
            every_range_form_and_invalid_ranges,
            overwrite_is_atomic_while_a_reader_streams,
            mismatched_digest_or_size_publishes_nothing,
            failed_or_cancelled_writes_publish_nothing,
            not_found_is_a_distinct_error,
            list_is_sorted_paginated_and_bounded_by_prefix,
            copy_replaces_the_target_whole,
            upload_started_on_one_instance_finishes_on_another,
            uploads_in_small_and_large_chunks,
            failed_append_commits_nothing,
            upload_offsets_are_enforced_and_abort_removes_everything,
            concurrent_commits_of_one_digest_are_idempotent,
            blob_session_resumes_across_instances_and_verifies,
            purge_removes_only_stale_sessions,
            hostile_input_never_becomes_a_key,
            touch_creates_and_renews_markers,
        );
    };
    (@cases ($fixture:expr) $attrs:tt $($case:ident),* $(,)?) => {
        $( $crate::conformance_tests!(@one ($fixture) $case $attrs); )*
    };
    (@one ($fixture:expr) $case:ident ($($attr:tt)*)) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $($attr)*
        async fn $case() {
            let fixture = $fixture;
            $crate::testing::conformance::$case(&fixture).await;
        }
    };
}

/// Deterministic pseudo-random bytes (xorshift), so large test data need not be stored.
pub fn pattern(len: usize, seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = BytesMut::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out.freeze()
}

/// `total` bytes in chunks of `chunk`, generated lazily (chunk `i` is `pattern(.., seed + i)`).
pub fn generated(total: usize, chunk: usize, seed: u64) -> ByteStream {
    let chunks = (0..total.div_ceil(chunk)).map(move |i| pattern(chunk.min(total - i * chunk), seed + i as u64));
    Box::pin(futures::stream::iter(chunks.map(Ok)))
}

/// The SHA-256 digest of [`generated`] with the same arguments.
pub async fn generated_digest(total: usize, chunk: usize, seed: u64) -> Digest {
    digest_of_stream(generated(total, chunk, seed)).await
}

async fn digest_of_stream(mut s: ByteStream) -> Digest {
    let mut hasher = Hasher::new(Algorithm::Sha256);
    while let Some(chunk) = s.next().await {
        hasher.update(&chunk.expect("stream chunk"));
    }
    hasher.finish()
}

fn key(s: &str) -> Key {
    Key::parse(s).expect("test key")
}

async fn read(backend: &dyn Backend, k: &Key) -> Bytes {
    backend.get_bytes(k).await.unwrap_or_else(|e| panic!("read {k}: {e}"))
}

fn assert_not_found<T: std::fmt::Debug>(what: &str, result: crate::Result<T>) {
    match result {
        Err(Error::NotFound { .. }) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

async fn keys_under(backend: &dyn Backend, prefix: &Key) -> Vec<String> {
    let metas = backend.list_all(prefix).await.expect("list");
    metas.into_iter().map(|m| m.key.to_string()).collect()
}

fn a_stream_that_fails_after(data: Bytes) -> ByteStream {
    let items = vec![Ok(data), Err(Error::input("client went away"))];
    Box::pin(futures::stream::iter(items))
}

fn store(backend: Arc<dyn Backend>) -> BlobStore {
    BlobStore::new(backend)
}

/// Empty and one-byte blobs store, stat and read back.
pub async fn empty_and_one_byte_blobs(f: &dyn Fixture) {
    let blobs = store(f.backend().await);
    for content in [&b""[..], b"x"] {
        let digest = sha256(content);
        assert!(!blobs.exists(&digest).await.unwrap());
        let meta = blobs
            .put(&digest, Some(content.len() as u64), stream::once(Bytes::from(content)))
            .await
            .unwrap();
        assert_eq!(meta.size, content.len() as u64);
        let stat = blobs.stat(&digest).await.unwrap();
        assert_eq!(stat.size, content.len() as u64);
        let age = SystemTime::now().duration_since(stat.modified).unwrap_or_default();
        assert!(
            age < Duration::from_secs(3600),
            "modified time {:?} is not recent",
            stat.modified
        );
        let got = stream::collect(blobs.open(&digest, None).await.unwrap().body)
            .await
            .unwrap();
        assert_eq!(&got[..], content);
    }
    // The same contents through a writer.
    for content in [&b""[..], b"y"] {
        let mut writer = blobs.writer().await.unwrap();
        writer.write(Bytes::from(content)).await.unwrap();
        writer
            .commit(&sha256(content), Some(content.len() as u64))
            .await
            .unwrap();
        assert!(blobs.exists(&sha256(content)).await.unwrap());
    }
}

/// A 64 MiB blob streams in and out in chunks, through `put` and through a writer.
pub async fn large_streamed_blob(f: &dyn Fixture) {
    let blobs = store(f.backend().await);
    let (total, chunk) = (64 * MIB, MIB);
    let digest = generated_digest(total, chunk, 1).await;
    blobs
        .put(&digest, Some(total as u64), generated(total, chunk, 1))
        .await
        .unwrap();
    let got = blobs.open(&digest, None).await.unwrap();
    assert_eq!((got.meta.size, got.range.clone()), (total as u64, 0..total as u64));
    assert_eq!(digest_of_stream(got.body).await, digest);

    let digest2 = generated_digest(total, 256 * 1024, 2).await;
    let mut writer = blobs.writer().await.unwrap();
    writer.write_stream(generated(total, 256 * 1024, 2)).await.unwrap();
    writer.commit(&digest2, Some(total as u64)).await.unwrap();
    assert_eq!(
        digest_of_stream(blobs.open(&digest2, None).await.unwrap().body).await,
        digest2
    );

    // The tail of a large object, by range.
    let tail = blobs.open(&digest, Some(ByteRange::Suffix { len: 10 })).await.unwrap();
    assert_eq!(tail.range, total as u64 - 10..total as u64);
    let all = generated(total, chunk, 1);
    let last_chunk = all.skip(total / chunk - 1).next().await.unwrap().unwrap();
    assert_eq!(
        stream::collect(tail.body).await.unwrap(),
        last_chunk.slice(chunk - 10..)
    );
}

/// `a-b`, `a-`, `-n`, clamping, and every unsatisfiable case.
pub async fn every_range_form_and_invalid_ranges(f: &dyn Fixture) {
    let backend = f.backend().await;
    let k = key("ranges/obj");
    let content = Bytes::from_static(b"0123456789");
    backend.put_bytes(&k, content.clone()).await.unwrap();
    let cases = [
        ("0-0", 0..1),
        ("2-5", 2..6),
        ("7-100", 7..10),
        ("9-9", 9..10),
        ("0-", 0..10),
        ("4-", 4..10),
        ("-1", 9..10),
        ("-4", 6..10),
        ("-100", 0..10),
    ];
    for (spec, expected) in cases {
        let range = ByteRange::parse(spec).unwrap();
        let got = backend
            .get(&k, Some(range))
            .await
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(got.range, expected, "{spec}");
        assert_eq!(got.meta.size, 10, "{spec}");
        let body = stream::collect(got.body).await.unwrap();
        assert_eq!(
            body,
            content.slice(expected.start as usize..expected.end as usize),
            "{spec}"
        );
    }
    for spec in ["10-", "10-20", "-0", "1000-"] {
        let range = ByteRange::parse(spec).unwrap();
        match backend.get(&k, Some(range)).await {
            Err(Error::RangeNotSatisfiable { size: 10 }) => {}
            other => panic!("{spec}: expected RangeNotSatisfiable(10), got {other:?}"),
        }
    }
    let empty = key("ranges/empty");
    backend.put_bytes(&empty, Bytes::new()).await.unwrap();
    for spec in ["0-", "0-0", "-1"] {
        let range = ByteRange::parse(spec).unwrap();
        match backend.get(&empty, Some(range)).await {
            Err(Error::RangeNotSatisfiable { size: 0 }) => {}
            other => panic!("empty object {spec}: expected RangeNotSatisfiable(0), got {other:?}"),
        }
    }
    assert_not_found(
        "range of missing",
        backend
            .get(&key("ranges/none"), Some(ByteRange::From { first: 0 }))
            .await,
    );
}

/// A reader that started before an overwrite gets the old object whole, or fails (never a mix);
/// later readers get the new.
pub async fn overwrite_is_atomic_while_a_reader_streams(f: &dyn Fixture) {
    let backend = f.backend().await;
    let k = key("atomic/obj");
    let size = 16 * MIB;
    backend.put(&k, generated(size, MIB, 10)).await.unwrap();
    let mut reader = backend.get(&k, None).await.unwrap().body;
    let mut hasher = Hasher::new(Algorithm::Sha256);
    hasher.update(&reader.next().await.unwrap().unwrap());

    backend.put(&k, generated(size, MIB, 20)).await.unwrap();
    let mut failed = false;
    while let Some(chunk) = reader.next().await {
        match chunk {
            Ok(chunk) => hasher.update(&chunk),
            // Object stores read in ranges cannot go on with replaced bytes: they fail instead.
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if !failed {
        assert_eq!(
            hasher.finish(),
            generated_digest(size, MIB, 10).await,
            "the reader saw a mix"
        );
    }
    let now = digest_of_stream(backend.get(&k, None).await.unwrap().body).await;
    assert_eq!(now, generated_digest(size, MIB, 20).await);
}

/// Wrong digest or size, through `put` and through a writer: an error naming it, and no blob.
pub async fn mismatched_digest_or_size_publishes_nothing(f: &dyn Fixture) {
    let backend = f.backend().await;
    let blobs = store(backend.clone());
    let content = pattern(3 * MIB, 30);
    let right = sha256(&content);
    let wrong = sha256(b"something else");

    let err = blobs
        .put(&wrong, None, stream::once(content.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::DigestMismatch { ref actual, .. } if *actual == right),
        "{err}"
    );
    let err = blobs
        .put(&right, Some(3 * MIB as u64 - 1), stream::once(content.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
    let err = blobs
        .put(&right, Some(3 * MIB as u64 + 1), stream::once(content.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");

    let mut writer = blobs.writer().await.unwrap();
    writer.write(content.clone()).await.unwrap();
    let err = writer.commit(&wrong, None).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    let mut writer = blobs.writer().await.unwrap();
    writer.write(content.clone()).await.unwrap();
    let err = writer.commit(&right, Some(1)).await.unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");

    assert!(!blobs.exists(&right).await.unwrap() && !blobs.exists(&wrong).await.unwrap());
    assert_eq!(keys_under(&*backend, &layout::blobs()).await, Vec::<String>::new());
    assert_eq!(keys_under(&*backend, &layout::uploads()).await, Vec::<String>::new());
}

/// An input stream that fails, a cancelled put, and a dropped or aborted writer leave nothing.
pub async fn failed_or_cancelled_writes_publish_nothing(f: &dyn Fixture) {
    let backend = f.backend().await;
    let k = key("failed/obj");
    for size in [MIB, 7 * MIB] {
        let err = backend
            .put(&k, a_stream_that_fails_after(pattern(size, 40)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Input(_)), "{err}");
        assert_not_found("after a failed put", backend.head(&k).await);
    }
    backend.put_bytes(&k, Bytes::from_static(b"old")).await.unwrap();
    backend
        .put(&k, a_stream_that_fails_after(pattern(7 * MIB, 41)))
        .await
        .unwrap_err();
    assert_eq!(read(&*backend, &k).await, Bytes::from_static(b"old"));

    // A put whose caller goes away mid-stream.
    let pending = generated(6 * MIB, MIB, 42).chain(futures::stream::pending());
    let (b, k2) = (backend.clone(), key("failed/cancelled"));
    let task = tokio::spawn(async move { b.put(&k2, Box::pin(pending)).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    task.abort();
    let _ = task.await;
    assert_not_found("after a cancelled put", backend.head(&key("failed/cancelled")).await);

    let blobs = store(backend.clone());
    let content = pattern(3 * MIB, 43);
    let mut writer = blobs.writer().await.unwrap();
    writer.write(content.clone()).await.unwrap();
    drop(writer);
    let mut writer = blobs.writer().await.unwrap();
    writer.write(content.clone()).await.unwrap();
    writer.abort().await.unwrap();
    assert!(!blobs.exists(&sha256(&content)).await.unwrap());
    // The dropped writer cleans up in the background.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = keys_under(&*backend, &layout::uploads()).await;
        if left.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "upload debris left: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(keys_under(&*backend, &layout::blobs()).await, Vec::<String>::new());
}

/// Every operation on something missing fails with `NotFound`, not a generic error.
pub async fn not_found_is_a_distinct_error(f: &dyn Fixture) {
    let backend = f.backend().await;
    let missing = key("missing/obj");
    assert_not_found("get", backend.get(&missing, None).await);
    assert_not_found("head", backend.head(&missing).await);
    assert_not_found("delete", backend.delete(&missing).await);
    assert_not_found("copy", backend.copy(&missing, &key("missing/to")).await);
    assert_not_found("upload_status", backend.upload_status(&missing).await);
    assert_not_found(
        "upload_append",
        backend
            .upload_append(&missing, 0, stream::once("x"), Box::new(Vec::new))
            .await,
    );
    assert_not_found(
        "upload_complete",
        backend.upload_complete(&missing, &key("missing/to")).await,
    );
    assert_not_found("upload_abort", backend.upload_abort(&missing).await);
    assert!(!backend.exists(&missing).await.unwrap());
    // Deleting makes it missing again.
    backend
        .put_bytes(&key("missing/dir/child"), Bytes::from_static(b"c"))
        .await
        .unwrap();
    backend.delete(&key("missing/dir/child")).await.unwrap();
    assert_not_found("deleted", backend.get(&key("missing/dir/child"), None).await);
}

/// More than 1,000 keys list in byte order, across pages, after `start_after`, within the prefix.
pub async fn list_is_sorted_paginated_and_bounded_by_prefix(f: &dyn Fixture) {
    let backend = f.backend().await;
    let mut names: Vec<String> = (0..1100).map(|i| format!("many/k-{i:04}")).collect();
    names.extend(
        [
            "many/a-b",
            "many/a/x",
            "many/a/y/z",
            "many/a.c",
            "many/a0",
            "many/_m",
            "many/Z",
        ]
        .map(String::from),
    );
    futures::stream::iter(names.clone())
        .map(|n| {
            let backend = backend.clone();
            async move { backend.put_bytes(&key(&n), Bytes::from(n.clone())).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    for outside in ["many-x/y", "manyz", "man/y"] {
        backend
            .put_bytes(&key(outside), Bytes::from_static(b"o"))
            .await
            .unwrap();
    }
    names.sort();

    let listed = backend.list_all(&key("many")).await.unwrap();
    let listed_names: Vec<String> = listed.iter().map(|m| m.key.to_string()).collect();
    assert_eq!(listed_names.len(), names.len());
    assert_eq!(
        listed_names, names,
        "listing is not in byte order or not bounded by the prefix"
    );
    assert!(listed.iter().all(|m| m.size == m.key.as_str().len() as u64));

    for after in ["many/k-0499", "many/a", "many/a/x", "many/k", "many/zzz", "many/0"] {
        let got: Vec<String> = backend
            .list(&key("many"), Some(&key(after)))
            .map_ok(|m| m.key.to_string())
            .try_collect()
            .await
            .unwrap();
        let expected: Vec<String> = names.iter().filter(|n| n.as_str() > after).cloned().collect();
        assert_eq!(got, expected, "start_after {after}");
    }
    assert_eq!(keys_under(&*backend, &key("nothing-here")).await, Vec::<String>::new());
}

/// `copy` makes an independent copy and replaces an existing target; large objects copy too.
pub async fn copy_replaces_the_target_whole(f: &dyn Fixture) {
    let backend = f.backend().await;
    let (a, b) = (key("copy/a"), key("copy/b"));
    backend.put_bytes(&a, Bytes::from_static(b"first")).await.unwrap();
    backend
        .put_bytes(&b, Bytes::from_static(b"to be replaced"))
        .await
        .unwrap();
    backend.copy(&a, &b).await.unwrap();
    assert_eq!(read(&*backend, &b).await, Bytes::from_static(b"first"));
    backend.put_bytes(&a, Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(
        read(&*backend, &b).await,
        Bytes::from_static(b"first"),
        "copy shares state with its source"
    );

    let big = key("copy/big");
    let size = 12 * MIB + 123;
    backend.put(&big, generated(size, MIB, 50)).await.unwrap();
    backend.copy(&big, &key("copy/big2")).await.unwrap();
    let copied = backend.get(&key("copy/big2"), None).await.unwrap();
    assert_eq!(copied.meta.size, size as u64);
    assert_eq!(
        digest_of_stream(copied.body).await,
        generated_digest(size, MIB, 50).await
    );
}

/// One instance starts an upload; another (a second replica) continues and completes it.
pub async fn upload_started_on_one_instance_finishes_on_another(f: &dyn Fixture) {
    let (a, b) = (f.backend().await, f.backend().await);
    let home = key("up/one");
    let first = pattern(3 * MIB, 60);
    let second = pattern(4 * MIB, 61);
    assert_eq!(a.upload_create(&home).await.unwrap().length, 0);
    a.upload_append(&home, 0, stream::once(first.clone()), Box::new(|| b"one".to_vec()))
        .await
        .unwrap();

    let status = b.upload_status(&home).await.unwrap();
    assert_eq!((status.length, &status.checkpoint[..]), (3 * MIB as u64, &b"one"[..]));
    let status = b
        .upload_append(
            &home,
            status.length,
            stream::once(second.clone()),
            Box::new(|| b"two".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(status.length, 7 * MIB as u64);
    let status = a.upload_status(&home).await.unwrap();
    assert_eq!((status.length, &status.checkpoint[..]), (7 * MIB as u64, &b"two"[..]));

    let target = key("up/done");
    let meta = a.upload_complete(&home, &target).await.unwrap();
    assert_eq!(meta.size, 7 * MIB as u64);
    assert_eq!(read(&*b, &target).await, [first, second].concat());
    assert_not_found("status after complete", b.upload_status(&home).await);
    assert_eq!(keys_under(&*a, &home).await, Vec::<String>::new());
}

/// Appends far below S3's 5 MiB part minimum, empty appends, and one large append.
pub async fn uploads_in_small_and_large_chunks(f: &dyn Fixture) {
    let backend = f.backend().await;
    let home = key("up/chunks");
    backend.upload_create(&home).await.unwrap();
    let mut expected = Vec::new();
    let mut offset = 0u64;
    let mut chunks: Vec<Bytes> = (0..20).map(|i| pattern(300 * 1024, 70 + i)).collect();
    chunks.insert(3, Bytes::new());
    chunks.push(pattern(12 * MIB + 7, 99));
    chunks.push(pattern(1024, 100));
    chunks.push(pattern(1, 101));
    for chunk in chunks {
        expected.push(chunk.clone());
        let status = backend
            .upload_append(&home, offset, stream::once(chunk.clone()), Box::new(Vec::new))
            .await
            .unwrap();
        offset += chunk.len() as u64;
        assert_eq!(status.length, offset);
    }
    let target = key("up/chunks-done");
    backend.upload_complete(&home, &target).await.unwrap();
    let expected = expected.concat();
    let got = read(&*backend, &target).await;
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "content differs");

    // An upload that never received a byte completes as an empty object.
    let empty = key("up/empty");
    backend.upload_create(&empty).await.unwrap();
    backend.upload_complete(&empty, &key("up/empty-done")).await.unwrap();
    assert_eq!(read(&*backend, &key("up/empty-done")).await, Bytes::new());
}

/// An append whose input fails leaves the upload exactly as it was, and it can continue.
pub async fn failed_append_commits_nothing(f: &dyn Fixture) {
    let backend = f.backend().await;
    let home = key("up/failing");
    backend.upload_create(&home).await.unwrap();
    let first = pattern(MIB, 80);
    backend
        .upload_append(&home, 0, stream::once(first.clone()), Box::new(|| b"cp1".to_vec()))
        .await
        .unwrap();
    let err = backend
        .upload_append(
            &home,
            MIB as u64,
            a_stream_that_fails_after(pattern(7 * MIB, 81)),
            Box::new(|| b"bad".to_vec()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Input(_)), "{err}");
    let status = backend.upload_status(&home).await.unwrap();
    assert_eq!((status.length, &status.checkpoint[..]), (MIB as u64, &b"cp1"[..]));

    let third = pattern(6 * MIB, 82);
    backend
        .upload_append(&home, MIB as u64, stream::once(third.clone()), Box::new(Vec::new))
        .await
        .unwrap();
    backend.upload_complete(&home, &key("up/failing-done")).await.unwrap();
    assert!(read(&*backend, &key("up/failing-done")).await == [first, third].concat());
}

/// Appends must start at the committed length; creating twice fails; abort removes everything.
pub async fn upload_offsets_are_enforced_and_abort_removes_everything(f: &dyn Fixture) {
    let backend = f.backend().await;
    let home = key("up/offsets");
    backend.upload_create(&home).await.unwrap();
    match backend.upload_create(&home).await {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("second create: {other:?}"),
    }
    match backend
        .upload_append(&home, 5, stream::once("x"), Box::new(Vec::new))
        .await
    {
        Err(Error::UploadOffset { length: 0, offset: 5 }) => {}
        other => panic!("append at the wrong offset: {other:?}"),
    }
    backend
        .upload_append(&home, 0, stream::once(pattern(6 * MIB, 90)), Box::new(Vec::new))
        .await
        .unwrap();
    match backend
        .upload_append(&home, 0, stream::once("x"), Box::new(Vec::new))
        .await
    {
        Err(Error::UploadOffset { offset: 0, .. }) => {}
        other => panic!("append at an old offset: {other:?}"),
    }
    backend.upload_abort(&home).await.unwrap();
    assert_not_found("status after abort", backend.upload_status(&home).await);
    assert_eq!(keys_under(&*backend, &key("up")).await, Vec::<String>::new());
}

/// Sixteen concurrent commits of one digest (eight puts, eight writers) all succeed.
pub async fn concurrent_commits_of_one_digest_are_idempotent(f: &dyn Fixture) {
    let backend = f.backend().await;
    let blobs = store(backend.clone());
    let content = pattern(3 * MIB, 95);
    let digest = sha256(&content);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (blobs, content, digest) = (blobs.clone(), content.clone(), digest.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    let chunks: Vec<Bytes> = content.chunks(MIB / 2).map(|c| content.slice_ref(c)).collect();
                    blobs
                        .put(&digest, Some(content.len() as u64), stream::iter_ok(chunks))
                        .await
                } else {
                    let mut writer = blobs.writer().await?;
                    writer.write(content.clone()).await?;
                    writer.commit(&digest, Some(content.len() as u64)).await
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert!(blobs.read_limited(&digest, 4 * MIB as u64).await.unwrap() == content);
    assert_eq!(keys_under(&*backend, &layout::blobs()).await.len(), 1);
    assert_eq!(keys_under(&*backend, &layout::uploads()).await, Vec::<String>::new());
}

/// A chunked blob session continues on another instance and is verified on commit; a wrong
/// digest or size is refused and leaves the session usable; a SHA-512 digest works too.
pub async fn blob_session_resumes_across_instances_and_verifies(f: &dyn Fixture) {
    let (a, b) = (store(f.backend().await), store(f.backend().await));
    let id = UploadId::random();
    let (one, two) = (pattern(2 * MIB + 5, 110), pattern(5 * MIB, 111));
    let whole = [one.clone(), two.clone()].concat();
    let digest = sha256(&whole);
    a.upload_start(&id).await.unwrap();
    a.upload_append(&id, 0, stream::once(one.clone())).await.unwrap();
    let status = b.upload_status(&id).await.unwrap();
    assert_eq!(status.length, one.len() as u64);
    b.upload_append(&id, status.length, stream::once(two.clone()))
        .await
        .unwrap();

    let err = b.upload_commit(&id, &sha256(b"nope"), None).await.unwrap_err();
    assert!(
        matches!(err, Error::DigestMismatch { ref actual, .. } if *actual == digest),
        "{err}"
    );
    let err = b.upload_commit(&id, &digest, Some(1)).await.unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
    assert!(!a.exists(&digest).await.unwrap());
    assert_eq!(a.upload_status(&id).await.unwrap().length, whole.len() as u64);

    a.upload_commit(&id, &digest, Some(whole.len() as u64)).await.unwrap();
    assert!(b.read_limited(&digest, 8 * MIB as u64).await.unwrap() == whole);
    assert_not_found("finished session", a.upload_status(&id).await);

    let id = UploadId::random();
    a.upload_start(&id).await.unwrap();
    a.upload_append(&id, 0, stream::once(one.clone())).await.unwrap();
    let sha512 = Algorithm::Sha512.digest_of(&one);
    b.upload_commit(&id, &sha512, Some(one.len() as u64)).await.unwrap();
    assert!(a.read_limited(&sha512, 4 * MIB as u64).await.unwrap() == one);
    assert_eq!(
        keys_under(&**a.backend(), &layout::uploads()).await,
        Vec::<String>::new()
    );
}

/// Purging removes sessions untouched since the cutoff and nothing newer.
pub async fn purge_removes_only_stale_sessions(f: &dyn Fixture) {
    let backend = f.backend().await;
    let blobs = store(backend.clone());
    let ids = [UploadId::random(), UploadId::random()];
    for id in &ids {
        blobs.upload_start(id).await.unwrap();
        blobs
            .upload_append(id, 0, stream::once(pattern(1000, 120)))
            .await
            .unwrap();
        backend
            .put_bytes(&layout::upload_info(id), Bytes::from_static(b"{}"))
            .await
            .unwrap();
    }
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(blobs.purge_uploads(an_hour_ago).await.unwrap(), 0);
    assert_eq!(blobs.upload_status(&ids[0]).await.unwrap().length, 1000);

    let soon = SystemTime::now() + Duration::from_secs(60);
    assert_eq!(blobs.purge_uploads(soon).await.unwrap(), 2);
    for id in &ids {
        assert_not_found("purged session", blobs.upload_status(id).await);
    }
    assert_eq!(keys_under(&*backend, &layout::uploads()).await, Vec::<String>::new());
}

/// Hostile names, tags, ids and digests are refused before any key exists; nothing is stored.
pub async fn hostile_input_never_becomes_a_key(f: &dyn Fixture) {
    let backend = f.backend().await;
    let hostile = [
        "..",
        "../../etc/passwd",
        "/etc/passwd",
        "a/../b",
        "a\0b",
        "a\\b",
        "",
        "./a",
        "a//b",
    ];
    for h in hostile {
        assert!(Key::parse(h).is_err(), "key {h:?}");
        assert!(RepositoryName::parse(h).is_err(), "name {h:?}");
        assert!(Tag::parse(h).is_err(), "tag {h:?}");
        assert!(UploadId::parse(h).is_err(), "upload id {h:?}");
        assert!(parse_digest(&format!("sha256:{h}")).is_err(), "digest {h:?}");
    }
    assert!(Key::parse("a".repeat(1000)).is_err(), "overlong key");
    assert!(RepositoryName::parse(&"a".repeat(256)).is_err(), "overlong name");
    let odd: Digest = "md5+x:abc".parse().unwrap();
    assert!(
        layout::blob(&odd).is_err(),
        "a digest we cannot verify never names a blob"
    );
    for prefix in [layout::blobs(), layout::uploads(), key("repositories")] {
        assert_eq!(keys_under(&*backend, &prefix).await, Vec::<String>::new());
    }
}

/// `touch` creates an empty object (parents included), renews the time of one that exists,
/// and the marker lists and deletes like any object.
pub async fn touch_creates_and_renews_markers(f: &dyn Fixture) {
    let backend = f.backend().await;
    let marker = key("markers/deep/a/b/one");
    let first = backend.touch(&marker).await.unwrap();
    assert_eq!(first.size, 0);
    assert_eq!(backend.head(&marker).await.unwrap().size, 0);
    // S3 keeps times to the second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = backend.touch(&marker).await.unwrap();
    let seen = backend.head(&marker).await.unwrap().modified;
    assert!(
        seen > first.modified,
        "touch did not renew the time: {seen:?} vs {:?}",
        first.modified
    );
    assert!(second.modified >= first.modified);
    assert_eq!(keys_under(&*backend, &key("markers")).await, ["markers/deep/a/b/one"]);
    backend.delete(&marker).await.unwrap();
    backend.touch(&marker).await.unwrap();
    assert!(backend.exists(&marker).await.unwrap());
}
