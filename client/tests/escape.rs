//! Escape attempts, run inside containers as an attacker would (as root, in CI): each must fail
//! with the error the kernel gives a confined process, and `--privileged`, `--cap-add`,
//! `--cap-drop` and `--security-opt no-new-privileges` must change exactly what they say.

#[path = "peers/cli.rs"]
#[allow(dead_code)] // shared with the peers tests, which use all of it
mod cli;
#[path = "peers/confined.rs"]
#[allow(dead_code)] // shared with the userns tests
mod confined;

use std::path::Path;
use std::process::Command;

use cli::Strata;
use confined::{DEFAULT_CAPS, attempt, free_port, http_get, image, probe, status, with_probe};

#[test]
fn a_default_container_cannot_reach_the_host() {
    let work = tempfile::tempdir().unwrap();
    let strata = image(work.path());

    // Every capability set is the default list, or empty.
    for (field, want) in [
        ("CapBnd", DEFAULT_CAPS),
        ("CapPrm", DEFAULT_CAPS),
        ("CapEff", DEFAULT_CAPS),
        ("CapInh", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
    ] {
        assert_eq!(status(&strata, &[], field), want, "{field}");
    }
    // Not root: nothing in effect, and the bounding set keeps a setuid-root binary from
    // regaining more than the default list.
    assert_eq!(status(&strata, &["-u", "nobody"], "CapEff"), "0000000000000000");
    assert_eq!(status(&strata, &["-u", "nobody"], "CapBnd"), DEFAULT_CAPS);

    for (what, script, expected) in [
        (
            "a block device node",
            "mknod /tmp/disk b 254 0",
            "Operation not permitted",
        ),
        ("a remount of /sys", "mount -o remount,rw /sys", "denied"),
        ("the kernel log", "cat /proc/kmsg", "Operation not permitted"),
        (
            "a cgroup v1 hierarchy",
            "mkdir /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg",
            "denied",
        ),
        ("a new sysfs", "mkdir /tmp/s && mount -t sysfs sysfs /tmp/s", "denied"),
        ("a mount namespace", "unshare -m true", "Operation not permitted"),
        ("a user namespace", "unshare -U true", "Operation not permitted"),
        (
            "kernel.core_pattern",
            "echo '|/tmp/x' > /proc/sys/kernel/core_pattern",
            "Read-only file system",
        ),
        (
            "a /proc/sys file",
            "echo 1 > /proc/sys/vm/drop_caches",
            "Read-only file system",
        ),
    ] {
        let (code, out) = attempt(&strata, &[], script);
        assert_ne!(code, 0, "{what} succeeded: {out}");
        assert!(out.contains(expected), "{what}: expected {expected:?} in {out:?}");
    }
    // A cgroup namespace: the container's own cgroup (limits put it in one) is its root, in
    // every hierarchy.
    let (code, out) = attempt(
        &strata,
        &["--memory", "64m", "--pids-limit", "50"],
        "cat /proc/self/cgroup",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().all(|l| l.ends_with(":/")), "{out}");

    // Masked: what leaks the host reads as empty.
    for path in ["/proc/keys", "/proc/timer_list", "/proc/sched_debug"] {
        if Path::new(path).exists() {
            let (code, out) = attempt(&strata, &[], &format!("cat {path} | wc -c"));
            assert_eq!((code, out.trim()), (0, "0"), "{path}");
        }
    }
    // A descriptor the caller had open does not reach the container.
    let strata_bin = env!("CARGO_BIN_EXE_strata");
    let home = strata.home().display().to_string();
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 7</ && {strata_bin} --home {home} run --rm -u nobody esc sh -c 'ls /proc/self/fd; cat /proc/self/fd/7/etc/hostname'"
        ))
        .env("DOCKER_CONFIG", work.path().join("docker"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{out}");
    assert!(out.contains("No such file or directory"), "{out}");
    let fds: Vec<&str> = out.lines().take_while(|l| l.parse::<u32>().is_ok()).collect();
    assert!(
        fds.iter().all(|fd| ["0", "1", "2", "3"].contains(fd)),
        "open in the container: {fds:?}"
    );
}

#[test]
fn privileged_cap_add_cap_drop_and_no_new_privileges_do_what_they_say() {
    let work = tempfile::tempdir().unwrap();
    let strata = image(work.path());

    let full = status(&strata, &["--privileged"], "CapEff");
    assert_ne!(full, DEFAULT_CAPS);
    assert_eq!(
        u64::from_str_radix(&full, 16).unwrap() & 0x0020_0000,
        0x0020_0000,
        "CAP_SYS_ADMIN"
    );
    let (code, out) = attempt(&strata, &["--privileged"], "mknod /tmp/disk b 254 0 && echo made");
    assert_eq!((code, out.trim()), (0, "made"));

    // NET_RAW is bit 13.
    let with_raw = status(&strata, &["--cap-add", "net_raw"], "CapEff");
    assert_eq!(u64::from_str_radix(&with_raw, 16).unwrap(), 0x8004_05fb | (1 << 13));
    assert_eq!(status(&strata, &["--cap-drop", "ALL"], "CapBnd"), "0000000000000000");
    let (code, out) = attempt(
        &strata,
        &["--cap-drop", "ALL"],
        "mkdir /tmp/d && chmod 700 /tmp/d; echo ok",
    );
    assert_eq!(code, 0, "{out}");

    assert_eq!(status(&strata, &[], "NoNewPrivs"), "0");
    assert_eq!(
        status(&strata, &["--security-opt", "no-new-privileges"], "NoNewPrivs"),
        "1"
    );

    // The seccomp filter holds even with CAP_SYS_ADMIN; unconfined, the same mount works.
    assert_eq!(status(&strata, &[], "Seccomp"), "2");
    let mount = "mkdir /tmp/m && mount -t tmpfs t /tmp/m && echo mounted";
    let (code, out) = attempt(&strata, &["--cap-add", "SYS_ADMIN"], mount);
    assert!(code != 0 && out.contains("denied"), "{out}");
    let unconfined = ["--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined"];
    let (code, out) = attempt(&strata, &unconfined, mount);
    assert_eq!((code, out.trim()), (0, "mounted"));
    assert_eq!(status(&strata, &unconfined, "Seccomp"), "0");
    assert_eq!(status(&strata, &["--privileged"], "Seccomp"), "0");

    // A profile in docker's format replaces the default filter.
    let profile = work.path().join("profile.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
            {"names":["chmod","fchmodat"],"action":"SCMP_ACT_ERRNO","errnoRet":1,
             "excludes":{"caps":["CAP_FOWNER"]}}]}"#,
    )
    .unwrap();
    let with_profile = format!("seccomp={}", profile.display());
    let (code, out) = attempt(&strata, &["--security-opt", &with_profile], "mkdir /tmp/x");
    assert!(code != 0 && out.contains("Operation not permitted"), "{out}");
    let (code, out) = attempt(
        &strata,
        &["--security-opt", &with_profile, "--cap-add", "SYS_ADMIN"],
        "chmod 600 /etc/passwd && unshare -m true && echo free",
    );
    assert_eq!(
        (code, out.trim()),
        (0, "free"),
        "chmod kept (CAP_FOWNER held), unshare allowed by this profile"
    );
    let (code, out) = attempt(
        &strata,
        &[
            "--security-opt",
            &with_profile,
            "--cap-drop",
            "FOWNER",
            "--cap-add",
            "SYS_ADMIN",
        ],
        "chmod 600 /etc/passwd",
    );
    assert!(code != 0 && out.contains("Operation not permitted"), "{out}");

    std::fs::write(&profile, r#"{"defaultAction":"SCMP_ACT_DANCE"}"#).unwrap();
    let bad = strata.run(&["run", "--rm", "--security-opt", &with_profile, "esc", "true"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("SCMP_ACT_DANCE"), "{}", bad.stderr);
    let missing = strata.run(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=/no/such/profile.json",
        "esc",
        "true",
    ]);
    assert_ne!(missing.code, 0, "{missing:?}");
    assert!(missing.stderr.contains("/no/such/profile.json"), "{}", missing.stderr);
    let bad = strata.run(&["run", "--rm", "--cap-add", "FLY", "esc", "true"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("FLY"), "{}", bad.stderr);
    let bad = strata.run(&["run", "--rm", "--security-opt", "apparmor=x", "esc", "true"]);
    assert_eq!(bad.code, 2, "{bad:?}");
}

#[test]
fn cp_keeps_modes_and_owners_both_ways_running_or_not() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let work = tempfile::tempdir().unwrap();
    let strata = image(work.path());
    let src = work.path().join("tool");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(src.join("run.sh"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::symlink("run.sh", src.join("link")).unwrap();
    std::os::unix::fs::lchown(src.join("link"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::chown(src.join("run.sh"), Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(src.join("run.sh"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o750)).unwrap();
    let show = "stat -c '%n %a %u %g' /tmp/tool /tmp/tool/run.sh; stat -c '%n %u %g' /tmp/tool/link";
    let expected = "/tmp/tool 750 0 0\n/tmp/tool/run.sh 4755 1234 5678\n/tmp/tool/link 1234 5678";

    // Into a running container (through its root) and into one that is not (its scratch layer).
    strata.ok(&["run", "-d", "--name", "live", "esc", "sh", "-c", "sleep 30"]);
    strata.ok(&["cp", src.to_str().unwrap(), "live:/tmp/"]);
    assert_eq!(strata.ok(&["exec", "live", "sh", "-c", show]).trim(), expected);
    // Out of the running container, through its root: a link it made to / is copied as a link.
    strata.ok(&["exec", "live", "sh", "-c", "ln -s / /tmp/tool/escape"]);
    let live_out = work.path().join("live-out");
    std::fs::create_dir(&live_out).unwrap();
    strata.ok(&["cp", "live:/tmp/tool", live_out.to_str().unwrap()]);
    let script = std::fs::metadata(live_out.join("tool/run.sh")).unwrap();
    assert_eq!(
        (script.mode() & 0o7777, script.uid(), script.gid()),
        (0o4755, 1234, 5678)
    );
    assert_eq!(std::fs::metadata(live_out.join("tool")).unwrap().mode() & 0o7777, 0o750);
    let escape = std::fs::symlink_metadata(live_out.join("tool/escape")).unwrap();
    assert!(escape.file_type().is_symlink(), "copied as a link, not followed");
    assert_eq!(
        std::fs::read_link(live_out.join("tool/escape")).unwrap(),
        Path::new("/")
    );
    let missing = strata.run(&["cp", "live:/nowhere", live_out.to_str().unwrap()]);
    assert_eq!(missing.code, 3, "{missing:?}");

    strata.ok(&["create", "--name", "still", "esc", "sh", "-c", show]);
    strata.ok(&["cp", src.to_str().unwrap(), "still:/tmp/"]);
    let run = strata.run(&["start", "-a", "still"]);
    assert_eq!(run.stdout.trim(), expected, "{run:?}");

    // And out again.
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    strata.ok(&["cp", "still:/tmp/tool", out.to_str().unwrap()]);
    let script = std::fs::metadata(out.join("tool/run.sh")).unwrap();
    assert_eq!(
        (script.mode() & 0o7777, script.uid(), script.gid()),
        (0o4755, 1234, 5678)
    );
    let dir = std::fs::metadata(out.join("tool")).unwrap();
    assert_eq!(dir.mode() & 0o7777, 0o750);
    let link = std::fs::symlink_metadata(out.join("tool/link")).unwrap();
    assert_eq!((link.uid(), link.gid()), (1234, 5678));
    strata.ok(&["rm", "-f", "live"]);
    strata.ok(&["rm", "still"]);
}

#[test]
fn a_published_port_reaches_a_server_in_the_container_and_goes_with_it() {
    let work = tempfile::tempdir().unwrap();
    let strata = image(work.path());
    let root = work.path().join("root");
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::write(root.join("www/index.html"), "served from the container\n").unwrap();
    strata.ok(&["import", root.to_str().unwrap(), "web"]);
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    strata.ok(&[
        "run", "-d", "--name", "site", "-p", &publish, "web", "httpd", "-f", "-p", "80", "-h", "/www",
    ]);

    let body = http_get(port, "/");
    assert!(body.ends_with("served from the container\n"), "{body}");

    // pasta goes with the container.
    let netns = strata.home().join("containers");
    let pasta_for_this = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .any(|c| c.contains("pasta") && c.contains(netns.to_str().unwrap()))
    };
    assert!(pasta_for_this(), "pasta serves the container");
    strata.ok(&["rm", "-f", "site"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while pasta_for_this() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!pasta_for_this(), "pasta outlived the container");
    // The last of pasta's sockets close a moment after its process is gone.
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the port is closed again"
    );

    for bad in [vec!["-p", "80"], vec!["-p", "8080:80", "--network", "host"]] {
        let mut args = vec!["run", "--rm"];
        args.extend(bad.iter().copied());
        args.extend(["web", "true"]);
        let run = strata.run(&args);
        assert_eq!(run.code, 2, "{bad:?}: {run:?}");
    }
}

#[test]
fn t_gives_a_terminal_and_ctrl_c_reaches_the_container() {
    let work = tempfile::tempdir().unwrap();
    let strata = image(work.path());

    // A terminal, 24x80 when the caller has none, and the command's exit code.
    let run = strata.run(&[
        "run",
        "--rm",
        "-t",
        "esc",
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo tty; stty size; exit 3",
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.stdout.replace('\r', "").trim(), "tty\n24 80", "{run:?}");
    // Without -t, no terminal (the container's stdout is this test's pipe).
    let run = strata.run(&["run", "--rm", "esc", "sh", "-c", "test -t 1 || echo none"]);
    assert_eq!(run.stdout.trim(), "none");

    // The size follows the caller's terminal: copied at the start, and on SIGWINCH.
    let size = |rows, cols| rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let terminal = nix::pty::openpty(None, None).unwrap();
    rustix::termios::tcsetwinsize(&terminal.master, size(30, 100)).unwrap();
    let mut resized = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "--home",
            &strata.home().display().to_string(),
            "run",
            "--rm",
            "-t",
            "esc",
        ])
        .args(["sh", "-c", "stty size; sleep 2; stty size"])
        .env("DOCKER_CONFIG", work.path().join("docker"))
        .stdin(std::process::Stdio::from(terminal.slave))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Resized once the first size is printed.
    let mut out = std::io::BufReader::new(resized.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    assert_eq!(first.trim(), "30 100");
    rustix::termios::tcsetwinsize(&terminal.master, size(40, 120)).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(resized.id() as i32),
        nix::sys::signal::Signal::SIGWINCH,
    )
    .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(resized.wait().unwrap().code(), Some(0));
    assert_eq!(rest.replace('\r', "").trim(), "40 120");

    // Ctrl-C typed on the caller's terminal (a pty here) interrupts the container's foreground
    // process.
    ctrl_c_stops(&strata, &["run", "--rm", "-i", "-t", "esc"]);
}

/// Runs `strata ARGS sh -c 'sleep 30; echo finished'` on a terminal (a pty), types Ctrl-C on it,
/// and checks that the command ended at once with 130 and without finishing.
fn ctrl_c_stops(strata: &Strata, args: &[&str]) {
    use std::io::Write;
    let terminal = nix::pty::openpty(None, None).unwrap();
    let home = strata.home().display().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["--home", &home])
        .args(args)
        .args(["sh", "-c", "sleep 30; echo finished"])
        .stdin(std::process::Stdio::from(terminal.slave))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let mut keyboard = std::fs::File::from(terminal.master);
    keyboard.write_all(b"\x03").unwrap();
    let started = std::time::Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "Ctrl-C did not stop it"
    );
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("finished"));
}

