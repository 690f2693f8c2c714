//! The validated configuration the proxy runs with: real types, defaults applied.

use std::net::SocketAddr;
use std::time::Duration;

use discovery::{ResolverSpec, Target};

use super::file::{FileConfig, GroupFile};
use super::tuning::{Balance, CheckKind, FirstByte, FirstByteSpec};
use super::Limits;
use super::Overrides;
use super::{ConfigError, LogFormat};
use crate::access_log::AccessLog;
use crate::forwarding::Forwarding;

/// Everything the proxy needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub threads: usize,
    pub log_format: LogFormat,
    /// The access log on stdout; reloadable.
    pub access_log: AccessLog,
    /// Forwarding headers set on every upstream request; reloadable.
    pub forwarding: Forwarding,
    pub resolver: ResolverSpec,
    pub resolve_interval: Duration,
    pub shutdown_timeout: Duration,
    /// On SIGTERM, how long to keep accepting (with /readyz 503) before draining.
    pub shutdown_delay: Duration,
    pub upstream: UpstreamSettings,
    pub health: HealthSettings,
    pub limits: Limits,
    pub groups: Vec<GroupConfig>,
}

/// How requests reach endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// Connect timeout of the last endpoint left to try (nginx: 60 s; Pingora: none).
    pub connect_timeout: Duration,
    /// Connect timeout while other endpoints remain: bounds the cost of a blackholed pod IP.
    pub failover_connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    /// How long an idle pooled upstream connection is kept.
    pub idle_timeout: Duration,
    /// Attempts per request, including the first.
    pub max_attempts: u32,
    /// How long a request waits for an endpoint to appear before 503.
    pub hold_timeout: Duration,
    /// Longest quiet time of an upgraded connection, in either direction.
    pub tunnel_idle_timeout: Duration,
    pub balance: Balance,
    /// How long an attempt waits for its first byte while another endpoint is left.
    pub first_byte: FirstByte,
}

/// Active health checks of every endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    pub interval: Duration,
    pub timeout: Duration,
    /// Default check; a group may override the HTTP path.
    pub kind: HealthKind,
    /// Consecutive failures that mark an endpoint down.
    pub fall: u32,
    /// Consecutive passes that mark it up again.
    pub rise: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthKind {
    /// A TCP connect succeeds.
    Tcp,
    /// `GET path` answers 2xx.
    Http { path: String },
    /// `GET path` gets an answer, whatever its status.
    Responds { path: String },
}

/// One upstream group and the requests it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    pub name: String,
    pub target: Target,
    /// Lower-case host names without port; empty matches any host.
    pub hosts: Vec<String>,
    pub path_prefix: String,
    pub health: HealthKind,
    /// How this group's next endpoint is chosen (`upstream.balance`).
    pub balance: Balance,
}

const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
const DEFAULT_ADMIN: &str = "127.0.0.1:9091";

