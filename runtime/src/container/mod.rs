//! Containers: a read-write scratch layer over an image's layer chain, run in new namespaces.
//!
//! Each container lives in `STRATA_HOME/containers/<id>/`:
//!
//! ```text
//! config.json       what to run: image, layer chain, process, mounts, limits (written at create)
//! state.json        status, pids, exit code, times (written by whoever changes them)
//! layerchain.json   the image's layer directories, nearest first (as a Windows scratch layer has)
//! upper/ work/      the scratch layer: overlayfs upper and work directories
//! rootfs/           where the union is mounted while the container runs
//! log               output of a detached container
//! ```
//!
//! Running: `strata` re-executes itself as `strata __init <dir>` in new mount, UTS, IPC, PID and
//! (unless `--network host`) network namespaces ([`init`]). That helper joins the container's
//! cgroup, mounts the union and the volumes, forks the container's PID 1 (which mounts `/proc`,
//! `/dev`, `/sys`, pivots into the union and executes the process), forwards signals to it and
//! records its exit. The mounts live in the helper's private mount namespace, so they disappear
//! with the container. `strata exec` starts a further process in a running container's
//! namespaces, cgroup and root ([`exec`]).

pub mod cgroup;
mod commit;
mod copy;
mod create;
pub mod diff;
mod error;
pub mod exec;
pub mod init;
pub mod live;
mod mounts;
mod netlink;
mod ports;
mod record;
mod seccomp;
mod security;
mod start;
mod stop;
mod tty;
mod user;
pub mod userns;
pub mod volume;

pub use cgroup::Limits;
pub use commit::commit;
pub use copy::{copy_in, copy_out};
pub use create::{RunOptions, create};
pub use error::{ContainerError, Result};
pub use ports::Port;
pub use security::{DEFAULT_CAPABILITIES, MAX_SECCOMP_PROFILE, Seccomp, Security};
pub use start::{ExecOptions, exec, start};
pub use stop::{remove, signal, stop};
pub use userns::{IdMap, UsernsMode};

pub use record::{
    Container, ContainerConfig, ContainerState, ContainerStore, Mount, MountSource, Network, Process, Status, alive,
    now,
};
