//! Containers from the CLI: `run`, `create`, `start`, `exec`, `stop`, `kill`, `rm`, `commit` and
//! `cp` call [`strata_runtime::container`] (which owns them) on the context's home; a missing
//! image is pulled first. Also the rows `ps` and `inspect` print.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use strata_runtime::container::volume::VolumeStore;
use strata_runtime::container::{self, Container, ContainerError, ContainerStore, ExecOptions, RunOptions};
use strata_runtime::image::History;

use crate::commands::{Context, local_name};
use crate::error::{ClientError, Result};
use crate::reference::Reference;
use crate::transfer::Options;

impl From<ContainerError> for ClientError {
    fn from(e: ContainerError) -> Self {
        match e {
            ContainerError::Usage(message) => ClientError::Usage(message),
            ContainerError::NotFound(what) => ClientError::NotFound(what),
            ContainerError::Io { context, source } => ClientError::Io { context, source },
            ContainerError::Store(e) => e.into(),
            ContainerError::Image(e) => e.into(),
            e @ ContainerError::Invalid(_) => ClientError::Containers(e),
        }
    }
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

impl Context {
    /// The containers (`STRATA_HOME/containers`).
    pub fn containers(&self) -> Result<ContainerStore> {
        Ok(self.runtime().containers()?)
    }

    /// The named volumes (`STRATA_HOME/volumes`).
    pub fn volumes(&self) -> Result<VolumeStore> {
        Ok(self.runtime().volumes()?)
    }

    /// `strata create`: a container (scratch layer and config) for `image`, pulled if needed.
    pub async fn create(&self, image: &str, run: &RunOptions, transfer: &Options) -> Result<Container> {
        let name = local_name(image);
        let store = self.store()?;
        // A pulled image comes back with its manifest and config; neither is read again.
        let local = match store.find(&name)? {
            Some(_) => strata_runtime::image::resolve(&store, &name, &transfer.wanted()).await?,
            None => self.pull_image(&Reference::parse(image)?, transfer).await?.1,
        };
        Ok(container::create(&self.runtime(), &name, &local, run).await?)
    }

    /// Starts `container`. Detached: returns once it runs (exit code `None`). Attached: waits
    /// and returns its exit code; `stdin` passes this process's stdin on.
    pub async fn start(&self, container: &Container, detached: bool, stdin: bool) -> Result<Option<i32>> {
        Ok(container::start(container, detached, stdin).await?)
    }

    /// `strata exec`: runs a command in running `container`; its exit code.
    pub async fn exec(&self, container: &Container, options: &ExecOptions) -> Result<i32> {
        Ok(container::exec(container, options).await?)
    }

    /// `strata stop`: SIGTERM, then SIGKILL after `timeout`.
    pub async fn stop(&self, container: &Container, timeout: Duration) -> Result<()> {
        Ok(container::stop(container, timeout).await?)
    }

    /// `strata kill`: sends `signal` (`SIGKILL`, `KILL`, `9`) to the container's PID 1.
    pub fn signal(&self, container: &Container, signal: &str) -> Result<()> {
        Ok(container::signal(container, signal)?)
    }

    /// `strata rm`: removes a container (its scratch layer with it); `force` kills it first.
    pub async fn remove_container(&self, container: &Container, force: bool) -> Result<()> {
        Ok(container::remove(&self.runtime(), container, force).await?)
    }

    /// `strata commit`: the container's changes as new image `target`; the new manifest digest.
    pub async fn commit(
        &self,
        container: &Container,
        target: &str,
        history: &History,
        changes: &[String],
    ) -> Result<String> {
        Ok(container::commit(&self.runtime(), container, &local_name(target), history, changes).await?)
    }

    /// `strata cp CONTAINER:PATH HOSTPATH`; the bytes copied.
    pub fn copy_out(&self, container: &Container, path: &str, host: &Path) -> Result<u64> {
        Ok(container::copy_out(container, path, host)?)
    }

    /// `strata cp HOSTPATH CONTAINER:PATH`; the bytes copied.
    pub fn copy_in(&self, container: &Container, host: &Path, path: &str) -> Result<u64> {
        Ok(container::copy_in(container, host, path)?)
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
