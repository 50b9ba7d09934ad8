//! `-t`: a pseudo-terminal for an attached container. Its slave end is the container's stdin,
//! stdout and stderr (and PID 1's controlling terminal); this process relays between its own
//! stdio and the master end, in raw mode when its stdin is a terminal (so Ctrl-C reaches the
//! container's foreground process through the pty's line discipline), and passes its
//! terminal's size on, at the start and on every `SIGWINCH` ([`follow_size`]).

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{OptionalActions, Termios, Winsize, isatty, tcgetattr, tcgetwinsize, tcsetattr, tcsetwinsize};

use crate::store::{Result, io_error as io};

/// The size a pty gets when this process has no terminal to copy it from.
const DEFAULT_SIZE: Winsize = Winsize {
    ws_row: 24,
    ws_col: 80,
    ws_xpixel: 0,
    ws_ypixel: 0,
};

/// A pty: the master end kept here, the slave end for the container.
#[derive(Debug)]
pub(super) struct Pty {
    pub(super) master: OwnedFd,
    /// Given to the container's helper as its stdio.
    pub(super) slave: OwnedFd,
}

impl Pty {
    /// Opens a pty sized like this process's terminal.
    pub(super) fn open() -> Result<Self> {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .map_err(|e| io("open", "/dev/ptmx", e))?;
        grantpt(&master).map_err(|e| io("grant", "/dev/ptmx", e))?;
        unlockpt(&master).map_err(|e| io("unlock", "/dev/ptmx", e))?;
        let name = ptsname(&master, Vec::new()).map_err(|e| io("name", "/dev/ptmx", e))?;
        let path = std::path::PathBuf::from(name.to_string_lossy().into_owned());
        let slave: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io("open", &path, e))?
            .into();
        let size = tcgetwinsize(std::io::stdin()).unwrap_or(DEFAULT_SIZE);
        tcsetwinsize(&master, size).map_err(|e| io("size", &path, e))?;
        Ok(Pty { master, slave })
    }

    /// Relays between this process's stdio and the pty's `master` end until the container's
    /// side is closed (`stdin`: pass this process's input on). Blocking; call once the helper is
    /// started and this process no longer holds the slave end.
    pub(super) fn relay_master(master: OwnedFd, stdin: bool) -> Result<()> {
        let raw = RawMode::enter();
        let master = std::fs::File::from(master);
        // Input: this process's stdin to the pty, in the background (it may never end).
        if stdin {
            let mut to_pty = master.try_clone().map_err(|e| io("clone", "the pty", e))?;
            std::thread::spawn(move || {
                let mut input = std::io::stdin().lock();
                let mut buf = [0u8; 4096];
                while let Ok(n) = input.read(&mut buf) {
                    if n == 0 || to_pty.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
        // Output: until every holder of the slave end has gone (EIO).
        let mut from_pty = master;
        let mut out = std::io::stdout().lock();
        let mut buf = [0u8; 4096];
        loop {
            match from_pty.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                        break;
                    }
                }
            }
        }
        drop(raw);
        Ok(())
    }
}

/// Passes this process's terminal size on to the pty's `master` end on every `SIGWINCH`, until
/// dropped (a signal watched by tokio: every thread of this process may receive it).
pub(super) async fn follow_size(master: OwnedFd) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut winch) = signal(SignalKind::window_change()) else {
        return;
    };
    while winch.recv().await.is_some() {
        if let Ok(size) = tcgetwinsize(std::io::stdin()) {
            let _ = tcsetwinsize(&master, size);
        }
    }
}

/// This process's terminal in raw mode while it lives (nothing when stdin is not a terminal).
struct RawMode(Option<Termios>);

impl RawMode {
    fn enter() -> Self {
        let stdin = std::io::stdin();
        if !isatty(stdin.as_fd()) {
            return RawMode(None);
        }
        let Ok(saved) = tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        raw.make_raw();
        match tcsetattr(&stdin, OptionalActions::Now, &raw) {
            Ok(()) => RawMode(Some(saved)),
            Err(_) => RawMode(None),
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, saved);
        }
    }
}

/// Runs a process on a new pty: `spawn` starts it with the slave end as its stdio; this process
/// relays (`stdin`: its input too) and follows its terminal's size until the process ends.
/// Returns how it ended (`None`: by a signal).
pub(super) async fn run_on_pty(
    stdin: bool,
    spawn: impl FnOnce(&OwnedFd) -> Result<std::process::Child>,
) -> Result<Option<i32>> {
    let pty = Pty::open()?;
    let mut child = spawn(&pty.slave)?;
    let resize = pty
        .master
        .try_clone()
        .map(|master| tokio::spawn(follow_size(master)))
        .ok();
    let relay = tokio::task::spawn_blocking(move || {
        let Pty { master, slave } = pty;
        drop(slave); // only the process holds it now, so the relay sees it close
        Pty::relay_master(master, stdin)
    });
    let joined = |e: tokio::task::JoinError| io("wait for", "the process", std::io::Error::other(e));
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .map_err(joined)?
        .map_err(|e| io("wait for", "the process", e))?;
    relay.await.map_err(joined)??;
    if let Some(resize) = resize {
        resize.abort();
    }
    Ok(status.code())
}

/// Whether a process started with `tty` asked for should get a pty: not when input is piped in
/// (`-i` with a pipe or file on stdin), which then passes through as it is, where docker refuses
/// "the input device is not a TTY".
pub(super) fn wanted(tty: bool, stdin: bool) -> bool {
    tty && (!stdin || isatty(std::io::stdin()))
}

/// In the container's PID 1: a new session whose controlling terminal is the pty on stdin.
pub(super) fn take_terminal() -> std::result::Result<(), String> {
    nix::unistd::setsid().map_err(|e| format!("new session: {e}"))?;
    rustix::process::ioctl_tiocsctty(std::io::stdin()).map_err(|e| format!("controlling terminal: {e}"))
}
