//! `--userns auto`: root in the container is an unprivileged range of host ids, while the image,
//! the scratch layer, commits, `cp` and named volumes keep the owners the container sees.

#[path = "peers/cli.rs"]
#[allow(dead_code)] // shared with the peers tests, which use all of it
mod cli;
#[path = "peers/confined.rs"]
#[allow(dead_code)] // shared with the escape tests
mod confined;

use std::os::unix::fs::MetadataExt;

use confined::{attempt, http_get, image};

/// The host ids of the container's root: the second column of its `uid_map`, which must map
/// exactly 65536 ids.
fn host_root(uid_map: &str) -> u32 {
    let fields: Vec<&str> = uid_map.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "one mapping: {uid_map:?}");
    assert_eq!((fields[0], fields[2]), ("0", "65536"), "{uid_map:?}");
    fields[1].parse().unwrap()
}

#[test]
fn container_root_is_an_unprivileged_host_range_and_files_keep_their_owners() {
    let work = tempfile::tempdir().unwrap();
    let strata = image(work.path());

    // Root inside, with the default capabilities; the image's owners as they are.
    let (code, out) = attempt(
        &strata,
        &["--userns", "auto"],
        "id -u; grep CapEff /proc/self/status; stat -c '%u:%g' /home /bin/busybox",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "CapEff:", confined::DEFAULT_CAPS, "1000:1000", "0:0"]
    );

    // Two running containers: each an unprivileged range of its own, seen from the host too.
    let port = confined::free_port();
    let publish = format!("127.0.0.1:{port}:80");
    strata.ok(&[
        "run", "-d", "--name", "u1", "--userns", "auto", "-p", &publish, "esc", "sleep", "1000",
    ]);
    strata.ok(&["run", "-d", "--name", "u2", "--userns", "auto", "esc", "sleep", "1000"]);
    let root_of = |name: &str| {
        let map = strata.ok(&["exec", name, "cat", "/proc/self/uid_map"]);
        let host = host_root(&map);
        let pid = strata.json(&["inspect", name])["state"]["pid"].as_i64().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap().to_owned();
        let host_text = host.to_string();
        assert_eq!(
            uid_line.split_whitespace().skip(1).collect::<Vec<_>>(),
            [host_text.as_str(); 4],
            "PID 1 of {name} on the host"
        );
        host
    };
    let (one, two) = (root_of("u1"), root_of("u2"));
    assert!(one >= 65536 && two >= 65536, "{one} {two}");
    assert!(one.abs_diff(two) >= 65536, "overlapping ranges {one} {two}");

    // exec joins the user namespace; the container owns a network of its own (port 80 binds),
    // published on the host.
    let made = strata.ok(&[
        "exec",
        "u1",
        "sh",
        "-c",
        "touch /made && chown 7:7 /made && httpd -p 80 -h /etc && id -u",
    ]);
    assert_eq!(made.trim(), "0");
    assert!(http_get(port, "/passwd").contains("root:x:0:0"));

    // cp into and out of the running container: owners as the container sees them.
    let host_file = work.path().join("in.txt");
    std::fs::write(&host_file, "from the host\n").unwrap();
    std::os::unix::fs::chown(&host_file, Some(1234), Some(1234)).unwrap();
    strata.ok(&["cp", host_file.to_str().unwrap(), "u1:/in.txt"]);
    let owners = strata.ok(&["exec", "u1", "stat", "-c", "%u:%g", "/in.txt", "/made"]);
    assert_eq!(owners.split_whitespace().collect::<Vec<_>>(), ["1234:1234", "7:7"]);
    let out = work.path().join("made");
    strata.ok(&["cp", "u1:/made", out.to_str().unwrap()]);
    let md = std::fs::metadata(&out).unwrap();
    assert_eq!((md.uid(), md.gid()), (7, 7));

    // The scratch layer holds the container's owners: a commit run without a user namespace
    // sees the same.
    strata.ok(&["stop", "u1"]);
    strata.ok(&["commit", "u1", "esc-committed"]);
    let run = strata.run(&[
        "run",
        "--rm",
        "esc-committed",
        "stat",
        "-c",
        "%u:%g",
        "/made",
        "/in.txt",
        "/home",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout.split_whitespace().collect::<Vec<_>>(),
        ["7:7", "1234:1234", "1000:1000"]
    );
    strata.ok(&["rm", "-f", "u1", "u2"]);
}

#[test]
fn root_in_a_user_namespace_is_nobody_to_the_host_even_privileged() {
    let work = tempfile::tempdir().unwrap();
    let strata = image(work.path());
    let host_dir = work.path().join("host-dir");
    std::fs::create_dir(&host_dir).unwrap();
    let bind = format!("{}:/h", host_dir.display());

    // The host's root-owned directory: writable by a container whose root is the host's, not by
    // one in a user namespace.
    let (code, out) = attempt(&strata, &["-v", &bind], "touch /h/by-host-root");
    assert_eq!(code, 0, "{out}");
    for flags in [&["--userns", "auto"][..], &["--userns", "auto", "--privileged"]] {
        let mut with_bind = flags.to_vec();
        with_bind.extend(["-v", &bind]);
        let (code, out) = attempt(&strata, &with_bind, "touch /h/by-userns-root");
        assert_ne!(code, 0, "{flags:?}: {out}");
        assert!(out.contains("Permission denied"), "{flags:?}: {out}");
        // Every capability of its own namespace, none over the host's devices or mounts.
        for (script, error) in [
            ("mknod /tmp/disk b 254 0", "Operation not permitted"),
            ("mount -t tmpfs none /tmp", "permission denied"),
        ] {
            let (code, out) = attempt(&strata, flags, script);
            assert_ne!(code, 0, "{flags:?} {script}: {out}");
            assert!(out.contains(error), "{flags:?} {script}: {out}");
        }
    }
    assert!(!host_dir.join("by-userns-root").exists());

    // A named volume stores the owners the container sees (root is 0 on disk, not its host id).
    let (code, out) = attempt(&strata, &["--userns", "auto", "-v", "data:/data"], "touch /data/f");
    assert_eq!(code, 0, "{out}");
    let f = strata.home().join("volumes/data/_data/f");
    let md = std::fs::metadata(&f).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));
    let (code, out) = attempt(&strata, &["-v", "data:/data"], "stat -c %u:%g /data/f");
    assert_eq!((code, out.trim()), (0, "0:0"));
}
