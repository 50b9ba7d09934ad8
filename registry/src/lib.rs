//! `strata-registry`: an OCI Distribution v1.1 registry over [`strata_storage`].
//!
//! Not built yet: this crate is a shell until the registry issue lands. The storage layout it will
//! use is already drawn in [`strata_storage::layout`].
