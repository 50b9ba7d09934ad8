//! `strata create`: a container (scratch layer and config) for an image of the local store.

use std::path::PathBuf;

use super::error::{ContainerError, Result};
use super::volume::{VolumeStore, valid_name};
use super::{Container, ContainerConfig, Limits, Mount, MountSource, Network, Port, Process, Security, now};
use crate::home::Home;
use crate::image::{LocalImage, unpack_image};

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
    /// `--cap-add`, `--cap-drop`, `--privileged`, `--security-opt no-new-privileges`.
    pub security: Security,
    /// `-p`: ports published on the host (default network only).
    pub ports: Vec<Port>,
    /// `-t`: a pseudo-terminal when attached.
    pub tty: bool,
    /// `--userns`.
    pub userns: super::userns::UsernsMode,
}

/// `env` with `overrides` (`K=V`, or `K` to take this process's value) replacing the same keys.
pub(crate) fn merge_env(mut env: Vec<String>, overrides: &[String]) -> Vec<String> {
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

/// Creates a container for `image`, image `name` of the local store (see
/// [`crate::image::resolve`]), unpacking it into the layer store if it is not yet.
pub async fn create(home: &Home, name: &str, image: &LocalImage, run: &RunOptions) -> Result<Container> {
    let name = name.to_owned();
    let layer_store = home.layers()?;
    let unpacked = match layer_store.image(&name) {
        Ok(i) => i,
        Err(_) => unpack_image(&home.store()?, &layer_store, &name, image)
            .await?
            .ok_or_else(|| ContainerError::Usage(format!("{name} is not a container image")))?,
    };
    run.security.validate().map_err(ContainerError::Usage)?;
    if !run.ports.is_empty() && run.network == Network::Host {
        return Err(ContainerError::Usage(
            "-p publishes ports of the container's own network; with --network host its ports are the host's".into(),
        ));
    }
    let c = image.config(&name)?.config.clone().unwrap_or_default();
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
    let volumes = home.volumes()?;
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
        os: unpacked.os,
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
        security: run.security.clone(),
        ports: run.ports.clone(),
        tty: run.tty,
        userns: None,
    };
    home.containers()?.create(config, run.userns)
}

fn parse_mount(spec: &str, volumes: &VolumeStore) -> Result<Mount> {
    let bad = |why: &str| ContainerError::Usage(format!("-v {spec:?}: {why}"));
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
