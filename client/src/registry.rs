//! The registry client: `strata_distribution::registry` (one registry host over the OCI
//! Distribution API, with token auth and retries), re-exported where the client's code has
//! always found it.

pub use strata_distribution::registry::*;
