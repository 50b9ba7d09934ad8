//! The strata CLI and skopeo against a registry with access control over TLS (a CA made by the
//! test): login, push and pull through the token flow and through Basic; client certificates;
//! a wrong password exits 4; a private CA from `--cert-dir` or `SSL_CERT_FILE`.

#[path = "peers/cli.rs"]
#[allow(dead_code)] // shared with the peers tests, which use all of it
mod cli;

use std::path::Path;

use cli::{Strata, oci};
use strata_registry::Config;
use strata_registry::config::{AccessRule, Action, Auth, Tls, Token};
use strata_tests::LocalRegistry;
use strata_tests::oci::{Entry, write_layout};
use strata_tests::tls::TestCa;

/// A registry over TLS where alice (password) and carol (client certificate) may do everything
/// under `team/**`; tokens from the built-in service when `tokens`, else Basic.
fn secure_registry(dir: &Path, ca: &TestCa, tokens: bool) -> (tokio::runtime::Runtime, LocalRegistry) {
    let (cert, key) = ca.server();
    std::fs::write(dir.join("tls.crt"), cert).unwrap();
    std::fs::write(dir.join("tls.key"), key).unwrap();
    std::fs::write(dir.join("clients.pem"), &ca.pem).unwrap();
    std::fs::write(
        dir.join("htpasswd"),
        format!("alice:{}\n", bcrypt::hash("alice-secret", 4).unwrap()),
    )
    .unwrap();
    let config = Config {
        tls: Some(Tls {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            client_ca: Some(dir.join("clients.pem")),
        }),
        auth: Some(Auth {
            htpasswd: Some(dir.join("htpasswd")),
            token: tokens.then(|| Token {
                key: Some(dir.join("token.pem")),
                ..Token::default()
            }),
            ..Auth::default()
        }),
        access: vec![AccessRule {
            repositories: vec!["team/**".into()],
            users: vec!["alice".into(), "carol".into()],
            groups: Vec::new(),
            actions: vec![Action::Pull, Action::Push, Action::Delete],
        }],
        ..Config::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let registry = runtime.block_on(LocalRegistry::start_with(config));
    (runtime, registry)
}

/// `--cert-dir` contents: the CA, and optionally a client certificate.
fn cert_dir(dir: &Path, ca: &TestCa, client: Option<&str>) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.crt"), &ca.pem).unwrap();
    if let Some(user) = client {
        let (cert, key) = ca.client(user);
        std::fs::write(dir.join("client.cert"), cert).unwrap();
        std::fs::write(dir.join("client.key"), key).unwrap();
    }
    dir.to_str().unwrap().to_owned()
}

fn image(dir: &Path) {
    write_layout(
        dir,
        "v1",
        &[vec![
            Entry::Dir("etc/"),
            Entry::File("etc/motd", b"over TLS\n".to_vec(), 0o644),
        ]],
    );
}

fn login_push_pull(tokens: bool) {
    let work = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (_rt, registry) = secure_registry(work.path(), &ca, tokens);
    let strata = Strata::new(work.path());
    let certs = cert_dir(&work.path().join("certs"), &ca, None);
    let host = registry.addr.to_string();
    let reference = format!("{host}/team/app:v1");
    image(&work.path().join("src"));

    // Not signed in: refused as unauthenticated (exit 4).
    let run = strata.run(&[
        "copy",
        "--cert-dir",
        &certs,
        &oci(&work.path().join("src"), "v1"),
        &reference,
    ]);
    assert_eq!(run.code, 4, "{run:?}");
    let run = strata.run(&["login", "--cert-dir", &certs, "-u", "alice", "-p", "wrong", &host]);
    assert_eq!(run.code, 4, "a wrong password: {run:?}");
    strata.ok(&[
        "login",
        "--cert-dir",
        &certs,
        "-u",
        "alice",
        "-p",
        "alice-secret",
        &host,
    ]);
    let pushed = strata.ok(&[
        "copy",
        "--cert-dir",
        &certs,
        &oci(&work.path().join("src"), "v1"),
        &reference,
    ]);
    strata.ok(&["pull", "--no-unpack", "--cert-dir", &certs, &reference]);
    let summary = strata.json(&["inspect", "--cert-dir", &certs, &reference]);
    assert_eq!(summary["digest"], pushed.trim());
    // Outside team/**: denied, not "not found".
    let run = strata.run(&[
        "copy",
        "--cert-dir",
        &certs,
        &oci(&work.path().join("src"), "v1"),
        &format!("{host}/elsewhere/app:v1"),
    ]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stderr.contains("403") || run.stderr.contains("denied") || run.stderr.contains("DENIED"),
        "{}",
        run.stderr
    );

    // The CA from SSL_CERT_FILE instead of --cert-dir.
    let with_env = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "--home",
            strata.home().to_str().unwrap(),
            "tags",
            &format!("{host}/team/app"),
        ])
        .env("DOCKER_CONFIG", work.path().join("docker"))
        .env("SSL_CERT_FILE", work.path().join("certs/ca.crt"))
        .output()
        .unwrap();
    assert!(
        with_env.status.success(),
        "{}",
        String::from_utf8_lossy(&with_env.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&with_env.stdout), "v1\n");

    strata.ok(&["logout", &host]);
    let run = strata.run(&["inspect", "--cert-dir", &certs, &reference]);
    assert_eq!(run.code, 4, "signed out: {run:?}");

    // skopeo, with --creds and --cert-dir, both ways.
    let skopeo = |args: &[&str]| {
        let output = std::process::Command::new("skopeo")
            .arg("--insecure-policy")
            .args(args)
            .output()
            .expect("skopeo (install the Debian package skopeo)");
        assert!(
            output.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let sk = format!("docker://{host}/team/skopeo:v1");
    skopeo(&[
        "copy",
        "--dest-creds",
        "alice:alice-secret",
        "--dest-cert-dir",
        &certs,
        &format!("oci:{}:v1", work.path().join("src").display()),
        &sk,
    ]);
    let inspected = skopeo(&[
        "inspect",
        "--raw",
        "--creds",
        "alice:alice-secret",
        "--cert-dir",
        &certs,
        &sk,
    ]);
    assert!(inspected.contains("schemaVersion"));
    let out = work.path().join("back");
    skopeo(&[
        "copy",
        "--src-creds",
        "alice:alice-secret",
        "--src-cert-dir",
        &certs,
        &sk,
        &format!("oci:{}:v1", out.display()),
    ]);
}

#[test]
fn login_push_and_pull_over_tls_through_the_token_flow() {
    login_push_pull(true);
}

#[test]
fn login_push_and_pull_over_tls_with_basic() {
    login_push_pull(false);
}

#[test]
fn a_client_certificate_signs_in_without_a_password() {
    let work = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (_rt, registry) = secure_registry(work.path(), &ca, true);
    let strata = Strata::new(work.path());
    let carol = cert_dir(&work.path().join("carol"), &ca, Some("carol"));
    let host = registry.addr.to_string();
    image(&work.path().join("src"));
    let reference = format!("{host}/team/carol:v1");
    strata.ok(&[
        "copy",
        "--cert-dir",
        &carol,
        &oci(&work.path().join("src"), "v1"),
        &reference,
    ]);
    strata.ok(&["pull", "--no-unpack", "--cert-dir", &carol, &reference]);
    // Without the client certificate: not signed in.
    let ca_only = cert_dir(&work.path().join("ca-only"), &ca, None);
    assert_eq!(strata.run(&["inspect", "--cert-dir", &ca_only, &reference]).code, 4);
}
