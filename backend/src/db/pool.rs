//! `--db-connect pool`: at most `size` connections, reused until they are `max_lifetime` old, so
//! the replica balancing still moves (connection by connection) while most requests skip the
//! connect.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::conn::{Conn, Connector};
use super::DbError;

#[derive(Debug)]
pub(crate) struct Pool {
    connector: Connector,
    max_lifetime: Duration,
    idle: Mutex<Vec<Conn>>,
    /// One permit per connection that may exist, idle or leased.
    permits: Semaphore,
}

impl Pool {
    pub(crate) fn new(connector: Connector, size: usize, max_lifetime: Duration) -> Self {
        Self {
            connector,
            max_lifetime,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Semaphore::new(size),
        }
    }

    /// An idle connection that is still young and open, or a new one. Waiting for a free slot
    /// counts against the connect timeout.
    pub(crate) async fn get(&self) -> Result<Lease<'_>, DbError> {
        let wait = self.connector.timeout();
        let permit = match tokio::time::timeout(wait, self.permits.acquire()).await {
            Ok(permit) => permit.expect("the pool never closes its semaphore"),
            Err(_) => return Err(DbError::PoolTimeout(wait)),
        };
        let reused = loop {
            let Some(conn) = self.idle_pop() else {
                break None;
            };
            if self.usable(&conn) {
                break Some(conn);
            }
        };
        let conn = match reused {
            Some(conn) => conn,
            None => self.connector.connect().await?,
        };
        Ok(Lease {
            pool: self,
            conn: Some(conn),
            keep: false,
            _permit: permit,
        })
    }

    fn idle_pop(&self) -> Option<Conn> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn usable(&self, conn: &Conn) -> bool {
        !conn.client.is_closed() && conn.opened.elapsed() < self.max_lifetime
    }
}

/// A connection borrowed from the pool. It goes back only after [`Lease::keep`]; otherwise it is
/// closed, so a connection that just failed is never handed out again.
#[derive(Debug)]
pub(crate) struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    keep: bool,
    _permit: SemaphorePermit<'a>,
}

impl Lease<'_> {
    pub(crate) fn client(&self) -> &tokio_postgres::Client {
        &self.conn.as_ref().expect("present until drop").client
    }

    pub(crate) fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.keep && self.pool.usable(&conn) {
                let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.push(conn);
            }
        }
    }
}
