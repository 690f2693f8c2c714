//! Command-line flags. Every flag can also come from the environment (`PROXY_*`); both override
//! the file given with `--config`. Defaults are applied after merging, in [`crate::config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::access_log::AccessLog;
use crate::config::{Balance, CheckKind, FirstByteSpec, LogFormat, Overrides, Source};
use crate::forwarding::Forwarding;

/// HTTP reverse proxy that follows a Kubernetes headless Service through DNS.
///
/// Re-resolves the upstream name continuously, sends each request to the least loaded healthy
/// pod IP, retries on another pod when one vanishes or does not answer, and holds requests
/// briefly instead of failing while no pod exists. Every response carries `X-Upstream-Addr`.
#[derive(Debug, Default, Parser)]
#[command(name = "proxy", version, about, long_about)]
pub struct Cli {
    /// YAML file with upstream groups (routed by host and path prefix) and every tunable.
    #[arg(long, env = "PROXY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Validate the configuration, print a summary and exit (0 valid, 2 invalid).
    #[arg(long)]
    pub check_config: bool,

    /// Address clients connect to. [default: 0.0.0.0:8080]
    #[arg(long, env = "PROXY_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Upstream as NAME:PORT (a headless Service, re-resolved continuously) or IP:PORT. Becomes the
    /// catch-all group `default`, beside any groups from the file.
    #[arg(long, env = "PROXY_UPSTREAM", value_name = "NAME:PORT")]
    pub upstream: Option<String>,

    /// Admin listener: /metrics, /healthz, /status. [default: 127.0.0.1:9091]
    #[arg(long, env = "PROXY_ADMIN", value_name = "ADDR")]
    pub admin: Option<SocketAddr>,

    /// DNS server to ask instead of those in /etc/resolv.conf (its search list still applies).
    #[arg(long, env = "PROXY_RESOLVER", value_name = "IP:PORT")]
    pub resolver: Option<SocketAddr>,

    /// Longest time between DNS lookups; a shorter record TTL re-resolves sooner. [default: 1s]
    #[arg(long, env = "PROXY_RESOLVE_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub resolve_interval: Option<Duration>,

    /// Upstream connect timeout when no other endpoint is left to try: above Linux' 1 s SYN
    /// retransmit, so one dropped SYN (a new pod's full accept queue) does not fail it.
    /// [default: 2s]
    #[arg(long, env = "PROXY_CONNECT_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub connect_timeout: Option<Duration>,

    /// Connect timeout while another endpoint is left to try: a pod whose IP stopped answering
    /// costs a request at most this long. [default: 250ms]
    #[arg(long, env = "PROXY_FAILOVER_CONNECT_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub failover_connect_timeout: Option<Duration>,

    /// How long a request waits for an endpoint when none is known or healthy, before 503.
    /// [default: 10s]
    #[arg(long, env = "PROXY_HOLD_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub hold_timeout: Option<Duration>,

    /// An upgraded connection (websocket, any `Upgrade` answered 101) is a tunnel: no body size
    /// or body timeout applies, and it is closed only after nothing crossed it in one direction
    /// for this long. [default: 1h]
    #[arg(long, env = "PROXY_TUNNEL_IDLE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub tunnel_idle_timeout: Option<Duration>,

    /// Attempts per request, on different endpoints where possible. [default: 3]
    #[arg(long, env = "PROXY_MAX_ATTEMPTS", value_name = "N")]
    pub max_attempts: Option<u32>,

    /// How the next endpoint is chosen: least_loaded (two at random, the one with less in
    /// flight per its response time) or round_robin. [default: least_loaded]
    #[arg(long, env = "PROXY_BALANCE", value_name = "HOW")]
    pub balance: Option<Balance>,