impl Config {
    /// Merges what was given (flags, environment) over the file and applies defaults.
    pub fn build(given: &Overrides, file: FileConfig) -> Result<Self, ConfigError> {
        let secs = Duration::from_secs;
        let ms = Duration::from_millis;
        let up = &file.upstream;
        let upstream = UpstreamSettings {
            // Linux retransmits a lost SYN after 1 s: the last candidate gets longer than that.
            connect_timeout: given
                .connect_timeout
                .or(up.connect_timeout)
                .unwrap_or(secs(2)),
            failover_connect_timeout: given
                .failover_connect_timeout
                .or(up.failover_connect_timeout)
                .unwrap_or(ms(250)),
            read_timeout: up.read_timeout.unwrap_or(secs(60)),
            write_timeout: up.write_timeout.unwrap_or(secs(60)),
            idle_timeout: up.idle_timeout.unwrap_or(secs(60)),
            max_attempts: given.max_attempts.or(up.max_attempts).unwrap_or(3),
            hold_timeout: given.hold_timeout.or(up.hold_timeout).unwrap_or(secs(10)),
            tunnel_idle_timeout: given
                .tunnel_idle_timeout
                .or(up.tunnel_idle_timeout)
                .unwrap_or(secs(3600)),
            balance: given.balance.or(up.balance).unwrap_or_default(),
            first_byte: FirstByte {
                spec: given
                    .first_byte_timeout
                    .or(up.first_byte_timeout)
                    .unwrap_or(FirstByteSpec::Auto),
                min: up.first_byte_timeout_min.unwrap_or(secs(1)),
                max: up.first_byte_timeout_max.unwrap_or(secs(10)),
            },
        };
        if upstream.first_byte.min > upstream.first_byte.max || upstream.first_byte.min.is_zero() {
            return Err(ConfigError::invalid(
                "upstream.first_byte_timeout_min",
                "must be above zero and at most upstream.first_byte_timeout_max",
            ));
        }
        let path = given.health_path.clone().or(file.health.path.clone());
        let kind = given
            .health_kind
            .or(file.health.kind)
            .unwrap_or(if path.is_some() {
                CheckKind::Http
            } else {
                CheckKind::Responds
            });
        let default_kind = match kind {
            CheckKind::Tcp => HealthKind::Tcp,
            CheckKind::Http => HealthKind::Http {
                path: check_path(
                    "health.path",
                    path.ok_or_else(|| {
                        ConfigError::invalid("health.path", "the http check needs a path")
                    })?,
                )?,
            },
            CheckKind::Responds => HealthKind::Responds {
                path: check_path("health.path", path.unwrap_or_else(|| "/".into()))?,
            },
        };
        let health = HealthSettings {
            interval: given
                .health_interval
                .or(file.health.interval)
                .unwrap_or(secs(1)),
            timeout: file.health.timeout.unwrap_or(secs(1)),
            kind: default_kind,
            fall: file.health.fall.unwrap_or(2),
            rise: file.health.rise.unwrap_or(1),
        };

        let mut groups = file
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| group(i, g, &health.kind, upstream.balance))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(target) = &given.upstream {
            groups.retain(|g| g.name != "default");
            groups.push(GroupConfig {
                name: "default".into(),
                target: target
                    .parse()
                    .map_err(|e| ConfigError::invalid("--upstream", format!("{e}")))?,
                hosts: Vec::new(),
                path_prefix: "/".into(),
                health: health.kind.clone(),
                balance: upstream.balance,
            });
        }

        let config = Self {
            listen: given
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            admin: given
                .admin
                .or(file.admin)
                .unwrap_or_else(|| DEFAULT_ADMIN.parse().expect("valid default")),
            threads: given
                .threads
                .or(file.threads)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            log_format: given.log_format.or(file.log_format).unwrap_or_default(),
            access_log: given.access_log.or(file.access_log).unwrap_or_default(),
            forwarding: given
                .forwarding
                .or_else(|| file.forwarded_headers.as_deref().map(Forwarding::of))
                .unwrap_or_default(),
            resolver: given
                .resolver
                .or(file.resolver)
                .map_or(ResolverSpec::System, ResolverSpec::At),
            resolve_interval: given
                .resolve_interval
                .or(file.resolve_interval)
                .unwrap_or(secs(1)),
            shutdown_timeout: given
                .shutdown_timeout
                .or(file.shutdown_timeout)
                .unwrap_or(secs(25)),
            shutdown_delay: given
                .shutdown_delay
                .or(file.shutdown_delay)
                .unwrap_or(Duration::ZERO),
            upstream,
            health,
            limits: Limits::build(given, &file.limits)?,
            groups,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("upstream.connect_timeout", self.upstream.connect_timeout),
            (
                "upstream.failover_connect_timeout",
                self.upstream.failover_connect_timeout,
            ),
            ("upstream.read_timeout", self.upstream.read_timeout),
            ("upstream.write_timeout", self.upstream.write_timeout),
            (
                "upstream.tunnel_idle_timeout",
                self.upstream.tunnel_idle_timeout,
            ),
            ("health.interval", self.health.interval),
            ("health.timeout", self.health.timeout),
            ("resolve_interval", self.resolve_interval),
        ];
        for (key, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::invalid(key, "must be longer than 0s"));
            }
        }
        if self.upstream.max_attempts == 0 {
            return Err(ConfigError::invalid(
                "upstream.max_attempts",
                "must be at least 1",
            ));
        }
        if self.health.fall == 0 || self.health.rise == 0 {
            return Err(ConfigError::invalid(
                "health.fall/rise",
                "must be at least 1",
            ));
        }
        if self.threads == 0 {
            return Err(ConfigError::invalid("threads", "must be at least 1"));
        }
        if self.groups.is_empty() {
            return Err(ConfigError::invalid(
                "--upstream",
                "no upstream: give --upstream NAME:PORT or `groups` in --config",
            ));
        }
        for (i, g) in self.groups.iter().enumerate() {
            if self.groups[..i].iter().any(|o| o.name == g.name) {
                return Err(ConfigError::invalid(
                    format!("groups[{i}].name"),
                    format!("`{}` is used twice", g.name),
                ));
            }
        }
        Ok(())
    }
}

