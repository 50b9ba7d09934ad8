//! What a container is on disk (`config.json`, `state.json`) and the directory of containers.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::cgroup::Limits;
use super::error::{ContainerError, Result};

/// The process a container runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// The command and its arguments (entrypoint followed by cmd).
    pub args: Vec<String>,
    /// `KEY=VALUE` pairs.
    pub env: Vec<String>,
    /// Working directory inside the container.
    pub cwd: String,
    /// `user[:group]`, by name or number; empty for root.
    pub user: String,
}

/// Where a mount comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountSource {
    /// A named volume of `STRATA_HOME/volumes`.
    Volume(String),
    /// A host directory or file.
    Bind(PathBuf),
}

/// A mount past the union.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// What is mounted.
    pub source: MountSource,
    /// Where, inside the container.
    pub target: String,
    /// Read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// The network a container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Its own network namespace with only loopback.
    #[default]
    None,
    /// The host's network.
    Host,
}

/// `config.json`: what a container runs, fixed at create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// 64 hex digits.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The image it was created from.
    pub image: String,
    /// `linux` or `windows`.
    pub os: String,
    /// RFC 3339.
    pub created: String,
    /// The image's layer directories, base first.
    pub layers: Vec<PathBuf>,
    /// The process.
    pub process: Process,
    /// Host name inside the container.
    pub hostname: String,
    /// Volumes and bind mounts.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Resource limits.
    #[serde(default)]
    pub limits: Limits,
    /// Network.
    #[serde(default)]
    pub network: Network,
    /// Removed when its process ends (`run --rm -d`; an attached `run --rm` removes it itself).
    #[serde(default)]
    pub auto_remove: bool,
    /// Capabilities, masked paths, `no_new_privs`.
    #[serde(default)]
    pub security: super::security::Security,
    /// Ports published on the host (`-p`).
    #[serde(default)]
    pub ports: Vec<super::ports::Port>,
    /// `-t`: an attached run gets a pseudo-terminal.
    #[serde(default)]
    pub tty: bool,
    /// `--userns auto`: the host ids its ids are (none: the host's own).
    #[serde(default)]
    pub userns: Option<super::userns::IdMap>,
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started.
    #[default]
    Created,
    /// Its process runs.
    Running,
    /// Its process ended.
    Exited,
}

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ContainerState {
    /// Status.
    pub status: Status,
    /// The helper process (`strata __init`), host pid.
    #[serde(default)]
    pub helper_pid: Option<i32>,
    /// The container's PID 1, host pid.
    #[serde(default)]
    pub pid: Option<i32>,
    /// Exit code (128 + signal when killed by one).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// RFC 3339.
    #[serde(default)]
    pub started_at: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub finished_at: Option<String>,
}

/// A container: its directory, config and state.
#[derive(Debug, Clone)]
pub struct Container {
    /// `STRATA_HOME/containers/<id>`.
    pub dir: PathBuf,
    /// `config.json`.
    pub config: ContainerConfig,
    /// `state.json`, with a running container whose helper died reported as exited.
    pub state: ContainerState,
}

/// Now, RFC 3339 with seconds.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ContainerError + 'a {
    move |source| ContainerError::io(format!("{op} {}", path.display()), source)
}

/// Writes JSON atomically.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    strata_storage::atomic::write(path, &serde_json::to_vec_pretty(value).expect("json")).map_err(io("write", path))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let raw = std::fs::read(path).map_err(io("read", path))?;
    serde_json::from_slice(&raw).map_err(|e| ContainerError::Invalid(format!("{}: {e}", path.display())))
}

