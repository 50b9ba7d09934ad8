//! `--userns auto`: a container whose root is not the host's root.
//!
//! The container's processes run in a user namespace that maps container ids `0..65536` to a
//! range of unprivileged host ids of their own, so root in the container holds capabilities over
//! the container's namespaces only: to the host it is an ordinary user that owns nothing.
//! Ranges come from the `strata` entries of `/etc/subuid` and `/etc/subgid` (as docker's
//! `dockremap`), else from [`DEFAULT_START`]; each container gets one no other container has.
//!
//! Nothing changes on disk: the image's layers and the scratch layer are mounted through
//! idmapped mounts, so the container sees the owners the image has, and what it writes is stored
//! with the ids it sees (a commit, `strata diff` and `strata cp` read the scratch layer as they
//! do for any container). The scratch layer's mapping also maps the host's root, as
//! [`MOUNTER_ID`], because overlayfs does its own bookkeeping there with the credentials of whoever
//! mounted it (the helper, the host's root); the container can neither create nor take such
//! files. Named volumes are mapped the same way; bind mounts of host paths are not: there the
//! container's root is nobody, as with docker's `userns-remap`.
//!
//! The user namespace (and the network namespace it must own, for the container's root to bind
//! ports below 1024) is created by a holder process, `strata __userns DIR`; the helper, still the
//! host's root, writes the mappings, joins the network namespace and lets the holder go. The
//! other namespaces stay the host root's; the container's processes join the user namespace
//! last, once their root is in place ([`Namespaces`]).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use nix::mount::MsFlags;
use nix::sched::{CloneFlags, unshare};
use serde::{Deserialize, Serialize};

use super::Container;

/// Ids mapped per container: uids and gids `0..65536`.
pub const SIZE: u32 = 65_536;
/// Where host ranges start without a `strata` entry in `/etc/subuid` / `/etc/subgid`: far above
/// the ranges distributions hand out to users (from 100000, 65536 each).
pub const DEFAULT_START: u32 = 1_000_000_000;
/// How many host ids the default range has (15258 containers' worth).
pub const DEFAULT_COUNT: u32 = 1_000_000_000;
/// The id the host's root has in the scratch layer's mapping: it owns overlayfs's own files in
/// the work directory and nothing the container sees.
pub const MOUNTER_ID: u32 = SIZE;
/// The id unmapped owners show as.
const OVERFLOW_ID: u32 = 65_534;

/// `--userns`: where a container's ids live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UsernsMode {
    /// The host's: container root is host root (with the capabilities the container keeps).
    #[default]
    Host,
    /// A user namespace with a host id range of its own.
    Auto,
}

impl std::str::FromStr for UsernsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" | "host" => Ok(UsernsMode::Host),
            "auto" => Ok(UsernsMode::Auto),
            other => Err(format!("--userns {other:?}: expected auto or host")),
        }
    }
}

/// A container's mapping: container uid `n` (`n < SIZE`) is host uid `uid + n`, and likewise for
/// gids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    /// The host uid of the container's root.
    pub uid: u32,
    /// The host gid of the container's root.
    pub gid: u32,
}

impl IdMap {
    /// The container uid host uid `host` is (the overflow id when it is not the container's).
    pub fn container_uid(&self, host: u32) -> u32 {
        host.checked_sub(self.uid).filter(|n| *n < SIZE).unwrap_or(OVERFLOW_ID)
    }

    /// The container gid host gid `host` is.
    pub fn container_gid(&self, host: u32) -> u32 {
        host.checked_sub(self.gid).filter(|n| *n < SIZE).unwrap_or(OVERFLOW_ID)
    }

    /// The host uid container uid `container` is (ids the container does not have become its
    /// root).
    pub fn host_uid(&self, container: u32) -> u32 {
        self.uid + if container < SIZE { container } else { 0 }
    }

    /// The host gid container gid `container` is.
    pub fn host_gid(&self, container: u32) -> u32 {
        self.gid + if container < SIZE { container } else { 0 }
    }

    fn overlaps(&self, other: &IdMap) -> bool {
        let apart = |a: u32, b: u32| a.abs_diff(b) >= SIZE;
        !(apart(self.uid, other.uid) && apart(self.gid, other.gid))
    }
}

