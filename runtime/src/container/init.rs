//! Starting a container: [`spawn`] runs the helper `strata __init <dir>`; [`main`] is that helper,
//! which enters new namespaces (so it must run before the process has threads: the `strata`
//! binary checks for `__init` first) and starts the container's PID 1, [`pid1`].

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid, chdir, pivot_root, setgid, setgroups, sethostname, setsid, setuid};

use super::cgroup::Cgroup;
use super::mounts::resolve_in_root;
use super::record::{Container, MountSource, Network, Status, now};
use super::userns::UserNamespaces;
use crate::store::{Result, io_error as io};

/// The environment variable that passes PID 1 its user namespace's file descriptor.
const USERNS_FD: &str = "STRATA_USERNS_FD";

/// Exit code when the container could not be set up (as docker uses).
pub const EXIT_SETUP: i32 = 125;
/// Exit code when the command cannot be executed.
pub const EXIT_CANNOT_RUN: i32 = 126;
/// Exit code when the command is not found.
pub const EXIT_NOT_FOUND: i32 = 127;

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Signals the helper passes on to the container.
pub(super) const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Starts the helper for `container` with `exe` (the `strata` binary). Detached: in its own
/// session, output appended to the container's log, stdin closed. Attached: the caller's output,
/// and its stdin only when `stdin` is set (`-i`); otherwise the container reads nothing. With
/// `tty`, the pty's slave end is its stdio.
pub fn spawn(
    exe: &Path,
    container: &Container,
    detached: bool,
    stdin: bool,
    tty: Option<&std::os::fd::OwnedFd>,
) -> Result<Child> {
    let mut command = Command::new(exe);
    command.arg("__init").arg(&container.dir);
    stdio(&mut command, stdin, tty)?;
    if detached {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(container.log())
            .map_err(|e| io("open", container.log(), e))?;
        let err = log.try_clone().map_err(|e| io("open", container.log(), e))?;
        command.arg("--detached").stdin(Stdio::null()).stdout(log).stderr(err);
    }
    command.spawn().map_err(|e| io("start", exe, e))
}

/// Gives a helper about to start `stdin` (else nothing to read), or the pty's slave end `tty` as
/// its stdio.
pub(super) fn stdio(command: &mut Command, stdin: bool, tty: Option<&std::os::fd::OwnedFd>) -> Result<()> {
    if !stdin {
        command.stdin(Stdio::null());
    }
    if let Some(slave) = tty {
        let end = || {
            slave
                .try_clone()
                .map(Stdio::from)
                .map_err(|e| io("share", "the pty", e))
        };
        command.stdin(end()?).stdout(end()?).stderr(end()?);
    }
    Ok(())
}

fn setup<T>(what: &str, r: std::result::Result<T, impl std::fmt::Display>) -> std::result::Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// How the helper or PID 1 ended: the exit code to use and what to tell the user (the binary
/// prints it on stderr, which is the container's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Exit code.
    pub code: i32,
    /// Messages, in order.
    pub messages: Vec<String>,
}

/// The helper (`strata __init DIR [--detached]`): enters new namespaces, sets the container up,
/// starts its PID 1 (`strata __pid1 DIR`), passes signals on, records how it ended. Must run
/// before the process has threads.
pub fn main(dir: &Path, detached: bool) -> Exit {
    let mut messages = Vec::new();
    let mut container = match Container::load(dir) {
        Ok(c) => c,
        Err(e) => {
            return Exit {
                code: EXIT_SETUP,
                messages: vec![e.to_string()],
            };
        }
    };
    // The host's mount namespace, to come back to: published ports are unbound there.
    let host_mounts = std::fs::File::open("/proc/self/ns/mnt").ok();
    let code = match run(&mut container, detached) {
        Ok(code) => code,
        Err(e) => {
            messages.push(format!("container setup failed: {e}"));
            EXIT_SETUP
        }
    };
    if !container.config.ports.is_empty() {
        if let Some(host) = &host_mounts {
            let _ = nix::sched::setns(std::os::fd::AsFd::as_fd(host), CloneFlags::CLONE_NEWNS);
        }
        super::ports::unbind(&container.dir.join(super::ports::NETNS));
    }
    container.state.status = Status::Exited;
    container.state.exit_code = Some(code);
    container.state.finished_at = Some(now());
    if let Err(e) = container.save_state() {
        messages.push(e.to_string());
    }
    Cgroup::new(&container.config.id).remove();
    if container.config.auto_remove {
        // The union is still mounted in this (private) mount namespace.
        let _ = umount2(&container.dir.join("rootfs"), MntFlags::MNT_DETACH);
        if let Err(e) = std::fs::remove_dir_all(&container.dir) {
            messages.push(format!("remove {}: {e}", container.dir.display()));
        }
    }
    Exit { code, messages }
}

