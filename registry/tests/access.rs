//! Access control in process: a security matrix (every endpoint × every kind of caller and
//! token → the expected status, 0 unexpected), and the attacks that go around the obvious path:
//! upload-session hijack, mounts from unreadable repositories, the catalog, tag overwrites, the
//! sign-in limit, and an htpasswd reload under traffic.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use common::{OCI_MANIFEST, TestRegistry, image_manifest, rule};
use reqwest::{Method, StatusCode};
use strata_registry::Config;
use strata_registry::config::{Action, Auth, Token};
use strata_storage::digest::sha256;
use strata_storage::testing::FsFixture;

const SERVICE: &str = "strata-test";

fn write_htpasswd(path: &Path, users: &[(&str, &str)], cost: u32) {
    let lines: Vec<String> = users
        .iter()
        .map(|(u, p)| format!("{u}:{}", bcrypt::hash(p, cost).unwrap()))
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// A registry with users reader/writer/deleter on `secure/**`, `other` on `other/**`, tokens,
/// and nothing for anonymous callers; `max_failed` sign-ins per address and user, passwords
/// hashed with bcrypt `cost`.
async fn secured(dir: &Path, max_failed: u32, cost: u32) -> TestRegistry {
    use Action::*;
    let htpasswd = dir.join("htpasswd");
    write_htpasswd(
        &htpasswd,
        &[
            ("reader", "r-pass"),
            ("writer", "w-pass"),
            ("deleter", "d-pass"),
            ("other", "o-pass"),
        ],
        cost,
    );
    let config = Config {
        auth: Some(Auth {
            htpasswd: Some(htpasswd),
            token: Some(Token {
                key: Some(dir.join("token.pem")),
                service: SERVICE.into(),
                ..Token::default()
            }),
            max_failed_logins: max_failed,
            ..Auth::default()
        }),
        access: vec![
            rule(&["secure/**"], &["reader"], &[Pull]),
            rule(&["secure/**"], &["writer"], &[Pull, Push]),
            rule(&["secure/**"], &["deleter"], &[Pull, Push, Delete]),
            rule(&["other/**"], &["other"], &[Pull, Push, Delete]),
        ],
        ..Config::default()
    };
    TestRegistry::start(Arc::new(FsFixture::new()), config).await
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A token from `/token` for `scopes`, as `user` (or anonymous).
async fn token(r: &TestRegistry, credentials: Option<(&str, &str)>, scopes: &[&str]) -> String {
    let mut url = format!("/token?service={SERVICE}");
    for s in scopes {
        url.push_str(&format!("&scope={s}"));
    }
    let mut request = r.request(Method::GET, &url);
    if let Some((u, p)) = credentials {
        request = request.header("authorization", basic(u, p));
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "token for {credentials:?}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["token"], body["access_token"]);
    assert!(body["expires_in"].as_u64().unwrap() > 0 && body["issued_at"].is_string());
    body["token"].as_str().unwrap().to_owned()
}

/// Signs `claims` with the key at `pem` (PKCS#8 EC).
fn sign(pem: &[u8], claims: &serde_json::Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_ec_pem(pem).unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256), claims, &key).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str, aud: &str, exp: u64, repo: &str, actions: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "iss": "strata", "sub": sub, "aud": aud, "exp": exp, "nbf": now() - 5, "iat": now() - 5,
        "access": [{ "type": "repository", "name": repo, "actions": actions }],
    })
}

