//! The backends: who is in DNS (kept in step by [`crate::membership`]), who is healthy (set by
//! [`crate::health`]), and round-robin selection over the healthy ones. A client with no healthy
//! backend waits here, bounded, for the set to change.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::metrics::BackendMetrics;

/// The outcome of one health check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    pub at: SystemTime,
    pub duration: Duration,
    /// `Err` says why the backend failed (unreachable, login refused, wrong role, lagging).
    pub result: Result<(), String>,
}

/// What the checks have established about a backend.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub up: bool,
    pub passes: u32,
    pub fails: u32,
    pub last: Option<CheckOutcome>,
    /// When `up` last changed (or the backend appeared).
    pub since: Option<SystemTime>,
    pub in_recovery: Option<bool>,
    pub lag_seconds: Option<f64>,
    pub lag_bytes: Option<i64>,
}

impl Health {
    /// Counts a check against the fall/rise thresholds; returns the new state when it flips. A new
    /// backend starts down and comes up after `rise` passes.
    pub fn record(&mut self, outcome: CheckOutcome, fall: u32, rise: u32) -> Option<bool> {
        let passed = outcome.result.is_ok();
        let at = outcome.at;
        self.last = Some(outcome);
        if passed {
            self.passes = self.passes.saturating_add(1);
            self.fails = 0;
        } else {
            self.fails = self.fails.saturating_add(1);
            self.passes = 0;
        }
        let flip = if !self.up && self.passes >= rise {
            Some(true)
        } else if self.up && self.fails >= fall {
            Some(false)
        } else {
            None
        };
        if let Some(up) = flip {
            self.up = up;
            self.since = Some(at);
        }
        flip
    }
}

/// One server behind the DNS name.
#[derive(Debug)]
pub struct Backend {
    pub addr: SocketAddr,
    pub metrics: BackendMetrics,
    health: Mutex<Health>,
    /// Sessions watch this to close when the backend goes down (`--on-down shutdown`).
    up: watch::Sender<bool>,
}

impl Backend {
    pub fn new(addr: SocketAddr, metrics: BackendMetrics) -> Self {
        let health = Health {
            since: Some(SystemTime::now()),
            ..Health::default()
        };
        metrics.up.set(0);
        Self {
            addr,
            metrics,
            health: Mutex::new(health),
            up: watch::channel(false).0,
        }
    }

    pub fn health(&self) -> Health {
        self.lock().clone()
    }

    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Resolves when the backend is (or goes) down.
    pub async fn wait_down(&self) {
        let mut rx = self.up.subscribe();
        // The sender lives as long as `self`, so this only ends when the backend is down.
        let _ = rx.wait_for(|up| !*up).await;
    }

    /// Applies `f` to the health state; returns the new up/down state when it flipped.
    pub(crate) fn update(&self, f: impl FnOnce(&mut Health) -> Option<bool>) -> Option<bool> {
        let flip = f(&mut self.lock());
        if let Some(up) = flip {
            self.metrics.up.set(i64::from(up));
            self.up.send_replace(up);
        }
        flip
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The backends and the round-robin cursor.
#[derive(Debug)]
pub struct Pool {
    backends: RwLock<BTreeMap<SocketAddr, Arc<Backend>>>,
    cursor: AtomicUsize,
    /// Bumped on every membership or health change; waiting clients watch it.
    changed: watch::Sender<u64>,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            backends: RwLock::default(),
            cursor: AtomicUsize::new(0),
            changed: watch::channel(0).0,
        }
    }
}

impl Pool {
    /// Every backend DNS lists, in address order.
    pub fn all(&self) -> Vec<Arc<Backend>> {
        self.read().values().cloned().collect()
    }

    pub fn get(&self, addr: &SocketAddr) -> Option<Arc<Backend>> {
        self.read().get(addr).cloned()
    }

    /// The healthy backends, in address order; does not move the round-robin cursor.
    pub fn healthy(&self) -> Vec<Arc<Backend>> {
        self.read()
            .values()
            .filter(|b| b.is_up())
            .cloned()
            .collect()
    }

