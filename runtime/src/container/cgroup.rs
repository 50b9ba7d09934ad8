//! A container's cgroup: memory, CPU and process limits, and the freezer (commit of a running
//! container). cgroup v2 (`/sys/fs/cgroup` is `cgroup2fs`) or v1 (one hierarchy per controller,
//! as on this machine). The cgroup is created below the one strata runs in, so limits above it
//! still apply.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Resource limits, through cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Limits {
    /// Memory in bytes.
    pub memory: Option<u64>,
    /// CPUs (fractions allowed).
    pub cpus: Option<f64>,
    /// Most processes.
    pub pids: Option<u64>,
}

const ROOT: &str = "/sys/fs/cgroup";
/// CFS period for `--cpus`.
const PERIOD_US: u64 = 100_000;

/// A container's cgroup (possibly one directory per v1 controller).
#[derive(Debug, Clone)]
pub struct Cgroup {
    id: String,
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// The cgroup path strata's process is in, for a v1 controller (or v2 when `None`).
fn own_path(controller: Option<&str>) -> String {
    let raw = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in raw.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
        let hit = match controller {
            None => controllers.is_empty(),
            Some(c) => controllers.split(',').any(|x| x == c),
        };
        if hit {
            return path.to_owned();
        }
    }
    "/".into()
}

impl Cgroup {
    /// The cgroup of container `id`.
    pub fn new(id: &str) -> Self {
        Cgroup { id: id.to_owned() }
    }

    fn name(&self) -> String {
        format!("strata-{}", &self.id[..self.id.len().min(16)])
    }

    /// The directory for a v1 controller, or the v2 directory for `None`.
    fn dir(&self, controller: Option<&str>) -> PathBuf {
        let base = match controller {
            None => PathBuf::from(ROOT),
            Some(c) => Path::new(ROOT).join(c),
        };
        base.join(own_path(controller).trim_start_matches('/'))
            .join(self.name())
    }

    /// Creates the cgroup with `limits` and moves process `pid` into it.
    pub fn enter(&self, pid: i32, limits: &Limits) -> std::io::Result<()> {
        if is_v2() {
            let dir = self.dir(None);
            if let Some(parent) = dir.parent() {
                let _ = write(&parent.join("cgroup.subtree_control"), "+memory +cpu +pids");
            }
            std::fs::create_dir_all(&dir)?;
            if let Some(m) = limits.memory {
                write(&dir.join("memory.max"), &m.to_string())?;
                let _ = write(&dir.join("memory.swap.max"), "0");
            }
            if let Some(c) = limits.cpus {
                write(&dir.join("cpu.max"), &format!("{} {PERIOD_US}", quota(c)))?;
            }
            if let Some(p) = limits.pids {
                write(&dir.join("pids.max"), &p.to_string())?;
            }
            return write(&dir.join("cgroup.procs"), &pid.to_string());
        }
        let mut used = vec!["freezer"];
        if limits.memory.is_some() {
            used.push("memory");
        }
        if limits.cpus.is_some() {
            used.push("cpu");
        }
        if limits.pids.is_some() {
            used.push("pids");
        }
        for controller in used {
            let dir = self.dir(Some(controller));
            std::fs::create_dir_all(&dir)?;
            match controller {
                "memory" => {
                    let m = limits.memory.expect("set").to_string();
                    write(&dir.join("memory.limit_in_bytes"), &m)?;
                    let _ = write(&dir.join("memory.memsw.limit_in_bytes"), &m);
                }
                "cpu" => {
                    write(&dir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                    write(
                        &dir.join("cpu.cfs_quota_us"),
                        &quota(limits.cpus.expect("set")).to_string(),
                    )?;
                }
                "pids" => write(&dir.join("pids.max"), &limits.pids.expect("set").to_string())?,
                _ => {}
            }
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Moves process `pid` into the existing cgroup (a process started inside a running
    /// container: its limits and freezer apply to it too).
    pub fn join(&self, pid: i32) -> std::io::Result<()> {
        if is_v2() {
            return write(&self.dir(None).join("cgroup.procs"), &pid.to_string());
        }
        for controller in ["freezer", "memory", "cpu", "pids"] {
            let dir = self.dir(Some(controller));
            if dir.is_dir() {
                write(&dir.join("cgroup.procs"), &pid.to_string())?;
            }
        }
        Ok(())
    }

    /// Freezes (or thaws) every process of the container.
    pub fn freeze(&self, frozen: bool) -> std::io::Result<()> {
        if is_v2() {
            write(&self.dir(None).join("cgroup.freeze"), if frozen { "1" } else { "0" })
        } else {
            let dir = self.dir(Some("freezer"));
            write(&dir.join("freezer.state"), if frozen { "FROZEN" } else { "THAWED" })?;
            // FREEZING settles into FROZEN once every task stopped (seconds on a busy machine).
            for _ in 0..1000 {
                let state = std::fs::read_to_string(dir.join("freezer.state")).unwrap_or_default();
                if state.trim() == if frozen { "FROZEN" } else { "THAWED" } {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::io::Error::other("the freezer did not settle"))
        }
    }

    /// Removes the cgroup directories (they must hold no process); errors are ignored.
    pub fn remove(&self) {
        if is_v2() {
            let _ = std::fs::remove_dir(self.dir(None));
        } else {
            for c in ["freezer", "memory", "cpu", "pids"] {
                let _ = std::fs::remove_dir(self.dir(Some(c)));
            }
        }
    }

    /// The limits the kernel applies (while the container runs), for inspection and tests.
    pub fn limits(&self) -> Limits {
        let read = |controller: &str, v1: &str, v2: &str| -> Option<String> {
            let (dir, file) = if is_v2() {
                (self.dir(None), v2)
            } else {
                (self.dir(Some(controller)), v1)
            };
            Some(std::fs::read_to_string(dir.join(file)).ok()?.trim().to_owned())
        };
        let cpus = read("cpu", "cpu.cfs_quota_us", "cpu.max")
            .and_then(|q| q.split_whitespace().next()?.parse::<f64>().ok())
            .filter(|q| *q > 0.0)
            .map(|q| q / PERIOD_US as f64);
        Limits {
            memory: read("memory", "memory.limit_in_bytes", "memory.max").and_then(|m| m.parse().ok()),
            cpus,
            pids: read("pids", "pids.max", "pids.max").and_then(|p| p.parse().ok()),
        }
    }
}

fn quota(cpus: f64) -> u64 {
    ((cpus * PERIOD_US as f64).round() as u64).max(1000)
}
