//! The web UI over HTTP: what each visitor sees (access rules on every page and API call,
//! unknown and forbidden alike), image pages (Windows platforms and host builds, history,
//! foreign layers, referrers), hostile text escaped under a strict CSP, sign-in (strict cookies,
//! limited failures), deletes (user, CSRF token, origin), assets and switches. The browser tests
//! (`browser.rs`) drive the same pages in chromium.

mod common;

use common::TestRegistry;
use common::images::{HOSTILE, secured, seeded};
use reqwest::{Method, StatusCode};
use strata_registry::Config;

/// The value of `name="csrf"` in a page.
fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a csrf field") + r#"name="csrf" value=""#.len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// Signs in through the form; returns the session cookie (`strata_session=...`).
async fn sign_in(r: &TestRegistry, user: &str, password: &str) -> String {
    let form = r.get("/ui/login").await.text().await.unwrap();
    let response = r
        .request(Method::POST, "/ui/login")
        .form(&[
            ("username", user),
            ("password", password),
            ("csrf", &csrf_of(&form)),
            ("next", "/ui/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{user} signs in");
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

async fn page(r: &TestRegistry, cookie: Option<&str>, path: &str) -> (StatusCode, String) {
    let mut request = r.request(Method::GET, path);
    if let Some(c) = cookie {
        request = request.header("cookie", c);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn api(r: &TestRegistry, cookie: Option<&str>, path: &str) -> (StatusCode, serde_json::Value) {
    let (status, body) = page(r, cookie, path).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: {body}")),
    )
}

fn names(list: &serde_json::Value) -> Vec<String> {
    list["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_visitor_sees_only_what_they_may_pull() {
    let dir = tempfile::tempdir().unwrap();
    let (_open, r, _) = seeded(dir.path()).await;

    // Nobody: nothing, and a forbidden repository looks like a missing one.
    let (status, list) = api(&r, None, "/ui/api/repositories").await;
    assert_eq!((status, names(&list)), (StatusCode::OK, Vec::<String>::new()));
    let (forbidden, forbidden_page) = page(&r, None, "/ui/r/secret/app").await;
    let (missing, missing_page) = page(&r, None, "/ui/r/secret/nothing").await;
    assert_eq!((forbidden, missing), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert_eq!(
        forbidden_page.replace("secret/app", "X"),
        missing_page.replace("secret/nothing", "X")
    );

    let alice = sign_in(&r, "alice", "a-pass").await;
    let (_, list) = api(&r, Some(&alice), "/ui/api/repositories").await;
    assert_eq!(names(&list), ["evil/app", "library/busybox", "windows/servercore"]);
    let busybox = &list["repositories"][1];
    assert_eq!(busybox["tags"], 2);
    assert!(busybox["size"].as_u64().unwrap() > 0 && busybox["last_push"].is_string());
    for path in [
        "/ui/r/secret/app",
        "/ui/r/secret/app:v1",
        "/ui/api/tags?repository=secret/app",
        "/ui/api/image?repository=secret/app&reference=v1",
    ] {
        assert_eq!(page(&r, Some(&alice), path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, searched) = api(&r, Some(&alice), "/ui/api/repositories?q=busy").await;
    assert_eq!(names(&searched), ["library/busybox"]);

    let bob = sign_in(&r, "bob", "b-pass").await;
    let (_, list) = api(&r, Some(&bob), "/ui/api/repositories").await;
    assert_eq!(names(&list), ["secret/app"]);
    assert_eq!(
        page(&r, Some(&bob), "/ui/r/library/busybox").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, html) = page(&r, Some(&bob), "/ui/r/secret/app").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("docker pull") && html.contains("secret/app:v1"));

    // Scripts use the API with the registry's own credentials.
    let basic = r
        .request(Method::GET, "/ui/api/repositories")
        .basic_auth("bob", Some("b-pass"))
        .send()
        .await
        .unwrap();
    assert_eq!(names(&basic.json().await.unwrap()), ["secret/app"]);
    let wrong = r
        .request(Method::GET, "/ui/api/repositories")
        .basic_auth("bob", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    // Where anonymous pulls are allowed, anonymous visitors see everything they could pull.
    let mut config = secured(dir.path());
    config.auth.as_mut().unwrap().anonymous = vec![strata_registry::config::Action::Pull];
    let public = r.replica(config).await;
    let (_, list) = api(&public, None, "/ui/api/repositories").await;
    assert_eq!(
        names(&list),
        ["evil/app", "library/busybox", "secret/app", "windows/servercore"]
    );

    // A forged or tampered cookie is nobody.
    let forged = format!("{alice}x");
    let (_, list) = api(&r, Some(&forged), "/ui/api/repositories").await;
    assert!(names(&list).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_show_platforms_host_builds_history_layers_and_referrers() {
    let dir = tempfile::tempdir().unwrap();
    let (_open, r, content) = seeded(dir.path()).await;
    let alice = sign_in(&r, "alice", "a-pass").await;

    let (_, index) = api(
        &r,
        Some(&alice),
        "/ui/api/image?repository=windows/servercore&reference=ltsc2022",
    )
    .await;
    assert_eq!(index["digest"], content.windows.digest.to_string());
    let platforms = index["platforms"].as_array().unwrap();
    assert_eq!(platforms[0]["os_version"], "10.0.20348.2113");
    assert_eq!(platforms[0]["host_builds"], serde_json::json!([20348, 26100]));
    assert_eq!(platforms[1]["host_builds"], serde_json::json!([17763, 17763]));
    let (_, html) = page(&r, Some(&alice), "/ui/r/windows/servercore:ltsc2022").await;
    for shown in [
        "10.0.20348.2113",
        "builds 20348–26100",
        "build 17763 only",
        "windows/servercore:ltsc2022",
    ] {
        assert!(html.contains(shown), "{shown}");
    }

    let (_, html) = page(
        &r,
        Some(&alice),
        &format!("/ui/r/windows/servercore@{}", content.windows_2022.digest),
    )
    .await;
    assert!(html.contains("https://mcr.microsoft.com/v2/windows/servercore/blobs/sha256:0"));
    assert!(html.contains("1.1 GiB"), "the foreign layer's size");

    let (_, image) = api(
        &r,
        Some(&alice),
        "/ui/api/image?repository=library/busybox&reference=1.36",
    )
    .await;
    let details = &image["image"];
    assert_eq!(details["entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(details["history"][1]["author"], "Ann Example <ann@example.com>");
    assert_eq!(details["history"][1]["comment"], "install the app");
    assert_eq!(
        details["labels"]["org.opencontainers.image.source"],
        "https://example.com/app"
    );
    assert_eq!(
        image["referrers"][0]["artifact_type"],
        "application/vnd.dev.cosign.artifact.sig.v1+json"
    );
    let (_, html) = page(&r, Some(&alice), "/ui/r/library/busybox:1.36").await;
    for shown in [
        "Ann Example &lt;ann@example.com&gt;",
        "install the app",
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        "podman pull",
        "strata pull",
    ] {
        assert!(html.contains(shown), "{shown}");
    }

    let (_, tags) = api(&r, Some(&alice), "/ui/api/tags?repository=library/busybox").await;
    let tags = tags["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 2);
    assert_eq!(tags[0]["tag"], "1.36");
    assert_eq!(tags[0]["digest"], content.busybox.digest.to_string());
    assert_eq!(tags[0]["platforms"], serde_json::json!(["linux/amd64"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_is_escaped_under_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (_open, r, _) = seeded(dir.path()).await;
    let alice = sign_in(&r, "alice", "a-pass").await;
    let response = r
        .request(Method::GET, "/ui/r/evil/app:hostile")
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'") && !csp.contains("unsafe"));
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.unwrap();
    assert!(!html.contains(HOSTILE) && !html.contains("<script>window") && !html.contains("<img src=x"));
    assert!(
        html.matches("&lt;script&gt;window.pwned=1&lt;/script&gt;").count() >= 6,
        "label, env, entrypoint, history, author, annotation"
    );
    // Every script the page loads is the registry's own file.
    let scripts: Vec<&str> = html.match_indices("<script").map(|(i, _)| &html[i..i + 60]).collect();
    assert_eq!(scripts.len(), 1, "{scripts:?}");
    assert!(scripts[0].starts_with("<script src=\"/ui/assets/ui.js?v="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_need_a_permitted_user_their_own_csrf_token_and_this_origin() {
    let dir = tempfile::tempdir().unwrap();
    let (_open, r, _) = seeded(dir.path()).await;
    let alice = sign_in(&r, "alice", "a-pass").await;
    let bob = sign_in(&r, "bob", "b-pass").await;
    let (status, confirm) = page(&r, Some(&alice), "/ui/r/library/busybox:latest?delete").await;
    assert_eq!(status, StatusCode::OK);
    let token = csrf_of(&confirm);
    let delete = |cookie: &str, csrf: &str, origin: Option<&str>| {
        let mut request = r.request(Method::POST, "/ui/delete").header("cookie", cookie).form(&[
            ("repository", "library/busybox"),
            ("reference", "latest"),
            ("csrf", csrf),
        ]);
        if let Some(o) = origin {
            request = request.header("origin", o);
        }
        request.send()
    };
    let still_there = || async {
        r.request(Method::HEAD, "/v2/library/busybox/manifests/latest")
            .basic_auth("alice", Some("a-pass"))
            .send()
            .await
            .unwrap()
            .status()
            == StatusCode::OK
    };
    // No token, another session's token, a foreign origin: refused, nothing deleted.
    let bob_token = csrf_of(&page(&r, Some(&bob), "/ui/").await.1);
    for (csrf, origin) in [
        ("", None),
        (bob_token.as_str(), None),
        (token.as_str(), Some("http://evil.example")),
    ] {
        let refused = delete(&alice, csrf, origin).await.unwrap();
        assert_eq!(
            refused.status(),
            StatusCode::FORBIDDEN,
            "csrf {csrf:?} origin {origin:?}"
        );
        assert!(still_there().await);
    }
    // Bob may not even see the repository.
    assert_eq!(
        delete(&bob, &bob_token, None).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert!(still_there().await);
    // Alice, from her own page: deleted, back to the repository.
    let origin = r.base.clone();
    let done = delete(&alice, &token, Some(&origin)).await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()["location"], "/ui/r/library/busybox");
    assert!(!still_there().await);
    let (_, tags) = api(&r, Some(&alice), "/ui/api/tags?repository=library/busybox").await;
    assert_eq!(tags["tags"].as_array().unwrap().len(), 1);

    // With deletes turned off, no delete links and no deletes.
    let mut config = secured(dir.path());
    config.delete_enabled = false;
    let frozen = r.replica(config).await;
    let alice = sign_in(&frozen, "alice", "a-pass").await;
    let (_, html) = page(&frozen, Some(&alice), "/ui/r/library/busybox").await;
    assert!(!html.contains("?delete"));
    let token = csrf_of(&html);
    let refused = frozen
        .request(Method::POST, "/ui/delete")
        .header("cookie", &alice)
        .form(&[
            ("repository", "library/busybox"),
            ("reference", "1.36"),
            ("csrf", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_strict_cookie_and_failures_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let (_open, r, _) = seeded(dir.path()).await;
    let form = r.get("/ui/login").await.text().await.unwrap();
    let csrf = csrf_of(&form);
    let attempt = |password: &'static str, next: &'static str| {
        r.request(Method::POST, "/ui/login")
            .form(&[
                ("username", "alice"),
                ("password", password),
                ("csrf", csrf.as_str()),
                ("next", next),
            ])
            .send()
    };
    let ok = attempt("a-pass", "//evil.example/ui/").await.unwrap();
    assert_eq!(ok.headers()["location"], "/ui/", "no redirect off the registry");
    let cookie = ok.headers()["set-cookie"].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP here (the TLS tests cover Secure)"
    );
    // Signing out clears it.
    let session = cookie.split(';').next().unwrap().to_owned();
    let out = r
        .request(Method::POST, "/ui/logout")
        .header("cookie", &session)
        .form(&[("csrf", csrf_of(&page(&r, Some(&session), "/ui/").await.1))])
        .send()
        .await
        .unwrap();
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));

    for _ in 0..3 {
        assert_eq!(
            attempt("wrong", "/ui/").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = attempt("a-pass", "/ui/").await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.text().await.unwrap().contains("too many failed sign-ins"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_redirects_assets_are_cached_pages_compressed_and_the_ui_can_be_off() {
    let r = TestRegistry::fs().await;
    common::images::catalogue(&r).await;
    let root = r.get("/").await;
    assert_eq!(
        (root.status(), root.headers()["location"].to_str().unwrap()),
        (StatusCode::SEE_OTHER, "/ui/")
    );
    // Without access control everyone sees everything, and nobody signs in.
    let html = r.get("/ui/").await.text().await.unwrap();
    assert!(html.contains("library/busybox") && html.contains("secret/app") && !html.contains("Sign in"));

    let css_path = html
        .split("href=\"/ui/assets/ui.css")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let css = r.get(&format!("/ui/assets/ui.css{css_path}")).await;
    assert_eq!(css.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(
        r.get("/ui/assets/ui.css?v=old").await.headers()["cache-control"],
        "no-cache"
    );
    assert_eq!(r.get("/ui/assets/../Cargo.toml").await.status(), StatusCode::NOT_FOUND);
    let gzipped = r
        .request(Method::GET, "/ui/r/library/busybox:1.36")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");

    let off = r
        .replica(Config {
            ui: strata_registry::config::Ui {
                enabled: false,
                ..Default::default()
            },
            ..Config::default()
        })
        .await;
    assert_eq!(off.get("/ui/").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(off.get("/").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_browser_shows_layers_the_union_files_and_downloads() {
    let dir = tempfile::tempdir().unwrap();
    let (open, r, content) = seeded(dir.path()).await;
    let alice = sign_in(&r, "alice", "a-pass").await;
    let image = format!("/ui/r/library/busybox@{}", content.busybox.digest);

    // The union: the upper layer deleted passwd, added hostname, emptied the apk cache.
    let (status, root) = page(&r, Some(&alice), &format!("{image}?files=")).await;
    assert_eq!(status, StatusCode::OK, "{root}");
    for shown in [
        ">bin/<",
        ">etc/<",
        ">var/<",
        "1 entries with unsafe names are not shown",
    ] {
        assert!(root.contains(shown), "{shown} in the root");
    }
    assert!(!root.contains("escape"), "a name with .. is not listed");
    let (_, etc) = page(&r, Some(&alice), &format!("{image}?files=etc")).await;
    assert!(etc.contains(">hosts<") && etc.contains(">hostname<") && etc.contains(">motd<"));
    assert!(!etc.contains(">passwd<"), "whited out");
    assert!(etc.contains("&lt;img src=x onerror=alert(1)&gt;.txt") && !etc.contains("<img src=x onerror=alert(1)>"));
    let (_, apk) = page(&r, Some(&alice), &format!("{image}?files=var/cache/apk")).await;
    assert!(
        apk.contains(">fresh<") && !apk.contains(">index<"),
        "opaque directory: {apk}"
    );

    // One layer: what it did.
    let (_, upper) = page(&r, Some(&alice), &format!("{image}?layer=2&files=etc")).await;
    let row = |name: &str| {
        let at = upper
            .find(&format!(">{name}<"))
            .unwrap_or_else(|| panic!("{name} in layer 2"));
        upper[at..].split("</tr>").next().unwrap().to_owned()
    };
    assert!(row("passwd").contains("deleted"));
    assert!(row("hostname").contains("added"));
    let (_, base) = page(&r, Some(&alice), &format!("{image}?layer=1&files=etc")).await;
    assert!(base.contains(">passwd<"));

    // A file: its text, escaped; a download: its bytes, as an attachment.
    let (status, motd) = page(&r, Some(&alice), &format!("{image}?layer=1&file=etc/motd")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(motd.contains("&lt;script&gt;window.pwned=1&lt;/script&gt;") && !motd.contains(HOSTILE));
    let download = r
        .request(Method::GET, &format!("{image}?layer=1&download=etc/hosts"))
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(
        download.headers()["content-disposition"],
        "attachment; filename=\"hosts\""
    );
    assert_eq!(download.headers()["content-type"], "application/octet-stream");
    assert_eq!(download.bytes().await.unwrap().as_ref(), b"127.0.0.1 localhost\n");

    // The file list was kept beside the blob; paths cannot leave the listing.
    let layer_digest: strata_storage::Digest = {
        let (_, view) = api(
            &r,
            Some(&alice),
            "/ui/api/image?repository=library/busybox&reference=1.36",
        )
        .await;
        view["image"]["layers"][0]["digest"].as_str().unwrap().parse().unwrap()
    };
    let stored = r.fixture.backend().await;
    assert!(
        strata_storage::BackendExt::exists(
            stored.as_ref(),
            &strata_storage::layout::layer_index(&layer_digest).unwrap()
        )
        .await
        .unwrap()
    );
    for path in ["../..", "etc/../../..", "nothing/here"] {
        let (status, _) = page(&r, Some(&alice), &format!("{image}?files={path}")).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::NOT_FOUND,
            "{path}: {status}"
        );
    }
    assert_eq!(
        page(&r, Some(&alice), &format!("{image}?files=nothing/here")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        page(&r, Some(&alice), &format!("{image}?layer=9&files=")).await.0,
        StatusCode::NOT_FOUND
    );

    // The same through the JSON API.
    let (_, files) = api(
        &r,
        Some(&alice),
        &format!(
            "/ui/api/files?repository=library/busybox&reference={}&path=etc",
            content.busybox.digest
        ),
    )
    .await;
    let names: Vec<&str> = files["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"hostname") && !names.contains(&"passwd"), "{names:?}");
    let (_, hosts) = api(
        &r,
        Some(&alice),
        "/ui/api/file?repository=library/busybox&reference=1.36&layer=1&path=etc/hosts",
    )
    .await;
    assert_eq!(hosts["text"], "127.0.0.1 localhost\n");

    // A Windows image: the foreign base is not here (said so), names fold case.
    let windows = format!("/ui/r/windows/servercore@{}", content.windows_2022.digest);
    let (status, root) = page(&r, Some(&alice), &format!("{windows}?files=")).await;
    assert_eq!(status, StatusCode::OK, "{root}");
    assert!(
        root.contains(">Files/<") && root.contains(">Hives/<") && root.contains("Foreign layers are not stored here")
    );
    let (status, etc) = page(
        &r,
        Some(&alice),
        &format!("{windows}?files=files/WINDOWS/system32/Drivers/etc"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{etc}");
    assert!(etc.contains(">hosts<") && etc.contains("names compare without regard to case"));
    assert_eq!(
        page(&r, Some(&alice), &format!("{windows}?layer=1&files=")).await.0,
        StatusCode::NOT_FOUND,
        "the foreign layer"
    );

    // Not a tar, or an index: a clear error, no panic (the shared reader's limits are tested
    // with the runtime's unpacker).
    let garbage = open
        .push_real_image(
            "evil/app",
            None,
            common::images::config("linux", "amd64", None, serde_json::json!({})),
            &[common::images::Layer::Tar(b"\x1f\x8b\x08\x00 not really gzip")],
            serde_json::json!({}),
        )
        .await;
    let (status, html) = page(&r, Some(&alice), &format!("/ui/r/evil/app@{}?files=", garbage.digest)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("cannot be listed"), "{html}");
    let (status, _) = page(&r, Some(&alice), "/ui/r/windows/servercore:ltsc2022?files=").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "an index has no files");

    // Someone who may not pull the repository sees none of it.
    let bob = sign_in(&r, "bob", "b-pass").await;
    for path in [
        format!("{image}?files=etc"),
        format!("{image}?layer=1&file=etc/hosts"),
        format!("{image}?layer=1&download=etc/hosts"),
    ] {
        assert_eq!(page(&r, Some(&bob), &path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_of_a_windows_image_is_its_layers_hives_merged() {
    use common::images::{Layer, TarEntry, config, tar_layer};
    let dir = tempfile::tempdir().unwrap();
    let (open, r, _) = seeded(dir.path()).await;
    let common::images::RegistryImage {
        pushed: image,
        base_layer,
        delta_hives: delta_bytes,
    } = common::images::push_registry_image(&open, "windows/registry", "v1").await;
    let alice = sign_in(&r, "alice", "a-pass").await;
    let at = format!("/ui/r/windows/registry@{}", image.digest);

    // The merged key, its values and subkeys; links from the image and its file browser.
    let (_, image_page) = page(&r, Some(&alice), &at).await;
    assert!(
        image_page.contains("id=\"registry\""),
        "a link to the registry on the image page"
    );
    let (_, linux) = page(&r, Some(&alice), "/ui/r/library/busybox:1.36").await;
    assert!(!linux.contains("id=\"registry\""));
    let (status, files) = page(&r, Some(&alice), &format!("{at}?files=")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(files.contains("?registry=HKLM%5CSOFTWARE"), "a link to the registry");
    let (status, app) = page(
        &r,
        Some(&alice),
        &format!("{at}?registry=hklm%5Csoftware%5Cvendor%5Capp"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert!(
        app.contains(">3.0<") && app.contains(">New<") && !app.contains(">Path<"),
        "{app}"
    );
    assert!(app.contains("Merged from 4 hive files"));
    let (_, root) = page(&r, Some(&alice), &format!("{at}?registry=HKLM%5CSOFTWARE")).await;
    assert!(root.contains(">Tree<") && root.contains(">ключ<") && !root.contains(">Old<"));
    // As of layer 2 (base and first delta).
    let (_, then) = page(
        &r,
        Some(&alice),
        &format!("{at}?layer=2&registry=HKLM%5CSOFTWARE%5CVendor%5CApp"),
    )
    .await;
    assert!(then.contains(">2.0<") && then.contains("as of layer 2"), "{then}");
    // Names and data from the hive are text.
    let (_, hostile) = page(&r, Some(&alice), &format!("{at}?registry=HKLM%5CSOFTWARE%5CHostile")).await;
    assert!(hostile.contains("&lt;script&gt;window.pwned=1&lt;/script&gt;") && !hostile.contains("<script>window"));
    assert!(hostile.contains("&lt;img src=x onerror=alert(1)&gt;"));

    // The JSON API: the same view.
    let (status, json) = api(
        &r,
        Some(&alice),
        "/ui/api/registry?repository=windows/registry&reference=v1&key=HKLM%5CSOFTWARE%5CTree",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["subkeys"], serde_json::json!(["A"]));
    assert_eq!(json["values"][0]["data"], "delta");
    assert_eq!(json["hives"], serde_json::json!(["HKLM\\SOFTWARE"]));

    // Missing keys and hives, a Linux image, a corrupt hive: clear errors.
    for (path, status) in [
        (
            format!("{at}?registry=HKLM%5CSOFTWARE%5CVendor%5COld%5CDeep"),
            StatusCode::NOT_FOUND,
        ),
        (format!("{at}?registry=HKLM%5CSYSTEM"), StatusCode::NOT_FOUND),
        (format!("{at}?registry=HKCU%5CSoftware"), StatusCode::BAD_REQUEST),
        (
            "/ui/r/library/busybox:1.36?registry=HKLM%5CSOFTWARE".to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        assert_eq!(page(&r, Some(&alice), &path).await.0, status, "{path}");
    }
    let mut corrupt = delta_bytes[0].clone();
    let len = corrupt.len();
    corrupt[4096 + 36..4096 + 40].copy_from_slice(&[0xF0, 0xFF, 0xFF, 0x7F]);
    corrupt.truncate(len);
    let corrupt_layer = tar_layer(&[
        ("Hives/", TarEntry::Dir),
        ("Hives/SOFTWARE_Delta", TarEntry::File(&corrupt)),
    ]);
    let broken = open
        .push_real_image(
            "windows/registry",
            Some("broken"),
            config("windows", "amd64", Some("10.0.20348.2113"), serde_json::json!({})),
            &[Layer::Tar(&base_layer), Layer::Tar(&corrupt_layer)],
            serde_json::json!({}),
        )
        .await;
    let (status, html) = page(
        &r,
        Some(&alice),
        &format!(
            "/ui/r/windows/registry@{}?registry=HKLM%5CSOFTWARE%5CVendor",
            broken.digest
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");

    // Bob may not pull it: nothing of it.
    let bob = sign_in(&r, "bob", "b-pass").await;
    assert_eq!(
        page(&r, Some(&bob), &format!("{at}?registry=HKLM%5CSOFTWARE")).await.0,
        StatusCode::NOT_FOUND
    );
}
