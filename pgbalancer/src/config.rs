//! The validated configuration: flags (and their environment variables) over the YAML file over
//! the defaults, every value of its real type. Errors name the key and say what was expected; the
//! binary exits 2 on them.

mod file;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use discovery::{ResolverSpec, Target};

use crate::cli::{Cli, LogFormat};
use crate::tls::{ClientTls, ServerTls, TlsMode};
pub use file::{FileCheck, FileConfig, FileTls};

pub const DEFAULT_LISTEN: &str = "0.0.0.0:5432";
/// Loopback: run by hand, the admin pages are not published to the network. The manifests pass
/// `--admin 0.0.0.0:9187` so Prometheus and the kubelet reach them in the pod.
/// Above Postgres's own default (100 per server) times a handful of replicas; each relayed
/// session costs two sockets and 32 KiB of buffers, so 2000 stay within 4000 descriptors and
/// ~64 MiB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 2000;
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9187";

pub use crate::policy::{OnDown, RoleFilter};

/// A password: printed as `<redacted>` by `Debug`, so it cannot leak through a log of the config.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The configuration could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: key `{key}`: {message}")]
    Parse {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("`{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// How servers are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    pub user: String,
    pub database: String,
    /// The variable the password came from (shown in /status; the password never is).
    pub password_env: Option<String>,
    pub password: Option<Secret>,
    pub interval: Duration,
    pub timeout: Duration,
    pub role: RoleFilter,
    pub fall: u32,
    pub rise: u32,
    pub max_lag: Option<Duration>,
    pub max_lag_bytes: Option<u64>,
}

/// A replica this far behind (replay time, with WAL left to replay) takes no new clients: well
/// above a healthy streaming replica's lag, well below what a paused or stuck replay reaches.
pub const DEFAULT_MAX_LAG: Duration = Duration::from_secs(30);
/// Received but not replayed WAL: four 16 MiB segments, above a burst of bulk writes.
pub const DEFAULT_MAX_LAG_BYTES: u64 = 64 * 1024 * 1024;

/// Everything pgbalancer runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub upstream: Target,
    pub admin: SocketAddr,
    pub discovery: discovery::Settings,
    pub check: CheckConfig,
    pub hold_timeout: Duration,
    pub connect_timeout: Duration,
    /// A server's first answer, while another is left to try.
    pub first_answer_timeout: Duration,
    pub client_timeout: Duration,
    /// Client connections at once, whatever state they are in.
    pub max_connections: usize,
    pub shutdown_grace: Duration,
    /// On SIGTERM, how long to keep accepting (with /readyz 503) before the grace starts.
    pub shutdown_delay: Duration,
    pub on_down: OnDown,
    pub log_format: LogFormat,
    /// Clients' TLS terminated here; `None`: relayed to the server (`off`).
    pub tls: Option<ClientTls>,
    /// TLS to the servers; `None`: plain (`off`).
    pub server_tls: Option<ServerTls>,
}

/// The layers a [`Config`] is made of. `env` looks up environment variables (the password).
pub struct Layers<'a> {
    pub cli: &'a Cli,
    pub file: FileConfig,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Config {
    /// Reads `--config` if given and layers the flags over it.
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        Self::try_from(Layers {
            cli,
            file,
            env: &|name| std::env::var(name).ok(),
        })
    }
}

impl TryFrom<Layers<'_>> for Config {
    type Error = ConfigError;

    fn try_from(layers: Layers<'_>) -> Result<Self, ConfigError> {
        let Layers { cli, file, env } = layers;
        let FileConfig {
            listen,
            upstream,
            admin,
            resolver,
            resolve_interval,
            check,
            hold_timeout,
            connect_timeout,
            first_answer_timeout,
            client_timeout,
            max_connections,
            shutdown_grace,
            shutdown_delay,
            on_down,
            log_format,
            tls,
            server_tls,
        } = file;
        let upstream = match (&cli.upstream, upstream) {
            (Some(target), _) => target.clone(),
            (None, Some(text)) => text
                .parse()
                .map_err(|e: discovery::TargetError| invalid("upstream", e.to_string()))?,
            (None, None) => return Err(invalid(
                "upstream",
                "required: --upstream NAME:PORT (or IP:PORT), or `upstream:` in the config file",
            )),
        };
        let resolve_interval = positive(
            "resolve_interval",
            cli.resolve_interval.or(resolve_interval),
            Duration::from_secs(1),
        )?;
        Ok(Self {
            listen: cli
                .listen
                .or(listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            upstream,
            admin: cli
                .admin
                .or(admin)
                .unwrap_or_else(|| DEFAULT_ADMIN.parse().expect("valid default")),
            discovery: discovery::Settings {
                resolve_interval,
                lookup_timeout: Duration::from_secs(1),
                resolver: cli
                    .resolver
                    .or(resolver)
                    .map_or(ResolverSpec::System, ResolverSpec::At),
            },
            check: check_config(cli, check, env)?,
            hold_timeout: cli
                .hold_timeout
                .or(hold_timeout)
                .unwrap_or(Duration::from_secs(5)),
            connect_timeout: positive(
                "connect_timeout",
                cli.connect_timeout.or(connect_timeout),
                Duration::from_secs(1),
            )?,
            first_answer_timeout: positive(
                "first_answer_timeout",
                cli.first_answer_timeout.or(first_answer_timeout),
                Duration::from_secs(1),
            )?,
            client_timeout: positive(
                "client_timeout",
                cli.client_timeout.or(client_timeout),
                Duration::from_secs(10),
            )?,
            max_connections: match cli.max_connections.or(max_connections) {
                Some(0) => return Err(invalid("max_connections", "must be at least 1")),
                Some(n) => n,
                None => DEFAULT_MAX_CONNECTIONS,
            },
            shutdown_grace: cli
                .shutdown_grace
                .or(shutdown_grace)
                .unwrap_or(Duration::from_secs(10)),
            shutdown_delay: cli
                .shutdown_delay
                .or(shutdown_delay)
                .unwrap_or(Duration::ZERO),
            on_down: cli.on_down.or(on_down).unwrap_or_default(),
            log_format: cli.log_format.or(log_format).unwrap_or_default(),
            tls: client_tls(cli, tls)?,
            server_tls: ServerTls::new(cli.server_tls.or(server_tls).unwrap_or_default()),
        })
    }
}