#[test]
fn exec_t_gives_a_terminal_in_a_running_container() {
    let work = tempfile::tempdir().unwrap();
    let strata = image(work.path());
    strata.ok(&["run", "-d", "--name", "box", "esc", "sleep", "60"]);

    // A terminal, 24x80 without one to copy, and the command's exit code; none without -t.
    let script = "test -t 0 && test -t 1 && echo tty; stty size; exit 4";
    let run = strata.run(&["exec", "-t", "box", "sh", "-c", script]);
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(run.stdout.replace('\r', "").trim(), "tty\n24 80", "{run:?}");
    let run = strata.run(&["exec", "box", "sh", "-c", "test -t 1 || echo none"]);
    assert_eq!(run.stdout.trim(), "none");

    // Ctrl-C typed on the caller's terminal interrupts the exec'd process, not the container.
    ctrl_c_stops(&strata, &["exec", "-i", "-t", "box"]);
    let ps = strata.ok(&["ps"]);
    assert!(ps.contains("box"), "the container still runs: {ps}");
    strata.ok(&["rm", "-f", "box"]);
}

#[test]
fn kernel_interfaces_ptrace_and_setuid_binaries_stay_closed() {
    let work = tempfile::tempdir().unwrap();
    let strata = image(work.path());
    with_probe(work.path(), &strata);

    // The keyring, bpf and module loading: refused by default; the first two work privileged,
    // so the refusal is the confinement's, not the probe's.
    for verb in ["keyctl", "bpf", "init_module", "finit_module"] {
        assert_eq!(
            probe(&strata, &[], &["probe", verb]),
            "Operation not permitted",
            "{verb}"
        );
    }
    for verb in ["keyctl", "bpf"] {
        assert_eq!(probe(&strata, &["--privileged"], &["probe", verb]), "ok", "{verb}");
    }

    // A setuid-root binary run by nobody gets root's uid but no more than the bounding set;
    // nothing with no-new-privileges; nothing after --cap-drop ALL.
    let whoami = |flags: &[&str]| {
        let mut all = vec!["-u", "nobody"];
        all.extend_from_slice(flags);
        probe(&strata, &all, &["suid-probe", "whoami"])
    };
    assert_eq!(whoami(&[]), format!("uid 65534 euid 0\nCapEff {DEFAULT_CAPS}"));
    assert_eq!(
        whoami(&["--security-opt", "no-new-privileges"]),
        "uid 65534 euid 65534\nCapEff 0000000000000000"
    );
    assert_eq!(
        whoami(&["--cap-drop", "ALL"]),
        "uid 65534 euid 0\nCapEff 0000000000000000"
    );

    // ptrace: nobody cannot attach to the container's root-owned PID 1 (no CAP_SYS_PTRACE); a
    // process of the same user can, as under docker.
    strata.ok(&["run", "-d", "--name", "traced", "probe", "sleep", "60"]);
    let attach = |user: &[&str]| {
        let mut all = vec!["exec"];
        all.extend_from_slice(user);
        all.extend(["traced", "probe", "ptrace", "1"]);
        let run = strata.run(&all);
        format!("{}{}", run.stdout, run.stderr).trim().to_owned()
    };
    assert_eq!(attach(&["-u", "nobody"]), "Operation not permitted");
    assert_eq!(attach(&[]), "ok");
    strata.ok(&["rm", "-f", "traced"]);
}

