//! `strata-hive`: Windows registry hives (regf) on any host (`shared/notes/windows-layers.md`
//! §3).
//!
//! - [`Hive`]: a bounded reader of hive files (versions 1.3–1.6) that treats every offset,
//!   length and count in the file as hostile.
//! - [`Stack`] / [`MergedKey`]: the registry a Windows image's layers make together, a base
//!   hive under the delta hives of the layers above it, merged by the layered-key rules
//!   (tombstones, supersede-local, supersede-tree, class inheritance).
//! - [`write()`]: base hives (1.5) and delta hives (1.6, layered keys) from a [`Key`] tree.
//! - [`diff()`], [`RegPath`], and value [`data`] formats for the `strata reg` commands.

pub mod data;
mod diff;
mod error;
mod merge;
mod model;
mod names;
mod path;
mod read;
#[cfg(feature = "testing")]
pub mod testing;
mod write;

pub use diff::{Change, diff};
pub use error::{HiveError, Result};
pub use merge::{MergedKey, Stack};
pub use model::{Key, MAX_DEPTH, Value};
pub use names::fold;
pub use path::{HiveName, RegPath};
pub use read::{Hive, KeyNode, Semantics, ValueNode};
pub use write::{WriteOptions, write};
