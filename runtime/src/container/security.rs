//! What keeps a container's processes from reaching the host beyond its namespaces: the
//! capability sets, `no_new_privs`, the parts of `/proc` and `/sys` that are hidden or
//! read-only, and the file descriptors a process inherits.
//!
//! Defaults (podman's, the stricter of docker's and podman's): every capability set — bounding,
//! permitted, effective, inheritable, ambient — holds at most [`DEFAULT_CAPABILITIES`]; a process
//! that is not root has none in effect, and the reduced bounding set keeps a setuid-root binary
//! from regaining more. `--privileged` keeps all of them and masks nothing.

use std::path::Path;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use nix::mount::{MsFlags, mount};
use serde::{Deserialize, Serialize};

use super::mounts::resolve_in_root;

/// Capabilities a container's root keeps by default (podman's list; docker adds `MKNOD`,
/// `NET_RAW` and `AUDIT_WRITE`).
pub const DEFAULT_CAPABILITIES: [Capability; 11] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_KILL,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETGID,
    Capability::CAP_SETPCAP,
    Capability::CAP_SETUID,
    Capability::CAP_SYS_CHROOT,
];

/// Files and directories of `/proc` and `/sys` that leak the host or let a process affect it:
/// hidden (an empty read-only tmpfs over a directory, `/dev/null` over a file).
const MASKED: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Parts of `/proc` a container may read but not write.
const READ_ONLY: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// How a container is confined (`--cap-add`, `--cap-drop`, `--privileged`, `--security-opt
/// no-new-privileges`); recorded with the container, so `exec` confines the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Security {
    /// Every capability, nothing masked.
    pub privileged: bool,
    /// Capabilities added to the default set (`NET_RAW`, `CAP_NET_RAW` or `ALL`).
    pub cap_add: Vec<String>,
    /// Capabilities removed from it (`ALL` removes every one).
    pub cap_drop: Vec<String>,
    /// `no_new_privs`: setuid binaries and file capabilities grant nothing.
    pub no_new_privileges: bool,
    /// The seccomp filter (`--security-opt seccomp=unconfined` turns it off).
    pub seccomp: Seccomp,
}

/// Which seccomp filter a container's processes run under.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Seccomp {
    /// The default filter (`super::seccomp`).
    #[default]
    Default,
    /// None.
    Unconfined,
    /// A profile in docker's JSON format (`--security-opt seccomp=FILE`), kept with the
    /// container as it was read.
    Profile(String),
}

/// Largest seccomp profile read.
pub const MAX_SECCOMP_PROFILE: u64 = super::seccomp::profile::MAX_PROFILE;

/// A capability name as docker takes it: `net_raw`, `NET_RAW`, `CAP_NET_RAW`.
fn capability(name: &str) -> Result<Capability, String> {
    Capability::from_str(&caps::to_canonical(name)).map_err(|_| format!("unknown capability {name:?}"))
}

impl Security {
    /// Checks what can be checked before the container runs: capability names and the seccomp
    /// profile.
    pub fn validate(&self) -> Result<(), String> {
        let capabilities = self.capabilities()?;
        if let Seccomp::Profile(json) = &self.seccomp {
            super::seccomp::profile::filter(json, &capabilities)?;
        }
        Ok(())
    }

    /// The capabilities the container's root holds; an unknown name is an error naming it.
    pub fn capabilities(&self) -> Result<CapsHashSet, String> {
        let all = caps::runtime::thread_all_supported;
        if self.privileged {
            return Ok(all());
        }
        let mut set: CapsHashSet = DEFAULT_CAPABILITIES.into_iter().collect();
        for name in &self.cap_drop {
            match name.eq_ignore_ascii_case("all") {
                true => set.clear(),
                false => {
                    set.remove(&capability(name)?);
                }
            }
        }
        for name in &self.cap_add {
            match name.eq_ignore_ascii_case("all") {
                true => set.extend(all()),
                false => {
                    set.insert(capability(name)?);
                }
            }
        }
        Ok(set)
    }
}