fn run(container: &mut Container, detached: bool) -> std::result::Result<i32, String> {
    let config = container.config.clone();
    if detached {
        setup("setsid", setsid())?;
    }
    // pasta starts here, in the host's network namespace, and is pointed at the container's
    // once it exists; before the PID namespace and the cgroup, so it is a host process, not the
    // container's first one, and does not count against its limits.
    let publisher = match (config.network, config.ports.is_empty()) {
        (Network::None, false) => Some(super::ports::Publisher::prepare(&config.ports)?),
        _ => None,
    };
    let own_network = config.network == Network::None;
    let userns = match config.userns {
        Some(map) => Some(UserNamespaces::new(&container.dir, map, own_network)?),
        None => None,
    };
    match &userns {
        Some(u) if own_network => u.namespaces.join_network()?,
        None if own_network => {
            setup("new network namespace", unshare(CloneFlags::CLONE_NEWNET))?;
            setup("loopback", super::netlink::loopback_up())?;
        }
        _ => {}
    }
    if let Some(publisher) = publisher {
        // Still in the host's mount namespace: the binding is where pasta can open it.
        let netns = container.dir.join(super::ports::NETNS);
        super::ports::bind(&netns)?;
        publisher.start(&netns)?;
    }
    let flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    setup("new namespaces", unshare(flags))?;
    setup("new PID namespace", unshare(CloneFlags::CLONE_NEWPID))?;
    let home = container
        .dir
        .parent()
        .and_then(Path::parent)
        .ok_or("the container directory is not in STRATA_HOME/containers")?
        .to_owned();
    let cgroup = Cgroup::new(&config.id);
    setup("cgroup", cgroup.enter(std::process::id() as i32, &config.limits))?;
    // A cgroup namespace rooted at the container's cgroup: it sees only its own.
    setup("cgroup namespace", unshare(CloneFlags::CLONE_NEWCGROUP))?;

    setup(
        "make mounts private",
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        ),
    )?;
    let rootfs = container.dir.join("rootfs");
    mount_union(container, &rootfs, userns.as_ref())?;
    for m in &config.mounts {
        let (source, volume) = match &m.source {
            MountSource::Volume(name) => (home.join("volumes").join(name).join("_data"), true),
            MountSource::Bind(path) => (path.clone(), false),
        };
        let target = setup(&m.target, resolve_in_root(&rootfs, &m.target, true))?;
        if source.is_dir() {
            setup("create mount point", std::fs::create_dir_all(&target))?;
        } else if !target.exists() {
            setup("create mount point", std::fs::write(&target, b""))?;
        }
        match &userns {
            // A named volume holds container files, stored with the container's ids; a host
            // path keeps the host's owners, to whom the container's root is nobody.
            Some(u) if volume => super::userns::bind_idmapped(&source, &target, &u.namespaces.user)?,
            _ => {
                let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
                setup(
                    &format!("mount {}", source.display()),
                    mount(Some(&source), &target, None::<&str>, bind, None::<&str>),
                )?;
            }
        }
        // Device nodes on a volume do not work unless the container is privileged.
        let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
        flags.set(MsFlags::MS_NODEV, !config.security.privileged);
        flags.set(MsFlags::MS_RDONLY, m.read_only);
        if flags.intersects(MsFlags::MS_NODEV | MsFlags::MS_RDONLY) {
            setup(
                "remount the volume",
                mount(None::<&str>, &target, None::<&str>, flags, None::<&str>),
            )?;
        }
    }

    let mut forwarded = SigSet::empty();
    for s in FORWARDED {
        forwarded.add(s);
    }
    forwarded.add(Signal::SIGCHLD);
    setup(
        "block signals",
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), None),
    )?;
    // The first process started in the new PID namespace is its PID 1 (std resets the signal
    // mask in the child).
    let exe = setup("find strata", std::env::current_exe())?;
    let mut pid1 = Command::new(exe);
    pid1.arg("__pid1").arg(&container.dir);
    if let Some(u) = &userns {
        // PID 1 joins the user namespace itself, last: the namespace's file is passed on.
        let fd = u.namespaces.user.as_fd();
        setup(
            "pass the user namespace on",
            nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty())),
        )?;
        pid1.env(USERNS_FD, fd.as_raw_fd().to_string());
    }
    let child = setup("start the container process", pid1.spawn())?;
    drop(userns);
    let pid = Pid::from_raw(child.id() as i32);
    container.state.status = Status::Running;
    container.state.helper_pid = Some(std::process::id() as i32);
    container.state.pid = Some(pid.as_raw());
    container.state.started_at = Some(now());
    container.state.exit_code = None;
    container.state.finished_at = None;
    setup("state", container.save_state())?;
    Ok(supervise(pid, &forwarded))
}