    /// The healthy backends, starting with the next one in round-robin order: the first is this
    /// client's pick, the rest are where to go if connecting to it fails.
    pub fn next_round(&self) -> Vec<Arc<Backend>> {
        let mut healthy = self.healthy();
        if !healthy.is_empty() {
            let start = self.cursor.fetch_add(1, Ordering::Relaxed) % healthy.len();
            healthy.rotate_left(start);
        }
        healthy
    }

    /// Waits until something changes or `deadline` passes; false at the deadline. `seen` is the
    /// change counter the caller looked at last.
    pub async fn wait_change(&self, seen: u64, deadline: Instant) -> bool {
        let mut rx = self.changed.subscribe();
        let changed = tokio::time::timeout_at(deadline, rx.wait_for(|v| *v != seen)).await;
        changed.is_ok()
    }

    /// The change counter, to pass to [`Pool::wait_change`] after looking at the pool.
    pub fn version(&self) -> u64 {
        *self.changed.borrow()
    }

    pub fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn insert(&self, backend: Arc<Backend>) {
        self.write().insert(backend.addr, backend);
        self.notify();
    }

    pub(crate) fn remove(&self, addr: &SocketAddr) -> Option<Arc<Backend>> {
        let removed = self.write().remove(addr);
        self.notify();
        removed
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<SocketAddr, Arc<Backend>>> {
        self.backends.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<SocketAddr, Arc<Backend>>> {
        self.backends.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ok: bool) -> CheckOutcome {
        CheckOutcome {
            at: SystemTime::now(),
            duration: Duration::from_millis(1),
            result: if ok { Ok(()) } else { Err("down".into()) },
        }
    }

    #[test]
    fn fall_and_rise_thresholds() {
        let mut h = Health::default();
        assert_eq!(h.record(outcome(false), 2, 2), None);
        assert_eq!(h.record(outcome(true), 2, 2), None, "one pass of two");
        assert_eq!(h.record(outcome(true), 2, 2), Some(true));
        assert_eq!(h.record(outcome(false), 2, 2), None, "one failure of two");
        assert_eq!(
            h.record(outcome(true), 2, 2),
            None,
            "a pass resets the count"
        );
        assert_eq!(h.record(outcome(false), 2, 2), None);
        assert_eq!(h.record(outcome(false), 2, 2), Some(false));
        assert!(!h.up);
    }

    fn pool_of(n: u8) -> (Pool, Vec<Arc<Backend>>) {
        let metrics = crate::metrics::Metrics::new().unwrap();
        let pool = Pool::default();
        let backends: Vec<_> = (1..=n)
            .map(|i| {
                let addr = SocketAddr::from(([127, 0, 0, i], 5432));
                let b = Arc::new(Backend::new(addr, metrics.backend(&addr.to_string())));
                pool.insert(b.clone());
                b
            })
            .collect();
        (pool, backends)
    }

    #[test]
    fn round_robin_over_the_healthy_only() {
        let (pool, b) = pool_of(3);
        assert!(pool.next_round().is_empty(), "new backends start down");
        for backend in &b {
            backend.update(|h| h.record(outcome(true), 2, 1));
        }
        assert_eq!(b[1].update(|h| h.record(outcome(false), 1, 1)), Some(false));
        let picks: Vec<_> = (0..4).map(|_| pool.next_round()[0].addr).collect();
        assert_eq!(picks, [b[0].addr, b[2].addr, b[0].addr, b[2].addr]);
        assert_eq!(
            pool.next_round().len(),
            2,
            "the rest of the round is the fallback"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_ends_on_a_change_or_at_the_deadline() {
        let (pool, b) = pool_of(1);
        let seen = pool.version();
        let deadline = Instant::now() + Duration::from_secs(5);
        assert!(!pool.wait_change(seen, deadline).await, "nothing changed");
        assert_eq!(Instant::now(), deadline);

        let seen = pool.version();
        let wait = pool.wait_change(seen, Instant::now() + Duration::from_secs(5));
        b[0].update(|h| h.record(outcome(true), 2, 1));
        pool.notify();
        assert!(wait.await);
    }
}
