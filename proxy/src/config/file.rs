//! The YAML file, as written by an operator. Every field is optional here: the CLI and the
//! environment may supply it, and [`super::Config`] applies the defaults after merging.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::tuning::{Balance, CheckKind, FirstByteSpec};
use super::{ConfigError, LogFormat};
use crate::access_log::AccessLog;
use crate::forwarding::Forwarded;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where clients connect.
    pub listen: Option<SocketAddr>,
    /// The admin listener (/metrics, /healthz, /status).
    pub admin: Option<SocketAddr>,
    /// Worker threads for proxying.
    pub threads: Option<usize>,
    pub log_format: Option<LogFormat>,
    /// `off`, `text` or `json`.
    pub access_log: Option<AccessLog>,
    /// Forwarding headers to set: `[x-forwarded-for, x-forwarded-proto, x-real-ip, forwarded]`;
    /// `[]` for none.
    pub forwarded_headers: Option<Vec<Forwarded>>,
    /// DNS server to ask instead of /etc/resolv.conf's.
    pub resolver: Option<SocketAddr>,
    #[serde(default, with = "humantime_serde")]
    pub resolve_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub shutdown_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub shutdown_delay: Option<Duration>,
    #[serde(default)]
    pub upstream: UpstreamFile,
    #[serde(default)]
    pub health: HealthFile,
    #[serde(default)]
    pub limits: LimitsFile,
    /// Upstream groups, routed by host and path prefix.
    #[serde(default)]
    pub groups: Vec<GroupFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    #[serde(default, with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub failover_connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub read_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub write_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    pub max_attempts: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub hold_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub tunnel_idle_timeout: Option<Duration>,
    pub balance: Option<Balance>,
    pub first_byte_timeout: Option<FirstByteSpec>,
    #[serde(default, with = "humantime_serde")]
    pub first_byte_timeout_min: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub first_byte_timeout_max: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthFile {
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// `responds` (default), `http` or `tcp`.
    pub kind: Option<CheckKind>,
    /// The path of the `responds` and `http` checks; given alone, it means `http`.
    pub path: Option<String>,
    pub fall: Option<u32>,
    pub rise: Option<u32>,
}

/// What one client may cost; see [`crate::config::Limits`] for the meaning and defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_connections: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    pub header_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub body_timeout: Option<Duration>,
    pub max_uri_bytes: Option<usize>,
    pub max_header_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub max_body_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupFile {
    pub name: String,
    /// `name:port` (re-resolved continuously) or `ip:port`.
    pub upstream: String,
    /// Host header values this group serves; empty means any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Path prefix this group serves; the longest matching prefix wins.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Overrides `health.path` for this group.
    pub health_path: Option<String>,
}

impl FileConfig {
    /// Reads and parses `path`; errors name the file and the key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            source: e,
        })?;
        Self::parse(&text).map_err(|(key, message)| ConfigError::Parse {
            path: path.to_owned(),
            key,
            message,
        })
    }

    /// Parses YAML text; the error is (key path, message).
    pub fn parse(text: &str) -> Result<Self, (String, String)> {
        ops::yaml::parse(text).map_err(|e| (e.key, e.message))
    }
}
