//! Every endpoint and error code of the registry over HTTP, on filesystem and on S3 storage
//! (an S3 server inside the test process).

mod common;

use bytes::Bytes;
use common::{OCI_INDEX, OCI_MANIFEST, TestRegistry, error_code, image_manifest};
use reqwest::{Method, StatusCode};
use strata_storage::digest::sha256;

on_fs_and_s3!(
    base_endpoint_answers_with_the_api_version,
    monolithic_blob_push_and_pull_with_headers_and_ranges,
    blobs_are_visible_only_in_their_repository,
    post_then_put_upload,
    chunked_upload_checks_ranges_and_reports_progress,
    chunk_with_a_gap_or_overlap_is_rejected_with_416,
    streamed_patch_without_content_range,
    final_put_verifies_digest_and_chunks_verify_size,
    cancelled_and_foreign_sessions_are_unknown,
    cross_repository_mount,
    manifests_round_trip_byte_for_byte,
    docker_schema2_manifests_and_lists_are_accepted,
    manifests_must_reference_existing_content,
    foreign_layers_follow_the_url_policy,
    oversized_and_mismatched_manifests_are_refused,
    subject_and_referrers_api,
    multi_tag_push,
    tags_list_paginates_with_link,
    catalog_paginates_and_bounds_n,
    deletes_remove_tags_manifests_and_blob_links,
    invalid_names_tags_and_digests_are_refused,
    unsupported_methods_answer_405,
    health_and_metrics,
);

async fn base_endpoint_answers_with_the_api_version(r: &TestRegistry) {
    for path in ["/v2/", "/v2"] {
        let response = r.get(path).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["docker-distribution-api-version"], "registry/2.0");
    }
    assert_eq!(error_code(r.get("/v2/nothing/here").await).await, "NAME_UNKNOWN");
}

