//! The layer above the file: what the command line and the environment set (`Cli` fills it in
//! `main`; tests and embedders fill it directly), and where the file is. Every field is `None`
//! unless given, so the file and then the defaults apply.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::file::FileConfig;
use super::tuning::{Balance, CheckKind, FirstByteSpec};
use super::{Config, ConfigError, LogFormat};
use crate::access_log::AccessLog;
use crate::forwarding::Forwarding;

#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub upstream: Option<String>,
    pub admin: Option<SocketAddr>,
    pub resolver: Option<SocketAddr>,
    pub resolve_interval: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub failover_connect_timeout: Option<Duration>,
    pub hold_timeout: Option<Duration>,
    pub tunnel_idle_timeout: Option<Duration>,
    pub max_attempts: Option<u32>,
    pub health_path: Option<String>,
    pub health_kind: Option<CheckKind>,
    pub balance: Option<Balance>,
    pub first_byte_timeout: Option<FirstByteSpec>,
    pub health_interval: Option<Duration>,
    pub threads: Option<usize>,
    pub shutdown_delay: Option<Duration>,
    pub shutdown_timeout: Option<Duration>,
    pub max_connections: Option<usize>,
    pub header_timeout: Option<Duration>,
    pub body_timeout: Option<Duration>,
    pub max_body_bytes: Option<u64>,
    pub log_format: Option<LogFormat>,
    pub access_log: Option<AccessLog>,
    pub forwarding: Option<Forwarding>,
}

/// Where a configuration comes from: the file (if any) under the overrides. A reload reads the
/// same source again.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub file: Option<PathBuf>,
    pub overrides: Overrides,
}

impl Source {
    /// Reads the file (if any) and builds the validated configuration.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let file = match &self.file {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Config::build(&self.overrides, file)
    }
}
