//! The resource limits' settings: what one hostile or broken client may cost the proxy, with
//! their defaults and validation. [`crate::limits`] enforces them.

use std::time::Duration;

use super::file::LimitsFile;
use super::{ConfigError, Overrides};

/// Client-side limits, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Client connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// From the moment the proxy waits for a request on a connection (a new one, or an idle
    /// keep-alive one) until its whole header has arrived; then the connection is closed.
    pub header_timeout: Duration,
    /// Longest wait for the next piece of a request body (between two reads, like nginx's
    /// `client_body_timeout`); then the request fails and the connection is closed.
    pub body_timeout: Duration,
    /// Request target (path and query) length; longer gets 414.
    pub max_uri_bytes: usize,
    /// Request line plus header lines; larger gets 431.
    pub max_header_bytes: usize,
    /// Header lines; more get 431.
    pub max_headers: usize,
    /// Request body; a larger `Content-Length` gets 413 before anything is forwarded, a chunked
    /// body is cut off with 413 when it passes the limit.
    pub max_body_bytes: u64,
}

/// HAProxy's documentation recommends `timeout http-request 10s`; nginx's 60 s lets one slowloris
/// connection live a minute per header. A real client sends its header in one packet.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// nginx `client_body_timeout` is 60 s; an upload that stalls 10 s between two reads is a client
/// we are willing to lose.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// nginx `large_client_header_buffers 4 8k`: one line at most 8 KiB.
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;
/// nginx `large_client_header_buffers 4 8k`: 32 KiB for the whole header.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
/// Apache `LimitRequestFields 100`, HAProxy `tune.http.maxhdr 101`.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// nginx `client_max_body_size 1m`.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// nginx's Debian default is 768 connections per worker; HAProxy derives `maxconn` from the file
/// descriptor limit. 4096 keeps a flood of idle connections to a few tens of MiB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Pingora refuses a header above this (400) whatever we configure; a larger limit would never
/// apply.
const PINGORA_MAX_HEADER_BYTES: usize = 1_048_575;
/// Pingora's parser holds at most this many header lines (more: 400).
const PINGORA_MAX_HEADERS: usize = 256;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl Limits {
    /// Flags and environment over the file's `limits:` section over the defaults, checked.
    pub fn build(given: &Overrides, file: &LimitsFile) -> Result<Self, ConfigError> {
        let d = Self::default();
        let limits = Self {
            max_connections: given
                .max_connections
                .or(file.max_connections)
                .unwrap_or(d.max_connections),
            header_timeout: given
                .header_timeout
                .or(file.header_timeout)
                .unwrap_or(d.header_timeout),
            body_timeout: given
                .body_timeout
                .or(file.body_timeout)
                .unwrap_or(d.body_timeout),
            max_uri_bytes: file.max_uri_bytes.unwrap_or(d.max_uri_bytes),
            max_header_bytes: file.max_header_bytes.unwrap_or(d.max_header_bytes),
            max_headers: file.max_headers.unwrap_or(d.max_headers),
            max_body_bytes: given
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(d.max_body_bytes),
        };
        limits.validate()?;
        Ok(limits)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("limits.header_timeout", self.header_timeout),
            ("limits.body_timeout", self.body_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::invalid(key, "must be longer than 0s"));
            }
        }
        for (key, value) in [
            ("limits.max_connections", self.max_connections),
            ("limits.max_uri_bytes", self.max_uri_bytes),
            ("limits.max_header_bytes", self.max_header_bytes),
            ("limits.max_headers", self.max_headers),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        if self.max_header_bytes > PINGORA_MAX_HEADER_BYTES {
            return Err(ConfigError::invalid(
                "limits.max_header_bytes",
                format!("at most {PINGORA_MAX_HEADER_BYTES} (Pingora refuses larger headers)"),
            ));
        }
        if self.max_headers > PINGORA_MAX_HEADERS {
            return Err(ConfigError::invalid(
                "limits.max_headers",
                format!("at most {PINGORA_MAX_HEADERS} (Pingora refuses more header lines)"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(args: &[&str], yaml: &str) -> Result<Limits, ConfigError> {
        use clap::Parser;
        let mut argv = vec!["proxy"];
        argv.extend_from_slice(args);
        let cli = crate::Cli::try_parse_from(argv).expect("flags parse");
        let file: LimitsFile = serde_norway::from_str(yaml).expect("yaml parses");
        Limits::build(&crate::config::Source::from(&cli).overrides, &file)
    }

    #[test]
    fn defaults_apply_and_flags_beat_the_file() {
        assert_eq!(build(&[], "{}").unwrap(), Limits::default());
        let l = build(
            &["--max-connections", "7", "--header-timeout", "2s"],
            "max_connections: 9\nheader_timeout: 5s\nmax_uri_bytes: 100\n",
        )
        .unwrap();
        assert_eq!(l.max_connections, 7);
        assert_eq!(l.header_timeout, Duration::from_secs(2));
        assert_eq!(l.max_uri_bytes, 100);
        assert_eq!(l.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn limits_that_cannot_work_are_config_errors_naming_the_key() {
        for (yaml, key) in [
            ("max_connections: 0", "limits.max_connections"),
            ("header_timeout: 0s", "limits.header_timeout"),
            ("max_headers: 300", "limits.max_headers"),
            ("max_header_bytes: 2000000", "limits.max_header_bytes"),
        ] {
            let err = build(&[], yaml).unwrap_err();
            assert!(err.to_string().contains(key), "{yaml}: {err}");
        }
    }
}
