//! How many clients are served at once. Every accepted connection holds a permit for its whole
//! life, from the first packet to the end of the relay; without one it is told what Postgres
//! tells a client over its `max_connections` (FATAL, SQLSTATE 53300) and closed, before anything
//! is read or a backend is touched.

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::{Metrics, Outcome};
use crate::protocol::{send_error, TOO_MANY_CONNECTIONS};

/// The permits of `max_connections`.
#[derive(Debug, Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
    max: usize,
}

impl Admission {
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A permit, counted in `pgbalancer_client_connections` while held; None when all are taken.
    pub fn admit(&self, metrics: &Metrics) -> Option<Admitted> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        metrics.open_clients.inc();
        Some(Admitted {
            _permit: permit,
            metrics: metrics.clone(),
        })
    }

    /// Answers a client over the limit and closes it (bounded: see `send_error`).
    pub async fn refuse(&self, mut client: TcpStream, metrics: &Metrics) {
        metrics
            .clients
            .with_label_values(&[Outcome::Refused.label()])
            .inc();
        let message = format!(
            "pgbalancer: sorry, too many clients already (max_connections {})",
            self.max
        );
        send_error(&mut client, TOO_MANY_CONNECTIONS, &message).await;
    }
}

/// One client's place; dropping it frees the place.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    metrics: Metrics,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.metrics.open_clients.dec();
    }
}
