//! Shared pieces of the client's integration tests: an in-process registry, the test proxy, a
//! strata context over a temporary home, and layout helpers.

#![allow(dead_code, unused_imports, unreachable_pub, missing_docs)]

pub mod proxy;

use std::path::{Path, PathBuf};
use std::time::Duration;

use strata_client::commands::{Context, Target};
use strata_client::registry::ClientOptions;
use strata_client::transfer::{Options, Selection};

pub use strata_tests::LocalRegistry;

/// A strata context whose home and docker config live in `dir`.
pub fn context(dir: &Path) -> Context {
    context_with(
        dir,
        ClientOptions {
            backoff: Duration::from_millis(20),
            ..Default::default()
        },
    )
}

pub fn context_with(dir: &Path, options: ClientOptions) -> Context {
    Context::new(dir.join("home"), options, dir.join("docker/config.json"))
}

/// Transfer options for every platform, with the journal under the context's home.
pub fn all_platforms(ctx: &Context) -> Options {
    Options {
        selection: Selection::All,
        journal: Some(ctx.journal()),
        ..Options::default()
    }
}

pub fn target(s: &str) -> Target {
    Target::parse(s).unwrap()
}

/// Every blob file name (hex digest) of an OCI layout, sorted.
pub fn blobs_of(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The descriptor `index.json` of a layout gives `name`.
pub fn layout_entry(dir: &Path, name: &str) -> serde_json::Value {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in {}: {index}", dir.display()))
}

/// The local store of a context.
pub fn store_dir(ctx: &Context) -> PathBuf {
    ctx.home.join("store")
}
