//! The reference registry (CNCF distribution, Debian's `docker-registry`) as a child process:
//! filesystem storage and its config in a temporary directory, listening on a free loopback port,
//! killed when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the registry binary.
const BINARY: &str = "/usr/bin/docker-registry";
/// How long the registry may take to answer `GET /v2/`.
const STARTUP: Duration = Duration::from_secs(30);

/// A running `docker-registry serve`.
#[derive(Debug)]
pub(crate) struct DockerRegistry {
    /// `127.0.0.1:<port>`, as strata references name it.
    pub(crate) addr: SocketAddr,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// A port nothing listens on right now (bound to port 0, then released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// The status code of `GET /v2/`, if the server answers at all.
fn ping(addr: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn config(root: &Path, addr: SocketAddr) -> String {
    format!(
        "version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {addr}
  secret: strata-peers-test
",
        root = root.display()
    )
}

impl DockerRegistry {
    /// Starts a registry and waits until `GET /v2/` answers 200. Panics, with the registry's
    /// log, if it does not (or telling how to install it when it is missing).
    pub(crate) fn start() -> Self {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: install the Debian package docker-registry \
             (apt-get install docker-registry; scripts/test does)"
        );
        // The port is free when picked but may be taken before the registry binds it: retry.
        let mut last_log = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(registry) => return registry,
                Err(log) => last_log = log,
            }
        }
        panic!("docker-registry did not come up:\n{last_log}");
    }

    fn try_start() -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config(&storage, addr)).expect("write config");
        let log = dir.path().join("registry.log");
        let log_file = std::fs::File::create(&log).expect("create log");
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {BINARY}: {e}"));
        let mut registry = DockerRegistry {
            addr,
            child,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = registry.child.try_wait() {
                return Err(format!("exited with {status}:\n{}", registry.log()));
            }
            match ping(addr) {
                Some(200) => return Ok(registry),
                Some(other) => return Err(format!("GET /v2/ answered {other}:\n{}", registry.log())),
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        Err(format!("no answer on {addr} within {STARTUP:?}:\n{}", registry.log()))
    }

    /// What the registry has logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `127.0.0.1:<port>/<path>`.
    pub(crate) fn at(&self, path: &str) -> String {
        format!("{}/{path}", self.addr)
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
