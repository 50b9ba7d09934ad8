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
    // A pseudo-terminal for -t, unless input is piped in (-i with a pipe or file on stdin): then,
    // where docker refuses "the input device is not a TTY", the input passes through as it is.
    let piped_input = stdin && !rustix::termios::isatty(std::io::stdin());
    if !detached && container.config.tty && !piped_input {
        let pty = super::tty::Pty::open()?;
        let mut child = init::spawn(&exe, container, false, true, Some(&pty.slave))?;
        let resize = pty
            .master
            .try_clone()
            .map(|master| tokio::spawn(super::tty::follow_size(master)))
            .ok();
        let relay = tokio::task::spawn_blocking(move || {
            let super::tty::Pty { master, slave } = pty;
            drop(slave); // only the container holds it now, so the relay sees it close
            super::tty::Pty::relay_master(master, stdin)
        });
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .map_err(|e| ContainerError::io("wait for the container", std::io::Error::other(e)))?
            .map_err(|e| ContainerError::io("wait for the container", e))?;
        relay
            .await
            .map_err(|e| ContainerError::io("relay the terminal", std::io::Error::other(e)))??;
        if let Some(resize) = resize {
            resize.abort();
        }
        return Ok(Some(status.code().unwrap_or(init::EXIT_SETUP)));
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
    let mut child = crate::container::exec::spawn(&exe, container, &process, options.stdin)?;
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .map_err(|e| ContainerError::io("wait for the process", std::io::Error::other(e)))?
        .map_err(|e| ContainerError::io("wait for the process", e))?;
    Ok(status.code().unwrap_or(init::EXIT_SETUP))
}
