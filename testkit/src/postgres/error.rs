//! What can go wrong starting or driving a [`super::PgCluster`].

use std::net::Ipv4Addr;
use std::process::ExitStatus;
use std::time::Duration;

use super::programs::BIN_ENV;

/// Something in starting or driving the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("no Postgres server binaries under /usr/lib/postgresql/*/bin (install Debian's `postgresql` package, e.g. scripts/setup.sh, or set {BIN_ENV})")]
    NoBinaries,
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed ({status}): {stderr}")]
    Command {
        what: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("{what} did not finish within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("{node} did not accept logins within {after:?}; last error: {last}")]
    NotReady {
        node: String,
        after: Duration,
        last: String,
    },
    #[error("{what}")]
    Sql {
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{source}\n--- server log (last lines) ---\n{log}")]
    WithLog {
        #[source]
        source: Box<PgError>,
        log: String,
    },
    #[error("no port free on all of {0:?}")]
    NoPort(Vec<Ipv4Addr>),
}

impl PgError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn sql(what: impl Into<String>, source: tokio_postgres::Error) -> Self {
        Self::Sql {
            what: what.into(),
            source,
        }
    }
}
