//! What a newcomer does first, as root with the `strata` binary: images made by other tools
//! (umoci) and by strata itself (`import`), pulls that fail or are killed, docker habits (`run
//! --entrypoint`, `-i`, `exec`, short local names), pushes of committed images, and the errors
//! and help a person reads.

#[path = "peers/cli.rs"]
#[allow(dead_code)] // shared with the peers tests, which use all of it
mod cli;
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cli::{Strata, oci};
use common::proxy::{Proxy, Rules};
use strata_tests::local_registry;
use strata_tests::oci::{Entry, noise, write_layout};

/// The busybox applets the tests use.
const APPLETS: [&str; 9] = ["sh", "echo", "cat", "id", "pwd", "hostname", "ps", "env", "sleep"];

/// A busybox root file system in `dir`: `bin/busybox`, applet links, `etc/passwd`.
fn rootfs(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).expect("/bin/busybox (install busybox-static)");
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home/nobody:/bin/false\n",
    )
    .unwrap();
}

/// Busybox layers for the test image builder.
fn busybox_layers() -> Vec<Vec<Entry>> {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (install busybox-static)");
    let mut base = vec![Entry::Dir("bin/"), Entry::File("bin/busybox", busybox, 0o755)];
    base.extend(["bin/sh", "bin/echo", "bin/cat"].map(|a| Entry::Symlink(a, "busybox")));
    vec![base]
}