async fn monolithic_blob_push_and_pull_with_headers_and_ranges(r: &TestRegistry) {
    let data = Bytes::from_static(b"0123456789abcdef");
    let digest = sha256(&data);
    let response = r
        .request(Method::POST, &format!("/v2/a/b/blobs/uploads/?digest={digest}"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()["location"],
        format!("/v2/a/b/blobs/{digest}").as_str()
    );
    assert_eq!(response.headers()["docker-content-digest"], digest.to_string().as_str());

    let path = format!("/v2/a/b/blobs/{digest}");
    let response = r.get(&path).await;
    assert_eq!(response.status(), StatusCode::OK);
    let h = response.headers().clone();
    assert_eq!(h["content-length"], "16");
    assert_eq!(h["docker-content-digest"], digest.to_string().as_str());
    assert_eq!(h["etag"], format!("\"{digest}\"").as_str());
    assert_eq!(response.bytes().await.unwrap(), data);

    let response = r.head(&path).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-length"], "16");
    assert_eq!(response.headers()["docker-content-digest"], digest.to_string().as_str());

    for (range, status, content_range, body) in [
        ("bytes=2-5", 206, "bytes 2-5/16", &b"2345"[..]),
        ("bytes=10-", 206, "bytes 10-15/16", b"abcdef"),
        ("bytes=-3", 206, "bytes 13-15/16", b"def"),
        ("bytes=12-100", 206, "bytes 12-15/16", b"cdef"),
    ] {
        let response = r
            .request(Method::GET, &path)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{range}");
        assert_eq!(response.headers()["content-range"], content_range, "{range}");
        assert_eq!(&response.bytes().await.unwrap()[..], body, "{range}");
    }
    let response = r
        .request(Method::GET, &path)
        .header("range", "bytes=16-")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(response.headers()["content-range"], "bytes */16");
    // A Range header that does not parse is ignored.
    let response = r
        .request(Method::GET, &path)
        .header("range", "lines=1-2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let missing = sha256(b"missing");
    let response = r.get(&format!("/v2/a/b/blobs/{missing}")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(response).await, "BLOB_UNKNOWN");
    assert_eq!(
        r.head(&format!("/v2/a/b/blobs/{missing}")).await.status(),
        StatusCode::NOT_FOUND
    );
}

async fn blobs_are_visible_only_in_their_repository(r: &TestRegistry) {
    let digest = r.push_blob("one", "private bytes").await;
    assert_eq!(r.get(&format!("/v2/one/blobs/{digest}")).await.status(), StatusCode::OK);
    let response = r.get(&format!("/v2/two/blobs/{digest}")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(response).await, "BLOB_UNKNOWN");
    assert_eq!(
        r.head(&format!("/v2/two/blobs/{digest}")).await.status(),
        StatusCode::NOT_FOUND
    );
}

/// Starts a session on `name`; returns its Location.
async fn start_session(r: &TestRegistry, name: &str) -> String {
    let response = r
        .request(Method::POST, &format!("/v2/{name}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let h = response.headers();
    assert_eq!(h["range"], "0-0");
    let location = h["location"].to_str().unwrap().to_string();
    assert!(location.ends_with(h["docker-upload-uuid"].to_str().unwrap()));
    location
}

fn with_digest(location: &str, digest: &strata_storage::Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

async fn post_then_put_upload(r: &TestRegistry) {
    let data = Bytes::from_static(b"posted then put");
    let location = start_session(r, "pp").await;
    let digest = sha256(&data);
    let response = r
        .request(Method::PUT, &with_digest(&location, &digest))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()["location"],
        format!("/v2/pp/blobs/{digest}").as_str()
    );
    assert_eq!(response.headers()["docker-content-digest"], digest.to_string().as_str());
    assert_eq!(
        r.get(&format!("/v2/pp/blobs/{digest}")).await.bytes().await.unwrap(),
        data
    );
    // The session is gone once it published.
    assert_eq!(error_code(r.get(&location).await).await, "BLOB_UPLOAD_UNKNOWN");
}

async fn patch(r: &TestRegistry, location: &str, range: Option<&str>, data: &'static [u8]) -> reqwest::Response {
    let mut request = r.request(Method::PATCH, location).body(data);
    if let Some(range) = range {
        request = request.header("content-range", range);
    }
    request.send().await.unwrap()
}

async fn chunked_upload_checks_ranges_and_reports_progress(r: &TestRegistry) {
    let location = start_session(r, "chunked").await;
    let response = patch(r, &location, Some("0-9"), b"0123456789").await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["range"], "0-9");
    assert_eq!(response.headers()["location"], location.as_str());
    let response = patch(r, &location, Some("10-14"), b"abcde").await;
    assert_eq!(response.headers()["range"], "0-14");

    let response = r.get(&location).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.headers()["range"], "0-14");
    assert_eq!(response.headers()["location"], location.as_str());

    let digest = sha256(b"0123456789abcdefgh");
    let response = r
        .request(Method::PUT, &with_digest(&location, &digest))
        .header("content-range", "15-17")
        .body(&b"fgh"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let blob = r
        .get(&format!("/v2/chunked/blobs/{digest}"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(&blob[..], b"0123456789abcdefgh");
}

async fn chunk_with_a_gap_or_overlap_is_rejected_with_416(r: &TestRegistry) {
    let location = start_session(r, "gaps").await;
    patch(r, &location, Some("0-9"), b"0123456789").await;
    for range in ["20-29", "5-14", "0-9"] {
        let response = patch(r, &location, Some(range), b"xxxxxxxxxx").await;
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(response.headers()["range"], "0-9", "{range}");
        assert_eq!(error_code(response).await, "BLOB_UPLOAD_INVALID");
    }
    // The session is intact and continues where it was.
    let response = patch(r, &location, Some("10-11"), b"ab").await;
    assert_eq!(response.headers()["range"], "0-11");
}

async fn streamed_patch_without_content_range(r: &TestRegistry) {
    let location = start_session(r, "streamed").await;
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..50).map(|i| Ok(Bytes::from(vec![i as u8; 100_000]))).collect();
    let expected: Vec<u8> = (0..50).flat_map(|i| vec![i as u8; 100_000]).collect();
    let response = r
        .request(Method::PATCH, &location)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["range"], "0-4999999");
    let digest = sha256(&expected);
    let response = r
        .request(Method::PUT, &with_digest(&location, &digest))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let blob = r
        .get(&format!("/v2/streamed/blobs/{digest}"))
        .await
        .bytes()
        .await
        .unwrap();
    assert!(blob == expected);
}

async fn final_put_verifies_digest_and_chunks_verify_size(r: &TestRegistry) {
    let location = start_session(r, "verify").await;
    patch(r, &location, None, b"real content").await;
    let wrong = sha256(b"other content");
    let response = r
        .request(Method::PUT, &with_digest(&location, &wrong))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(response).await, "DIGEST_INVALID");
    assert_eq!(
        r.get(&format!("/v2/verify/blobs/{wrong}")).await.status(),
        StatusCode::NOT_FOUND
    );
    let response = r.request(Method::PUT, &location).send().await.unwrap();
    assert_eq!(error_code(response).await, "DIGEST_INVALID", "a PUT without digest");
    let response = r
        .request(Method::PUT, &format!("{location}?digest=sha256:zzz"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, "DIGEST_INVALID");

    // A chunk whose body disagrees with its Content-Range.
    let response = patch(r, &location, Some("12-21"), b"short").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(response).await, "SIZE_INVALID");
    // The session survived both and still publishes with the right digest.
    let right = sha256(b"real content");
    let response = r
        .request(Method::PUT, &with_digest(&location, &right))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    // Monolithic pushes are verified too.
    let response = r
        .request(Method::POST, &format!("/v2/verify/blobs/uploads/?digest={wrong}"))
        .body("not it")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, "DIGEST_INVALID");
}

async fn cancelled_and_foreign_sessions_are_unknown(r: &TestRegistry) {
    let location = start_session(r, "cancel/me").await;
    patch(r, &location, None, b"some bytes").await;
    // The same session id under another repository is unknown there.
    let foreign = location.replace("/v2/cancel/me/", "/v2/other/");
    assert_eq!(error_code(r.get(&foreign).await).await, "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(
        error_code(patch(r, &foreign, None, b"x").await).await,
        "BLOB_UPLOAD_UNKNOWN"
    );

    let response = r.request(Method::DELETE, &location).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(error_code(r.get(&location).await).await, "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(
        error_code(patch(r, &location, None, b"x").await).await,
        "BLOB_UPLOAD_UNKNOWN"
    );
    let response = r.request(Method::DELETE, &location).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let made_up = "/v2/cancel/me/blobs/uploads/00000000-0000-0000-0000-000000000000";
    assert_eq!(error_code(r.get(made_up).await).await, "BLOB_UPLOAD_UNKNOWN");
}

async fn cross_repository_mount(r: &TestRegistry) {
    let digest = r.push_blob("source", "shared layer").await;
    let response = r
        .request(
            Method::POST,
            &format!("/v2/target/blobs/uploads/?mount={digest}&from=source"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()["location"],
        format!("/v2/target/blobs/{digest}").as_str()
    );
    assert_eq!(response.headers()["docker-content-digest"], digest.to_string().as_str());
    assert_eq!(
        r.get(&format!("/v2/target/blobs/{digest}")).await.status(),
        StatusCode::OK
    );

    // Not in `from`: a normal upload session instead.
    let response = r
        .request(
            Method::POST,
            &format!("/v2/third/blobs/uploads/?mount={digest}&from=empty-repo"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(response.headers().contains_key("docker-upload-uuid"));
    assert_eq!(
        r.get(&format!("/v2/third/blobs/{digest}")).await.status(),
        StatusCode::NOT_FOUND
    );

    // Without `from`: mounted when the registry has the blob anywhere.
    let response = r
        .request(Method::POST, &format!("/v2/fourth/blobs/uploads/?mount={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let unknown = sha256(b"never pushed");
    let response = r
        .request(Method::POST, &format!("/v2/fourth/blobs/uploads/?mount={unknown}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

async fn manifests_round_trip_byte_for_byte(r: &TestRegistry) {
    let (manifest, digest) = r.push_image("img", "v1", "round trip").await;
    for reference in ["v1".to_string(), digest.to_string()] {
        let response = r.get(&format!("/v2/img/manifests/{reference}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], OCI_MANIFEST);
        assert_eq!(response.headers()["docker-content-digest"], digest.to_string().as_str());
        assert_eq!(response.bytes().await.unwrap(), manifest);
        let response = r.head(&format!("/v2/img/manifests/{reference}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-length"],
            manifest.len().to_string().as_str()
        );
        assert_eq!(response.headers()["docker-content-digest"], digest.to_string().as_str());
    }
    // Pushing by digest gives the same digest and Location.
    let response = r
        .put_manifest("img", digest.as_ref(), OCI_MANIFEST, manifest.clone())
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()["location"],
        format!("/v2/img/manifests/{digest}").as_str()
    );
    // Conditional GET.
    let response = r
        .request(Method::GET, "/v2/img/manifests/v1")
        .header("if-none-match", format!("\"{digest}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    let other = sha256(b"x");
    let response = r
        .request(Method::GET, "/v2/img/manifests/v1")
        .header("if-none-match", format!("\"{other}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Unknown references.
    let response = r.get("/v2/img/manifests/v2").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(response).await, "MANIFEST_UNKNOWN");
    assert_eq!(
        error_code(r.get(&format!("/v2/img/manifests/{other}")).await).await,
        "MANIFEST_UNKNOWN"
    );
    assert_eq!(
        error_code(r.get("/v2/nobody/manifests/v1").await).await,
        "MANIFEST_UNKNOWN"
    );
    // A tag moves when pushed again; an index may reference the manifest.
    let (_, second) = r.push_image("img", "v1", "second").await;
    assert_eq!(
        r.head("/v2/img/manifests/v1").await.headers()["docker-content-digest"],
        second.to_string().as_str()
    );
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":{},"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
        manifest.len()
    );
    let response = r.put_manifest("img", "multi", OCI_INDEX, index.clone()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = r.get("/v2/img/manifests/multi").await;
    assert_eq!(response.headers()["content-type"], OCI_INDEX);
    assert_eq!(response.bytes().await.unwrap(), Bytes::from(index));
}

async fn docker_schema2_manifests_and_lists_are_accepted(r: &TestRegistry) {
    let config = r.push_blob("dk", "{\"architecture\":\"amd64\"}").await;
    let layer = r.push_blob("dk", "docker layer").await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":10,"digest":"{config}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":12,"digest":"{layer}"}}]}}"#
    );
    let mt = "application/vnd.docker.distribution.manifest.v2+json";
    let response = r.put_manifest("dk", "latest", mt, manifest.clone()).await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        response.text().await.unwrap()
    );
    assert_eq!(r.get("/v2/dk/manifests/latest").await.headers()["content-type"], mt);
    let digest = sha256(manifest.as_bytes());
    let list = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{{"mediaType":"{mt}","size":{},"digest":"{digest}","platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        manifest.len()
    );
    let lt = "application/vnd.docker.distribution.manifest.list.v2+json";
    let response = r.put_manifest("dk", "list", lt, list).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(r.get("/v2/dk/manifests/list").await.headers()["content-type"], lt);
}

async fn manifests_must_reference_existing_content(r: &TestRegistry) {
    let config = r.push_blob("refs", "cfg").await;
    let missing = sha256(b"never pushed layer");
    let manifest = image_manifest(
        &config,
        &[(&missing, "application/vnd.oci.image.layer.v1.tar", vec![])],
        "",
    );
    let response = r.put_manifest("refs", "bad", OCI_MANIFEST, manifest).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(response).await, "MANIFEST_BLOB_UNKNOWN");
    // A config pushed to another repository does not count.
    let elsewhere = r.push_blob("elsewhere", "cfg2").await;
    let manifest = image_manifest(&elsewhere, &[], "");
    assert_eq!(
        error_code(r.put_manifest("refs", "bad", OCI_MANIFEST, manifest).await).await,
        "MANIFEST_BLOB_UNKNOWN"
    );
    // An index whose child is missing.
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{missing}","size":5}}]}}"#
    );
    assert_eq!(
        error_code(r.put_manifest("refs", "idx", OCI_INDEX, index).await).await,
        "MANIFEST_BLOB_UNKNOWN"
    );
    // A manifest with no layers is fine.
    let manifest = image_manifest(&config, &[], "");
    assert_eq!(
        r.put_manifest("refs", "nolayers", OCI_MANIFEST, manifest)
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(r.get("/v2/refs/manifests/bad").await.status(), StatusCode::NOT_FOUND);
}

async fn foreign_layers_follow_the_url_policy(r: &TestRegistry) {
    let config = r.push_blob("win", "windows config").await;
    let foreign = sha256(b"a windows base layer that lives at mcr");
    let mt = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    let ok = image_manifest(
        &config,
        &[(&foreign, mt, vec!["https://mcr.microsoft.com/v2/windows/blobs/x"])],
        "",
    );
    assert_eq!(
        r.put_manifest("win", "ltsc", OCI_MANIFEST, ok).await.status(),
        StatusCode::CREATED
    );
    let plain_http = image_manifest(&config, &[(&foreign, mt, vec!["http://example.com/layer"])], "");
    assert_eq!(
        error_code(r.put_manifest("win", "bad", OCI_MANIFEST, plain_http).await).await,
        "MANIFEST_BLOB_UNKNOWN"
    );
    // A non-distributable layer without URLs exists nowhere else: it must be pushed, and the
    // error says so (not that URLs were refused).
    let no_urls = image_manifest(&config, &[(&foreign, mt, vec![])], "");
    let body: serde_json::Value = r
        .put_manifest("win", "bad", OCI_MANIFEST, no_urls.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("without URLs must be pushed"), "{message}");
    let pushed = r.push_blob("win", "a windows base layer that lives at mcr").await;
    assert_eq!(pushed, foreign);
    assert_eq!(
        r.put_manifest("win", "pushed", OCI_MANIFEST, no_urls).await.status(),
        StatusCode::CREATED
    );

    // A deny pattern wins over allow.
    let mut config_deny = strata_registry::Config::default();
    config_deny.foreign_layers.deny = vec!["^https://mcr\\.microsoft\\.com/".into()];
    let strict = r.replica(config_deny).await;
    let cfg = strict.push_blob("win2", "windows config").await;
    let denied = image_manifest(
        &cfg,
        &[(&foreign, mt, vec!["https://mcr.microsoft.com/v2/windows/blobs/x"])],
        "",
    );
    assert_eq!(
        error_code(strict.put_manifest("win2", "t", OCI_MANIFEST, denied).await).await,
        "MANIFEST_BLOB_UNKNOWN"
    );
}

async fn oversized_and_mismatched_manifests_are_refused(r: &TestRegistry) {
    let config = r.push_blob("big", "cfg").await;
    let padding = "x".repeat(4 * 1024 * 1024);
    let huge = image_manifest(&config, &[], &format!(r#","annotations":{{"pad":"{padding}"}}"#));
    let response = r.put_manifest("big", "huge", OCI_MANIFEST, huge).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Just under 4 MiB is accepted (the spec says registries should take at least 4 MB).
    let padding = "x".repeat(4 * 1024 * 1024 - 1024);
    let large = image_manifest(&config, &[], &format!(r#","annotations":{{"pad":"{padding}"}}"#));
    assert_eq!(
        r.put_manifest("big", "large", OCI_MANIFEST, large).await.status(),
        StatusCode::CREATED
    );

    let manifest = image_manifest(&config, &[], "");
    let wrong = sha256(b"not the manifest");
    let response = r
        .put_manifest("big", wrong.as_ref(), OCI_MANIFEST, manifest.clone())
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(response).await, "DIGEST_INVALID");
    let response = r.put_manifest("big", "t", OCI_INDEX, manifest).await;
    assert_eq!(
        error_code(response).await,
        "MANIFEST_INVALID",
        "Content-Type disagrees with mediaType"
    );
    assert_eq!(
        error_code(r.put_manifest("big", "t", OCI_MANIFEST, "{not json").await).await,
        "MANIFEST_INVALID"
    );
    let schema1 = r#"{"schemaVersion":1,"name":"big","tag":"t","fsLayers":[]}"#;
    let response = r
        .put_manifest(
            "big",
            "t",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            schema1,
        )
        .await;
    assert_eq!(error_code(response).await, "MANIFEST_INVALID");
}

async fn subject_and_referrers_api(r: &TestRegistry) {
    let (subject_bytes, subject) = r.push_image("ref", "v1", "subject").await;
    let empty = r.push_blob("ref", "{}").await;
    let sig = r.push_blob("ref", "signature bytes").await;
    let extra = format!(
        r#","artifactType":"application/vnd.example.sig","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":{}}},"annotations":{{"org.example":"yes"}}"#,
        subject_bytes.len()
    );
    let artifact = image_manifest(&empty, &[(&sig, "application/octet-stream", vec![])], &extra);
    let artifact_digest = sha256(&artifact);
    let response = r
        .put_manifest("ref", artifact_digest.as_ref(), OCI_MANIFEST, artifact.clone())
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["oci-subject"], subject.to_string().as_str());

    let response = r.get(&format!("/v2/ref/referrers/{subject}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], OCI_INDEX);
    let index: serde_json::Value = response.json().await.unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0]["digest"], artifact_digest.to_string());
    assert_eq!(manifests[0]["artifactType"], "application/vnd.example.sig");
    assert_eq!(manifests[0]["annotations"]["org.example"], "yes");
    assert_eq!(manifests[0]["size"], artifact.len());

    let filtered = r
        .get(&format!(
            "/v2/ref/referrers/{subject}?artifactType=application/vnd.example.sbom"
        ))
        .await;
    assert_eq!(filtered.headers()["oci-filters-applied"], "artifactType");
    let filtered: serde_json::Value = filtered.json().await.unwrap();
    assert_eq!(filtered["manifests"].as_array().unwrap().len(), 0);
    let kept = r
        .get(&format!(
            "/v2/ref/referrers/{subject}?artifactType=application/vnd.example.sig"
        ))
        .await;
    assert_eq!(
        kept.json::<serde_json::Value>().await.unwrap()["manifests"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // An unknown subject has an empty list, not a 404; a subject need not exist to be referred to.
    let unknown = sha256(b"no such subject");
    let response = r.get(&format!("/v2/ref/referrers/{unknown}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["manifests"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let dangling = image_manifest(
        &empty,
        &[],
        &format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{unknown}","size":3}}"#),
    );
    assert_eq!(
        r.put_manifest("ref", "dangling", OCI_MANIFEST, dangling).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        error_code(r.get("/v2/ref/referrers/sha256:bad").await).await,
        "DIGEST_INVALID"
    );

    // Deleting the referrer removes it from the list.
    let response = r
        .request(Method::DELETE, &format!("/v2/ref/manifests/{artifact_digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let index: serde_json::Value = r
        .get(&format!("/v2/ref/referrers/{subject}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 0);
}

async fn multi_tag_push(r: &TestRegistry) {
    let config = r.push_blob("mt", "cfg").await;
    let manifest = image_manifest(&config, &[], "");
    let digest = sha256(&manifest);
    let response = r
        .put_manifest("mt", &format!("{digest}?tag=a&tag=b&tag=c"), OCI_MANIFEST, manifest)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let tags: Vec<&str> = response
        .headers()
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(tags, ["a", "b", "c"]);
    let list: serde_json::Value = r.get("/v2/mt/tags/list").await.json().await.unwrap();
    assert_eq!(list["tags"], serde_json::json!(["a", "b", "c"]));
    let response = r
        .put_manifest("mt", &format!("{digest}?tag=-bad"), OCI_MANIFEST, "{}")
        .await;
    assert_eq!(error_code(response).await, "TAG_INVALID");
}

async fn tags_list_paginates_with_link(r: &TestRegistry) {
    let config = r.push_blob("tl", "cfg").await;
    let manifest = image_manifest(&config, &[], "");
    let digest = sha256(&manifest);
    let tags = ["v10", "v2", "latest", "v1", "A-upper", "_under"];
    let query: Vec<String> = tags.iter().map(|t| format!("tag={t}")).collect();
    r.put_manifest("tl", &format!("{digest}?{}", query.join("&")), OCI_MANIFEST, manifest)
        .await;
    let mut sorted = tags.to_vec();
    sorted.sort();

    let all: serde_json::Value = r.get("/v2/tl/tags/list").await.json().await.unwrap();
    assert_eq!(all["name"], "tl");
    assert_eq!(all["tags"], serde_json::json!(sorted));

    let mut collected = Vec::new();
    let mut next = Some("/v2/tl/tags/list?n=4".to_string());
    while let Some(path) = next {
        let response = r.get(&path).await;
        next = response.headers().get("link").map(|l| {
            let l = l.to_str().unwrap();
            assert!(l.ends_with("rel=\"next\""), "{l}");
            l[1..l.find('>').unwrap()].to_string()
        });
        let page: serde_json::Value = response.json().await.unwrap();
        let page: Vec<String> = serde_json::from_value(page["tags"].clone()).unwrap();
        assert!(page.len() <= 4);
        collected.extend(page);
    }
    assert_eq!(collected, sorted);

    let after: serde_json::Value = r.get("/v2/tl/tags/list?last=v1").await.json().await.unwrap();
    assert_eq!(after["tags"], serde_json::json!(["v10", "v2"]));
    let none = r.get("/v2/tl/tags/list?n=0").await;
    assert!(none.headers().get("link").is_none());
    assert_eq!(
        none.json::<serde_json::Value>().await.unwrap()["tags"],
        serde_json::json!([])
    );
    assert_eq!(
        error_code(r.get("/v2/tl/tags/list?n=abc").await).await,
        "PAGINATION_NUMBER_INVALID"
    );
    let unknown = r.get("/v2/no/such/repo/tags/list").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(unknown).await, "NAME_UNKNOWN");
}

async fn catalog_paginates_and_bounds_n(r: &TestRegistry) {
    for name in ["zeta", "alpha/one", "alpha/two", "beta"] {
        r.push_blob(name, format!("blob of {name}")).await;
    }
    let all: serde_json::Value = r.get("/v2/_catalog").await.json().await.unwrap();
    assert_eq!(
        all["repositories"],
        serde_json::json!(["alpha/one", "alpha/two", "beta", "zeta"])
    );
    let response = r.get("/v2/_catalog?n=2").await;
    let link = response.headers()["link"].to_str().unwrap().to_string();
    assert_eq!(link, "</v2/_catalog?n=2&last=alpha%2Ftwo>; rel=\"next\"");
    let page: serde_json::Value = response.json().await.unwrap();
    assert_eq!(page["repositories"], serde_json::json!(["alpha/one", "alpha/two"]));
    let rest: serde_json::Value = r.get(&link[1..link.find('>').unwrap()]).await.json().await.unwrap();
    assert_eq!(rest["repositories"], serde_json::json!(["beta", "zeta"]));
    let response = r.get("/v2/_catalog?n=1001").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(response).await, "PAGINATION_NUMBER_INVALID");
    assert_eq!(r.get("/v2/_catalog?n=1000").await.status(), StatusCode::OK);
}

async fn deletes_remove_tags_manifests_and_blob_links(r: &TestRegistry) {
    let (_, digest) = r.push_image("del", "keep", "deletes").await;
    r.put_manifest(
        "del",
        "also",
        OCI_MANIFEST,
        r.get("/v2/del/manifests/keep").await.bytes().await.unwrap(),
    )
    .await;

    let response = r
        .request(Method::DELETE, "/v2/del/manifests/also")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(r.get("/v2/del/manifests/also").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.get("/v2/del/manifests/keep").await.status(), StatusCode::OK);
    let response = r
        .request(Method::DELETE, "/v2/del/manifests/also")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, "MANIFEST_UNKNOWN");

    let response = r
        .request(Method::DELETE, &format!("/v2/del/manifests/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        r.get(&format!("/v2/del/manifests/{digest}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        r.get("/v2/del/manifests/keep").await.status(),
        StatusCode::NOT_FOUND,
        "tags go with the manifest"
    );
    let tags: serde_json::Value = r.get("/v2/del/tags/list").await.json().await.unwrap();
    assert_eq!(tags["tags"], serde_json::json!([]));

    let blob = r.push_blob("del", "deletable").await;
    let response = r
        .request(Method::DELETE, &format!("/v2/del/blobs/{blob}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        r.get(&format!("/v2/del/blobs/{blob}")).await.status(),
        StatusCode::NOT_FOUND
    );
    let response = r
        .request(Method::DELETE, &format!("/v2/del/blobs/{blob}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, "BLOB_UNKNOWN");

    // With deletion off, every delete is 405 UNSUPPORTED and nothing changes.
    let config = strata_registry::Config {
        delete_enabled: false,
        ..Default::default()
    };
    let locked = r.replica(config).await;
    let (_, digest) = locked.push_image("del2", "t", "locked").await;
    let blob = locked.push_blob("del2", "locked blob").await;
    for path in [
        "/v2/del2/manifests/t".to_string(),
        format!("/v2/del2/manifests/{digest}"),
        format!("/v2/del2/blobs/{blob}"),
    ] {
        let response = locked.request(Method::DELETE, &path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(error_code(response).await, "UNSUPPORTED");
    }
    assert_eq!(locked.get("/v2/del2/manifests/t").await.status(), StatusCode::OK);
}

async fn invalid_names_tags_and_digests_are_refused(r: &TestRegistry) {
    for (path, code) in [
        ("/v2/UPPER/tags/list", "NAME_INVALID"),
        ("/v2/a..b/manifests/latest", "NAME_INVALID"),
        // Reading a reference nothing can have: not found, as clients and the conformance
        // tests expect; writing there is refused as invalid.
        ("/v2/a/manifests/-x", "MANIFEST_UNKNOWN"),
        ("/v2/a/manifests/.INVALID_MANIFEST_NAME", "MANIFEST_UNKNOWN"),
        ("/v2/a/blobs/sha256:1234", "DIGEST_INVALID"),
        ("/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", "DIGEST_INVALID"),
        ("/v2/a/blobs/uploads/not.a.valid.id", "BLOB_UPLOAD_UNKNOWN"),
    ] {
        let response = r.get(path).await;
        assert!(response.status().is_client_error(), "{path}");
        assert_eq!(error_code(response).await, code, "{path}");
    }
    assert_eq!(r.get("/v2/a/manifests/-x").await.status(), StatusCode::NOT_FOUND);
    let put = r.put_manifest("a", "-x", OCI_MANIFEST, Bytes::from_static(b"{}")).await;
    assert_eq!(put.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(put).await, "TAG_INVALID");
    let long = format!("/v2/{}/tags/list", vec!["abcdefghij"; 26].join("/"));
    assert_eq!(error_code(r.get(&long).await).await, "NAME_INVALID");
    let response = r
        .request(Method::POST, "/v2/a/blobs/uploads/?digest=sha256:nothex")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, "DIGEST_INVALID");
    let response = r
        .request(Method::POST, "/v2/a/blobs/uploads/?mount=sha256:abc&from=b")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, "DIGEST_INVALID");
}

async fn unsupported_methods_answer_405(r: &TestRegistry) {
    for (method, path) in [
        (Method::POST, "/v2/a/tags/list"),
        (Method::PUT, "/v2/_catalog"),
        (Method::PATCH, "/v2/a/manifests/t"),
    ] {
        let response = r.request(method.clone(), path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(error_code(response).await, "UNSUPPORTED");
    }
}

async fn health_and_metrics(r: &TestRegistry) {
    assert_eq!(r.get("/healthz").await.status(), StatusCode::OK);
    r.push_blob("m", "metered").await;
    r.get("/v2/m/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000")
        .await;
    let text = r.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains("strata_http_requests_total{endpoint=\"upload\",method=\"POST\",status=\"201\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("strata_http_requests_total{endpoint=\"blob\",method=\"GET\",status=\"404\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("strata_http_request_duration_seconds_count{endpoint=\"upload\"} 1"),
        "{text}"
    );
    assert!(text.contains("strata_http_request_bytes_total 7"), "{text}");
    // S3 needs chunks of at least 5 MiB to be efficient, and the registry says so.
    let response = r.request(Method::POST, "/v2/m/blobs/uploads/").send().await.unwrap();
    let min = response
        .headers()
        .get("oci-chunk-min-length")
        .map(|v| v.to_str().unwrap().to_string());
    match r.state.blobs.backend().name() {
        "s3" => assert_eq!(min.as_deref(), Some("5242880")),
        _ => assert_eq!(min, None),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_uploads_are_purged_in_the_background() {
    let config = strata_registry::Config {
        upload_purge_age: std::time::Duration::from_secs(1),
        upload_purge_interval: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    for fixture in [
        std::sync::Arc::new(strata_storage::testing::FsFixture::new())
            as std::sync::Arc<dyn strata_storage::testing::Fixture>,
        std::sync::Arc::new(strata_storage::testing::S3Fixture::new().await),
    ] {
        let r = TestRegistry::start(fixture, config.clone()).await;
        let location = start_session(&r, "purge").await;
        patch(&r, &location, None, b"abandoned").await;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let response = r.get(&location).await;
            if response.status() == StatusCode::NOT_FOUND {
                assert_eq!(error_code(response).await, "BLOB_UPLOAD_UNKNOWN");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the session was never purged");
        }
        // The session is unknown once its record is gone; the purge may still be deleting the
        // rest of it, which it finishes within the same deadline.
        loop {
            let left =
                strata_storage::BackendExt::list_all(&**r.state.blobs.backend(), &strata_storage::layout::uploads())
                    .await
                    .unwrap();
            if left.is_empty() {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "left behind: {left:?}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
