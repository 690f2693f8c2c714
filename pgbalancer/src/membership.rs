//! Keeps the pool in step with DNS: every endpoint `discovery` publishes becomes a backend with
//! its own health-check task; one that leaves DNS is removed (its open sessions keep running) and
//! its check task and metric series go with it.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use discovery::Endpoints;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::config::CheckConfig;
use crate::health;
use crate::metrics::Metrics;
use crate::pool::{Backend, Pool};

/// Aborts a backend's check task when it leaves DNS (or when pgbalancer stops).
struct Checker(JoinHandle<()>);

impl Drop for Checker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Follows `endpoints` until the channel closes.
pub async fn run(
    mut endpoints: watch::Receiver<Endpoints>,
    pool: Arc<Pool>,
    metrics: Metrics,
    check: Arc<CheckConfig>,
) {
    let mut checkers: HashMap<SocketAddr, Checker> = HashMap::new();
    loop {
        let set = endpoints.borrow_and_update().clone();
        sync(&set, &mut checkers, &pool, &metrics, &check);
        if endpoints.changed().await.is_err() {
            return;
        }
    }
}

fn sync(
    set: &BTreeSet<SocketAddr>,
    checkers: &mut HashMap<SocketAddr, Checker>,
    pool: &Arc<Pool>,
    metrics: &Metrics,
    check: &Arc<CheckConfig>,
) {
    let gone: Vec<SocketAddr> = checkers
        .keys()
        .filter(|a| !set.contains(a))
        .copied()
        .collect();
    for addr in gone {
        checkers.remove(&addr);
        pool.remove(&addr);
        metrics.forget_backend(&addr.to_string());
        info!(backend = %addr, "backend left DNS");
    }
    for addr in set {
        if checkers.contains_key(addr) {
            continue;
        }
        let backend = Arc::new(Backend::new(*addr, metrics.backend(&addr.to_string())));
        pool.insert(backend.clone());
        let task = tokio::spawn(health::run(backend, pool.clone(), check.clone()));
        checkers.insert(*addr, Checker(task));
        info!(backend = %addr, "backend found in DNS; checking it");
    }
    metrics
        .backends
        .set(i64::try_from(set.len()).unwrap_or(i64::MAX));
}
