//! `strata-tests`: end-to-end and interoperability tests across the Strata crates and real
//! third-party tools. The storage crate's own conformance suite lives in `storage/tests/`.