impl Container {
    /// Reads the container in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let config: ContainerConfig = read_json(&dir.join("config.json"))?;
        let mut state: ContainerState = read_json(&dir.join("state.json")).unwrap_or_default();
        if state.status == Status::Running && !state.helper_pid.is_some_and(alive) {
            state.status = Status::Exited;
        }
        Ok(Container {
            dir: dir.to_owned(),
            config,
            state,
        })
    }

    /// Writes `state.json`.
    pub fn save_state(&self) -> Result<()> {
        write_json(&self.dir.join("state.json"), &self.state)
    }

    /// The scratch layer (overlayfs upper directory).
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// The log of a detached run.
    pub fn log(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// Whether its process runs.
    pub fn is_running(&self) -> bool {
        self.state.status == Status::Running
    }
}

/// Whether process `pid` exists (and is not a zombie we could reap).
pub fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name in parentheses.
    !stat.is_empty() && !stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'))
}

/// The containers of `STRATA_HOME/containers`.
#[derive(Debug, Clone)]
pub struct ContainerStore {
    root: PathBuf,
}

impl ContainerStore {
    /// Opens (creating) the directory.
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(io("create", root))?;
        Ok(ContainerStore { root: root.to_owned() })
    }

    /// Creates a container directory for `config` (its id and name must be unused), with a
    /// host id range of its own when `userns` asks for one.
    pub fn create(&self, mut config: ContainerConfig, userns: super::userns::UsernsMode) -> Result<Container> {
        // One creation at a time: names and id ranges are checked against the others.
        let lock_path = self.root.join(".lock");
        let _lock = strata_storage::lock::FileLock::exclusive(&lock_path).map_err(io("lock", &lock_path))?;
        if userns == super::userns::UsernsMode::Auto {
            let taken: Vec<_> = self.list()?.iter().filter_map(|c| c.config.userns).collect();
            config.userns = Some(super::userns::allocate(&taken).map_err(ContainerError::Usage)?);
        }
        if self.find(&config.name).is_ok() {
            return Err(ContainerError::Usage(format!(
                "the name {:?} is already in use",
                config.name
            )));
        }
        let dir = self.root.join(&config.id);
        for sub in ["upper", "work", "rootfs"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(io("create", &d))?;
        }
        let nearest_first: Option<Vec<String>> =
            (!config.layers.is_empty()).then(|| config.layers.iter().rev().map(|p| p.display().to_string()).collect());
        write_json(&dir.join("layerchain.json"), &nearest_first)?;
        write_json(&dir.join("config.json"), &config)?;
        let container = Container {
            dir,
            config,
            state: ContainerState::default(),
        };
        container.save_state()?;
        Ok(container)
    }

    /// Every container.
    pub fn list(&self) -> Result<Vec<Container>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(io("list", &self.root))? {
            let path = entry.map_err(io("list", &self.root))?.path();
            if path.join("config.json").is_file()
                && let Ok(c) = Container::load(&path)
            {
                out.push(c);
            }
        }
        out.sort_by(|a, b| {
            a.config
                .created
                .cmp(&b.config.created)
                .then(a.config.name.cmp(&b.config.name))
        });
        Ok(out)
    }

    /// The container named `name`, or whose id is or starts with `name` (unambiguously).
    pub fn find(&self, name: &str) -> Result<Container> {
        let all = self.list()?;
        if let Some(c) = all.iter().find(|c| c.config.name == name || c.config.id == name) {
            return Ok(c.clone());
        }
        let matches: Vec<&Container> = all.iter().filter(|c| c.config.id.starts_with(name)).collect();
        match (name.len() >= 4, matches.as_slice()) {
            (true, [one]) => Ok((*one).clone()),
            (true, [_, _, ..]) => Err(ContainerError::Usage(format!("{name:?} matches several containers"))),
            _ => Err(ContainerError::NotFound(format!("container {name}"))),
        }
    }

    /// Removes a container's directory (the caller made sure it does not run).
    pub fn remove(&self, container: &Container) -> Result<()> {
        super::cgroup::Cgroup::new(&container.config.id).remove();
        // A helper killed while it published ports left this bound (and pasta running).
        super::ports::unbind(&container.dir.join(super::ports::NETNS));
        std::fs::remove_dir_all(&container.dir).map_err(io("remove", &container.dir))
    }
}
