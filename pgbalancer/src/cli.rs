//! The command line. Every setting is optional here: [`crate::config`] layers these flags (and
//! their environment variables, which clap reads) over the file and the defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use discovery::Target;

use crate::policy::{OnDown, RoleFilter};

/// A TCP balancer for Postgres read replicas: follows every A record of a DNS name, checks each
/// server with a real login, and spreads client connections round-robin over the healthy ones.
///
/// Precedence: flag > environment variable > config file > default.
#[derive(Debug, Default, Parser)]
#[command(name = "pgbalancer", version, max_term_width = 100)]
pub struct Cli {
    /// YAML config file with any of the settings below (see pgbalancer.example.yaml).
    #[arg(long, env = "PGBALANCER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Validate the configuration, print it (without secrets) and exit: 0 if valid, 2 if not.
    #[arg(long)]
    pub check_config: bool,

    /// Address clients connect to. [default: 0.0.0.0:5432]
    #[arg(long, env = "PGBALANCER_LISTEN", value_name = "IP:PORT")]
    pub listen: Option<SocketAddr>,

    /// The servers: NAME:PORT, every A record of NAME is one (a headless Service), re-resolved
    /// continuously; or IP:PORT for a single server. Required here or in the file.
    #[arg(long, env = "PGBALANCER_UPSTREAM", value_name = "NAME:PORT")]
    pub upstream: Option<Target>,

    /// Admin HTTP listener: /metrics, /healthz, /status, and an HTML stats page at /.
    /// [default: 127.0.0.1:9187]
    #[arg(long, env = "PGBALANCER_ADMIN", value_name = "IP:PORT")]
    pub admin: Option<SocketAddr>,

    /// DNS server to ask instead of /etc/resolv.conf's (search list and ndots still come from
    /// /etc/resolv.conf).
    #[arg(long, env = "PGBALANCER_RESOLVER", value_name = "IP:PORT")]
    pub resolver: Option<SocketAddr>,

    /// Longest time between two DNS lookups; a shorter record TTL re-resolves sooner. [default: 1s]
    #[arg(long, env = "PGBALANCER_RESOLVE_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub resolve_interval: Option<Duration>,

    /// User the health check logs in as. Required here or in the file.
    #[arg(long, env = "PGBALANCER_CHECK_USER", value_name = "USER")]
    pub check_user: Option<String>,

    /// Database the health check logs in to. Required here or in the file.
    #[arg(long, env = "PGBALANCER_CHECK_DATABASE", value_name = "DB")]
    pub check_database: Option<String>,

    /// Name of the environment variable holding the health check's password (e.g. from a
    /// Kubernetes Secret). The password itself is never taken from the command line.
    #[arg(long, env = "PGBALANCER_CHECK_PASSWORD_ENV", value_name = "VAR")]
    pub check_password_env: Option<String>,

    /// Time between two health checks of one server. [default: 1s]
    #[arg(long, env = "PGBALANCER_CHECK_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub check_interval: Option<Duration>,

    /// A health check (login and query) that takes longer fails. [default: 1s]
    #[arg(long, env = "PGBALANCER_CHECK_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub check_timeout: Option<Duration>,

    /// Which servers may take clients: `replica` (in recovery), `primary` (not in recovery) or
    /// `any`. [default: replica]
    #[arg(long, env = "PGBALANCER_ROLE", value_name = "ROLE")]
    pub role: Option<RoleFilter>,

    /// Consecutive failed checks that mark an up server down. [default: 2]
    #[arg(long, env = "PGBALANCER_FALL", value_name = "N")]
    pub fall: Option<u32>,

    /// Consecutive passed checks that mark a down (or new) server up. [default: 1]
    #[arg(long, env = "PGBALANCER_RISE", value_name = "N")]
    pub rise: Option<u32>,

