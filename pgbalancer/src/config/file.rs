//! The YAML file, as written: every key optional, unknown keys refused, durations as `"1s"` or
//! `"250ms"`. Defaults are applied later, in [`super::Config`], after the flags are layered on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, OnDown, RoleFilter};
use crate::cli::LogFormat;
use crate::tls::{ServerTlsMode, TlsMode};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    /// `NAME:PORT` or `IP:PORT`; checked in [`super::Config`].
    pub upstream: Option<String>,
    pub admin: Option<SocketAddr>,
    pub resolver: Option<SocketAddr>,
    #[serde(default, with = "humantime_serde")]
    pub resolve_interval: Option<Duration>,
    #[serde(default)]
    pub check: FileCheck,
    #[serde(default, with = "humantime_serde")]
    pub hold_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub first_answer_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub client_timeout: Option<Duration>,
    pub max_connections: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    pub shutdown_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub shutdown_delay: Option<Duration>,
    pub on_down: Option<OnDown>,
    pub log_format: Option<LogFormat>,
    #[serde(default)]
    pub tls: FileTls,
    pub server_tls: Option<ServerTlsMode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    pub mode: Option<TlsMode>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCheck {
    pub user: Option<String>,
    pub database: Option<String>,
    pub password_env: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    pub role: Option<RoleFilter>,
    pub fall: Option<u32>,
    pub rise: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub max_lag: Option<Duration>,
    pub max_lag_bytes: Option<u64>,
}

impl FileConfig {
    /// Reads and parses `path`; an error names the file and the key.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        // An empty file is a valid file with nothing in it.
        ops::yaml::parse(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            key: e.key,
            message: e.message,
        })
    }
}
