//! `strata-runtime`: the Windows-style layer store and the container runtime.
//!
//! Not built yet: this crate is a shell until the runtime issues land.
