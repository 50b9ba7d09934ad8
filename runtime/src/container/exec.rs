//! `strata exec`: a process started inside a running container — in its mount, UTS, IPC,
//! network and PID namespaces, its cgroup and its root — as the container's user, with its
//! environment and working directory unless the caller gives others.
//!
//! Two re-executions of `strata`, because joining a PID namespace applies only to children and
//! the `strata` binary must be started while the host's file system is still in view:
//! [`spawn`] runs `strata __exec DIR PROCESS` ([`helper`]), which joins the container's cgroup and
//! PID namespace and starts `strata __exec-child DIR PROCESS` ([`child`]); the child joins the
//! other namespaces, takes the container's root, joins its user namespace (`--userns`) and
//! executes the command. The helper passes
//! signals on and exits with the command's exit code (128+N for a signal).

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, Command};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::unistd::{Pid, chroot, fchdir};

use super::cgroup::Cgroup;
use super::init::{EXIT_SETUP, Exit, FORWARDED, exec_process, supervise};
use super::record::{Container, Process};
use crate::store::{Result, StoreError, io_error as io};

/// Marks an exec whose stdio is a pty: the process makes it its controlling terminal.
const TTY: &str = "STRATA_EXEC_TTY";

/// Starts `process` in running `container` with `exe` (the `strata` binary); stdin is passed
/// on when `stdin` is set, else the process reads nothing; with `tty`, the pty's slave end is its
/// stdio and controlling terminal.
pub fn spawn(
    exe: &Path,
    container: &Container,
    process: &Process,
    stdin: bool,
    tty: Option<&std::os::fd::OwnedFd>,
) -> Result<Child> {
    let pid = running_pid(container)?;
    if container.config.os == "windows" {
        return Err(StoreError::Invalid(format!(
            "{} is a Windows container: running Windows processes needs a Windows host",
            container.config.name
        )));
    }
    let spec = serde_json::to_string(process).expect("json");
    let mut command = Command::new(exe);
    command.arg("__exec").arg(&container.dir).arg(spec);
    command.env("STRATA_EXEC_PID", pid.to_string());
    if tty.is_some() {
        command.env(TTY, "1");
    }
    super::init::stdio(&mut command, stdin, tty)?;
    command.spawn().map_err(|e| io("start", exe, e))
}

/// PID 1 of `container`, if it runs.
fn running_pid(container: &Container) -> Result<i32> {
    container
        .state
        .pid
        .filter(|_| container.is_running())
        .ok_or_else(|| StoreError::Invalid(format!("{} is not running", container.config.name)))
}

fn load(dir: &Path, spec: &str) -> std::result::Result<(Container, Process, i32), String> {
    let container = Container::load(dir).map_err(|e| e.to_string())?;
    let process: Process = serde_json::from_str(spec).map_err(|e| format!("exec: bad process: {e}"))?;
    let pid = running_pid(&container).map_err(|e| e.to_string())?;
    // The PID the caller saw must still be the container's PID 1 (not a recycled number).
    if std::env::var("STRATA_EXEC_PID").is_ok_and(|p| p != pid.to_string()) {
        return Err(format!("{} restarted", container.config.name));
    }
    Ok((container, process, pid))
}

fn failed(message: String) -> Exit {
    Exit {
        code: EXIT_SETUP,
        messages: vec![message],
    }
}

fn join(pid: i32, ns: &str, kind: CloneFlags) -> std::result::Result<(), String> {
    let path = format!("/proc/{pid}/ns/{ns}");
    let file = File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
    setns(file.as_fd(), kind).map_err(|e| format!("join the {ns} namespace: {e}"))
}

/// `strata __exec DIR PROCESS`: joins the container's cgroup and PID namespace, starts the
/// child, passes signals on, and ends with the child's exit code. Must run before the process
/// has threads.
pub fn helper(dir: &Path, spec: &str) -> Exit {
    let (container, _, pid) = match load(dir, spec) {
        Ok(loaded) => loaded,
        Err(e) => return failed(e),
    };
    let run = || -> std::result::Result<i32, String> {
        Cgroup::new(&container.config.id)
            .join(std::process::id() as i32)
            .map_err(|e| format!("join the cgroup: {e}"))?;
        join(pid, "pid", CloneFlags::CLONE_NEWPID)?;
        let mut signals = SigSet::empty();
        for s in FORWARDED {
            signals.add(s);
        }
        signals.add(Signal::SIGCHLD);
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None).map_err(|e| format!("block signals: {e}"))?;
        let exe = std::env::current_exe().map_err(|e| format!("find strata: {e}"))?;
        let child = Command::new(exe)
            .arg("__exec-child")
            .arg(dir)
            .arg(spec)
            .spawn()
            .map_err(|e| format!("start the process: {e}"))?;
        Ok(supervise(Pid::from_raw(child.id() as i32), &signals))
    };
    match run() {
        Ok(code) => Exit {
            code,
            messages: Vec::new(),
        },
        Err(e) => failed(format!("exec in {} failed: {e}", container.config.name)),
    }
}

/// `strata __exec-child DIR PROCESS`: joins the container's IPC, UTS, network and mount
/// namespaces, takes its root, and executes the process. Returns only on failure.
pub fn child(dir: &Path, spec: &str) -> Exit {
    let (container, process, pid) = match load(dir, spec) {
        Ok(loaded) => loaded,
        Err(e) => return failed(e),
    };
    let enter = || -> std::result::Result<(), String> {
        // The container's root, opened from the host before the mount namespace changes.
        let root_path = format!("/proc/{pid}/root");
        let root = File::open(&root_path).map_err(|e| format!("open {root_path}: {e}"))?;
        join(pid, "ipc", CloneFlags::CLONE_NEWIPC)?;
        join(pid, "uts", CloneFlags::CLONE_NEWUTS)?;
        join(pid, "net", CloneFlags::CLONE_NEWNET)?;
        join(pid, "cgroup", CloneFlags::CLONE_NEWCGROUP)?;
        // A --userns container's user namespace is joined last, as its PID 1 did.
        let userns = match container.config.userns {
            Some(_) => {
                let path = format!("/proc/{pid}/ns/user");
                Some(File::open(&path).map_err(|e| format!("open {path}: {e}"))?)
            }
            None => None,
        };
        join(pid, "mnt", CloneFlags::CLONE_NEWNS)?;
        fchdir(root.as_fd()).map_err(|e| format!("enter the root: {e}"))?;
        chroot(".").map_err(|e| format!("enter the root: {e}"))?;
        if let Some(userns) = userns {
            super::userns::become_root_of(&userns)?;
        }
        Ok(())
    };
    if let Err(e) = enter() {
        return failed(format!("exec in {} failed: {e}", container.config.name));
    }
    if std::env::var_os(TTY).is_some()
        && rustix::termios::isatty(std::io::stdin())
        && let Err(e) = super::tty::take_terminal()
    {
        return failed(format!("exec in {} failed: {e}", container.config.name));
    }
    match exec_process(&process, &container.config.hostname, &container.config.security) {
        Ok(never) => match never {},
        Err((code, message)) => Exit {
            code,
            messages: vec![message],
        },
    }
}
