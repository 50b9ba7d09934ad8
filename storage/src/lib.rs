//! `strata-storage`: the content-addressed store that the Strata registry, client and runtime
//! share.
//!
//! - [`Backend`] is a small object-store contract (atomic streamed `put`, ranged `get`, `head`,
//!   `delete`, sorted paginated `list`, `copy`, and appendable uploads that any process can
//!   continue), with two implementations: [`FsBackend`] (the embedded default) and [`S3Backend`]
//!   (AWS S3 and compatible services). [`BackendExt`] adds conveniences.
//! - [`BlobStore`] stores blobs by digest on any backend and publishes only verified content.
//! - [`digest`] hashes (SHA-256, SHA-512; resumable) and verifies streams; [`layout`] is the one
//!   place that builds storage keys, from the validated [`Key`], [`RepositoryName`], [`Tag`],
//!   [`UploadId`] and digests.
//! - [`layer`] reads layer tars from the network safely (bounded, diff_id computed), for the
//!   runtime's unpacker and the registry's layer index.
//! - [`StorageConfig`] selects and configures a backend from TOML and `STRATA_STORAGE_*`
//!   environment variables.
//!
//! With the `testing` feature, the `testing` module offers the backend conformance suite and an in-process
//! S3 server, so every crate can test against real S3 semantics.

pub mod atomic;
mod backend;
mod blob;
mod config;
pub mod digest;
mod error;
mod fs;
mod key;
pub mod layer;
pub mod layout;
pub mod lock;
mod names;
pub mod oci;
mod open;
mod range;
mod s3;
pub mod stream;
#[cfg(feature = "testing")]
pub mod testing;

pub use backend::{Backend, BackendExt, Checkpoint, GetResult, ListStream, ObjectMeta, Prepare, UploadStatus};
pub use blob::{BlobLayout, BlobStore, BlobWriter};
pub use config::{FsConfig, S3Config, Secret, StorageConfig, parse_duration};
pub use digest::{Algorithm, Digest, Hasher, VerifyingStream};
pub use error::{BoxError, Error, Result};
pub use fs::FsBackend;
pub use key::{Key, MAX_KEY_LEN, MAX_SEGMENT_LEN};
pub use names::{MAX_NAME_LEN, RepositoryName, Tag, UploadId};
pub use range::ByteRange;
pub use s3::S3Backend;
pub use stream::ByteStream;