/// A range of host ids: `start..start + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: u32,
    count: u32,
}

/// The `strata` range of a `/etc/subuid`-format file (`name:start:count` lines), if any.
fn subid_range(text: &str) -> Option<Range> {
    text.lines().find_map(|line| {
        let mut parts = line.trim().split(':');
        let (Some("strata"), Some(start), Some(count)) = (parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        Some(Range {
            start: start.parse().ok()?,
            count: count.parse().ok()?,
        })
    })
}

fn host_ranges() -> (Range, Range) {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| subid_range(&t))
            .unwrap_or(Range {
                start: DEFAULT_START,
                count: DEFAULT_COUNT,
            })
    };
    (read("/etc/subuid"), read("/etc/subgid"))
}

/// A mapping no container in `taken` overlaps, from the host ranges.
pub(super) fn allocate(taken: &[IdMap]) -> Result<IdMap, String> {
    let (uids, gids) = host_ranges();
    allocate_in(uids, gids, taken)
}

fn allocate_in(uids: Range, gids: Range, taken: &[IdMap]) -> Result<IdMap, String> {
    let slots = (uids.count / SIZE).min(gids.count / SIZE);
    (0..slots)
        .filter_map(|i| {
            Some(IdMap {
                uid: uids.start.checked_add(i * SIZE)?,
                gid: gids.start.checked_add(i * SIZE)?,
            })
        })
        .filter(|m| m.uid.checked_add(SIZE).is_some() && m.gid.checked_add(SIZE).is_some())
        .find(|m| !taken.iter().any(|t| t.overlaps(m)))
        .ok_or_else(|| {
            format!(
                "--userns auto: no free range of {SIZE} ids left (uids {}+{}, gids {}+{}; \
                 the `strata` entries of /etc/subuid and /etc/subgid set them)",
                uids.start, uids.count, gids.start, gids.count
            )
        })
}

/// `uid_map` / `gid_map` text for a mapping whose container root is host id `host`; with
/// `mounter`, the host's root is also mapped, as [`MOUNTER_ID`].
fn map_text(host: u32, mounter: bool) -> String {
    let mut text = format!("0 {host} {SIZE}\n");
    if mounter {
        text.push_str(&format!("{MOUNTER_ID} 0 1\n"));
    }
    text
}

/// A `strata __userns` process: the owner of a new user namespace (and, for a container's own, of
/// its network, UTS, IPC and PID namespaces) until the helper has joined or opened them.
pub(super) struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// A container's user namespace and, when it has its own network, its network namespace, which
/// the user namespace must own for the container's root to bind ports below 1024. The mount, UTS,
/// IPC, PID and cgroup namespaces stay the host root's: set up by the helper and PID 1 before
/// the container's processes enter the user namespace, and out of its root's reach after (it can
/// mount nothing, nor set the host name, as with docker's default capabilities).
#[derive(Debug)]
pub(super) struct Namespaces {
    /// The user namespace (PID 1 and `exec` join it last).
    pub user: File,
    /// The network namespace, when the container has its own.
    pub net: Option<File>,
}

