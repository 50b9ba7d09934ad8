//! A `strata-registry` child process for tests that need a real process: signals, restarts,
//! replicas, resource limits.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

/// Where a registry process keeps its data.
#[derive(Clone)]
pub enum Storage {
    Fs(std::path::PathBuf),
    S3 { endpoint: String, bucket: String },
}

impl Storage {
    /// A fresh bucket `bucket` on a new in-process S3 server (keep the server for as long as the
    /// storage is used).
    pub async fn s3(bucket: &str) -> (strata_storage::testing::S3TestServer, Storage) {
        let server = strata_storage::testing::S3TestServer::start().await;
        server.bucket(bucket).await;
        let storage = Storage::S3 {
            endpoint: server.endpoint(),
            bucket: bucket.into(),
        };
        (server, storage)
    }
}

/// A `strata-registry` child process, killed on drop.
pub struct Registry {
    pub child: Child,
    pub base: String,
}

/// How to start a registry process beyond its storage.
#[derive(Default)]
pub struct Start {
    /// Extra environment (`STRATA_*` settings).
    pub env: Vec<(&'static str, String)>,
    /// Open-file limit (soft, hard) to start it with (through `prlimit`).
    pub nofile: Option<(u64, u64)>,
    /// Where its stderr goes (default: inherited).
    pub log: Option<std::path::PathBuf>,
    /// Extra arguments (`--config FILE`).
    pub args: Vec<String>,
}

impl Registry {
    pub async fn spawn(storage: &Storage, port: Option<u16>) -> Registry {
        Self::start(storage, port, Start::default()).await
    }

    pub async fn start(storage: &Storage, port: Option<u16>, start: Start) -> Registry {
        let port = port.unwrap_or_else(free_port);
        let exe = env!("CARGO_BIN_EXE_strata-registry");
        let mut command = match start.nofile {
            Some((soft, hard)) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={soft}:{hard}")).arg("--").arg(exe);
                c
            }
            None => Command::new(exe),
        };
        command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(&start.args)
            .env("RUST_LOG", "warn")
            .envs(start.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null());
        if let Some(log) = &start.log {
            command.stderr(std::fs::File::create(log).expect("create the registry log"));
        }
        match storage {
            Storage::Fs(root) => {
                command.arg("--root").arg(root);
            }
            Storage::S3 { endpoint, bucket } => {
                command
                    .env("STRATA_STORAGE_TYPE", "s3")
                    .env("STRATA_STORAGE_S3_BUCKET", bucket)
                    .env("STRATA_STORAGE_S3_ENDPOINT", endpoint)
                    .env("STRATA_STORAGE_S3_PATH_STYLE", "true")
                    .env("STRATA_STORAGE_S3_ACCESS_KEY_ID", "strata-test-access")
                    .env("STRATA_STORAGE_S3_SECRET_ACCESS_KEY", "strata-test-secret");
            }
        }
        let child = command.spawn().expect("spawn strata-registry");
        let registry = Registry {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if let Ok(r) = reqwest::get(format!("{}/readyz", registry.base)).await
                && r.status() == StatusCode::OK
            {
                return registry;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("strata-registry did not come up on {port}");
    }

    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`), in KiB.
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()))
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.pid().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    }

    pub fn kill_hard(&mut self) {
        self.child.kill().unwrap(); // SIGKILL: no chance to clean up
        self.child.wait().unwrap();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