/// The container's PID 1 (`strata __pid1 DIR`): `/proc`, `/dev`, `/sys`, the root switch, the
/// user, then `exec` of the command. Returns only on failure.
pub fn pid1(dir: &Path) -> Exit {
    let container = match Container::load(dir) {
        Ok(c) => c,
        Err(e) => {
            return Exit {
                code: EXIT_SETUP,
                messages: vec![e.to_string()],
            };
        }
    };
    match container_init(&container.config, &dir.join("rootfs")) {
        Ok(never) => match never {},
        Err((code, message)) => Exit {
            code,
            messages: vec![message],
        },
    }
}

/// Waits for the container's PID 1 (or an exec'd process), passing on signals; returns its exit
/// code.
pub(super) fn supervise(child: Pid, signals: &SigSet) -> i32 {
    loop {
        let Ok(signal) = signals.wait() else { continue };
        if signal != Signal::SIGCHLD {
            let _ = kill(child, signal);
            continue;
        }
        loop {
            match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => return code,
                Ok(WaitStatus::Signaled(_, signal, _)) => return 128 + signal as i32,
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return EXIT_SETUP,
            }
        }
    }
}

/// Mounts the overlay of the image's layers under the scratch layer at `rootfs` (through
/// idmapped mounts of them in a user namespace).
fn mount_union(
    container: &Container,
    rootfs: &Path,
    userns: Option<&UserNamespaces>,
) -> std::result::Result<(), String> {
    let mut lowers: Vec<PathBuf> = container.config.layers.iter().rev().map(|l| l.join("Files")).collect();
    if lowers.is_empty() {
        let empty = container.dir.join("empty");
        setup("create", std::fs::create_dir_all(&empty))?;
        lowers.push(empty);
    }
    if let Some(u) = userns {
        return u.mount_union(container, rootfs, &lowers);
    }
    // Relative paths from the layer store keep the option string short (it must fit a page).
    let base = lowers[0].parent().and_then(Path::parent).map(Path::to_owned);
    let relative: Vec<String> = match &base {
        Some(b) if lowers.iter().all(|l| l.starts_with(b)) => lowers
            .iter()
            .map(|l| l.strip_prefix(b).expect("checked").display().to_string())
            .collect(),
        _ => lowers.iter().map(|l| l.display().to_string()).collect(),
    };
    if let Some(b) = &base {
        setup("enter the layer store", chdir(b.as_path()))?;
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        relative.join(":"),
        container.dir.join("upper").display(),
        container.dir.join("work").display()
    );
    // Device nodes in the image or made in the container do not work (only `/dev`'s do),
    // unless the container is privileged.
    let mut flags = MsFlags::empty();
    flags.set(MsFlags::MS_NODEV, !container.config.security.privileged);
    setup(
        "mount the overlay",
        mount(Some("overlay"), rootfs, Some("overlay"), flags, Some(data.as_str())),
    )
}

