//! Containers from the CLI: create, run, start, stop, kill, rm, ps, logs, cp and commit, on top
//! of [`strata_runtime::container`]. Images come from the local store (pulled when missing).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strata_runtime::container::cgroup::Cgroup;
use strata_runtime::container::diff::write_diff;
use strata_runtime::container::volume::{VolumeStore, valid_name};
use strata_runtime::container::{
    Container, ContainerConfig, ContainerStore, Limits, Mount, MountSource, Network, Process, Status, alive, init, now,
};
use strata_runtime::union::{LinuxUnion, NodeKind};
use strata_runtime::windows::scratch;

use crate::commands::{Context, local_name};
use crate::error::{ClientError, Result};
use crate::reference::Reference;
use crate::transfer::Options;
use strata_runtime::image::{ConfigChanges, History, append_layer, name_image, write_layer};
use strata_runtime::image::{Wanted, resolve};

/// What `strata run` / `strata create` were asked for.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--name`.
    pub name: Option<String>,
    /// `-e K=V`.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `--entrypoint`: replaces the image's entrypoint and drops its cmd; empty clears it.
    pub entrypoint: Option<String>,
    /// `-v NAME:/path[:ro]` or `-v /host:/path[:ro]`.
    pub volumes: Vec<String>,
    /// `--network`.
    pub network: Network,
    /// `--memory`, `--cpus`, `--pids-limit`.
    pub limits: Limits,
    /// The command (replaces the image's cmd).
    pub command: Vec<String>,
    /// Remove the container when it exits (done by the helper for a detached run).
    pub auto_remove: bool,
    /// `-i`: pass stdin on (an attached run); otherwise the container reads nothing.
    pub stdin: bool,
}

/// What `strata exec` runs in a running container.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// `-e K=V` (added to the container's environment).
    pub env: Vec<String>,
    /// `-w` (default: the container's working directory).
    pub workdir: Option<String>,
    /// `-u` (default: the container's user).
    pub user: Option<String>,
    /// `-i`: pass stdin on.
    pub stdin: bool,
}

/// `env` with `overrides` (`K=V`, or `K` to take this process's value) replacing the same keys.
fn merge_env(mut env: Vec<String>, overrides: &[String]) -> Vec<String> {
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_owned();
    for e in overrides {
        let k = key(e);
        env.retain(|x| key(x) != k);
        env.push(if e.contains('=') {
            e.clone()
        } else {
            format!("{e}={}", std::env::var(e).unwrap_or_default())
        });
    }
    env
}

/// Parses `512m`, `1g`, `1048576` (bytes).
pub fn parse_memory(value: &str) -> std::result::Result<u64, String> {
    let v = value.trim().to_ascii_lowercase();
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(digits);
    let n: u64 = n.parse().map_err(|_| format!("{value:?} is not a size"))?;
    let scale: u64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return Err(format!("{value:?}: unknown unit")),
    };
    n.checked_mul(scale)
        .filter(|&b| b >= 6 << 20)
        .ok_or_else(|| format!("{value:?}: at least 6 MiB"))
}

