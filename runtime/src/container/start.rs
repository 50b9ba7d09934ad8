//! `strata start` and `strata exec`: the container's helper process, or one more process in a
//! running container.

use std::time::{Duration, Instant};

use super::create::merge_env;
use super::error::{ContainerError, Result};
use super::{Container, Status, init};

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
    /// `-t`: a pseudo-terminal.
    pub tty: bool,
}

/// Starts `container`. Detached: returns once it runs (exit code `None`). Attached: waits
/// and returns its exit code; `stdin` passes this process's stdin on.
pub async fn start(container: &Container, detached: bool, stdin: bool) -> Result<Option<i32>> {
    if container.config.os == "windows" {
        return Err(ContainerError::Usage(format!(
            "{} is a Windows container: running Windows processes needs a Windows host \
                 (create, cp and commit work here)",
            container.config.name
        )));
    }
    if container.is_running() {
        return Err(ContainerError::Usage(format!(
            "{} is already running",
            container.config.name
        )));
    }
    let exe = std::env::current_exe().map_err(|e| ContainerError::io("find the strata binary", e))?;
    if !detached && super::tty::wanted(container.config.tty, stdin) {
        let code =
            super::tty::run_on_pty(stdin, |slave| init::spawn(&exe, container, false, true, Some(slave))).await?;
        return Ok(Some(code.unwrap_or(init::EXIT_SETUP)));
    }
    let mut child = init::spawn(&exe, container, detached, stdin && !detached, None)?;
    if !detached {
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .map_err(|e| ContainerError::io("wait for the container", std::io::Error::other(e)))?
            .map_err(|e| ContainerError::io("wait for the container", e))?;
        return Ok(Some(status.code().unwrap_or(init::EXIT_SETUP)));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A `--rm` container that already ended has removed itself.
        let now = match Container::load(&container.dir) {
            Ok(c) => Some(c),
            Err(_) if !container.dir.exists() => None,
            Err(e) => return Err(e),
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
pub async fn exec(container: &Container, options: &ExecOptions) -> Result<i32> {
    let mut process = container.config.process.clone();
    process.args = options.command.clone();
    process.env = merge_env(process.env, &options.env);
    if let Some(w) = &options.workdir {
        process.cwd = w.clone();
    }
    if let Some(u) = &options.user {
        process.user = u.clone();
    }
    let exe = std::env::current_exe().map_err(|e| ContainerError::io("find the strata binary", e))?;
    if super::tty::wanted(options.tty, options.stdin) {
        let spawn = |slave: &std::os::fd::OwnedFd| super::exec::spawn(&exe, container, &process, true, Some(slave));
        let code = super::tty::run_on_pty(options.stdin, spawn).await?;
        return Ok(code.unwrap_or(init::EXIT_SETUP));
    }
    let mut child = super::exec::spawn(&exe, container, &process, options.stdin, None)?;
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .map_err(|e| ContainerError::io("wait for the process", std::io::Error::other(e)))?
        .map_err(|e| ContainerError::io("wait for the process", e))?;
    Ok(status.code().unwrap_or(init::EXIT_SETUP))
}
