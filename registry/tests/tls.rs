//! TLS in process, with a CA made by the test: HTTPS with passwords and with client certificates
//! (the certificate's common name is the user), HTTP/2 by ALPN, and certificate reloads under
//! traffic (new connections get the new certificate, open ones keep working, a broken file keeps
//! the old one).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestRegistry;
use reqwest::StatusCode;
use strata_registry::Config;
use strata_registry::config::{AccessRule, Action, Auth, Tls};
use strata_storage::testing::FsFixture;
use strata_tests::tls::TestCa;

fn write_server_files(dir: &Path, ca: &TestCa) {
    let (cert, key) = ca.server();
    std::fs::write(dir.join("tls.crt"), cert).unwrap();
    std::fs::write(dir.join("tls.key"), key).unwrap();
}

async fn start(dir: &Path, ca: &TestCa) -> TestRegistry {
    write_server_files(dir, ca);
    std::fs::write(dir.join("clients.pem"), &ca.pem).unwrap();
    let htpasswd = dir.join("htpasswd");
    std::fs::write(&htpasswd, format!("bob:{}\n", bcrypt::hash("b-pass", 4).unwrap())).unwrap();
    let config = Config {
        tls: Some(Tls {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            client_ca: Some(dir.join("clients.pem")),
        }),
        auth: Some(Auth {
            htpasswd: Some(htpasswd),
            ..Auth::default()
        }),
        access: vec![AccessRule {
            repositories: vec!["team/**".into()],
            users: vec!["alice".into(), "bob".into()],
            groups: Vec::new(),
            actions: vec![Action::Pull, Action::Push],
        }],
        ..Config::default()
    };
    let mut r = TestRegistry::start(Arc::new(FsFixture::new()), config).await;
    r.base = r.base.replace("http://127.0.0.1", "https://localhost");
    r
}

fn client(ca: &TestCa, identity: Option<(String, String)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .resolve("localhost", "127.0.0.1:0".parse().unwrap());
    if let Some((cert, key)) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// The certificate a fresh connection is served, as DER.
async fn served_certificate(r: &TestRegistry, ca: &TestCa) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let port = r.base.rsplit(':').next().unwrap();
    let tcp = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (_, session) = tls.get_ref();
    assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]), "HTTP/2 by ALPN");
    session.peer_certificates().unwrap()[0].as_ref().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_passwords_and_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let r = start(dir.path(), &ca).await;
    let port: u16 = r.base.rsplit(':').next().unwrap().parse().unwrap();
    let url = |path: &str| format!("https://localhost:{port}{path}");

    let anonymous = client(&ca, None);
    let response = anonymous.get(url("/v2/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Basic realm=\"strata\"");
    let bob = anonymous
        .get(url("/v2/team/app/tags/list"))
        .basic_auth("bob", Some("b-pass"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bob.status(),
        StatusCode::NOT_FOUND,
        "signed in, the repository is empty"
    );

    // alice has no password: her certificate signs her in.
    let alice = client(&ca, Some(ca.client("alice")));
    assert_eq!(alice.get(url("/v2/")).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        alice.get(url("/v2/team/app/tags/list")).send().await.unwrap().status(),
        404
    );
    let mallory = client(&ca, Some(ca.client("mallory")));
    assert_eq!(
        mallory
            .get(url("/v2/team/app/tags/list"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN,
        "a valid certificate for a user the rules do not name"
    );
    // The web UI's sign-in over TLS: the session cookie is Secure.
    let no_redirects = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .resolve("localhost", "127.0.0.1:0".parse().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = no_redirects
        .get(url("/ui/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = form.find(r#"name="csrf" value=""#).unwrap() + r#"name="csrf" value=""#.len();
    let csrf = form[at..].split('"').next().unwrap();
    let signed_in = no_redirects
        .post(url("/ui/login"))
        .form(&[("username", "bob"), ("password", "b-pass"), ("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");

    // A certificate from another CA does not get a connection at all.
    let stranger = TestCa::new();
    let forged = client(&ca, Some(stranger.client("alice")));
    assert!(forged.get(url("/v2/")).send().await.is_err());
    // Plain HTTP on the TLS port does not work.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/v2/"))
            .await
            .is_err_or_not_ok()
    );
}

trait NotOk {
    fn is_err_or_not_ok(&self) -> bool;
}

impl NotOk for reqwest::Result<reqwest::Response> {
    fn is_err_or_not_ok(&self) -> bool {
        self.as_ref().map_or(true, |r| !r.status().is_success())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_under_traffic_and_a_broken_one_is_not_taken() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let r = start(dir.path(), &ca).await;
    let port: u16 = r.base.rsplit(':').next().unwrap().parse().unwrap();
    let url = format!("https://localhost:{port}/v2/");
    let before = served_certificate(&r, &ca).await;
    let steady = client(&ca, None);
    let busy = tokio::spawn(async move {
        let mut answered = 0;
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            let response = steady.get(&url).basic_auth("bob", Some("b-pass")).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            answered += 1;
        }
        answered
    });

    write_server_files(dir.path(), &ca);
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let served = served_certificate(&r, &ca).await;
        if served != before {
            break served;
        }
        assert!(Instant::now() < deadline, "the new certificate was never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // A broken certificate file is not taken: the last good one stays.
    std::fs::write(dir.path().join("tls.crt"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(served_certificate(&r, &ca).await, after);
    assert!(
        busy.await.unwrap() > 10,
        "requests kept being served during the reloads"
    );
}