impl Holder {
    /// Starts the holder (`exe` is the `strata` binary) and waits until it has its namespaces:
    /// a user namespace, and a network namespace with its loopback up when `network` is set.
    pub(super) fn spawn(exe: &Path, dir: &Path, network: bool) -> Result<Holder, String> {
        let mode = if network { "user+net" } else { "user" };
        let mut child = Command::new(exe)
            .arg("__userns")
            .arg(dir)
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start the user namespace: {e}"))?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            // A single short line; the holder writes nothing else.
            let _ = BufReader::new(out.take(64)).read_line(&mut line);
        }
        let holder = Holder { child, stdin };
        if line.trim() != "ready" {
            return Err(match line.trim().strip_prefix("error: ") {
                Some(e) => format!("new user namespace: {e}"),
                None => "new user namespace: the holder ended early".into(),
            });
        }
        Ok(holder)
    }

    /// Writes the mappings (`mounter`: the host's root too).
    pub(super) fn map(&self, map: IdMap, mounter: bool) -> Result<(), String> {
        let pid = self.child.id();
        for (file, host) in [("uid_map", map.uid), ("gid_map", map.gid)] {
            let path = format!("/proc/{pid}/{file}");
            // One write: the kernel takes a mapping whole or not at all.
            std::fs::write(&path, map_text(host, mounter)).map_err(|e| format!("write {path}: {e}"))?;
        }
        Ok(())
    }

    /// Opens namespace `ns` of the holder (`user`, `net`, `pid_for_children`, …).
    pub(super) fn open(&self, ns: &str) -> Result<File, String> {
        let path = format!("/proc/{}/ns/{ns}", self.child.id());
        File::open(&path).map_err(|e| format!("open {path}: {e}"))
    }

    /// The container's namespaces (after [`Holder::map`]).
    pub(super) fn namespaces(&self, network: bool) -> Result<Namespaces, String> {
        Ok(Namespaces {
            user: self.open("user")?,
            net: if network { Some(self.open("net")?) } else { None },
        })
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // End of input tells the holder to go.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Namespaces {
    /// Joins the network namespace, when the container has its own.
    pub(super) fn join_network(&self) -> Result<(), String> {
        match &self.net {
            Some(net) => join(net, CloneFlags::CLONE_NEWNET, "network"),
            None => Ok(()),
        }
    }
}

fn join(f: &File, kind: CloneFlags, what: &str) -> Result<(), String> {
    nix::sched::setns(f.as_fd(), kind).map_err(|e| format!("join the {what} namespace: {e}"))
}

/// What the helper of a `--userns` container holds: the container's namespaces, and the user
/// namespace its scratch layer is mapped through (which also maps the host's root).
#[derive(Debug)]
pub(super) struct UserNamespaces {
    /// The container's.
    pub(super) namespaces: Namespaces,
    scratch: File,
}

impl UserNamespaces {
    /// Creates the namespaces of container `dir` with mapping `map` (a network namespace too
    /// when `network`). Must run before the helper's PID namespace changes.
    pub(super) fn new(dir: &Path, map: IdMap, network: bool) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("find strata: {e}"))?;
        let holder = Holder::spawn(&exe, dir, network)?;
        holder.map(map, false)?;
        let namespaces = holder.namespaces(network)?;
        let scratch = Holder::spawn(&exe, dir, false)?;
        scratch.map(map, true)?;
        Ok(UserNamespaces {
            namespaces,
            scratch: scratch.open("user")?,
        })
    }

    /// Mounts the overlay of `lowers` (nearest first) under the container's scratch layer at
    /// `rootfs`, each through an idmapped mount under `DIR/idmap/` (in the helper's mount
    /// namespace, gone with it).
    pub(super) fn mount_union(&self, container: &Container, rootfs: &Path, lowers: &[PathBuf]) -> Result<(), String> {
        let stage = container.dir.join("idmap");
        let stage_at = |name: &str| -> Result<PathBuf, String> {
            let at = stage.join(name);
            std::fs::create_dir_all(&at).map_err(|e| format!("create {}: {e}", at.display()))?;
            Ok(at)
        };
        let mut names = Vec::with_capacity(lowers.len());
        for (i, lower) in lowers.iter().enumerate() {
            bind_idmapped(lower, &stage_at(&i.to_string())?, &self.namespaces.user)?;
            names.push(format!("idmap/{i}"));
        }
        // The upper and work directories must share one mount: the container directory's.
        bind_idmapped(&container.dir, &stage_at("scratch")?, &self.scratch)?;
        // Relative paths keep the option string short (it must fit a page).
        nix::unistd::chdir(&container.dir).map_err(|e| format!("chdir: {e}"))?;
        let data = format!(
            "lowerdir={},upperdir=idmap/scratch/upper,workdir=idmap/scratch/work",
            names.join(":")
        );
        let mut flags = MsFlags::empty();
        flags.set(MsFlags::MS_NODEV, !container.config.security.privileged);
        nix::mount::mount(Some("overlay"), rootfs, Some("overlay"), flags, Some(data.as_str()))
            .map_err(|e| format!("mount the overlay: {e}"))
    }
}

