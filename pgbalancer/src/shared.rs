//! The state every client connection, health check and admin request shares: the configuration,
//! the pool, the metrics, the cancel map, discovery, and whether SIGTERM arrived. Its own module,
//! so that the server, the sessions and the admin pages each depend on it and not on each other.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::SystemTime;

use crate::cancel::CancelMap;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pool::Pool;

#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Arc<Config>,
    pub pool: Arc<Pool>,
    pub metrics: Metrics,
    pub cancels: Arc<CancelMap>,
    pub discovery: discovery::Discovery,
    pub started: SystemTime,
    /// Set by SIGTERM: `/readyz` answers 503 through the shutdown delay and the grace.
    pub draining: AtomicBool,
}
