//! `strata-runtime`: the Windows-style layer store and the container runtime.
//!
//! - [`unpack`] applies Linux image layers (untrusted tar streams) to a directory, safely.
//!
//! - [`store`] is the layer store: one directory per layer, named by chain id, shared by images.
//!
//! The runtime itself is not built yet.

pub mod store;
pub mod unpack;