/// `tls.mode` with its certificate: `prefer` and `require` need both files, `off` neither.
fn client_tls(cli: &Cli, file: FileTls) -> Result<Option<ClientTls>, ConfigError> {
    let cert = cli.tls_cert.clone().or(file.cert);
    let key = cli.tls_key.clone().or(file.key);
    let mode = cli.tls_mode.or(file.mode).unwrap_or(if cert.is_some() {
        TlsMode::Prefer
    } else {
        TlsMode::Off
    });
    match (mode, cert, key) {
        (TlsMode::Off, None, None) => Ok(None),
        (TlsMode::Off, _, _) => Err(invalid(
            "tls.mode",
            "off, but a certificate or key is given: drop --tls-cert/--tls-key, or choose prefer or require",
        )),
        (_, Some(cert), Some(key)) => ClientTls::load(mode, &cert, &key)
            .map(Some)
            .map_err(|e| invalid("tls.cert", e)),
        (_, None, _) => Err(invalid(
            "tls.cert",
            "required for tls.mode prefer or require: --tls-cert FILE (PEM)",
        )),
        (_, Some(_), None) => Err(invalid(
            "tls.key",
            "required with a certificate: --tls-key FILE (PEM)",
        )),
    }
}

fn check_config(
    cli: &Cli,
    file: FileCheck,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CheckConfig, ConfigError> {
    let required = |key: &'static str, flag: &str, value: Option<String>| {
        value.filter(|v| !v.is_empty()).ok_or_else(|| {
            invalid(
                key,
                format!("required: {flag}, or `{key}` in the config file"),
            )
        })
    };
    let user = required(
        "check.user",
        "--check-user",
        cli.check_user.clone().or(file.user),
    )?;
    let database = required(
        "check.database",
        "--check-database",
        cli.check_database.clone().or(file.database),
    )?;
    let password_env = cli.check_password_env.clone().or(file.password_env);
    let password = match &password_env {
        Some(var) => Some(Secret::new(env(var).ok_or_else(|| {
            invalid(
                "check.password_env",
                format!("environment variable `{var}` is not set"),
            )
        })?)),
        None => None,
    };
    let at_least_one = |key: &'static str, value: Option<u32>, default: u32| match value {
        Some(0) => Err(invalid(key, "must be at least 1")),
        v => Ok(v.unwrap_or(default)),
    };
    Ok(CheckConfig {
        user,
        database,
        password_env,
        password,
        interval: positive(
            "check.interval",
            cli.check_interval.or(file.interval),
            Duration::from_secs(1),
        )?,
        timeout: positive(
            "check.timeout",
            cli.check_timeout.or(file.timeout),
            Duration::from_secs(1),
        )?,
        role: cli.role.or(file.role).unwrap_or_default(),
        fall: at_least_one("check.fall", cli.fall.or(file.fall), 2)?,
        rise: at_least_one("check.rise", cli.rise.or(file.rise), 1)?,
        // Checked by default; 0 turns a limit off.
        max_lag: Some(cli.max_lag.or(file.max_lag).unwrap_or(DEFAULT_MAX_LAG))
            .filter(|d| !d.is_zero()),
        max_lag_bytes: Some(
            cli.max_lag_bytes
                .or(file.max_lag_bytes)
                .unwrap_or(DEFAULT_MAX_LAG_BYTES),
        )
        .filter(|b| *b > 0),
    })
}

fn positive(
    key: &'static str,
    value: Option<Duration>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        Some(d) if d.is_zero() => Err(invalid(key, "must be longer than 0s")),
        v => Ok(v.unwrap_or(default)),
    }
}

#[cfg(test)]
mod tests;