fn umoci(args: &[&str]) {
    let output = Command::new("umoci")
        .args(args)
        .output()
        .expect("umoci (install the Debian package umoci; scripts/test does)");
    assert!(
        output.status.success(),
        "umoci {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn an_image_umoci_built_with_absolute_names_pulls_and_runs() {
    let (_rt, registry) = local_registry();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let layout = work.path().join("layout");
    let src = work.path().join("src");
    rootfs(&src);
    let image = format!("{}:base", layout.display());
    umoci(&["init", "--layout", layout.to_str().unwrap()]);
    umoci(&["new", "--image", &image]);
    // Inserted at "/": the layer's members are "/", "bin/", ... (absolute), and umoci leaves
    // out the tar's last padding and end blocks.
    umoci(&["insert", "--image", &image, src.to_str().unwrap(), "/"]);
    umoci(&[
        "config",
        "--image",
        &image,
        "--config.cmd",
        "echo",
        "--config.cmd",
        "built by umoci",
    ]);

    let reference = format!("{}/umoci/busybox:v1", registry.addr);
    strata.ok(&["copy", &oci(&layout, "base"), &reference]);
    strata.ok(&["pull", &reference]);
    assert_eq!(strata.ok(&["run", "--rm", &reference]), "built by umoci\n");
    assert!(
        strata
            .ok(&["fs", "cat", &reference, "/etc/passwd"])
            .starts_with("root:x:0:0")
    );
    let listing = strata.ok(&["fs", "ls", &reference, "/bin"]);
    assert!(
        listing.contains("busybox") && listing.contains("sh -> busybox"),
        "{listing}"
    );
}

#[test]
fn a_refused_layer_is_reported_as_such_and_names_no_image() {
    let (_rt, registry) = local_registry();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let evil = vec![
        Entry::Symlink("escape", "/tmp"),
        Entry::File("escape/strata-habits-evil", b"pwned".to_vec(), 0o644),
    ];
    write_layout(&work.path().join("src"), "v1", &[busybox_layers().remove(0), evil]);
    let reference = format!("{}/evil/image:v1", registry.addr);
    strata.ok(&["copy", &oci(&work.path().join("src"), "v1"), &reference]);
    for args in [
        vec!["pull", reference.as_str()],
        vec!["run", "--rm", reference.as_str(), "true"],
    ] {
        let run = strata.run(&args);
        assert_eq!(run.code, 6, "{args:?}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains("is refused") && run.stderr.contains("escape/strata-habits-evil"));
        assert!(
            !run.stderr.contains("integrity"),
            "not a digest problem: {}",
            run.stderr
        );
        assert!(!Path::new("/tmp/strata-habits-evil").exists());
        assert_eq!(strata.ok(&["images"]), "", "a failed pull names no image");
    }
}

#[test]
fn a_pull_killed_mid_layer_leaves_no_image_and_the_next_run_completes_it() {
    let (rt, registry) = local_registry();
    let proxy = rt.block_on(Proxy::start(registry.addr));
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let mut layers = busybox_layers();
    layers.push(vec![Entry::Named("data/big".into(), noise(6 << 20, 11))]);
    write_layout(&work.path().join("src"), "v1", &layers);
    let reference = format!("{}/slow/image:v1", proxy.addr);
    strata.ok(&["copy", &oci(&work.path().join("src"), "v1"), &reference]);

    proxy.set(Rules {
        throttle_downloads: Some(1 << 20),
        ..Rules::default()
    });
    let mut child = strata.spawn(&["pull", &reference]);
    // Killed once part of the big layer has arrived.
    let uploads = strata.store().join("_uploads");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !uploads.is_dir() || std::fs::read_dir(&uploads).unwrap().count() == 0 {
        assert!(Instant::now() < deadline, "the pull never started downloading");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(strata.ok(&["images"]), "", "a killed pull names no image");
    assert_eq!(strata.run(&["fs", "ls", &reference]).code, 3);

    proxy.set(Rules::default());
    assert_eq!(
        strata.ok(&["run", "--rm", &reference, "echo", "completed"]),
        "completed\n"
    );
    assert!(strata.ok(&["images"]).contains(&reference));
}

#[test]
fn an_imported_directory_is_an_image_every_command_takes() {
    let (_rt, registry) = local_registry();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let root = work.path().join("rootfs");
    rootfs(&root);
    let root = root.to_str().unwrap();
    let digest = strata.ok(&[
        "import",
        "-c",
        r#"CMD ["sh", "-c", "echo default command"]"#,
        "-c",
        "ENV GREETING=hello",
        "-m",
        "made offline",
        root,
        "mybox",
    ]);
    let images = strata.ok(&["images"]);
    assert!(
        images.contains(&format!("docker.io/library/mybox:latest\t{}", digest.trim())),
        "{images}"
    );

    // A short local name runs without any registry.
    assert_eq!(strata.ok(&["run", "--rm", "mybox"]), "default command\n");
    assert_eq!(
        strata.ok(&["run", "--rm", "mybox", "sh", "-c", "echo $GREETING"]),
        "hello\n"
    );
    assert_eq!(
        strata.ok(&["run", "--rm", "--entrypoint", "echo", "mybox", "replaced"]),
        "replaced\n"
    );
    let run = strata.run(&["run", "--rm", "--entrypoint", "", "mybox"]);
    assert_ne!(run.code, 0, "no entrypoint and no command: {run:?}");

    // -i passes stdin on; without it the container reads nothing.
    let piped = |args: &[&str]| {
        let mut all = vec!["--home", strata.home().to_str().unwrap()];
        all.extend_from_slice(args);
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(&all)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(b"from stdin\n");
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    assert_eq!(piped(&["run", "--rm", "-i", "mybox", "cat"]), "from stdin\n");
    assert_eq!(piped(&["run", "--rm", "-it", "mybox", "cat"]), "from stdin\n");
    assert_eq!(piped(&["run", "--rm", "mybox", "cat"]), "");

    // inspect: the registry (Docker Hub) does not have it; the error says where it is.
    let run = strata.run(&["inspect", "mybox"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("strata inspect --local mybox"), "{}", run.stderr);
    let summary = strata.json(&["inspect", "--local", "mybox"]);
    assert_eq!(summary["digest"], digest.trim());
    assert_eq!(summary["history"][0]["comment"], "made offline");
    let raw = strata.bytes(&["inspect", "--local", "--raw", "mybox"]);
    assert_eq!(strata_storage::digest::sha256(&raw).to_string(), digest.trim());

    // Pushed, pulled into another home, run there.
    let pushed = format!("{}/made/here:v1", registry.addr);
    strata.ok(&["push", "mybox", &pushed]);
    let elsewhere = Strata::new(&work.path().join("elsewhere"));
    assert_eq!(elsewhere.ok(&["run", "--rm", &pushed]), "default command\n");
    let raw = elsewhere.bytes(&["inspect", "--raw", &pushed]);
    assert_eq!(
        strata_storage::digest::sha256(&raw).to_string(),
        digest.trim(),
        "the bytes as stored"
    );

    // A layer tar imported with `layer import` is an image too, found by its short name.
    let tar = work.path().join("extra.tar");
    let status = Command::new("tar")
        .args(["-C", root, "-cf", tar.to_str().unwrap(), "."])
        .status()
        .unwrap();
    assert!(status.success());
    strata.ok(&["layer", "import", tar.to_str().unwrap(), "--name", "tarbox"]);
    assert!(strata.ok(&["images"]).contains("docker.io/library/tarbox:latest"));
    assert_eq!(
        strata.ok(&["run", "--rm", "tarbox", "echo", "from a tar"]),
        "from a tar\n"
    );
    strata.ok(&[
        "layer",
        "import",
        tar.to_str().unwrap(),
        "--name",
        "stacked",
        "--parent",
        "mybox",
    ]);
    assert_eq!(
        strata.ok(&["run", "--rm", "stacked"]),
        "default command\n",
        "the parent's config"
    );
    assert_eq!(
        strata.json(&["inspect", "--local", "stacked"])["layers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn exec_runs_a_command_inside_a_running_container() {
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let root = work.path().join("rootfs");
    rootfs(&root);
    strata.ok(&["import", "-c", "ENV FROM_IMAGE=1", root.to_str().unwrap(), "execbox"]);
    let id = strata.ok(&[
        "run",
        "-d",
        "--name",
        "target",
        "-e",
        "FROM_RUN=2",
        "execbox",
        "sleep",
        "60",
    ]);
    let hostname = &id.trim()[..12];
    let out = strata.ok(&[
        "exec",
        "target",
        "sh",
        "-c",
        "echo $FROM_IMAGE $FROM_RUN $(hostname) $(pwd); ps",
    ]);
    assert!(out.starts_with(&format!("1 2 {hostname} /\n")), "{out}");
    assert!(out.contains("sleep 60"), "the container's PID namespace: {out}");
    let run = strata.run(&["exec", "target", "sh", "-c", "exit 9"]);
    assert_eq!(run.code, 9, "{run:?}");
    let out = strata.ok(&[
        "exec",
        "-u",
        "nobody",
        "-w",
        "/etc",
        "-e",
        "EXTRA=3",
        "target",
        "sh",
        "-c",
        "id -u; pwd; echo $EXTRA",
    ]);
    assert_eq!(out, "65534\n/etc\n3\n");
    assert_eq!(strata.run(&["exec", "target", "no-such-command"]).code, 127);
    strata.ok(&["stop", "-t", "0", "target"]);
    let run = strata.run(&["exec", "target", "true"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("not running"), "{}", run.stderr);
    strata.ok(&["rm", "target"]);
}

#[test]
fn a_committed_image_pushes_by_mounting_its_parents_layers() {
    let (_rt, registry) = local_registry();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let mut layers = busybox_layers();
    layers.push(vec![Entry::Named("data/a".into(), noise(64 << 10, 3))]);
    write_layout(&work.path().join("src"), "v1", &layers);
    let base = format!("{}/team/base:v1", registry.addr);
    strata.ok(&["copy", &oci(&work.path().join("src"), "v1"), &base]);
    strata.ok(&["run", "--name", "changer", &base, "sh", "-c", "echo changed > /changed"]);
    let app = format!("{}/team/app:v1", registry.addr);
    strata.ok(&["commit", "-c", "CMD [\"cat\", \"/changed\"]", "changer", &app]);
    let report = strata.json(&["push", &app]);
    assert_eq!(report["blobs_mounted"], 2, "the parent's two layers: {report:#}");
    assert_eq!(report["blobs_copied"], 2, "the new layer and config: {report:#}");
    let elsewhere = Strata::new(&work.path().join("elsewhere"));
    assert_eq!(elsewhere.ok(&["run", "--rm", &app]), "changed\n");
}

#[test]
fn errors_carry_their_cause_on_one_line() {
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let run = strata.run(&["inspect", &format!("{closed}/nothing/here:v1")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("Connection refused"), "the cause: {}", run.stderr);
    let run = strata.run(&["import", "-c", "RUN make", "/", "x"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("unknown instruction RUN"), "{}", run.stderr);
}

#[test]
fn each_command_lists_only_the_flags_that_apply_to_it() {
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let help = |verb: &str| strata.ok(&[verb, "--help"]);
    let pull = help("pull");
    assert!(pull.contains("--platform") && pull.contains("--jobs") && pull.contains("--plain-http"));
    for absent in ["--include-foreign", "--chunk-size"] {
        assert!(!pull.contains(absent), "pull --help lists {absent}:\n{pull}");
    }
    for verb in ["push", "copy"] {
        let text = help(verb);
        assert!(
            text.contains("--include-foreign") && text.contains("--chunk-size"),
            "{verb}:\n{text}"
        );
    }
    let images = help("images");
    for absent in ["--plain-http", "--jobs", "--platform", "--chunk-size"] {
        assert!(!images.contains(absent), "images --help lists {absent}:\n{images}");
    }
    let run = help("run");
    for present in ["--entrypoint", "--interactive", "--tty", "--volume"] {
        assert!(run.contains(present), "run --help lacks {present}:\n{run}");
    }
    let exec = help("exec");
    for present in ["--interactive", "--tty", "--user", "--workdir", "--env"] {
        assert!(exec.contains(present), "exec --help lacks {present}:\n{exec}");
    }
}
