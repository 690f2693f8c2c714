//! The database side: open a connection (fresh or pooled) within a deadline, count the users and
//! name the server that answered; every failure is a [`DbError`] that says which step failed.

mod conn;
mod pool;

use std::time::Duration;

use crate::config::{Config, ConnectMode};
use conn::Conn;
use pool::Pool;

/// `cluster_name` names the replica (`pg1`, `pg2`, ...); a server without one is named by the
/// address it answered on, which behind a balancer is the replica's own address.
const USERS_SQL: &str = "SELECT (SELECT count(*) FROM users), \
    coalesce(nullif(current_setting('cluster_name'), ''), \
             host(inet_server_addr()) || ':' || inet_server_port())";

/// What `/users` reports from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Users {
    /// Rows in the `users` table.
    pub count: i64,
    /// `cluster_name` of the server that answered, or its address.
    pub server: String,
}

/// A database step failed; the message says which one, the source says why.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("connecting to the database")]
    Connect(#[source] tokio_postgres::Error),
    #[error("connecting to the database took longer than {0:?}")]
    ConnectTimeout(Duration),
    #[error("querying the database")]
    Query(#[source] tokio_postgres::Error),
    #[error("the database query took longer than {0:?}")]
    QueryTimeout(Duration),
    #[error("no pooled database connection became free within {0:?}")]
    PoolTimeout(Duration),
}

impl DbError {
    /// Every value [`DbError::stage`] takes.
    pub const STAGES: [&'static str; 5] = [
        "connect",
        "connect_timeout",
        "query",
        "query_timeout",
        "pool_timeout",
    ];

    /// A short, bounded name of the failed step, for metrics and the JSON error body.
    pub fn stage(&self) -> &'static str {
        match self {
            DbError::Connect(_) => "connect",
            DbError::ConnectTimeout(_) => "connect_timeout",
            DbError::Query(_) => "query",
            DbError::QueryTimeout(_) => "query_timeout",
            DbError::PoolTimeout(_) => "pool_timeout",
        }
    }

    /// The message with all its causes, e.g. "connecting to the database: error connecting to
    /// server: Connection refused (os error 111)".
    pub fn detail(&self) -> String {
        ops::error_chain(self)
    }
}

/// The database as the handlers see it.
#[derive(Debug)]
pub struct Db {
    mode: Mode,
    query_timeout: Duration,
    ready_timeout: Duration,
}

#[derive(Debug)]
enum Mode {
    PerRequest(conn::Connector),
    Pool(Pool),
}

impl Db {
    pub fn new(config: &Config) -> Self {
        let connector = conn::Connector::new(config.database.clone(), config.connect_timeout);
        let mode = match config.db_connect {
            ConnectMode::PerRequest => Mode::PerRequest(connector),
            ConnectMode::Pool => Mode::Pool(Pool::new(
                connector,
                config.pool_size,
                config.pool_max_lifetime,
            )),
        };
        Self {
            mode,
            query_timeout: config.query_timeout,
            ready_timeout: config.ready_timeout,
        }
    }

    /// Counts the users and names the server that answered.
    pub async fn users(&self) -> Result<Users, DbError> {
        let handle = self.checkout().await?;
        let result = bounded(
            self.query_timeout,
            handle.client().query_one(USERS_SQL, &[]),
        )
        .await;
        handle.finish(result.is_ok());
        let row = result?;
        Ok(Users {
            count: row.get(0),
            server: row.get(1),
        })
    }

    /// Whether the database answers `SELECT 1` within the readiness timeout, connect included.
    pub async fn ping(&self) -> Result<(), DbError> {
        let limit = self.ready_timeout;
        let check = async {
            let handle = self.checkout().await?;
            let result = bounded(limit, handle.client().simple_query("SELECT 1")).await;
            handle.finish(result.is_ok());
            result.map(drop)
        };
        match tokio::time::timeout(limit, check).await {
            Ok(result) => result,
            Err(_) => Err(DbError::QueryTimeout(limit)),
        }
    }

    async fn checkout(&self) -> Result<Handle<'_>, DbError> {
        Ok(match &self.mode {
            Mode::PerRequest(connector) => Handle::Fresh(connector.connect().await?),
            Mode::Pool(pool) => Handle::Leased(pool.get().await?),
        })
    }
}

/// A connection for one request: its own, or borrowed from the pool.
enum Handle<'a> {
    Fresh(Conn),
    Leased(pool::Lease<'a>),
}

impl Handle<'_> {
    fn client(&self) -> &tokio_postgres::Client {
        match self {
            Handle::Fresh(conn) => &conn.client,
            Handle::Leased(lease) => lease.client(),
        }
    }

    /// A pooled connection goes back only when it just worked; a fresh one is closed either way.
    fn finish(self, worked: bool) {
        if let Handle::Leased(lease) = self {
            if worked {
                lease.keep();
            }
        }
    }
}

async fn bounded<T>(
    limit: Duration,
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, DbError> {
    match tokio::time::timeout(limit, query).await {
        Ok(result) => result.map_err(DbError::Query),
        Err(_) => Err(DbError::QueryTimeout(limit)),
    }
}
