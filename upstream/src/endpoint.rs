//! One endpoint (an address from DNS): its health behind a lock, a lock-free `usable` for the
//! request path, an incarnation that changes whenever connections pooled to it must not be reused,
//! and the data the binary keeps with it (`X`: metrics, counters, protocol details).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::health::{CheckRecord, Health, Initial, Thresholds, Transition};
use crate::load::Load;

/// Incarnations are unique in the process, so they can key connection pools across endpoints.
static NEXT_INCARNATION: AtomicU64 = AtomicU64::new(1);

fn next_incarnation() -> u64 {
    NEXT_INCARNATION.fetch_add(1, Ordering::Relaxed)
}

pub struct Endpoint<X> {
    pub addr: SocketAddr,
    pub data: X,
    health: Mutex<Health>,
    usable: AtomicBool,
    incarnation: AtomicU64,
    /// True while the endpoint is up by its checks and in the discovery set: sessions that end
    /// when their endpoint goes out wait on it. An ejection does not end sessions.
    serving_tx: watch::Sender<bool>,
    retired: AtomicBool,
    load: Load,
    /// Wakes the check task for a check now (a request saw the endpoint stall).
    pub(crate) recheck: Notify,
}

/// A request in flight to an endpoint: counted in its load until dropped.
pub struct InFlight<X> {
    endpoint: Arc<Endpoint<X>>,
    started: Instant,
}

/// Why a request got no answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoAnswer {
    /// The endpoint answered other requests or checks meanwhile: this request is slow, the
    /// endpoint is not.
    SlowRequest,
    /// The endpoint answered nothing at all since the request was sent: it stalls (frozen, or
    /// overwhelmed). Its estimate now counts the time it was given.
    Stalled,
}

impl<X> InFlight<X> {
    pub fn endpoint(&self) -> &Arc<Endpoint<X>> {
        &self.endpoint
    }

    /// Time since the request was sent.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The endpoint answered (its first byte, for the proxy): the time it took feeds the estimate.
    pub fn answered(&self) {
        self.endpoint.load.answered(self.started.elapsed());
        self.endpoint.lock().served();
    }

    /// The request was given up for want of an answer: was it the endpoint or the request?
    pub fn no_answer(&self) -> NoAnswer {
        let load = &self.endpoint.load;
        if load.alive_since(self.started) {
            NoAnswer::SlowRequest
        } else {
            load.observe(self.started.elapsed());
            NoAnswer::Stalled
        }
    }
}

impl<X> Drop for InFlight<X> {
    fn drop(&mut self) {
        self.endpoint.load.end();
    }
}

impl<X> Endpoint<X> {
    pub fn new(addr: SocketAddr, initial: Initial, data: X) -> Self {
        let health = Health::new(initial);
        let usable = health.usable();
        let up = health.up;
        Self {
            addr,
            data,
            usable: AtomicBool::new(usable),
            health: Mutex::new(health),
            incarnation: AtomicU64::new(next_incarnation()),
            serving_tx: watch::channel(up).0,
            retired: AtomicBool::new(false),
            load: Load::default(),
            recheck: Notify::new(),
        }
    }

    /// One more request to it, counted until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight<X> {
        self.load.start();
        InFlight {
            endpoint: Arc::clone(self),
            started: Instant::now(),
        }
    }

    /// Its requests in flight and response-time estimate.
    pub fn load(&self) -> &Load {
        &self.load
    }

    /// May new traffic go here? (Up and not ejected.)
    pub fn usable(&self) -> bool {
        self.usable.load(Ordering::Relaxed)
    }

    pub fn health(&self) -> Health {
        self.lock().clone()
    }

    /// Changes when the endpoint comes back (up again, or re-admitted after an ejection): a pool
    /// keyed by it never hands out a connection made before.
    pub fn incarnation(&self) -> u64 {
        self.incarnation.load(Ordering::Relaxed)
    }

    /// Resolves when the endpoint is (or goes) down by its checks, or leaves the discovery set (a
    /// replica that left DNS is as gone as a dead one). An ejection by requests alone does not
    /// count: it may be a passing overload.
    pub async fn wait_gone(&self) {
        let mut rx = self.serving_tx.subscribe();
        // The sender lives as long as `self`: this ends only when the endpoint is out.
        let _ = rx.wait_for(|serving| !*serving).await;
    }

    /// The endpoint left the discovery set.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        self.serving_tx.send_replace(false);
    }

    /// Counts an active check; returns what it changed.
    pub fn observe(&self, record: CheckRecord, thresholds: Thresholds) -> Transition {
        let mut health = self.lock();
        let transition = health.record(record, thresholds);
        if matches!(transition, Transition::Up | Transition::Readmitted) {
            self.incarnation
                .store(next_incarnation(), Ordering::Relaxed);
        }
        self.publish(&health);
        transition
    }

    /// Takes it out of rotation until it passes its probation; false if it already was out.
    pub fn eject(&self, reason: &str) -> bool {
        let mut health = self.lock();
        let ejected = health.eject(reason);
        self.publish(&health);
        ejected
    }

    /// Takes it out of rotation, busy, until its next passing check; false if it already was out.
    pub(crate) fn set_aside(&self, reason: &str) -> bool {
        let mut health = self.lock();
        let ejected = health.set_aside(reason);
        self.publish(&health);
        ejected
    }

    /// Up by its checks (it may be ejected meanwhile).
    pub fn is_up(&self) -> bool {
        self.lock().up
    }

    fn publish(&self, health: &Health) {
        let usable = health.usable();
        self.usable.store(usable, Ordering::Relaxed);
        let serving = health.up && !self.retired.load(Ordering::Relaxed);
        self.serving_tx
            .send_if_modified(|now| std::mem::replace(now, serving) != serving);
    }

    fn lock(&self) -> MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<X> std::fmt::Debug for Endpoint<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .field("health", &*self.lock())
            .finish_non_exhaustive()
    }
}
