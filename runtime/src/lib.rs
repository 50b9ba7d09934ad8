//! `strata-runtime`: the Windows-style layer store and the container runtime.
//!
//! - [`image`] resolves an image of the local store to its layers and unpacks it.
//! - [`unpack`] applies Linux image layers (untrusted tar streams) to a directory, safely.
//! - [`store`] is the layer store: one directory per layer, named by chain id, shared by images.
//! - [`windows`] imports Windows layers with full fidelity (sidecar metadata, case rules).
//! - [`union`] is the read-only union view of an image's layers.
//! - [`home`] is `STRATA_HOME`: where the local store, layers, containers and volumes live.
//! - [`container`] runs containers: scratch layers, namespaces, cgroups, volumes.

pub mod container;
pub mod home;
pub mod image;
pub mod store;
pub mod union;
pub mod unpack;
pub mod windows;
