//! One Postgres connection: opened within a deadline, and its I/O task gone soon after it is
//! dropped.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio_postgres::{Client, NoTls};
use tracing::debug;

use super::DbError;

/// How long a dropped connection's task may take to say goodbye (Terminate) before it is stopped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Opens connections to one database, each within `timeout`.
#[derive(Debug)]
pub(crate) struct Connector {
    config: tokio_postgres::Config,
    timeout: Duration,
}

impl Connector {
    pub(crate) fn new(config: tokio_postgres::Config, timeout: Duration) -> Self {
        Self { config, timeout }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// TCP connect and the Postgres handshake, together bounded by the timeout: a server that
    /// accepts the socket but never answers the startup message must not hang the request.
    pub(crate) async fn connect(&self) -> Result<Conn, DbError> {
        let connecting = self.config.connect(NoTls);
        let (client, connection) = match tokio::time::timeout(self.timeout, connecting).await {
            Ok(result) => result.map_err(DbError::Connect)?,
            Err(_) => return Err(DbError::ConnectTimeout(self.timeout)),
        };
        let (dropped_tx, dropped_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            tokio::pin!(connection);
            let result = tokio::select! {
                result = &mut connection => result,
                // The client is gone: it sent Terminate; a server that stopped answering must
                // not keep this task (and its socket) alive.
                _ = dropped_rx => match tokio::time::timeout(CLOSE_GRACE, connection).await {
                    Ok(result) => result,
                    Err(_) => return,
                },
            };
            if let Err(error) = result {
                debug!(%error, "database connection ended with an error");
            }
        });
        Ok(Conn {
            client,
            _dropped: dropped_tx,
            opened: Instant::now(),
        })
    }
}

/// An open connection. Fields drop in order: the client first (which asks the connection to
/// close), then the signal that starts the close grace in the I/O task.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) client: Client,
    _dropped: oneshot::Sender<()>,
    pub(crate) opened: Instant,
}
