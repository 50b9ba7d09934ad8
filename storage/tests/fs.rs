//! The conformance suite against the filesystem backend, plus what only a filesystem can show.

use std::time::Duration;

use bytes::Bytes;
use strata_storage::testing::conformance::pattern;
use strata_storage::testing::{Fixture, FsFixture};
use strata_storage::{Backend, BackendExt, Error, FsBackend, Key, stream};

strata_storage::conformance_tests!(FsFixture::new());

fn key(s: &str) -> Key {
    Key::parse(s).unwrap()
}

/// Files below the root, except the temp directory.
fn files_under(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path().strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn objects_are_plain_files_under_the_root_and_nothing_else_is_left() {
    let fixture = FsFixture::new();
    let backend = fixture.backend().await;
    backend
        .put_bytes(&key("a/b/c"), Bytes::from_static(b"abc"))
        .await
        .unwrap();
    let err = backend
        .put(
            &key("a/d"),
            Box::pin(futures::stream::iter([Err(Error::input("boom"))])),
        )
        .await;
    assert!(err.is_err());
    assert_eq!(files_under(fixture.root()), vec!["a/b/c".to_string()]);
    assert_eq!(std::fs::read(fixture.root().join("a/b/c")).unwrap(), b"abc");
    // A directory holding other objects is not an object.
    match backend.head(&key("a/b")).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("head of a directory: {other:?}"),
    }
    assert!(matches!(backend.delete(&key("a/b")).await, Err(Error::NotFound { .. })));
    backend.delete(&key("a/b/c")).await.unwrap();
    // Empty parent directories are pruned with the object.
    assert!(!fixture.root().join("a").exists());
}

#[tokio::test]
async fn a_torn_append_is_discarded_by_the_next_append() {
    let fixture = FsFixture::new();
    let backend = fixture.backend().await;
    let home = key("up/torn");
    backend.upload_create(&home).await.unwrap();
    backend
        .upload_append(&home, 0, stream::once("hello "), Box::new(Vec::new))
        .await
        .unwrap();
    // Simulate a crash mid-append: bytes past the committed length, state not updated.
    let data = fixture.root().join("up/torn/data");
    let mut torn = std::fs::read(&data).unwrap();
    torn.extend_from_slice(b"GARBAGE");
    std::fs::write(&data, torn).unwrap();
    assert_eq!(backend.upload_status(&home).await.unwrap().length, 6);
    backend
        .upload_append(&home, 6, stream::once("world"), Box::new(Vec::new))
        .await
        .unwrap();
    backend.upload_complete(&home, &key("up/out")).await.unwrap();
    assert_eq!(
        backend.get_bytes(&key("up/out")).await.unwrap(),
        Bytes::from_static(b"hello world")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_to_one_upload_are_refused() {
    let fixture = FsFixture::new();
    let (a, b) = (fixture.backend().await, fixture.backend().await);
    let home = key("up/busy");
    a.upload_create(&home).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let slow =
        futures::stream::once(async { Ok(Bytes::from_static(b"first")) }).chain(futures::stream::once(async move {
            let _ = rx.await;
            Ok(Bytes::from_static(b" chunk"))
        }));
    use futures::StreamExt;
    let a2 = a.clone();
    let h2 = home.clone();
    let first = tokio::spawn(async move { a2.upload_append(&h2, 0, Box::pin(slow), Box::new(Vec::new)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    match b
        .upload_append(&home, 0, stream::once("second"), Box::new(Vec::new))
        .await
    {
        Err(Error::UploadBusy { .. }) => {}
        other => panic!("expected UploadBusy, got {other:?}"),
    }
    tx.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap().length, 11);
}

#[tokio::test]
async fn stale_temp_files_are_swept_when_the_store_opens_and_on_every_sweep() {
    let fixture = FsFixture::new();
    let _ = fixture.backend().await;
    let tmp = fixture.root().join(".tmp");
    let stale = tmp.join("stale.tmp");
    let fresh = tmp.join("fresh.tmp");
    std::fs::write(&stale, b"x").unwrap();
    std::fs::write(&fresh, b"x").unwrap();
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(48 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    FsBackend::new(fixture.root()).unwrap();
    assert!(!stale.exists(), "a two-day-old temp file survived");
    assert!(fresh.exists(), "a fresh temp file (another writer's) was removed");

    // And while the store is open, whenever `sweep` runs (the registry runs it periodically).
    let backend = FsBackend::new(fixture.root()).unwrap();
    std::fs::write(&stale, b"x").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    let day_ago = std::time::SystemTime::now() - Duration::from_secs(24 * 3600);
    assert_eq!(backend.sweep(day_ago).await.unwrap(), 1);
    assert!(!stale.exists() && fresh.exists());
}

#[tokio::test]
async fn listing_skips_foreign_files_that_are_not_keys() {
    let fixture = FsFixture::new();
    let backend = fixture.backend().await;
    backend.put_bytes(&key("l/ok"), pattern(3, 1)).await.unwrap();
    std::fs::write(fixture.root().join("l/.hidden"), b"x").unwrap();
    std::fs::write(fixture.root().join("l/with space"), b"x").unwrap();
    std::os::unix::fs::symlink("/etc", fixture.root().join("l/link")).unwrap();
    let keys: Vec<String> = backend
        .list_all(&key("l"))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key.to_string())
        .collect();
    assert_eq!(keys, vec!["l/ok".to_string()]);
}
