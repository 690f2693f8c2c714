//! The command line (flag > environment > default) and the validated [`Config`] it becomes.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// How `/users` and `/readyz` reach the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ConnectMode {
    /// A fresh connection for every request, so a balancer in front of the replicas shows its
    /// choice request by request (what the original lab did).
    #[default]
    PerRequest,
    /// A small pool of connections, each replaced after `--pool-max-lifetime`.
    Pool,
}

/// The demo service behind the proxy: `GET /users` answers how many users there are, which pod
/// answered and which Postgres server served the query.
#[derive(Debug, Clone, Parser)]
#[command(name = "backend", version, about)]
pub struct Cli {
    /// Address and port to serve HTTP on.
    #[arg(long, env = "BACKEND_LISTEN", default_value = "0.0.0.0:8000")]
    pub listen: SocketAddr,

    /// Postgres connection URL, e.g. postgres://app:secret@pgbalancer:5432/app (TLS is not used).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Whether each request opens its own database connection or borrows one from a pool.
    #[arg(long, env = "BACKEND_DB_CONNECT", value_enum, default_value_t = ConnectMode::PerRequest)]
    pub db_connect: ConnectMode,

    /// Name reported as "pod" in /users; Kubernetes sets HOSTNAME to the pod name.
    #[arg(long, env = "HOSTNAME")]
    pub pod: Option<String>,

    /// After SIGTERM, how long /readyz answers 503 while requests are still served, so endpoints
    /// drop this pod before it stops listening.
    #[arg(long, env = "BACKEND_SHUTDOWN_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,

    /// Upper bound on opening a database connection (TCP connect plus the Postgres handshake).
    #[arg(long, env = "BACKEND_CONNECT_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// Upper bound on the /users query once connected.
    #[arg(long, env = "BACKEND_QUERY_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub query_timeout: Duration,

    /// /readyz answers 503 unless the database answered `SELECT 1` within this (connect included).
    #[arg(long, env = "BACKEND_READY_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub ready_timeout: Duration,

    /// With `--db-connect pool`: most connections held open at once.
    #[arg(long, env = "BACKEND_POOL_SIZE", default_value_t = 4)]
    pub pool_size: usize,

    /// With `--db-connect pool`: a connection older than this is closed instead of reused, so the
    /// load spreads again when replicas come and go.
    #[arg(long, env = "BACKEND_POOL_MAX_LIFETIME", default_value = "30s", value_parser = humantime::parse_duration)]
    pub pool_max_lifetime: Duration,

    /// Every /users answer comes this much later: a slow pod, for the gray-failure bench.
    #[arg(long, env = "BACKEND_RESPONSE_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub response_delay: Duration,
}

/// Validated settings the service runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database: tokio_postgres::Config,
    pub db_connect: ConnectMode,
    pub pod: String,
    pub shutdown_delay: Duration,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
    pub ready_timeout: Duration,
    pub pool_size: usize,
    pub pool_max_lifetime: Duration,
    pub response_delay: Duration,
}

/// The command line parsed but does not make a usable configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--database-url / DATABASE_URL is not a valid Postgres URL")]
    DatabaseUrl(#[source] tokio_postgres::Error),
    #[error("--pool-size must be at least 1")]
    PoolSize,
    #[error("--{0} must be longer than zero")]
    ZeroDuration(&'static str),
}

impl TryFrom<Cli> for Config {
    type Error = ConfigError;

    fn try_from(cli: Cli) -> Result<Self, Self::Error> {
        let mut database = tokio_postgres::Config::from_str(&cli.database_url)
            .map_err(ConfigError::DatabaseUrl)?;
        // tokio-postgres bounds each TCP connect with this; the whole handshake is bounded again
        // by `connect_timeout` around it.
        database.connect_timeout(cli.connect_timeout);
        database.application_name("backend");
        if cli.pool_size == 0 {
            return Err(ConfigError::PoolSize);
        }
        for (name, value) in [
            ("connect-timeout", cli.connect_timeout),
            ("query-timeout", cli.query_timeout),
            ("ready-timeout", cli.ready_timeout),
            ("pool-max-lifetime", cli.pool_max_lifetime),
        ] {
            if value.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        Ok(Self {
            listen: cli.listen,
            database,
            db_connect: cli.db_connect,
            pod: cli.pod.unwrap_or_else(system_hostname),
            shutdown_delay: cli.shutdown_delay,
            connect_timeout: cli.connect_timeout,
            query_timeout: cli.query_timeout,
            ready_timeout: cli.ready_timeout,
            pool_size: cli.pool_size,
            pool_max_lifetime: cli.pool_max_lifetime,
            response_delay: cli.response_delay,
        })
    }
}

impl Config {
    /// The defaults of the command line, with this database URL: handy for tests and the lab.
    pub fn with_database_url(url: &str) -> Result<Self, ConfigError> {
        let cli = Cli::parse_from(["backend", "--database-url", url, "--pod", "test"]);
        Self::try_from(cli)
    }
}

/// HOSTNAME is exported by Kubernetes but not by every shell; the kernel always knows the name.
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_into_config() {
        let cli = Cli::try_parse_from([
            "backend",
            "--database-url",
            "postgres://app@127.0.0.1:6432/app",
            "--db-connect",
            "pool",
            "--shutdown-delay",
            "250ms",
            "--listen",
            "127.0.1.5:8000",
            "--pod",
            "backend-7f9c",
        ])
        .unwrap();
        let config = Config::try_from(cli).unwrap();
        assert_eq!(config.db_connect, ConnectMode::Pool);
        assert_eq!(config.shutdown_delay, Duration::from_millis(250));
        assert_eq!(config.listen, "127.0.1.5:8000".parse().unwrap());
        assert_eq!(config.pod, "backend-7f9c");
        assert_eq!(config.database.get_ports(), &[6432]);
    }

    #[test]
    fn bad_url_and_zero_pool_are_errors() {
        let bad = Cli::try_parse_from(["backend", "--database-url", "postgres://[::1"]).unwrap();
        assert!(matches!(
            Config::try_from(bad),
            Err(ConfigError::DatabaseUrl(_))
        ));
        let zero = Cli::try_parse_from([
            "backend",
            "--database-url",
            "postgres://a@127.0.0.1/a",
            "--pool-size",
            "0",
        ])
        .unwrap();
        assert!(matches!(Config::try_from(zero), Err(ConfigError::PoolSize)));
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
