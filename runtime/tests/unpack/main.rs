//! Tests of `strata_runtime::unpack`: well-formed layers land on disk exactly as described
//! (`layers.rs`), hostile and malformed ones are refused without touching anything outside the
//! destination (`hostile.rs`, `malformed.rs`), and through the layer store leave nothing behind
//! (`store.rs`). The tests create device nodes and `trusted.*`
//! attributes, so they run as root.

mod fuzz;
mod hostile;
mod layer;
mod layers;
mod malformed;
mod sandbox;
mod store;