/// Hides [`MASKED`] and makes [`READ_ONLY`] read-only under `rootfs`, whose `/proc` and `/sys`
/// are mounted. Paths the kernel does not have are skipped.
pub(super) fn mask(rootfs: &Path) -> Result<(), String> {
    for path in MASKED {
        let Ok(host) = resolve_in_root(rootfs, path, false) else {
            continue;
        };
        let Ok(md) = std::fs::metadata(&host) else { continue };
        let result = if md.is_dir() {
            mount(
                Some("tmpfs"),
                &host,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0"),
            )
        } else {
            mount(Some("/dev/null"), &host, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        };
        result.map_err(|e| format!("mask {path}: {e}"))?;
    }
    for path in READ_ONLY {
        let Ok(host) = resolve_in_root(rootfs, path, false) else {
            continue;
        };
        if !host.exists() {
            continue;
        }
        mount(
            Some(&host),
            &host,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .and_then(|()| {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(None::<&str>, &host, None::<&str>, flags, None::<&str>)
        })
        .map_err(|e| format!("make {path} read-only: {e}"))?;
    }
    Ok(())
}

/// Installs the container's seccomp filter, unless it is privileged or unconfined. While the
/// process still holds `CAP_SYS_ADMIN`, before the user changes.
pub(super) fn filter(security: &Security, capabilities: &CapsHashSet) -> Result<(), String> {
    match (security.privileged, &security.seccomp) {
        (true, _) | (_, Seccomp::Unconfined) => Ok(()),
        (false, Seccomp::Default) => super::seccomp::install_default(),
        (false, Seccomp::Profile(json)) => super::seccomp::profile::filter(json, capabilities)?
            .load()
            .map_err(|e| format!("install the seccomp profile: {e}")),
    }
}

/// Removes from the bounding set every capability not in `allowed`: no process of the container,
/// setuid-root binaries included, can ever hold one again. Before the user changes.
pub(super) fn bound(allowed: &CapsHashSet) -> Result<(), String> {
    for cap in caps::runtime::thread_all_supported() {
        if !allowed.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| format!("drop {cap} from the bounding set: {e}"))?;
        }
    }
    Ok(())
}

/// After the user changed to `uid`: root keeps `allowed` permitted and effective, anyone else
/// nothing (the kernel already cleared them); nothing is inheritable or ambient.
pub(super) fn restrict(allowed: &CapsHashSet, uid: u32, no_new_privileges: bool) -> Result<(), String> {
    let keep = match uid {
        0 => {
            let permitted = caps::read(None, CapSet::Permitted).map_err(|e| format!("read the capabilities: {e}"))?;
            allowed.intersection(&permitted).copied().collect()
        }
        _ => CapsHashSet::new(),
    };
    let set = |which: CapSet, value: &CapsHashSet| {
        caps::set(None, which, value).map_err(|e| format!("set the {which:?} capabilities: {e}"))
    };
    set(CapSet::Inheritable, &CapsHashSet::new())?;
    caps::clear(None, CapSet::Ambient).map_err(|e| format!("clear the ambient capabilities: {e}"))?;
    set(CapSet::Effective, &keep)?;
    set(CapSet::Permitted, &keep)?;
    if no_new_privileges {
        nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    }
    Ok(())
}

/// Closes every file descriptor above stderr: nothing the caller had open reaches the container.
pub(super) fn close_inherited_fds() -> Result<(), String> {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| format!("list open files: {e}"))?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    // The listing's own descriptor is already closed: EBADF for it is expected.
    for fd in fds {
        match nix::unistd::close(fd) {
            Ok(()) | Err(nix::errno::Errno::EBADF) => {}
            Err(e) => return Err(format!("close inherited descriptor {fd}: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_sets_follow_add_drop_and_privileged() {
        let default = Security::default().capabilities().unwrap();
        assert_eq!(default.len(), 11);
        assert!(!default.contains(&Capability::CAP_SYS_ADMIN));
        let s = Security {
            cap_add: vec!["net_raw".into(), "CAP_SYS_PTRACE".into()],
            cap_drop: vec!["CHOWN".into()],
            ..Default::default()
        };
        let set = s.capabilities().unwrap();
        assert!(set.contains(&Capability::CAP_NET_RAW) && set.contains(&Capability::CAP_SYS_PTRACE));
        assert!(!set.contains(&Capability::CAP_CHOWN));
        let none = Security {
            cap_drop: vec!["all".into()],
            cap_add: vec!["KILL".into()],
            ..Default::default()
        };
        assert_eq!(
            none.capabilities().unwrap(),
            [Capability::CAP_KILL].into_iter().collect()
        );
        let privileged = Security {
            privileged: true,
            ..Default::default()
        };
        assert!(privileged.capabilities().unwrap().contains(&Capability::CAP_SYS_ADMIN));
        let bad = Security {
            cap_add: vec!["FLY".into()],
            ..Default::default()
        };
        assert!(bad.capabilities().unwrap_err().contains("FLY"));
    }
}