fn group(
    i: usize,
    g: &GroupFile,
    default_health: &HealthKind,
    balance: Balance,
) -> Result<GroupConfig, ConfigError> {
    let key = |k: &str| format!("groups[{i}].{k}");
    if g.name.is_empty() {
        return Err(ConfigError::invalid(key("name"), "must not be empty"));
    }
    let target = g
        .upstream
        .parse()
        .map_err(|e| ConfigError::invalid(key("upstream"), format!("{e}")))?;
    let path_prefix = g.path_prefix.clone().unwrap_or_else(|| "/".into());
    if !path_prefix.starts_with('/') {
        return Err(ConfigError::invalid(
            key("path_prefix"),
            "must start with `/`",
        ));
    }
    let health = match &g.health_path {
        Some(path) => HealthKind::Http {
            path: check_path(&key("health_path"), path.clone())?,
        },
        None => default_health.clone(),
    };
    Ok(GroupConfig {
        name: g.name.clone(),
        target,
        hosts: g.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        path_prefix,
        health,
        balance,
    })
}

/// A health check path: exactly what the checker will build its request from must build.
fn check_path(key: &str, path: String) -> Result<String, ConfigError> {
    crate::check_request::build(&path, "health-check.invalid")
        .map(|_| path)
        .map_err(|reason| ConfigError::invalid(key, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(args: &[&str], yaml: &str) -> Result<Config, ConfigError> {
        use clap::Parser;
        let mut argv = vec!["proxy"];
        argv.extend_from_slice(args);
        let cli = crate::Cli::try_parse_from(argv).expect("flags parse");
        let file = FileConfig::parse(yaml).map_err(|(key, message)| ConfigError::Parse {
            path: "test.yaml".into(),
            key,
            message,
        })?;
        Config::build(&crate::config::Source::from(&cli).overrides, file)
    }

    #[test]
    fn drop_in_flags_need_no_file_and_get_the_documented_defaults() {
        let c = build(
            &[
                "--upstream",
                "backend-headless.highload-dns.svc.cluster.local:8000",
            ],
            "",
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.admin, "127.0.0.1:9091".parse().unwrap());
        assert_eq!(c.upstream.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.upstream.hold_timeout, Duration::from_secs(10));
        assert_eq!(c.upstream.balance, Balance::LeastLoaded);
        assert_eq!(c.upstream.first_byte.spec, FirstByteSpec::Auto);
        assert_eq!(c.health.interval, Duration::from_secs(1));
        assert_eq!(
            c.health.kind,
            HealthKind::Responds { path: "/".into() },
            "the default check tells a frozen pod from a live one"
        );
        assert_eq!(c.groups.len(), 1);
        assert_eq!(c.groups[0].name, "default");
        assert_eq!(c.resolver, ResolverSpec::System);
    }

    #[test]
    fn flags_override_the_file() {
        let yaml = "listen: 127.0.0.1:1000\nupstream:\n  hold_timeout: 3s\n  connect_timeout: 2s\ngroups:\n  - name: api\n    upstream: api:80\n    hosts: [API.example.com]\n    path_prefix: /api\n";
        let c = build(
            &["--listen", "127.0.0.1:2000", "--hold-timeout", "500ms"],
            yaml.replace("connect_timeout: 2s", "connect_timeout: 3s")
                .as_str(),
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:2000".parse().unwrap());
        assert_eq!(c.upstream.hold_timeout, Duration::from_millis(500));
        assert_eq!(c.upstream.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.groups[0].hosts, vec!["api.example.com".to_string()]);
        assert_eq!(c.groups[0].path_prefix, "/api");
    }

    #[test]
    fn errors_name_the_key() {
        let err = build(&[], "upstream:\n  hold_timeout: soon\n").unwrap_err();
        assert!(err.to_string().contains("upstream.hold_timeout"), "{err}");

        let err = build(&[], "listen: 127.0.0.1:80\nlisten_typo: 1\n").unwrap_err();
        assert!(err.to_string().contains("listen_typo"), "{err}");

        let err = build(&[], "groups:\n  - name: a\n    upstream: nope\n").unwrap_err();
        assert!(err.to_string().contains("groups[0].upstream"), "{err}");

        let err = build(&[], "").unwrap_err();
        assert!(err.to_string().contains("--upstream"), "{err}");

        let err = build(&["--upstream", "a:1", "--max-attempts", "0"], "").unwrap_err();
        assert!(err.to_string().contains("max_attempts"), "{err}");
    }
}