/// Enters user namespace `userns` as its root: the last namespace a container process joins, as
/// the host's root (which has every capability over namespaces its user namespaces own).
pub(super) fn become_root_of(userns: &File) -> Result<(), String> {
    nix::sched::setns(userns.as_fd(), CloneFlags::CLONE_NEWUSER)
        .map_err(|e| format!("join the user namespace: {e}"))?;
    let root = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(root, root, root).map_err(|e| format!("setresgid: {e}"))?;
    nix::unistd::setgroups(&[root]).map_err(|e| format!("setgroups: {e}"))?;
    let root = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresuid(root, root, root).map_err(|e| format!("setresuid: {e}"))
}

/// Mounts `source` at `target` (detached from the source's own mount, not recursive) with its
/// owners mapped through `userns`: an idmapped bind mount.
pub(super) fn bind_idmapped(source: &Path, target: &Path, userns: &File) -> Result<(), String> {
    use rustix::mount::{MoveMountFlags, OpenTreeFlags, move_mount, open_tree};
    let what = || format!("idmapped mount of {}", source.display());
    let tree = open_tree(
        rustix::fs::CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| format!("{}: {e}", what()))?;
    composefs_ioctls::mount::mount_setattr_idmap(&tree, userns).map_err(|e| {
        let why = if e.raw_os_error() == Some(nix::libc::EINVAL) {
            " (its file system cannot map ids: --userns needs ext4, xfs, btrfs or tmpfs for STRATA_HOME)"
        } else {
            ""
        };
        format!("{}: {e}{why}", what())
    })?;
    move_mount(
        tree.as_fd(),
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| format!("{}: {e}", what()))
}

/// `strata __userns DIR MODE`: enters a new user namespace (`MODE` `user+net`: and a network
/// namespace with its loopback up), says `ready`, and holds them until its input ends. Must run
/// before the process has threads. Returns the exit code (the helper reads the reason).
pub fn hold(mode: &str) -> i32 {
    let setup = || -> Result<(), String> {
        let network = match mode {
            "user" => false,
            "user+net" => true,
            other => return Err(format!("unknown mode {other:?}")),
        };
        unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| format!("unshare: {e}"))?;
        if network {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare: {e}"))?;
            super::netlink::loopback_up().map_err(|e| format!("loopback: {e}"))?;
        }
        Ok(())
    };
    let mut out = std::io::stdout();
    let (code, line) = match setup() {
        Ok(()) => (0, "ready".to_owned()),
        Err(e) => (1, format!("error: {e}")),
    };
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    if code == 0 {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subuid_entries() {
        let text = "alice:100000:65536\nstrata:200000:131072\n";
        assert_eq!(
            subid_range(text),
            Some(Range {
                start: 200000,
                count: 131072
            })
        );
        assert_eq!(subid_range("alice:1:2\nstrata:x:1\n"), None);
    }

    #[test]
    fn allocation_skips_taken_ranges_and_runs_out() {
        let r = Range {
            start: 200000,
            count: 3 * SIZE,
        };
        let first = allocate_in(r, r, &[]).unwrap();
        assert_eq!(
            first,
            IdMap {
                uid: 200000,
                gid: 200000
            }
        );
        let second = allocate_in(r, r, &[first]).unwrap();
        assert_eq!(second.uid, 200000 + SIZE);
        // A mapping from another range that overlaps the third slot by one id.
        let odd = IdMap {
            uid: 200000 + 3 * SIZE - 1,
            gid: 1,
        };
        assert!(allocate_in(r, r, &[first, second, odd]).is_err());
        assert_eq!(first.container_uid(200005), 5);
        assert_eq!(first.container_uid(5), OVERFLOW_ID);
        assert_eq!(first.container_gid(200000 + SIZE), OVERFLOW_ID);
    }

    #[test]
    fn maps() {
        assert_eq!(map_text(7, false), "0 7 65536\n");
        assert_eq!(map_text(7, true), "0 7 65536\n65536 0 1\n");
        assert_eq!("auto".parse::<UsernsMode>(), Ok(UsernsMode::Auto));
        assert!("keep-id".parse::<UsernsMode>().is_err());
    }
}