/// Runs as the container's PID 1: the rest of the file system, the root switch, the user, then
/// the command. Returns only on failure, with the exit code to use.
fn container_init(
    config: &super::record::ContainerConfig,
    rootfs: &Path,
) -> std::result::Result<std::convert::Infallible, (i32, String)> {
    let fail = |m: String| (EXIT_SETUP, m);
    if config.tty && rustix::termios::isatty(std::io::stdin()) {
        super::tty::take_terminal().map_err(fail)?;
    }
    // The user namespace is opened now and joined last, once the root is in place.
    let userns = match std::env::var(USERNS_FD) {
        Ok(fd) => {
            let path = format!("/proc/self/fd/{fd}");
            Some(std::fs::File::open(&path).map_err(|e| fail(format!("open {path}: {e}")))?)
        }
        Err(_) => None,
    };
    // A mount namespace of its own (a copy of the helper's, union and volumes included):
    // pivot_root switches the root of every process of a namespace, the helper's too otherwise.
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| fail(format!("mount namespace: {e}")))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| fail(format!("make mounts private: {e}")))?;
    special_mounts(rootfs, config.network, config.userns).map_err(fail)?;
    if !config.security.privileged {
        super::security::mask(rootfs).map_err(fail)?;
    }
    sethostname(&config.hostname).map_err(|e| fail(format!("hostname: {e}")))?;
    chdir(rootfs).map_err(|e| fail(format!("chdir: {e}")))?;
    pivot_root(".", ".").map_err(|e| fail(format!("pivot_root: {e}")))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| fail(format!("detach the old root: {e}")))?;
    chdir("/").map_err(|e| fail(format!("chdir: {e}")))?;
    if let Some(userns) = userns {
        super::userns::become_root_of(&userns).map_err(fail)?;
    }
    exec_process(&config.process, &config.hostname, &config.security)
}

/// The last steps of starting a container process, once its root is in place: working
/// directory, user (from the container's `/etc/passwd`), environment defaults, then `execve` of
/// the command. Returns only on failure, with the exit code to use.
pub(super) fn exec_process(
    process: &super::record::Process,
    hostname: &str,
    security: &super::security::Security,
) -> std::result::Result<std::convert::Infallible, (i32, String)> {
    let fail = |m: String| (EXIT_SETUP, m);
    let allowed = security.capabilities().map_err(fail)?;
    let cwd = if process.cwd.is_empty() { "/" } else { &process.cwd };
    std::fs::create_dir_all(cwd).map_err(|e| fail(format!("working directory {cwd}: {e}")))?;
    chdir(cwd).map_err(|e| fail(format!("working directory {cwd}: {e}")))?;
    let user = super::user::resolve(&process.user).map_err(fail)?;
    super::security::bound(&allowed).map_err(fail)?;
    super::security::filter(security, &allowed).map_err(fail)?;
    setgroups(&[Gid::from_raw(user.gid)]).map_err(|e| fail(format!("setgroups: {e}")))?;
    setgid(Gid::from_raw(user.gid)).map_err(|e| fail(format!("setgid: {e}")))?;
    setuid(Uid::from_raw(user.uid)).map_err(|e| fail(format!("setuid: {e}")))?;
    super::security::restrict(&allowed, user.uid, security.no_new_privileges).map_err(fail)?;

    let mut env = process.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(DEFAULT_PATH.into());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={hostname}"));
    }
    let Some(program) = process.args.first() else {
        return Err((
            EXIT_CANNOT_RUN,
            "no command: the image has none and none was given".into(),
        ));
    };
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(&DEFAULT_PATH[5..])
        .to_owned();
    let exe = find_program(program, &path).ok_or((EXIT_NOT_FOUND, format!("{program}: command not found")))?;
    // Arguments and environment are C strings: a NUL byte is refused with a clear message.
    if let Some(bad) = process.args.iter().chain(&env).chain([&exe]).find(|s| s.contains('\0')) {
        return Err((EXIT_CANNOT_RUN, format!("{bad:?} has a NUL byte")));
    }
    super::security::close_inherited_fds().map_err(fail)?;
    // The program starts with every signal unblocked (the helper blocked the ones it forwards,
    // and a child inherits the mask) and SIGPIPE at its default (std's exec resets it; this
    // Rust program ignores it).
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| fail(format!("unblock signals: {e}")))?;
    let mut command = std::process::Command::new(&exe);
    command.arg0(program).args(&process.args[1..]).env_clear();
    command.envs(env.iter().filter_map(|e| e.split_once('=')));
    let e = command.exec();
    let code = if e.kind() == std::io::ErrorKind::NotFound {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_RUN
    };
    Err((code, format!("{program}: {e}")))
}