/// Content for the matrix: secure/app:latest with a layer, and a blob in other/app.
async fn seed(r: &TestRegistry, writer: &str, other: &str) -> (String, String) {
    let push = |auth: String, repo: &'static str, data: &'static [u8]| {
        let digest = sha256(data);
        let req = r
            .request(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
            .header("authorization", auth)
            .body(Bytes::from_static(data));
        async move {
            assert_eq!(req.send().await.unwrap().status(), StatusCode::CREATED, "{repo}");
            digest
        }
    };
    let config = push(writer.to_owned(), "secure/app", b"config").await;
    let layer = push(writer.to_owned(), "secure/app", b"layer").await;
    let manifest = image_manifest(
        &config,
        &[(&layer, "application/vnd.oci.image.layer.v1.tar", vec![])],
        "",
    );
    let response = r
        .request(Method::PUT, "/v2/secure/app/manifests/latest")
        .header("authorization", writer)
        .header("content-type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    push(other.to_owned(), "other/app", b"other's blob").await;
    (layer.to_string(), sha256(b"other's blob").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_every_caller_as_expected() {
    let dir = tempfile::tempdir().unwrap();
    let r = secured(dir.path(), 1000, 4).await;
    let (reader, writer, deleter, other) = (
        basic("reader", "r-pass"),
        basic("writer", "w-pass"),
        basic("deleter", "d-pass"),
        basic("other", "o-pass"),
    );
    let (layer, _) = seed(&r, &writer, &other).await;

    let key = std::fs::read(dir.path().join("token.pem")).unwrap();
    let valid = token(&r, Some(("reader", "r-pass")), &["repository:secure/app:pull"]).await;
    let bearer = |t: &str| format!("Bearer {t}");
    let expired = sign(&key, &claims("reader", SERVICE, now() - 120, "secure/app", &["pull"]));
    let elsewhere = token(&r, Some(("reader", "r-pass")), &["repository:secure/lib:pull"]).await;
    let foreign_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other_key = sign(
        foreign_key.serialize_pem().as_bytes(),
        &claims("reader", SERVICE, now() + 300, "secure/app", &["pull"]),
    );
    let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&serde_json::json!({ "alg": "none", "typ": "JWT" })),
        b64(&claims(
            "reader",
            SERVICE,
            now() + 300,
            "secure/app",
            &["pull", "push", "delete"]
        ))
    );
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    parts[1] = b64(&claims(
        "reader",
        SERVICE,
        now() + 300,
        "secure/app",
        &["pull", "push", "delete"],
    ));
    let tampered = parts.join(".");
    let other_service = sign(
        &key,
        &claims("reader", "another-service", now() + 300, "secure/app", &["pull"]),
    );

    // (caller, credentials). A valid token that lacks an action gets 401 with the scope when its
    // user may have it (a new token helps), 403 DENIED when the user may not.
    let callers: Vec<(&str, Option<String>)> = vec![
        ("anonymous", None),
        ("reader", Some(reader.clone())),
        ("writer", Some(writer.clone())),
        ("deleter", Some(deleter.clone())),
        ("other", Some(other.clone())),
        ("reader token", Some(bearer(&valid))),
        ("expired token", Some(bearer(&expired))),
        ("token for another repository", Some(bearer(&elsewhere))),
        ("token of another key", Some(bearer(&other_key))),
        ("alg none", Some(bearer(&none))),
        ("tampered token", Some(bearer(&tampered))),
        ("token for another service", Some(bearer(&other_service))),
        ("wrong password", Some(basic("reader", "nope"))),
    ];
    let manifest = image_manifest(&sha256(b"config"), &[], "");
    // (endpoint, method, path, body, expected status per caller in the order above)
    type Row = (&'static str, Method, String, Option<Bytes>, [u16; 13]);
    let rows: Vec<Row> = vec![
        (
            "base",
            Method::GET,
            "/v2/".into(),
            None,
            [401, 200, 200, 200, 200, 200, 401, 200, 401, 401, 401, 401, 401],
        ),
        (
            "manifest GET",
            Method::GET,
            "/v2/secure/app/manifests/latest".into(),
            None,
            [401, 200, 200, 200, 403, 200, 401, 401, 401, 401, 401, 401, 401],
        ),
        (
            "manifest HEAD",
            Method::HEAD,
            "/v2/secure/app/manifests/latest".into(),
            None,
            [401, 200, 200, 200, 403, 200, 401, 401, 401, 401, 401, 401, 401],
        ),
        // A repository that does not exist looks like one that does.
        (
            "missing manifest GET",
            Method::GET,
            "/v2/secure/nothing/manifests/latest".into(),
            None,
            [401, 404, 404, 404, 403, 401, 401, 401, 401, 401, 401, 401, 401],
        ),
        (
            "manifest PUT",
            Method::PUT,
            "/v2/secure/app/manifests/v2".into(),
            Some(manifest.clone()),
            [401, 403, 201, 201, 403, 403, 401, 403, 401, 401, 401, 401, 401],
        ),
        (
            "blob GET",
            Method::GET,
            format!("/v2/secure/app/blobs/{layer}"),
            None,
            [401, 200, 200, 200, 403, 200, 401, 401, 401, 401, 401, 401, 401],
        ),
        (
            "upload POST",
            Method::POST,
            "/v2/secure/app/blobs/uploads/".into(),
            None,
            [401, 403, 202, 202, 403, 403, 401, 403, 401, 401, 401, 401, 401],
        ),
        (
            "tags",
            Method::GET,
            "/v2/secure/app/tags/list".into(),
            None,
            [401, 200, 200, 200, 403, 200, 401, 401, 401, 401, 401, 401, 401],
        ),
        (
            "referrers",
            Method::GET,
            format!("/v2/secure/app/referrers/{layer}"),
            None,
            [401, 200, 200, 200, 403, 200, 401, 401, 401, 401, 401, 401, 401],
        ),
        (
            "catalog",
            Method::GET,
            "/v2/_catalog".into(),
            None,
            [401, 200, 200, 200, 200, 200, 401, 200, 401, 401, 401, 401, 401],
        ),
        (
            "blob DELETE",
            Method::DELETE,
            format!("/v2/secure/app/blobs/{layer}"),
            None,
            [401, 403, 403, 202, 403, 403, 401, 403, 401, 401, 401, 401, 401],
        ),
        (
            "manifest DELETE",
            Method::DELETE,
            "/v2/secure/app/manifests/v2".into(),
            None,
            [401, 403, 403, 202, 403, 403, 401, 403, 401, 401, 401, 401, 401],
        ),
    ];
    let mut unexpected = Vec::new();
    for (endpoint, method, path, body, expected) in &rows {
        for ((caller, credentials), want) in callers.iter().zip(expected) {
            let mut request = r.request(method.clone(), path);
            if let Some(c) = credentials {
                request = request.header("authorization", c);
            }
            if let Some(b) = body {
                request = request.header("content-type", OCI_MANIFEST).body(b.clone());
            }
            let response = request.send().await.unwrap();
            let got = response.status().as_u16();
            if got != *want {
                unexpected.push(format!("{endpoint} as {caller}: {got}, expected {want}"));
            }
            if got == 401 {
                let challenge = response
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap().to_owned());
                let challenge = challenge.unwrap_or_default();
                if !challenge.starts_with("Bearer realm=") || !challenge.contains(&format!("service=\"{SERVICE}\"")) {
                    unexpected.push(format!("{endpoint} as {caller}: challenge {challenge:?}"));
                }
                if *caller == "anonymous" && path.contains("secure/app") {
                    let action = match method.as_str() {
                        "PUT" | "POST" => "pull,push",
                        "DELETE" => "delete",
                        _ => "pull",
                    };
                    let scope = format!("scope=\"repository:secure/app:{action}\"");
                    if !challenge.contains(&scope) {
                        unexpected.push(format!(
                            "{endpoint} as anonymous: challenge {challenge:?} lacks {scope}"
                        ));
                    }
                }
            }
            if got == 403 && *method != Method::HEAD {
                let body: serde_json::Value = response.json().await.unwrap();
                if body["errors"][0]["code"] != "DENIED" {
                    unexpected.push(format!("{endpoint} as {caller}: 403 body {body}"));
                }
            }
        }
    }
    assert!(
        unexpected.is_empty(),
        "{} unexpected:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_mounts_catalog_and_tags_are_checked_where_they_are_not_obvious() {
    let dir = tempfile::tempdir().unwrap();
    let r = secured(dir.path(), 1000, 4).await;
    let (reader, writer, deleter, other) = (
        basic("reader", "r-pass"),
        basic("writer", "w-pass"),
        basic("deleter", "d-pass"),
        basic("other", "o-pass"),
    );
    let (_, others_blob) = seed(&r, &writer, &other).await;
    let send = |method: Method, path: String, auth: &str, body: Option<&'static [u8]>| {
        let mut request = r.request(method, &path).header("authorization", auth);
        if let Some(b) = body {
            request = request.body(Bytes::from_static(b));
        }
        request.send()
    };

    // An upload session belongs to who opened it: deleter (who may push there too) cannot use it.
    let started = send(Method::POST, "/v2/secure/app/blobs/uploads/".into(), &writer, None)
        .await
        .unwrap();
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(&b"hijack"[..])),
        (Method::PUT, Some(&b"hijack"[..])),
        (Method::DELETE, None),
    ] {
        let path = if method == Method::PUT {
            format!("{location}?digest={}", sha256(b"hijack"))
        } else {
            location.clone()
        };
        let response = send(method.clone(), path, &deleter, body).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} by another user");
    }
    assert_eq!(
        send(Method::GET, location.clone(), &writer, None)
            .await
            .unwrap()
            .status(),
        204
    );

    // Mounting from a repository the caller cannot pull: a plain session, nothing linked.
    let mount = format!("/v2/secure/app/blobs/uploads/?mount={others_blob}&from=other/app");
    let response = send(Method::POST, mount, &writer, None).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED, "not mounted");
    let without_from = format!("/v2/secure/app/blobs/uploads/?mount={others_blob}");
    assert_eq!(
        send(Method::POST, without_from, &writer, None).await.unwrap().status(),
        202
    );
    let head = send(
        Method::HEAD,
        format!("/v2/secure/app/blobs/{others_blob}"),
        &writer,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        head.status(),
        StatusCode::NOT_FOUND,
        "the blob did not leak into secure/app"
    );
    // ... while its owner may mount it within what they can read.
    let own = format!("/v2/other/copy/blobs/uploads/?mount={others_blob}&from=other/app");
    assert_eq!(send(Method::POST, own, &other, None).await.unwrap().status(), 201);

    // The catalog lists only what the caller can pull, page by page.
    let list = |auth: String, path: &'static str| async move {
        let response = send(Method::GET, path.into(), &auth, None).await.unwrap();
        let link = response.headers().get("link").map(|l| l.to_str().unwrap().to_owned());
        let body: serde_json::Value = response.json().await.unwrap();
        (body["repositories"].clone(), link)
    };
    assert_eq!(
        list(reader.clone(), "/v2/_catalog").await.0,
        serde_json::json!(["secure/app"])
    );
    assert_eq!(
        list(other.clone(), "/v2/_catalog").await.0,
        serde_json::json!(["other/app", "other/copy"])
    );
    let (first, link) = list(other.clone(), "/v2/_catalog?n=1").await;
    assert_eq!(first, serde_json::json!(["other/app"]));
    assert!(link.unwrap().contains("last=other%2Fapp"));
    assert_eq!(
        list(other.clone(), "/v2/_catalog?n=1&last=other/app").await.0,
        serde_json::json!(["other/copy"])
    );

    // Overwriting an existing tag is a push.
    let manifest = image_manifest(&sha256(b"config"), &[], "");
    let overwrite = |auth: &str| {
        r.request(Method::PUT, "/v2/secure/app/manifests/latest")
            .header("authorization", auth)
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone())
            .send()
    };
    assert_eq!(overwrite(&reader).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(overwrite(&writer).await.unwrap().status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_grant_the_intersection_and_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let r = secured(dir.path(), 1000, 4).await;
    let decode = |t: &str| -> serde_json::Value {
        let payload = t.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    // reader asks for pull and push on secure/app and pull on other/app: gets pull on secure/app.
    let t = token(
        &r,
        Some(("reader", "r-pass")),
        &["repository:secure/app:pull,push", "repository:other/app:pull"],
    )
    .await;
    let claims = decode(&t);
    assert_eq!(claims["sub"], "reader");
    assert_eq!(claims["aud"], SERVICE);
    assert_eq!(claims["access"][0]["actions"], serde_json::json!(["pull"]));
    assert_eq!(claims["access"][1]["actions"], serde_json::json!([]));
    let exp = claims["exp"].as_u64().unwrap();
    assert!(exp > now() && exp <= now() + 301, "short-lived");
    // Anonymous: a token with nothing.
    let anonymous = decode(&token(&r, None, &["repository:secure/app:pull"]).await);
    assert_eq!(anonymous["sub"], "");
    assert_eq!(anonymous["access"][0]["actions"], serde_json::json!([]));

    // The OAuth2 forms docker and containerd send, with a refresh token.
    let form = |body: String| {
        r.request(Method::POST, "/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let response = form(format!(
        "grant_type=password&username=writer&password=w-pass&service={SERVICE}&scope=repository:secure/app:pull,push&access_type=offline&client_id=docker"
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        decode(body["access_token"].as_str().unwrap())["access"][0]["actions"],
        serde_json::json!(["pull", "push"])
    );
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let response = form(format!(
        "grant_type=refresh_token&refresh_token={refresh}&service={SERVICE}&scope=repository:secure/app:pull"
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let renewed: serde_json::Value = response.json().await.unwrap();
    assert_eq!(decode(renewed["token"].as_str().unwrap())["sub"], "writer");
    // A refresh token is not an access token.
    let as_access = r
        .request(Method::GET, "/v2/secure/app/tags/list")
        .header("authorization", format!("Bearer {refresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(as_access.status(), StatusCode::UNAUTHORIZED);
    // Wrong password on the form, and a token for another service.
    let wrong = form(format!(
        "grant_type=password&username=writer&password=x&service={SERVICE}"
    ))
    .await
    .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let elsewhere = r.request(Method::GET, "/token?service=another").send().await.unwrap();
    assert_eq!(elsewhere.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_limited_and_htpasswd_reloads_under_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let r = secured(dir.path(), 5, 4).await;
    let tags = |auth: String| r.request(Method::GET, "/v2/").header("authorization", auth).send();
    for _ in 0..5 {
        assert_eq!(tags(basic("reader", "guess")).await.unwrap().status(), 401);
    }
    let blocked = tags(basic("reader", "guess")).await.unwrap();
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(blocked.headers().contains_key("retry-after"));
    // Even the right password waits out the window for that user.
    assert_eq!(tags(basic("reader", "r-pass")).await.unwrap().status(), 429);
    assert_eq!(
        tags(basic("writer", "w-pass")).await.unwrap().status(),
        429,
        "and that address"
    );

    // Another registry, with costly hashes: bcrypt is paid once, not per request; then the
    // password changes while requests flow.
    let dir2 = tempfile::tempdir().unwrap();
    let r2 = secured(dir2.path(), 1000, 11).await;
    let sign_in = || {
        r2.request(Method::GET, "/v2/")
            .header("authorization", basic("writer", "w-pass"))
            .send()
    };
    let started = Instant::now();
    assert_eq!(sign_in().await.unwrap().status(), 200);
    let first = started.elapsed();
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(sign_in().await.unwrap().status(), 200);
    }
    assert!(
        started.elapsed() < first * 4,
        "20 cached sign-ins took {:?}, one bcrypt {first:?}",
        started.elapsed()
    );
    write_htpasswd(&dir2.path().join("htpasswd"), &[("writer", "new-pass")], 4);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let old = r2
            .request(Method::GET, "/v2/")
            .header("authorization", basic("writer", "w-pass"))
            .send();
        if old.await.unwrap().status() == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the old password still works");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let new = r2
        .request(Method::GET, "/v2/")
        .header("authorization", basic("writer", "new-pass"))
        .send();
    assert_eq!(new.await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_an_existing_issuer_are_verified_with_its_certificates() {
    let dir = tempfile::tempdir().unwrap();
    // The issuer's key and certificate (as distribution's `auth.token.rootcertbundle` holds it).
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["issuer.example".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("issuer.pem"), cert.pem()).unwrap();
    let config = Config {
        auth: Some(Auth {
            token: Some(Token {
                issuer: "auth.example".into(),
                service: SERVICE.into(),
                realm: Some("https://auth.example/token".into()),
                certificates: Some(dir.path().join("issuer.pem")),
                ..Token::default()
            }),
            ..Auth::default()
        }),
        ..Config::default()
    };
    let r = TestRegistry::start(Arc::new(FsFixture::new()), config).await;
    let pem = key.serialize_pem();
    let mut c = claims("ci-bot", SERVICE, now() + 300, "team/app", &["pull", "push"]);
    c["iss"] = "auth.example".into();
    let good = sign(pem.as_bytes(), &c);
    let tags = |t: String| {
        r.request(Method::GET, "/v2/team/app/tags/list")
            .header("authorization", format!("Bearer {t}"))
            .send()
    };
    assert_eq!(
        tags(good).await.unwrap().status(),
        StatusCode::NOT_FOUND,
        "accepted: the repository is empty"
    );
    c["iss"] = "someone.else".into();
    assert_eq!(
        tags(sign(pem.as_bytes(), &c)).await.unwrap().status(),
        401,
        "another issuer"
    );
    let anonymous = r.get("/v2/team/app/tags/list").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        format!("Bearer realm=\"https://auth.example/token\",service=\"{SERVICE}\",scope=\"repository:team/app:pull\"")
            .as_str()
    );
    // This registry issues no tokens itself.
    assert_eq!(
        r.get(&format!("/token?service={SERVICE}")).await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}