#[test]
fn the_default_profile_of_podman_in_docker_format_confines_and_runs() {
    // containers-common's profile (Debian's golang-github-containers-common, installed by
    // scripts/test): docker's format, an allowlist.
    let profile = "/usr/share/containers/seccomp.json";
    assert!(
        Path::new(profile).is_file(),
        "{profile} (apt-get install golang-github-containers-common)"
    );
    let work = tempfile::tempdir().unwrap();
    let strata = image(work.path());
    with_probe(work.path(), &strata);
    let opt = format!("seccomp={profile}");
    let flags = ["--security-opt", opt.as_str()];
    let run = strata.run(&[
        "run",
        "--rm",
        flags[0],
        flags[1],
        "probe",
        "sh",
        "-c",
        "echo hello > /tmp/f && cat /tmp/f && ls /bin | grep -c probe && probe whoami",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, format!("hello\n2\nuid 0 euid 0\nCapEff {DEFAULT_CAPS}\n"));
    // Outside the allowlist: its default action (ENOSYS); listed only for CAP_SYS_ADMIN or
    // refused by rule: EPERM.
    assert_eq!(probe(&strata, &flags, &["probe", "keyctl"]), "Function not implemented");
    assert_eq!(probe(&strata, &flags, &["probe", "bpf"]), "Operation not permitted");
    assert_eq!(
        probe(&strata, &flags, &["probe", "finit_module"]),
        "Operation not permitted"
    );
    let (code, out) = attempt(&strata, &flags, "mount -t tmpfs none /tmp");
    assert_ne!(code, 0, "{out}");
}
