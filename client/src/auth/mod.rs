//! Registry credentials: docker's `config.json` and credential helpers ([`config`]). The
//! challenge flow itself ([`Challenge`], [`Authenticator`]) is `strata_distribution::auth`'s.

pub mod config;
mod helper;

pub use config::DockerConfig;
pub use strata_distribution::Credentials;
pub use strata_distribution::auth::{Authenticator, Challenge};
