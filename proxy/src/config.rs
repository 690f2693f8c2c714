//! Configuration: the file layer ([`file`]), the command line ([`crate::cli`]) and the validated
//! [`Config`] the proxy runs with. Precedence: flag > environment > file > default.

pub mod file;
mod internal;
mod limits;
mod overrides;
pub mod tuning;

use std::path::PathBuf;

pub use internal::{Config, GroupConfig, HealthKind, HealthSettings, UpstreamSettings};
pub use limits::Limits;
pub use overrides::{Overrides, Source};
pub use tuning::{Balance, CheckKind, FirstByte, FirstByteSpec};

/// How the access log and other logs are written (`text` or `json`).
pub use ops::logging::LogFormat;

/// A configuration that cannot be used. The binary prints it and exits with code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: key `{key}`: {message}")]
    Parse {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("`{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}
