//! A confined-container fixture shared by the escape and user-namespace tests: a busybox root
//! imported as an image, and running scripts in containers of it.

use std::path::Path;

use super::cli::Strata;

/// The default capabilities (podman's 11) as `/proc/self/status` prints them.
pub(crate) const DEFAULT_CAPS: &str = "00000000800405fb";

/// A busybox root with root and nobody, imported as image `esc`.
pub(crate) fn image(work: &Path) -> Strata {
    let root = work.join("root");
    for dir in ["bin", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("/bin/busybox (install busybox-static)");
    for applet in [
        "sh", "cat", "grep", "mknod", "mount", "echo", "wc", "ls", "mkdir", "unshare", "chmod", "id", "stat", "touch",
        "chown", "sleep", "httpd", "stty",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    // A directory of an ordinary user, whose owner must show as it is.
    std::fs::create_dir(root.join("home")).unwrap();
    std::os::unix::fs::chown(root.join("home"), Some(1000), Some(1000)).unwrap();
    let strata = Strata::new(work);
    strata.ok(&["import", root.to_str().unwrap(), "esc"]);
    strata
}

/// Runs `script` in a new container of `esc` with `flags`; (exit code, stdout + stderr).
pub(crate) fn attempt(strata: &Strata, flags: &[&str], script: &str) -> (i32, String) {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["esc", "sh", "-c", script]);
    let run = strata.run(&args);
    (run.code, format!("{}{}", run.stdout, run.stderr))
}

/// The value of `field` in the container's `/proc/self/status`.
pub(crate) fn status(strata: &Strata, flags: &[&str], field: &str) -> String {
    let (code, out) = attempt(strata, flags, &format!("grep '^{field}:' /proc/self/status"));
    assert_eq!(code, 0, "{out}");
    out.split_whitespace().nth(1).unwrap_or_default().to_owned()
}

/// Adds the escape probe (`tests/peers/probe.c`, built static with the system's C compiler) to
/// the root of [`image`] as `/bin/probe`, and a setuid-root copy as `/bin/suid-probe`; imports the
/// root as image `probe`.
pub(crate) fn with_probe(work: &Path, strata: &Strata) {
    use std::os::unix::fs::PermissionsExt;
    let bin = work.join("root/bin");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/probe.c");
    let built = std::process::Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(bin.join("probe"))
        .arg(source)
        .output()
        .expect("run cc (a C compiler and libc6-dev build the probe)");
    assert!(built.status.success(), "cc: {}", String::from_utf8_lossy(&built.stderr));
    std::fs::copy(bin.join("probe"), bin.join("suid-probe")).unwrap();
    std::fs::set_permissions(bin.join("suid-probe"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    strata.ok(&["import", work.join("root").to_str().unwrap(), "probe"]);
}

/// Runs the probe `args` in a new container of image `probe` with `flags`; its output, trimmed.
pub(crate) fn probe(strata: &Strata, flags: &[&str], args: &[&str]) -> String {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(flags);
    all.push("probe");
    all.extend_from_slice(args);
    let run = strata.run(&all);
    format!("{}{}", run.stdout, run.stderr).trim().to_owned()
}

/// A TCP port of 127.0.0.1 that nothing listens on (it was free a moment ago).
pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The answer (status line to body) of `GET PATH` on `127.0.0.1:PORT`, retried for up to 10 s
/// until it is a 200.
pub(crate) fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        });
        match answer {
            Ok(text) if text.contains("200") => return text,
            _ if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(100)),
            other => panic!("no answer on port {port}: {other:?}"),
        }
    }
}
