//! Running the tools as separate processes: the `strata` binary this crate builds (with its own
//! home and docker config per test) and skopeo, plus readers of OCI layouts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// What a finished process left behind.
#[derive(Debug)]
pub(crate) struct Run {
    /// Exit code (-1 if killed by a signal).
    pub(crate) code: i32,
    /// Everything it printed on stdout.
    pub(crate) stdout: String,
    /// Everything it printed on stderr.
    pub(crate) stderr: String,
}

/// The `strata` CLI over a home directory of its own.
#[derive(Debug)]
pub(crate) struct Strata {
    home: PathBuf,
    docker_config: PathBuf,
}

impl Strata {
    /// A CLI whose home (local store, upload journal) and docker config live under `dir`, so
    /// nothing of the machine's user leaks in.
    pub(crate) fn new(dir: &Path) -> Self {
        Strata {
            home: dir.join("home"),
            docker_config: dir.join("docker"),
        }
    }

    /// The journal of unfinished chunked pushes.
    pub(crate) fn uploads(&self) -> PathBuf {
        self.home.join("uploads")
    }

    /// The local store (an OCI layout).
    pub(crate) fn store(&self) -> PathBuf {
        self.home.join("store")
    }

    /// `STRATA_HOME`.
    pub(crate) fn home(&self) -> &Path {
        &self.home
    }

    /// Runs strata and returns its stdout as bytes; panics unless it exits 0.
    pub(crate) fn bytes(&self, args: &[&str]) -> Vec<u8> {
        let output = self.command(args).output().expect("run the strata binary");
        assert!(
            output.status.success(),
            "strata {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
        command
            .arg("--home")
            .arg(&self.home)
            .args(args)
            .env("DOCKER_CONFIG", &self.docker_config)
            .env_remove("STRATA_HOME")
            .env_remove("RUST_LOG");
        command
    }

    /// Starts `strata --home HOME ARGS...` without waiting for it (output discarded).
    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the strata binary")
    }

    /// Runs `strata --home HOME ARGS...` to completion.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("run the strata binary");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs strata and returns its stdout; panics with its output unless it exits 0.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(
            run.code,
            0,
            "strata {} exited {}:\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            run.code,
            run.stdout,
            run.stderr
        );
        run.stdout
    }

    /// Runs strata with `--format json` and parses its stdout; panics unless it exits 0.
    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let stdout = self.ok(&all);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("strata {} printed no JSON ({e}):\n{stdout}", all.join(" ")))
    }
}

/// Runs skopeo with `args`: its stdout if it succeeds, else everything it printed. Panics,
/// telling how to install it, if skopeo is missing.
pub(crate) fn try_skopeo(args: &[&str]) -> Result<String, String> {
    let output = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo (install the Debian package skopeo; scripts/test does)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "skopeo {} failed ({}):\n{stdout}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Runs skopeo with `args`; panics with its output unless it succeeds.
pub(crate) fn skopeo(args: &[&str]) -> String {
    try_skopeo(args).unwrap_or_else(|e| panic!("{e}"))
}

/// `oci:DIR:NAME`.
pub(crate) fn oci(dir: &Path, name: &str) -> String {
    format!("oci:{}:{name}", dir.display())
}

/// Every blob file name (hex digest) of an OCI layout, sorted.
pub(crate) fn blobs_of(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name().into_string().expect("utf-8 name"))
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// The digest `index.json` of a layout gives `name`.
pub(crate) fn layout_digest(dir: &Path, name: &str) -> String {
    let raw = std::fs::read(dir.join("index.json")).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let index: Value = serde_json::from_slice(&raw).expect("index.json is JSON");
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == name)
        .and_then(|d| d["digest"].as_str())
        .unwrap_or_else(|| panic!("{name} not in {}: {index}", dir.display()))
        .to_owned()
}

/// The bytes of blob `digest` (`sha256:...`) in a layout.
pub(crate) fn layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap_or_else(|e| panic!("blob {digest}: {e}"))
}
