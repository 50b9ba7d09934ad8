//! The default seccomp filter: the system calls docker's default profile refuses to a container
//! (by leaving them out of its allowlist) answer `EPERM` here — mounting and the new mount API,
//! namespaces (`unshare`, `setns`, `clone`/`clone3` with `CLONE_NEW*`), kernel modules, `kexec`,
//! `reboot`, `bpf`, `perf_event_open`, the kernel keyring, `open_by_handle_at`, clocks, swap,
//! `acct`, `quotactl`, NUMA policy, `userfaultfd`, `io_uring`, and the x86 legacy calls (those the
//! kernel still has; the long-removed module calls answer `ENOSYS` anyway).
//! Everything else is allowed. `clone3` answers `ENOSYS` instead, as under docker, so that
//! libc falls back to `clone`, whose flags the filter can read.
//!
//! Installed in each container process (PID 1 and every `exec`) while it still holds
//! `CAP_SYS_ADMIN`, before the user and the capabilities change, so it does not need
//! `no_new_privs` (which would stop setuid binaries, as docker's default does not); nothing it
//! refuses is used by the steps that remain before `execve`. Built with libseccomp, which knows
//! every architecture's system call numbers by name (calls this kernel does not have are
//! skipped).

pub(crate) mod profile;

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

/// Refused outright, by name.
const REFUSED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_mempolicy",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "umount2",
    "unshare",
    "userfaultfd",
    "vhangup",
    "ioperm",
    "iopl",
    "nfsservctl",
    "sysfs",
    "_sysctl",
    "uselib",
    "ustat",
];

/// `clone` flags that create namespaces.
const NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

/// The default filter, not yet loaded.
fn default_filter() -> Result<ScmpFilterContext, String> {
    fn err(what: &str) -> impl FnOnce(libseccomp::error::SeccompError) -> String + '_ {
        move |e| format!("seccomp {what}: {e}")
    }
    let mut filter = ScmpFilterContext::new(ScmpAction::Allow).map_err(err("filter"))?;
    filter.set_ctl_nnp(false).map_err(err("filter"))?;
    let eperm = ScmpAction::Errno(libc::EPERM);
    for name in REFUSED {
        // A call this architecture or libseccomp does not know cannot be made anyway.
        if let Ok(call) = ScmpSyscall::from_name(name) {
            filter.add_rule(eperm, call).map_err(err(name))?;
        }
    }
    // `clone` with any namespace flag (its first argument on x86_64 and aarch64).
    let clone = ScmpSyscall::from_name("clone").map_err(err("clone"))?;
    for flag in NAMESPACE_FLAGS {
        let flag = flag as u64;
        let has_flag = ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(flag), flag);
        filter
            .add_rule_conditional(eperm, clone, &[has_flag])
            .map_err(err("clone"))?;
    }
    if let Ok(clone3) = ScmpSyscall::from_name("clone3") {
        filter
            .add_rule(ScmpAction::Errno(libc::ENOSYS), clone3)
            .map_err(err("clone3"))?;
    }
    Ok(filter)
}

/// Installs the default filter in the calling thread (and what it executes).
pub(super) fn install_default() -> Result<(), String> {
    default_filter()?
        .load()
        .map_err(|e| format!("install the seccomp filter: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_filter_builds_for_this_machine() {
        let filter = default_filter().unwrap();
        assert!(!filter.get_ctl_nnp().unwrap(), "setuid binaries keep working");
        for name in ["mount", "unshare", "bpf", "keyctl"] {
            assert!(ScmpSyscall::from_name(name).is_ok(), "{name}");
        }
    }
}
