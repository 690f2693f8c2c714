//! pgbalancer's side of the upstream core: what it keeps with each server (its metric series,
//! and the role and lag its last check reported), the pool over the core's endpoint set (login
//! checks, fall/rise, round-robin, the bounded wait: all the core's), and the observer that turns
//! the core's decisions into log lines and metrics.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tracing::{debug, info, warn};
use upstream::{CheckRecord, Choice, Initial, Members, Settings, Thresholds, Transition};

use crate::config::CheckConfig;
use crate::metrics::{BackendMetrics, Metrics};

/// One server behind the DNS name.
pub type Backend = upstream::Endpoint<Server>;

/// The servers DNS lists, with their health.
pub type Pool = Members<Server>;

/// What the last check said about a server besides pass or fail.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Details {
    pub in_recovery: Option<bool>,
    pub lag_seconds: Option<f64>,
    pub lag_bytes: Option<i64>,
}

#[derive(Debug)]
pub struct Server {
    pub metrics: BackendMetrics,
    details: Mutex<Details>,
}

impl Server {
    pub fn details(&self) -> Details {
        *self.details.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_details(&self, details: Details) {
        *self.details.lock().unwrap_or_else(|e| e.into_inner()) = details;
    }
}

/// The pool of the servers `login` checks under `check`'s settings; follow a discovery watch with
/// [`Members::follow`]. A new server starts down and gets clients after `rise` passed checks.
pub fn new(
    check: &CheckConfig,
    login: Arc<dyn upstream::Check<Server>>,
    metrics: Metrics,
) -> Arc<Pool> {
    let settings = Settings {
        interval: check.interval,
        // The login bounds itself by the check timeout; this is the core's fail-safe.
        check_timeout: check.timeout * 2,
        thresholds: Thresholds {
            fall: check.fall,
            rise: check.rise,
        },
        initial: Initial::Down,
        // Sessions last long and a server's cost is its sessions, not a response time: each
        // new session goes to the next server in turn.
        choice: Choice::RoundRobin,
    };
    let series = metrics.clone();
    Members::new(
        settings,
        login,
        Arc::new(PoolObserver { metrics }),
        move |addr: SocketAddr| {
            let metrics = series.backend(&addr.to_string());
            metrics.up.set(0);
            Server {
                metrics,
                details: Mutex::default(),
            }
        },
    )
}

struct PoolObserver {
    metrics: Metrics,
}

impl upstream::Observer<Server> for PoolObserver {
    fn joined(&self, backend: &Backend) {
        info!(backend = %backend.addr, "backend found in DNS; checking it");
    }

    fn left(&self, backend: &Backend) {
        self.metrics.forget_backend(&backend.addr.to_string());
        info!(backend = %backend.addr, "backend left DNS");
    }

    fn membership(&self, count: usize) {
        self.metrics
            .backends
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    fn checked(&self, backend: &Backend, record: &CheckRecord, transition: Transition) {
        let (addr, duration) = (backend.addr, record.duration);
        match (transition, &record.result) {
            (Transition::Up, _) => {
                backend.data.metrics.up.set(1);
                info!(backend = %addr, ?duration, "backend up");
            }
            (Transition::Down, Err(reason)) => {
                backend.data.metrics.up.set(0);
                warn!(backend = %addr, %reason, "backend down");
            }
            (Transition::Readmitted, _) => {
                info!(backend = %addr, "backend back in rotation: its check passed");
            }
            (_, Err(reason)) => debug!(backend = %addr, %reason, "health check failed"),
            _ => {}
        }
    }

    fn ejected(&self, backend: &Backend, reason: &str) {
        self.metrics.ejection(reason, false);
        warn!(backend = %backend.addr, %reason, "backend takes no new clients until its next passing check");
    }

    fn spared(&self, backend: &Backend, reason: &str) {
        self.metrics.ejection(reason, true);
        warn!(backend = %backend.addr, %reason, "backend kept in rotation: it is among the last ones");
    }
}
