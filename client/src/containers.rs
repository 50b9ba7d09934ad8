//! Containers from the CLI: create, run, start, stop, kill, rm, ps, logs, cp and commit, on top
//! of [`strata_runtime::container`]. Images come from the local store (pulled when missing).

use std::io::Write;
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
use strata_storage::digest::{Algorithm, Hasher};

use crate::commands::{Context, local_name};
use crate::error::{ClientError, Result};
use crate::layers::{blocking, resolve};
use crate::reference::Reference;
use crate::transfer::Options;

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

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
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
            Err(_) => crate::layers::unpack(&store, &layer_store, &name, transfer)
                .await?
                .ok_or_else(|| ClientError::Usage(format!("{name} is not a container image")))?,
        };
        let local = resolve(&store, &name, transfer).await?;
        let config = local.config(&store).await?;
        let c = config.get("config").cloned().unwrap_or(Value::Null);
        let mut args = strings(c.get("Entrypoint"));
        if run.command.is_empty() {
            args.extend(strings(c.get("Cmd")));
        } else {
            args.extend(run.command.iter().cloned());
        }
        let mut env = strings(c.get("Env"));
        for e in &run.env {
            let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            env.retain(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) != key);
            env.push(if e.contains('=') {
                e.clone()
            } else {
                format!("{e}={}", std::env::var(e).unwrap_or_default())
            });
        }
        let str_of = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
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
                cwd: run.workdir.clone().unwrap_or_else(|| str_of("WorkingDir")),
                user: run.user.clone().unwrap_or_else(|| str_of("User")),
            },
            mounts,
            limits: run.limits,
            network: run.network,
            auto_remove: run.auto_remove,
        };
        Ok(self.containers()?.create(&config)?)
    }

    /// Starts `container`. Detached: returns once it runs (exit code `None`). Attached: waits
    /// and returns its exit code.
    pub async fn start(&self, container: &Container, detached: bool) -> Result<Option<i32>> {
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
        let mut child = init::spawn(&exe, container, detached)?;
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
    /// new image `target` (config: the parent's plus the diff_id and a history entry). A running
    /// container is frozen while its scratch layer is read. Returns the new manifest digest.
    pub async fn commit(
        &self,
        container: &Container,
        target: &str,
        author: Option<&str>,
        message: Option<&str>,
    ) -> Result<String> {
        let windows = container.config.os == "windows";
        let store = self.store()?;
        let parent = resolve(&store, &container.config.image, &Options::default()).await?;
        let mut config = parent.config(&store).await?;

        let cgroup = Cgroup::new(&container.config.id);
        let frozen = container.is_running();
        if frozen {
            cgroup
                .freeze(true)
                .map_err(|e| ClientError::Other(format!("freeze {}: {e}", container.config.name)))?;
        }
        let upper = container.upper();
        let tmp = store
            .root()
            .join("blobs")
            .join(format!(".commit-{}", container.config.id));
        let tmp2 = tmp.clone();
        let written = blocking(move || -> std::result::Result<_, strata_runtime::store::StoreError> {
            let file = std::fs::File::create(&tmp2).map_err(|e| strata_runtime::store::StoreError::Io {
                op: "create",
                path: tmp2.clone(),
                source: e,
            })?;
            let compressed = Hashing::new(file);
            let gz = flate2::write::GzEncoder::new(compressed, flate2::Compression::fast());
            let mut raw = Hashing::new(gz);
            if windows {
                scratch::write_layer(&upper, &mut raw)?;
            } else {
                write_diff(&upper, &mut raw)?;
            }
            let io = |e: std::io::Error| strata_runtime::store::StoreError::Io {
                op: "write",
                path: tmp2.clone(),
                source: e,
            };
            raw.flush().map_err(io)?;
            let (gz, diff_id, _) = raw.finish();
            let compressed = gz.finish().map_err(io)?;
            let (file, digest, size) = compressed.finish();
            file.sync_all().map_err(io)?;
            Ok((diff_id, digest, size))
        })
        .await;
        if frozen {
            let _ = cgroup.freeze(false);
        }
        let (diff_id, digest, size) = match written {
            Ok(w) => w,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let blob = store.root().join("blobs/sha256").join(digest.digest());
        std::fs::rename(&tmp, &blob).map_err(|e| ClientError::io("store the layer", e))?;

        let docker = parent.media_type.contains("docker");
        let layer_type = if docker {
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        } else {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        };
        let created = now();
        config["created"] = json!(created);
        if let Some(a) = author {
            config["author"] = json!(a);
        }
        let mut entry = json!({
            "created": created,
            "created_by": container.config.process.args.join(" "),
        });
        if let Some(a) = author {
            entry["author"] = json!(a);
        }
        if let Some(m) = message {
            entry["comment"] = json!(m);
        }
        match config.get_mut("history").and_then(Value::as_array_mut) {
            Some(h) => h.push(entry),
            None => config["history"] = json!([entry]),
        }
        match config.pointer_mut("/rootfs/diff_ids").and_then(Value::as_array_mut) {
            Some(d) => d.push(json!(diff_id.to_string())),
            None => config["rootfs"] = json!({ "type": "layers", "diff_ids": [diff_id.to_string()] }),
        }
        let config_bytes = bytes::Bytes::from(serde_json::to_vec(&config).expect("json"));
        let config_digest = strata_storage::digest::sha256(&config_bytes);
        store.put_blob_bytes(&config_digest, config_bytes.clone()).await?;

        let mut manifest: Value = serde_json::from_slice(&parent.bytes)
            .map_err(|e| ClientError::Other(format!("manifest does not parse: {e}")))?;
        manifest["config"]["digest"] = json!(config_digest.to_string());
        manifest["config"]["size"] = json!(config_bytes.len());
        let layer = json!({ "mediaType": layer_type, "digest": digest.to_string(), "size": size });
        match manifest.get_mut("layers").and_then(Value::as_array_mut) {
            Some(l) => l.push(layer),
            None => manifest["layers"] = json!([layer]),
        }
        let manifest_bytes = bytes::Bytes::from(serde_json::to_vec(&manifest).expect("json"));
        let manifest_digest = strata_storage::digest::sha256(&manifest_bytes);
        store.put_blob_bytes(&manifest_digest, manifest_bytes.clone()).await?;
        let target = local_name(target);
        store.set_ref(
            &target,
            &json!({
                "mediaType": parent.media_type,
                "digest": manifest_digest.to_string(),
                "size": manifest_bytes.len(),
            }),
        )?;
        crate::layers::unpack(&store, &self.layers()?, &target, &Options::default()).await?;
        Ok(manifest_digest.to_string())
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

/// A writer that hashes (SHA-256) and counts what passes through.
struct Hashing<W> {
    inner: W,
    hasher: Hasher,
    count: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Hasher::new(Algorithm::Sha256),
            count: 0,
        }
    }

    fn finish(self) -> (W, strata_storage::Digest, u64) {
        (self.inner, self.hasher.finish(), self.count)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
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