    /// How long an idempotent request's attempt waits for its answer while another endpoint is
    /// left to try, before that one gets the request: auto (5x the group's response time, within
    /// upstream.first_byte_timeout_min/max), a duration, or off. [default: auto]
    #[arg(
        long,
        env = "PROXY_FIRST_BYTE_TIMEOUT",
        value_name = "auto|off|DURATION"
    )]
    pub first_byte_timeout: Option<FirstByteSpec>,

    /// Default active check: responds (GET the health path, default /, any answer within the
    /// timeout: sees a frozen pod), http (GET the health path answers 2xx) or tcp (a connect;
    /// cannot see a frozen pod). [default: responds]
    #[arg(long, env = "PROXY_HEALTH_KIND", value_name = "KIND")]
    pub health_kind: Option<CheckKind>,

    /// Path of the active health check; given alone, the check expects 2xx (kind http).
    #[arg(long, env = "PROXY_HEALTH_PATH", value_name = "PATH")]
    pub health_path: Option<String>,

    /// Time between active health checks of each endpoint. [default: 1s]
    #[arg(long, env = "PROXY_HEALTH_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub health_interval: Option<Duration>,

    /// Worker threads. [default: number of CPUs]
    #[arg(long, env = "PROXY_THREADS", value_name = "N")]
    pub threads: Option<usize>,

    /// On SIGTERM, first keep accepting for this long while /readyz answers 503, so that
    /// Kubernetes (or any balancer probing /readyz) takes the pod out of its Service before it
    /// stops listening; then drain. 0s stops accepting at once. [default: 0s]
    #[arg(long, env = "PROXY_SHUTDOWN_DELAY", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Option<Duration>,

    /// On SIGTERM, after the shutdown delay, how long in-flight requests may take before the
    /// process exits anyway. [default: 25s]
    #[arg(long, env = "PROXY_SHUTDOWN_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Option<Duration>,

    /// Client connections open at once; one more is answered 503 and closed. [default: 4096]
    #[arg(long, env = "PROXY_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// A request header must arrive whole within this (from the connection's opening, or on a
    /// kept-alive connection from the next request's first byte), or the connection is closed:
    /// bounds slowloris clients. An idle kept-alive connection is closed after it too. [default: 10s]
    #[arg(long, env = "PROXY_HEADER_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub header_timeout: Option<Duration>,

    /// Longest wait between two reads of a request body before the request fails. [default: 10s]
    #[arg(long, env = "PROXY_BODY_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub body_timeout: Option<Duration>,

    /// Largest request body; more is answered 413. [default: 1048576]
    #[arg(long, env = "PROXY_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<u64>,

    /// Log format: text or json (one JSON object per line). [default: text]
    #[arg(long, env = "PROXY_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Access log on stdout, one line per request: `text` (logfmt: client, method, target, host,
    /// status, bytes in and out, group, upstream, attempts, held, upstream and total time, user
    /// agent), `json` (the same fields) or `off`. [default: text]
    #[arg(long, env = "PROXY_ACCESS_LOG", value_enum)]
    pub access_log: Option<AccessLog>,

    /// Headers that tell the upstream who the client is, comma-separated: x-forwarded-for
    /// (appended), x-forwarded-proto, x-real-ip, forwarded (RFC 7239, appended); or `none`.
    /// [default: x-forwarded-for,x-forwarded-proto,x-real-ip]
    #[arg(long, env = "PROXY_FORWARDED_HEADERS", value_name = "LIST")]
    pub forwarded_headers: Option<Forwarding>,
}

impl From<&Cli> for Source {
    /// The file named by `--config` under every flag (and `PROXY_*` variable) given.
    fn from(cli: &Cli) -> Self {
        Self {
            file: cli.config.clone(),
            overrides: Overrides {
                listen: cli.listen,
                upstream: cli.upstream.clone(),
                admin: cli.admin,
                resolver: cli.resolver,
                resolve_interval: cli.resolve_interval,
                connect_timeout: cli.connect_timeout,
                failover_connect_timeout: cli.failover_connect_timeout,
                hold_timeout: cli.hold_timeout,
                tunnel_idle_timeout: cli.tunnel_idle_timeout,
                max_attempts: cli.max_attempts,
                health_path: cli.health_path.clone(),
                health_kind: cli.health_kind,
                balance: cli.balance,
                first_byte_timeout: cli.first_byte_timeout,
                health_interval: cli.health_interval,
                threads: cli.threads,
                shutdown_delay: cli.shutdown_delay,
                shutdown_timeout: cli.shutdown_timeout,
                max_connections: cli.max_connections,
                header_timeout: cli.header_timeout,
                body_timeout: cli.body_timeout,
                max_body_bytes: cli.max_body_bytes,
                log_format: cli.log_format,
                access_log: cli.access_log,
                forwarding: cli.forwarded_headers,
            },
        }
    }
}
