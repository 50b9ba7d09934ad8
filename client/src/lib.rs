//! `strata-client`: the library behind the `strata` CLI (login, pull, push, copy, inspect).
//!
//! Not built yet: this crate is a shell until the client issue lands.