/// `program` if it has a `/`, else the first executable file of that name in `path`.
fn find_program(program: &str, path: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return Some(program.to_owned());
    }
    path.split(':').filter(|d| !d.is_empty()).find_map(|dir| {
        let candidate = format!("{}/{program}", dir.trim_end_matches('/'));
        let md = std::fs::metadata(&candidate).ok()?;
        (md.is_file() && md.permissions().mode() & 0o111 != 0).then_some(candidate)
    })
}

/// `/proc`, a minimal `/dev`, and `/sys` (read-only) inside the new root; `/dev` and `/dev/shm`
/// belong to the container's root.
fn special_mounts(
    rootfs: &Path,
    network: Network,
    userns: Option<super::userns::IdMap>,
) -> std::result::Result<(), String> {
    let owner = userns.map_or(String::new(), |m| format!(",uid={},gid={}", m.uid, m.gid));
    let dir = |p: &str| -> std::result::Result<PathBuf, String> {
        let host = setup(p, resolve_in_root(rootfs, p, true))?;
        setup(p, std::fs::create_dir_all(&host))?;
        Ok(host)
    };
    let quiet = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc_dir = dir("/proc")?;
    setup(
        "mount /proc",
        mount(Some("proc"), &proc_dir, Some("proc"), quiet, None::<&str>),
    )?;
    let dev = dir("/dev")?;
    setup(
        "mount /dev",
        mount(
            Some("tmpfs"),
            &dev,
            Some("tmpfs"),
            MsFlags::MS_NOSUID,
            Some(format!("mode=755,size=65536k{owner}").as_str()),
        ),
    )?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = dev.join(node);
        setup("create device", std::fs::write(&target, b""))?;
        let host = format!("/dev/{node}");
        setup(
            &format!("bind {host}"),
            mount(
                Some(host.as_str()),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            ),
        )?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        setup("create /dev link", std::os::unix::fs::symlink(target, dev.join(link)))?;
    }
    let pts = dev.join("pts");
    setup("create /dev/pts", std::fs::create_dir(&pts))?;
    setup(
        "mount /dev/pts",
        mount(
            Some("devpts"),
            &pts,
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        ),
    )?;
    let shm = dev.join("shm");
    setup("create /dev/shm", std::fs::create_dir(&shm))?;
    setup(
        "mount /dev/shm",
        mount(
            Some("shm"),
            &shm,
            Some("tmpfs"),
            quiet,
            Some(format!("mode=1777,size=65536k{owner}").as_str()),
        ),
    )?;
    let sys = dir("/sys")?;
    match network {
        // sysfs shows the network namespace it is mounted from.
        Network::None => setup(
            "mount /sys",
            mount(
                Some("sysfs"),
                &sys,
                Some("sysfs"),
                quiet | MsFlags::MS_RDONLY,
                None::<&str>,
            ),
        ),
        Network::Host => {
            setup(
                "bind /sys",
                mount(
                    Some("/sys"),
                    &sys,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                ),
            )?;
            setup(
                "remount /sys read-only",
                mount(
                    None::<&str>,
                    &sys,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None::<&str>,
                ),
            )
        }
    }
}