fn parse_mount(spec: &str, volumes: &VolumeStore) -> Result<Mount> {
    let bad = |why: &str| ClientError::Usage(format!("-v {spec:?}: {why}"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, read_only) = match parts.as_slice() {
        [s, t] => (*s, *t, false),
        [s, t, "ro"] => (*s, *t, true),
        [s, t, "rw"] => (*s, *t, false),
        _ => return Err(bad("expected SOURCE:/path[:ro]")),
    };
    if !target.starts_with('/') {
        return Err(bad("the container path must be absolute"));
    }
    let source = if source.starts_with('/') {
        let path = PathBuf::from(source);
        if !path.exists() {
            return Err(bad("the host path does not exist"));
        }
        MountSource::Bind(path)
    } else if valid_name(source) {
        volumes.create(source)?;
        MountSource::Volume(source.to_owned())
    } else {
        return Err(bad("the source is neither an absolute host path nor a volume name"));
    };
    Ok(Mount {
        source,
        target: target.to_owned(),
        read_only,
    })
}

impl Context {
    /// The containers (`STRATA_HOME/containers`).
    pub fn containers(&self) -> Result<ContainerStore> {
        Ok(ContainerStore::open(&self.home.join("containers"))?)
    }

    /// The named volumes (`STRATA_HOME/volumes`).
    pub fn volumes(&self) -> Result<VolumeStore> {
        Ok(VolumeStore::open(&self.home.join("volumes"))?)
    }

    /// `strata create`: a container (scratch layer and config) for `image`, pulled if needed.
    pub async fn create(&self, image: &str, run: &RunOptions, transfer: &Options) -> Result<Container> {
        let name = local_name(image);
        let store = self.store()?;
        if store.find(&name)?.is_none() {
            let reference = Reference::parse(image)?;
            self.pull(&reference, transfer).await?;
        }
        let layer_store = self.layers()?;
        let unpacked = match layer_store.image(&name) {
            Ok(i) => i,
            Err(_) => strata_runtime::image::unpack(&store, &layer_store, &name, &transfer.wanted())
                .await?
                .ok_or_else(|| ClientError::Usage(format!("{name} is not a container image")))?,
        };
        let local = resolve(&store, &name, &transfer.wanted()).await?;
        let config = local.config(&store).await?;
        let c = config.config.unwrap_or_default();
        let mut args = match &run.entrypoint {
            Some(e) if e.is_empty() => Vec::new(),
            Some(e) => vec![e.clone()],
            None => c.entrypoint.unwrap_or_default(),
        };
        if !run.command.is_empty() {
            args.extend(run.command.iter().cloned());
        } else if run.entrypoint.is_none() {
            // docker: --entrypoint drops the image's cmd too.
            args.extend(c.cmd.unwrap_or_default());
        }
        let env = merge_env(c.env.unwrap_or_default(), &run.env);
        let volumes = self.volumes()?;
        let mounts = run
            .volumes
            .iter()
            .map(|v| parse_mount(v, &volumes))
            .collect::<Result<Vec<_>>>()?;
        let id = format!(
            "{:016x}{:016x}{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>(),
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let layers = unpacked
            .chain
            .iter()
            .map(|c| Ok(layer_store.layer_dir(&strata_storage::digest::parse_digest(c)?)))
            .collect::<Result<Vec<PathBuf>>>()?;
        let config = ContainerConfig {
            name: run.name.clone().unwrap_or_else(|| id[..12].to_owned()),
            hostname: id[..12].to_owned(),
            id,
            image: name,
            os: unpacked.os.clone(),
            created: now(),
            layers,
            process: Process {
                args,
                env,
                cwd: run.workdir.clone().or(c.working_dir).unwrap_or_default(),
                user: run.user.clone().or(c.user).unwrap_or_default(),
            },
            mounts,
            limits: run.limits,
            network: run.network,
            auto_remove: run.auto_remove,
        };
        Ok(self.containers()?.create(&config)?)
    }

    /// Starts `container`. Detached: returns once it runs (exit code `None`). Attached: waits
    /// and returns its exit code; `stdin` passes this process's stdin on.
    pub async fn start(&self, container: &Container, detached: bool, stdin: bool) -> Result<Option<i32>> {
        if container.config.os == "windows" {
            return Err(ClientError::Usage(format!(
                "{} is a Windows container: running Windows processes needs a Windows host \
                 (create, cp and commit work here)",
                container.config.name
            )));
        }
        if container.is_running() {
            return Err(ClientError::Usage(format!(
                "{} is already running",
                container.config.name
            )));
        }
        let exe = std::env::current_exe().map_err(|e| ClientError::io("find the strata binary", e))?;
        let mut child = init::spawn(&exe, container, detached, stdin && !detached)?;
        if !detached {
            let status = tokio::task::spawn_blocking(move || child.wait())
                .await
                .map_err(|e| ClientError::Other(e.to_string()))?
                .map_err(|e| ClientError::io("wait for the container", e))?;
            return Ok(Some(status.code().unwrap_or(init::EXIT_SETUP)));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // A `--rm` container that already ended has removed itself.
            let now = match Container::load(&container.dir) {
                Ok(c) => Some(c),
                Err(_) if !container.dir.exists() => None,
                Err(e) => return Err(e.into()),
            };
            let started = now.is_none_or(|c| c.state.pid.is_some() || c.state.status == Status::Exited);
            if started || Instant::now() > deadline {
                // Reap the helper in the background when it ends (it runs in its own session).
                std::thread::spawn(move || child.wait());
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `strata exec`: runs a command in running `container` (its namespaces, cgroup, root,
    /// user, environment and working directory unless overridden); waits and returns its exit
    /// code.
    pub async fn exec(&self, container: &Container, options: &ExecOptions) -> Result<i32> {
        let mut process = container.config.process.clone();
        process.args = options.command.clone();
        process.env = merge_env(process.env, &options.env);
        if let Some(w) = &options.workdir {
            process.cwd = w.clone();
        }
        if let Some(u) = &options.user {
            process.user = u.clone();
        }
        let exe = std::env::current_exe().map_err(|e| ClientError::io("find the strata binary", e))?;
        let mut child = strata_runtime::container::exec::spawn(&exe, container, &process, options.stdin)?;
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .map_err(|e| ClientError::Other(e.to_string()))?
            .map_err(|e| ClientError::io("wait for the process", e))?;
        Ok(status.code().unwrap_or(init::EXIT_SETUP))
    }

    /// `strata stop`: SIGTERM, then SIGKILL after `timeout`.
    pub async fn stop(&self, container: &Container, timeout: Duration) -> Result<()> {
        if !container.is_running() {
            return Ok(());
        }
        let helper = container.state.helper_pid.unwrap_or(0);
        self.signal(container, "SIGTERM")?;
        let deadline = Instant::now() + timeout;
        while alive(helper) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if alive(helper) {
            self.signal(container, "SIGKILL")?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(helper) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// `strata kill`: sends `signal` (`SIGKILL`, `KILL`, `9`) to the container's PID 1.
    pub fn signal(&self, container: &Container, signal: &str) -> Result<()> {
        use nix::sys::signal::{Signal, kill};
        let Some(pid) = container.state.pid.filter(|_| container.is_running()) else {
            return Err(ClientError::Usage(format!("{} is not running", container.config.name)));
        };
        let sig = match signal.parse::<i32>() {
            Ok(n) => Signal::try_from(n).ok(),
            Err(_) => {
                let upper = signal.to_ascii_uppercase();
                let full = if upper.starts_with("SIG") {
                    upper
                } else {
                    format!("SIG{upper}")
                };
                full.parse::<Signal>().ok()
            }
        }
        .ok_or_else(|| ClientError::Usage(format!("unknown signal {signal:?}")))?;
        kill(nix::unistd::Pid::from_raw(pid), sig)
            .map_err(|e| ClientError::Other(format!("signal {}: {e}", container.config.name)))
    }

    /// `strata rm`: removes a container (its scratch layer with it); `force` kills it first.
    pub async fn remove_container(&self, container: &Container, force: bool) -> Result<()> {
        if container.is_running() {
            if !force {
                return Err(ClientError::Usage(format!(
                    "{} is running: stop it first or use rm -f",
                    container.config.name
                )));
            }
            self.stop(container, Duration::ZERO).await?;
        }
        Ok(self.containers()?.remove(container)?)
    }

    /// `strata commit`: the container's changes as a new gzip layer on top of its image, and a
    /// new image `target` (config: the parent's plus the diff_id, a history entry and
    /// `changes`). A running container is frozen while its scratch layer is read. Returns the
    /// new manifest digest.
    pub async fn commit(
        &self,
        container: &Container,
        target: &str,
        history: &History,
        changes: &[String],
    ) -> Result<String> {
        let changes = ConfigChanges::parse(changes)?;
        let windows = container.config.os == "windows";
        let store = self.store()?;
        let _lease = store.lease().await?;
        let parent = resolve(&store, &container.config.image, &Wanted::default()).await?;

        let cgroup = Cgroup::new(&container.config.id);
        let frozen = container.is_running();
        if frozen {
            cgroup
                .freeze(true)
                .map_err(|e| ClientError::Other(format!("freeze {}: {e}", container.config.name)))?;
        }
        let upper = container.upper();
        let written = write_layer(&store, move |out| {
            if windows {
                scratch::write_layer(&upper, out).map(|_| ())
            } else {
                write_diff(&upper, out).map(|_| ())
            }
        })
        .await;
        if frozen {
            let _ = cgroup.freeze(false);
        }
        let image = append_layer(
            &store,
            Some(&parent),
            &written?,
            history,
            &changes,
            &container.config.os,
        )
        .await?;
        name_image(&store, &self.layers()?, &local_name(target), &image).await?;
        Ok(image.digest.to_string())
    }

    /// The union a container sees: its image's layers under its scratch layer.
    fn container_union(container: &Container) -> LinuxUnion {
        let mut dirs: Vec<PathBuf> = container.config.layers.iter().map(|l| l.join("Files")).collect();
        dirs.push(container.upper());
        LinuxUnion::from_dirs(dirs)
    }

    /// `strata cp CONTAINER:PATH HOSTPATH`: copies out of the container's file system (links
    /// inside it resolved inside it). Returns the bytes copied.
    pub fn copy_out(&self, container: &Container, path: &str, host: &Path) -> Result<u64> {
        if container.config.os == "windows" {
            let union = scratch::container_union(&container.config.layers, &container.upper())?;
            let node = union
                .get(path)
                .ok_or_else(|| ClientError::NotFound(format!("{}:{path}", container.config.name)))?;
            let name = node.path.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("root");
            let dest = if host.is_dir() {
                host.join(name)
            } else {
                host.to_owned()
            };
            let mut from = node
                .open()
                .map_err(|e| ClientError::io(format!("{}:{path}", container.config.name), e))?;
            let mut to = std::fs::File::create(&dest).map_err(|e| ClientError::io(format!("{}", dest.display()), e))?;
            return std::io::copy(&mut from, &mut to).map_err(|e| ClientError::io(format!("{}", dest.display()), e));
        }
        let union = Self::container_union(container);
        let node = union
            .resolve(path)?
            .ok_or_else(|| ClientError::NotFound(format!("{}:{path}", container.config.name)))?;
        let name = node.path.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("root");
        let dest = if host.is_dir() {
            host.join(name)
        } else {
            host.to_owned()
        };
        copy_out_node(&union, &node.path, node.kind, &dest)
    }

    /// `strata cp HOSTPATH CONTAINER:PATH`: copies into the container's scratch layer at the
    /// place `path` names inside the container (into a running Linux container through its
    /// mounted root). Returns the bytes copied.
    pub fn copy_in(&self, container: &Container, host: &Path, path: &str) -> Result<u64> {
        if container.config.os == "windows" {
            return Ok(scratch::copy_in(
                &container.config.layers,
                &container.upper(),
                host,
                path,
            )?);
        }
        if let Some(pid) = container.state.pid.filter(|_| container.is_running()) {
            return Ok(strata_runtime::container::live::copy_into_running(pid, host, path)?);
        }
        let union = Self::container_union(container);
        let host_md = std::fs::symlink_metadata(host).map_err(|e| ClientError::io(format!("{}", host.display()), e))?;
        let (dir, name) = match union.resolve(path)? {
            Some(n) if n.kind == NodeKind::Dir => (
                n.path,
                host.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| ClientError::Usage(format!("{}: no file name", host.display())))?,
            ),
            _ => {
                let trimmed = path.trim_end_matches('/');
                let (parent, name) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
                let parent = union
                    .resolve(if parent.is_empty() { "/" } else { parent })?
                    .filter(|n| n.kind == NodeKind::Dir)
                    .ok_or_else(|| {
                        ClientError::NotFound(format!("{}:{parent}: no such directory", container.config.name))
                    })?;
                (parent.path, name.to_owned())
            }
        };
        if name.is_empty() || name == "." || name == ".." {
            return Err(ClientError::Usage(format!("{path}: not a file name")));
        }
        let upper = container.upper();
        let upper_dir = upper.join(dir.trim_start_matches('/'));
        std::fs::create_dir_all(&upper_dir).map_err(|e| ClientError::io(format!("{}", upper_dir.display()), e))?;
        let dest = upper_dir.join(&name);
        // A deletion recorded at that name gives way to the new entry.
        if std::fs::symlink_metadata(&dest).is_ok_and(|m| !m.is_dir()) {
            let _ = std::fs::remove_file(&dest);
        }
        copy_host_tree(host, &host_md, &dest)
    }
}

fn copy_out_node(union: &LinuxUnion, path: &str, kind: NodeKind, dest: &Path) -> Result<u64> {
    match kind {
        NodeKind::Dir => {
            std::fs::create_dir_all(dest).map_err(|e| ClientError::io(format!("{}", dest.display()), e))?;
            let mut total = 0;
            for child in union.list(path)? {
                let name = child.path.rsplit('/').next().unwrap_or_default().to_owned();
                total += copy_out_node(union, &child.path, child.kind, &dest.join(name))?;
            }
            Ok(total)
        }
        NodeKind::Symlink => {
            let node = union.stat(path)?.ok_or_else(|| ClientError::NotFound(path.into()))?;
            let target = node.target.unwrap_or_default();
            std::os::unix::fs::symlink(target, dest).map_err(|e| ClientError::io(format!("{}", dest.display()), e))?;
            Ok(0)
        }
        NodeKind::File => {
            let (_, mut file) = union.open_file(path)?;
            let mut out = std::fs::File::create(dest).map_err(|e| ClientError::io(format!("{}", dest.display()), e))?;
            std::io::copy(&mut file, &mut out).map_err(|e| ClientError::io(format!("{}", dest.display()), e))
        }
        _ => Ok(0),
    }
}

fn copy_host_tree(src: &Path, md: &std::fs::Metadata, dest: &Path) -> Result<u64> {
    let err = |e: std::io::Error| ClientError::io(format!("{} -> {}", src.display(), dest.display()), e);
    if md.is_dir() {
        std::fs::create_dir_all(dest).map_err(err)?;
        let mut total = 0;
        for entry in std::fs::read_dir(src).map_err(err)? {
            let entry = entry.map_err(err)?;
            let child_md = std::fs::symlink_metadata(entry.path()).map_err(err)?;
            total += copy_host_tree(&entry.path(), &child_md, &dest.join(entry.file_name()))?;
        }
        Ok(total)
    } else if md.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src).map_err(err)?, dest).map_err(err)?;
        Ok(0)
    } else {
        std::fs::copy(src, dest).map_err(err)
    }
}

/// `strata ps` rows.
pub fn ps_rows(containers: &[Container]) -> Vec<Value> {
    containers
        .iter()
        .map(|c| {
            json!({
                "id": c.config.id,
                "name": c.config.name,
                "image": c.config.image,
                "command": c.config.process.args.join(" "),
                "created": c.config.created,
                "status": c.state.status,
                "exit_code": c.state.exit_code,
                "pid": c.state.pid,
            })
        })
        .collect()
}

/// `strata inspect CONTAINER`.
pub fn inspect_container(c: &Container) -> Value {
    json!({ "id": c.config.id, "config": c.config, "state": c.state, "dir": c.dir })
}
