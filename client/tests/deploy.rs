//! The registry's container image, assembled by `deploy/image.sh` with strata's own tools (what
//! `deploy/Dockerfile` builds where docker runs): it runs under `strata run` as the non-root user,
//! answers its own health check, and serves pushes and pulls.

#[path = "peers/cli.rs"]
#[allow(dead_code)] // shared with the peers tests, which use all of it
mod cli;
#[path = "peers/confined.rs"]
#[allow(dead_code)] // shared with the escape tests
mod confined;

use std::path::Path;
use std::time::{Duration, Instant};

use cli::Strata;

#[test]
fn the_registry_image_runs_as_nonroot_and_serves_pushes_and_pulls() {
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let bin = Path::new(env!("CARGO_BIN_EXE_strata")).parent().unwrap();
    let registry_binary = bin.join("strata-registry");
    assert!(
        registry_binary.is_file(),
        "{} (cargo build -p strata-registry)",
        registry_binary.display()
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/image.sh");
    let built = std::process::Command::new("bash")
        .arg(script)
        .arg("--binary")
        .arg(&registry_binary)
        .arg("strata-registry:test")
        .env("STRATA", env!("CARGO_BIN_EXE_strata"))
        .env("STRATA_HOME", strata.home())
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));

    let port = confined::free_port();
    let listen = format!("STRATA_LISTEN=127.0.0.1:{port}");
    strata.ok(&[
        "run",
        "-d",
        "--name",
        "reg",
        "--network",
        "host",
        "-e",
        &listen,
        "strata-registry:test",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !confined::http_get(port, "/readyz").contains("ready") {
        assert!(Instant::now() < deadline, "the registry did not get ready");
    }
    // The image's user, and its own health check (no curl in the image).
    let pid = strata.json(&["inspect", "reg"])["state"]["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(uid.split_whitespace().skip(1).collect::<Vec<_>>(), ["65532"; 4]);
    let health = strata.run(&[
        "exec",
        "reg",
        "strata-registry",
        "--config",
        "/etc/strata/registry.toml",
        "health",
        "--ready",
    ]);
    assert_eq!(health.code, 0, "{health:?}");

    // A push to it and a pull from it elsewhere.
    let image = confined::image(&work.path().join("busybox"));
    let reference = format!("127.0.0.1:{port}/smoke/busybox:1");
    image.ok(&["push", "esc", &reference]);
    let elsewhere = Strata::new(&work.path().join("elsewhere"));
    elsewhere.ok(&["pull", &reference]);
    let run = elsewhere.run(&["run", "--rm", &reference, "cat", "/etc/group"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "root:x:0:\nnogroup:x:65534:\n"),
        "{run:?}"
    );
    strata.ok(&["rm", "-f", "reg"]);
}
