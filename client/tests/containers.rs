//! Containers end to end, as root (CI runs as root): the `strata` binary runs a busybox image
//! (built here from Debian's busybox-static) from our registry in real namespaces over a real
//! overlayfs, with cgroup limits, volumes, cp, commit, push and pull.

#[path = "peers/cli.rs"]
#[allow(dead_code)] // shared with the peers tests, which use all of it
mod cli;

use std::path::Path;

use cli::{Strata, oci};
use strata_tests::oci::{Entry, init_layout, write_image, write_index, write_layout};
use strata_tests::{LocalRegistry, local_registry};

/// The busybox applets the tests use, as links in `/bin`.
const APPLETS: [&str; 14] = [
    "bin/sh",
    "bin/echo",
    "bin/cat",
    "bin/id",
    "bin/pwd",
    "bin/ls",
    "bin/rm",
    "bin/sleep",
    "bin/touch",
    "bin/hostname",
    "bin/mkdir",
    "bin/test",
    "bin/env",
    "bin/wc",
];

/// A busybox image with users, in `dir`, pushed to the registry as `reference`.
fn busybox_image(strata: &Strata, dir: &Path, reference: &str) {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (install busybox-static)");
    let mut base = vec![Entry::Dir("bin/"), Entry::File("bin/busybox", busybox, 0o755)];
    base.extend(APPLETS.iter().map(|a| Entry::Symlink(a, "busybox")));
    let etc = vec![
        Entry::Dir("etc/"),
        Entry::File(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home/nobody:/bin/false\n".to_vec(),
            0o644,
        ),
        Entry::File("etc/group", b"root:x:0:\nnogroup:x:65534:\n".to_vec(), 0o644),
        Entry::File("etc/motd", b"from the image\n".to_vec(), 0o644),
        Entry::Dir("tmp/"),
    ];
    write_layout(dir, "v1", &[base, etc]);
    strata.ok(&["copy", &oci(dir, "v1"), reference]);
}

struct Setup {
    _rt: tokio::runtime::Runtime,
    registry: LocalRegistry,
    work: tempfile::TempDir,
    strata: Strata,
    image: String,
}

fn setup() -> Setup {
    let (rt, registry) = local_registry();
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new(work.path());
    let image = format!("{}/ctr/busybox:v1", registry.addr);
    busybox_image(&strata, &work.path().join("src"), &image);
    Setup {
        _rt: rt,
        registry,
        work,
        strata,
        image,
    }
}

#[test]
fn run_gives_the_command_its_output_exit_code_env_directory_and_user() {
    let s = setup();
    let out = s.strata.ok(&["run", "--rm", &s.image, "echo", "hello", "world"]);
    assert_eq!(out, "hello world\n");
    let run = s.strata.run(&["run", "--rm", &s.image, "sh", "-c", "exit 42"]);
    assert_eq!(run.code, 42, "{run:?}");
    let out = s.strata.ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=hi",
        "-w",
        "/work/here",
        "-u",
        "nobody",
        &s.image,
        "sh",
        "-c",
        "echo $GREETING; pwd; id -u; id -g; echo $HOME; echo $PATH; echo $$",
    ]);
    assert_eq!(
        out, "hi\n/work/here\n65534\n65534\n/home/nobody\n/bin\n1\n",
        "env from -e, PATH from the image, PID 1"
    );
    let run = s.strata.run(&["run", "--rm", &s.image, "no-such-command"]);
    assert_eq!(run.code, 127, "{run:?}");
    assert!(run.stderr.contains("no-such-command"), "{}", run.stderr);
    // Nothing is left behind by --rm.
    let ps = s.strata.json(&["ps", "-a"]);
    assert_eq!(ps.as_array().unwrap().len(), 0, "{ps:#}");
}

