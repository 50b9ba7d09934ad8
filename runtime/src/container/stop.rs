//! `strata stop`, `strata kill` and `strata rm`.

use std::time::{Duration, Instant};

use super::error::{ContainerError, Result};
use super::{Container, alive};
use crate::home::Home;

/// `strata stop`: SIGTERM, then SIGKILL after `timeout`.
pub async fn stop(container: &Container, timeout: Duration) -> Result<()> {
    if !container.is_running() {
        return Ok(());
    }
    let helper = container.state.helper_pid.unwrap_or(0);
    signal(container, "SIGTERM")?;
    let deadline = Instant::now() + timeout;
    while alive(helper) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if alive(helper) {
        signal(container, "SIGKILL")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(helper) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// `strata kill`: sends `signal` (`SIGKILL`, `KILL`, `9`) to the container's PID 1.
pub fn signal(container: &Container, signal: &str) -> Result<()> {
    use nix::sys::signal::{Signal, kill};
    let Some(pid) = container.state.pid.filter(|_| container.is_running()) else {
        return Err(ContainerError::Usage(format!(
            "{} is not running",
            container.config.name
        )));
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
    .ok_or_else(|| ContainerError::Usage(format!("unknown signal {signal:?}")))?;
    kill(nix::unistd::Pid::from_raw(pid), sig)
        .map_err(|e| ContainerError::io(format!("signal {}", container.config.name), e.into()))
}

/// `strata rm`: removes a container (its scratch layer with it); `force` kills it first.
pub async fn remove(home: &Home, container: &Container, force: bool) -> Result<()> {
    if container.is_running() {
        if !force {
            return Err(ContainerError::Usage(format!(
                "{} is running: stop it first or use rm -f",
                container.config.name
            )));
        }
        stop(container, Duration::ZERO).await?;
    }
    home.containers()?.remove(container)
}