    /// A replica whose replay lags more than this behind what it received fails its check (an
    /// idle primary is no lag: with nothing left to replay the lag is 0); 0 = no limit.
    /// [default: 30s]
    #[arg(long, env = "PGBALANCER_MAX_LAG", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_lag: Option<Duration>,

    /// A replica with more received-but-not-replayed WAL than this many bytes fails its check;
    /// 0 = no limit. [default: 67108864]
    #[arg(long, env = "PGBALANCER_MAX_LAG_BYTES", value_name = "BYTES")]
    pub max_lag_bytes: Option<u64>,

    /// What happens to a server's open sessions when it is marked down (or leaves DNS): `keep`
    /// them, or `shutdown` (close) them. [default: keep]
    #[arg(long, env = "PGBALANCER_ON_DOWN", value_name = "ACTION")]
    pub on_down: Option<OnDown>,

    /// With no healthy server, a new client waits this long for one, then gets SQLSTATE 57P03.
    /// [default: 5s]
    #[arg(long, env = "PGBALANCER_HOLD_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub hold_timeout: Option<Duration>,

    /// TCP connect timeout to a server; on failure the next server is tried. [default: 1s]
    #[arg(long, env = "PGBALANCER_CONNECT_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub connect_timeout: Option<Duration>,

    /// How long a server may take to answer a client's first packet (StartupMessage or
    /// SSLRequest) while another server is left to try; then the client goes to that one. A
    /// frozen server (its kernel still completes the TCP handshake) costs a new client at most
    /// this. The last server left waits as long as the client does. [default: 1s]
    #[arg(long, env = "PGBALANCER_FIRST_ANSWER_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub first_answer_timeout: Option<Duration>,

    /// A client must send its first packet within this. [default: 10s]
    #[arg(long, env = "PGBALANCER_CLIENT_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub client_timeout: Option<Duration>,

    /// Client connections served at once; one more gets SQLSTATE 53300 ("too many clients") and is
    /// closed. [default: 2000]
    #[arg(long, env = "PGBALANCER_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// On SIGTERM, first keep accepting for this long while /readyz answers 503, so that
    /// Kubernetes takes the pod out of its Service before it stops listening (endpoint removal and
    /// SIGTERM race there). SIGINT skips it. [default: 0s]
    #[arg(long, env = "PGBALANCER_SHUTDOWN_DELAY", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Option<Duration>,

    /// On SIGTERM/SIGINT, after the shutdown delay: stop accepting, let open sessions run this
    /// long, then exit. [default: 10s]
    #[arg(long, env = "PGBALANCER_SHUTDOWN_GRACE", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Option<Duration>,

    /// Clients' TLS: `off` relays an SSLRequest to the server (the session stays opaque to
    /// pgbalancer, so its cancels are sent to every healthy server); `prefer` terminates it here
    /// with --tls-cert/--tls-key and serves plain clients too; `require` refuses plain logins.
    /// [default: prefer with a certificate, else off]
    #[arg(long, env = "PGBALANCER_TLS_MODE", value_name = "MODE")]
    pub tls_mode: Option<crate::tls::TlsMode>,

    /// PEM certificate chain (leaf first) pgbalancer presents to clients, e.g. a Kubernetes TLS
    /// Secret's tls.crt.
    #[arg(long, env = "PGBALANCER_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1), e.g. the Secret's tls.key.
    #[arg(long, env = "PGBALANCER_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// TLS to the servers, for sessions and health checks: `off` (plain TCP), `prefer` (TLS where
    /// the server has ssl on), `require` (a server that refuses TLS is not used). The servers'
    /// certificates are not verified (libpq's sslmode=require). [default: off]
    #[arg(long, env = "PGBALANCER_SERVER_TLS", value_name = "MODE")]
    pub server_tls: Option<crate::tls::ServerTlsMode>,

    /// Log format: `text` or `json`. The level comes from RUST_LOG (default info). [default: text]
    #[arg(long, env = "PGBALANCER_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// How log lines are written (`text` or `json`).
pub use ops::logging::LogFormat;