#[test]
fn the_container_sees_only_its_own_root_and_cp_cannot_escape_it() {
    let s = setup();
    let marker = s.work.path().join("host-only-marker");
    std::fs::write(&marker, "host").unwrap();
    let script = format!(
        "test -e {} && echo visible || echo hidden; ls /; hostname",
        marker.display()
    );
    let out = s.strata.ok(&["run", "--name", "iso", &s.image, "sh", "-c", &script]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hidden");
    assert!(
        lines.contains(&"proc") && lines.contains(&"etc") && !lines.contains(&"work"),
        "{out}"
    );

    // cp in with `..` lands inside the container; cp out reads the container's files.
    let host_file = s.work.path().join("in.txt");
    std::fs::write(&host_file, "copied in").unwrap();
    // `/tmp/<name>` on the host, were `..` to climb out of the container's root.
    let name = format!("strata-escape-{}", std::process::id());
    let host_target = Path::new("/tmp").join(&name);
    let escape = format!("iso:../../../../../tmp/{name}");
    s.strata.ok(&["cp", host_file.to_str().unwrap(), &escape]);
    assert!(!host_target.exists(), "cp escaped the container");
    let back = s.work.path().join("back.txt");
    s.strata
        .ok(&["cp", &format!("iso:/tmp/{name}"), back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "copied in");
    let out = s.work.path().join("out.txt");
    s.strata
        .ok(&["cp", &format!("iso:/../../tmp/{name}"), out.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "copied in",
        "`..` out of the container stays in it"
    );
    let motd = s.work.path().join("motd");
    s.strata.ok(&["cp", "iso:/etc/motd", motd.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&motd).unwrap(), "from the image\n");
    // The image stays while a container stands on it; prune keeps its layers too.
    let rmi = s.strata.run(&["rmi", &s.image]);
    assert_eq!(rmi.code, 2, "{rmi:?}");
    assert!(rmi.stderr.contains("iso"), "{}", rmi.stderr);
    s.strata.ok(&["prune"]);
    s.strata.ok(&["cp", "iso:/etc/motd", motd.to_str().unwrap()]);
    s.strata.ok(&["rm", "iso"]);
    s.strata.ok(&["rmi", &s.image]);
    assert!(s.strata.json(&["layer", "ls"]).as_array().unwrap().is_empty());
}

#[test]
fn commit_makes_a_new_image_that_pushes_pulls_and_runs_elsewhere() {
    let s = setup();
    s.strata.ok(&[
        "run",
        "--name",
        "builder",
        &s.image,
        "sh",
        "-c",
        "echo made > /tmp/new.txt; rm /etc/motd",
    ]);
    // The image itself does not change.
    assert_eq!(
        s.strata.ok(&["run", "--rm", &s.image, "cat", "/etc/motd"]),
        "from the image\n"
    );
    let run = s.strata.run(&["run", "--rm", &s.image, "cat", "/tmp/new.txt"]);
    assert_ne!(run.code, 0);

    let committed = format!("{}/ctr/committed:v2", s.registry.addr);
    let digest = s.strata.ok(&[
        "commit",
        "-a",
        "Ann Author <ann@example.com>",
        "-m",
        "add new.txt, drop motd",
        "builder",
        &committed,
    ]);
    let summary = s.strata.json(&["inspect", "--local", &committed]);
    assert_eq!(summary["digest"], digest.trim());
    assert_eq!(summary["author"], "Ann Author <ann@example.com>");
    let last = summary["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["comment"], "add new.txt, drop motd");
    assert_eq!(last["author"], "Ann Author <ann@example.com>");
    assert_eq!(summary["layers"].as_array().unwrap().len(), 3, "one new layer");
    // The deletion is a whiteout in the new layer, and the union hides the file.
    let listing = s.strata.json(&["fs", "ls", &committed, "/etc"]);
    let names: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["path"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/etc/group", "/etc/passwd"]);

    // Push it, pull it into a fresh home, run it there.
    s.strata.ok(&["push", &committed]);
    let elsewhere = Strata::new(&s.work.path().join("elsewhere"));
    elsewhere.ok(&["pull", &committed]);
    let out = elsewhere.ok(&[
        "run",
        "--rm",
        &committed,
        "sh",
        "-c",
        "cat /tmp/new.txt; test -e /etc/motd || echo gone",
    ]);
    assert_eq!(out, "made\ngone\n");
    s.strata.ok(&["rm", "builder"]);
}

#[test]
fn volumes_outlive_containers_and_read_only_binds_refuse_writes() {
    let s = setup();
    s.strata.ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "shared:/data",
        &s.image,
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    let refused = s.strata.run(&["volume", "rm", "shared"]);
    assert_ne!(refused.code, 0, "a volume in use is not removed");
    assert!(refused.stderr.contains("writer"), "{}", refused.stderr);
    s.strata.ok(&["rm", "writer"]);
    assert_eq!(
        s.strata
            .ok(&["run", "--rm", "-v", "shared:/data", &s.image, "cat", "/data/f"]),
        "kept\n"
    );
    let volume = s.strata.json(&["volume", "inspect", "shared"]);
    let data = Path::new(volume["mountpoint"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(data.join("f")).unwrap(), "kept\n");
    s.strata.ok(&["volume", "rm", "shared"]);
    assert!(!data.exists());

    let host = s.work.path().join("ro");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("x"), "host data").unwrap();
    let bind = format!("{}:/ro:ro", host.display());
    let run = s.strata.run(&[
        "run",
        "--rm",
        "-v",
        &bind,
        &s.image,
        "sh",
        "-c",
        "cat /ro/x; echo no > /ro/y",
    ]);
    assert_ne!(run.code, 0);
    assert_eq!(run.stdout, "host data");
    assert!(run.stderr.contains("Read-only file system"), "{}", run.stderr);
    assert!(!host.join("y").exists());
}

#[test]
fn detached_containers_log_stop_and_honour_limits() {
    let s = setup();
    let id = s.strata.ok(&[
        "run",
        "-d",
        "--name",
        "bg",
        "--memory",
        "64m",
        "--pids-limit",
        "20",
        "--cpus",
        "0.5",
        &s.image,
        "sh",
        "-c",
        "echo started; sleep 60",
    ]);
    assert_eq!(id.trim().len(), 64);
    let ps = s.strata.json(&["ps"]);
    assert_eq!(ps[0]["name"], "bg");
    assert_eq!(ps[0]["status"], "running");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.strata.ok(&["logs", "bg"]) != "started\n" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(s.strata.ok(&["logs", "bg"]), "started\n");
    let limits = strata_runtime::container::cgroup::Cgroup::new(id.trim()).limits();
    assert_eq!(limits.memory, Some(64 << 20), "the memory cgroup holds the limit");
    assert_eq!(limits.pids, Some(20));
    assert_eq!(limits.cpus, Some(0.5));
    // cp into the running container goes through its mounted root, and stays inside it.
    let host_file = s.work.path().join("live.txt");
    std::fs::write(&host_file, "live").unwrap();
    let name = format!("strata-live-escape-{}", std::process::id());
    s.strata
        .ok(&["cp", host_file.to_str().unwrap(), &format!("bg:../../../tmp/{name}")]);
    assert!(
        !Path::new("/tmp").join(&name).exists(),
        "cp escaped the running container"
    );
    let back = s.work.path().join("live-back.txt");
    s.strata.ok(&["cp", &format!("bg:/tmp/{name}"), back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "live");
    // A running container is frozen while its changes are committed, then goes on.
    let committed = format!("{}/ctr/bg:v1", s.registry.addr);
    s.strata.ok(&["commit", "bg", &committed]);
    assert_eq!(s.strata.json(&["ps"])[0]["status"], "running");
    // sh as PID 1 ignores SIGTERM: stop escalates to SIGKILL after the timeout.
    s.strata.ok(&["stop", "-t", "1", "bg"]);
    let ps = s.strata.json(&["ps", "-a"]);
    assert_eq!(ps[0]["status"], "exited");
    assert_eq!(ps[0]["exit_code"], 137);
    assert!(s.strata.json(&["ps"]).as_array().unwrap().is_empty());
    s.strata.ok(&["rm", "bg"]);

    // A detached --rm container removes itself when it ends.
    s.strata.ok(&["run", "-d", "--rm", "--name", "brief", &s.image, "true"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !s.strata.json(&["ps", "-a"]).as_array().unwrap().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(s.strata.json(&["ps", "-a"]).as_array().unwrap().is_empty());
}

#[test]
fn windows_containers_are_created_copied_into_and_committed_but_not_run() {
    let s = setup();
    let src = s.work.path().join("win");
    init_layout(&src);
    let platform = serde_json::json!({ "os": "windows", "architecture": "amd64", "os.version": "10.0.20348.2113" });
    let layers = vec![vec![
        Entry::Dir("Files/"),
        Entry::Dir("Files/Windows/"),
        Entry::File("Files/Windows/win.ini", b"[old]".to_vec(), 0o644),
        Entry::File("Files/hello.txt", b"hi".to_vec(), 0o644),
    ]];
    let (image, manifest) = write_image(&src, &platform, &layers);
    write_index(
        &src,
        &[("v1", strata_tests::oci::OCI_MANIFEST, image.manifest, manifest.len())],
    );
    let reference = format!("{}/ctr/windows:v1", s.registry.addr);
    s.strata.ok(&["copy", &oci(&src, "v1"), &reference]);
    s.strata.ok(&["pull", "--platform", "windows/amd64", &reference]);

    let run = s.strata.run(&["run", "--rm", &reference]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("Windows host"), "{}", run.stderr);

    s.strata.ok(&["create", "--name", "win", &reference]);
    let new = s.work.path().join("new.txt");
    std::fs::write(&new, "new file").unwrap();
    s.strata.ok(&["cp", new.to_str().unwrap(), "win:C:\\WINDOWS"]);
    let ini = s.work.path().join("win.ini");
    std::fs::write(&ini, "[new]").unwrap();
    s.strata.ok(&["cp", ini.to_str().unwrap(), "win:/windows/WIN.INI"]);
    let back = s.work.path().join("back.ini");
    s.strata.ok(&["cp", "win:/Windows/win.ini", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "[new]");

    let committed = format!("{}/ctr/windows:v2", s.registry.addr);
    s.strata.ok(&["commit", "-m", "copied files", "win", &committed]);
    // The committed union: the new file, the replaced one under its original name.
    let listing = s.strata.json(&["fs", "ls", &committed, "/Windows"]);
    let entries: Vec<(&str, u64)> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["path"].as_str().unwrap(), n["size"].as_u64().unwrap()))
        .collect();
    assert_eq!(entries, [("/Windows/new.txt", 8), ("/Windows/win.ini", 5)]);
    assert_eq!(s.strata.ok(&["fs", "cat", &committed, "C:\\windows\\win.ini"]), "[new]");
    assert_eq!(s.strata.ok(&["fs", "cat", &committed, "/hello.txt"]), "hi");

    // The new layer is a Windows layer: Files and Hives first, every entry under them, with
    // the Windows PAX records.
    let summary = s.strata.json(&["inspect", "--local", &committed]);
    assert_eq!(summary["os"], "windows");
    assert_eq!(summary["os.version"], "10.0.20348.2113");
    let layer = summary["layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let blob = s
        .strata
        .store()
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let gz = std::fs::File::open(blob).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let attr = entry
            .pax_extensions()
            .unwrap()
            .and_then(|mut p| p.find(|r| r.as_ref().is_ok_and(|r| r.key() == Ok("MSWINDOWS.fileattr"))))
            .map(|r| r.unwrap().value().unwrap().to_owned());
        names.push((name, attr));
    }
    assert_eq!(
        names,
        [
            ("Files".to_string(), Some("16".to_string())),
            ("Hives".to_string(), Some("16".to_string())),
            ("Files/Windows/new.txt".to_string(), Some("32".to_string())),
            ("Files/Windows/win.ini".to_string(), Some("0".to_string())),
        ]
    );
    s.strata.ok(&["rm", "win"]);
}
