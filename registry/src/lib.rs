//! `strata-registry`: an OCI Distribution Spec v1.1 registry (plus the Docker Registry V2
//! behaviour clients rely on) over [`strata_storage`].
//!
//! - [`config`]: what an operator can set (file, `STRATA_*` environment, flags).
//! - [`app`]: shared state, the router and its middleware, and [`app::run`], which serves a bound
//!   listener until a shutdown future resolves (tests bind port 0 and run it in process).
//! - [`gc`]: online garbage collection and retention, safe beside pushes.
//! - [`auth`]: users, tokens, `[[access]]` rules; every request is checked before its handler.
//! - [`route`]: `/v2/<rest>` parsed from the right into an endpoint, with every name, tag, digest
//!   and upload id validated before storage sees it.
//! - `handlers`: one module per group of endpoints; [`meta`]: repository metadata (links,
//!   revisions, tags, referrers, catalog, upload records). Manifests are read through
//!   `strata_storage::oci`.
//! - [`error`]: the OCI error body and status codes; [`metrics`]: Prometheus metrics, and the
//!   layer that accounts for every request (counts, latency, bytes, the request log line).
//! - [`limits`]: minimum body rate and the budget for bodies held in memory; [`health`]:
//!   liveness, readiness from a background storage probe; [`upkeep`]: the upload purge and the
//!   storage sweep, one replica per round.
//! - `ui`: the web UI at `/ui/` (pages, its JSON API, sign-in), over the same access rules.
//! - [`serve`]: the accept loop, connection limits and timeouts, shutdown with a deadline;
//!   [`tls`]: certificates, client certificates, reloads.
//!
//! All state lives in storage, so replicas over one S3 bucket (or one directory) are
//! interchangeable, and an upload can continue on any of them.

pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod error;
pub mod gc;
mod handlers;
pub mod health;
pub mod limits;
pub mod meta;
pub mod metrics;
pub mod route;
pub mod serve;
pub mod state;
pub mod tls;
mod ui;
pub mod upkeep;
pub mod upstream;
mod watch;

pub use app::{AppState, SharedState, app, run};
pub use config::{Config, LogFormat, Overrides};
