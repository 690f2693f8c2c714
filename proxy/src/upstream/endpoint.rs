//! One endpoint (pod IP:port) of a group and what the proxy knows about it: the verdict of its
//! active checks, whether a failed request ejected it, and counters for /status.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use http::HeaderValue;

/// Pool keys are unique per endpoint *incarnation*: a pod IP that leaves DNS and comes back, or an
/// endpoint re-admitted after an ejection, never reuses connections pooled before.
static NEXT_POOL_KEY: AtomicU64 = AtomicU64::new(1);

fn next_pool_key() -> u64 {
    NEXT_POOL_KEY.fetch_add(1, Ordering::Relaxed)
}

/// The last active check of an endpoint.
#[derive(Debug, Clone)]
pub struct CheckRecord {
    pub at: SystemTime,
    pub ok: bool,
    pub detail: Option<String>,
}

#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `X-Upstream-Addr` value, formatted once.
    pub header_value: HeaderValue,
    pool_key: AtomicU64,
    /// Verdict of the active checks (fall/rise applied). New endpoints start healthy: Kubernetes
    /// lists only ready pods in DNS, and the first check runs at once.
    healthy: AtomicBool,
    /// Set by a failed request (passive health), cleared by the next passing active check.
    ejected: AtomicBool,
    passes: AtomicU32,
    failures: AtomicU32,
    pub requests: AtomicU64,
    pub failed_attempts: AtomicU64,
    last_check: Mutex<Option<CheckRecord>>,
}

/// What an observation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    Down,
    Up,
    Readmitted,
}

impl Endpoint {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            header_value: HeaderValue::from_str(&addr.to_string()).expect("an address is ASCII"),
            pool_key: AtomicU64::new(next_pool_key()),
            healthy: AtomicBool::new(true),
            ejected: AtomicBool::new(false),
            passes: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            last_check: Mutex::new(None),
        }
    }

    /// May new requests go here?
    pub fn usable(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && !self.ejected.load(Ordering::Relaxed)
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    pub fn pool_key(&self) -> u64 {
        self.pool_key.load(Ordering::Relaxed)
    }

    pub fn last_check(&self) -> Option<CheckRecord> {
        self.last_check
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A request could not use this endpoint: stop sending it new requests until an active check
    /// passes. Returns true when this call ejected it (false if it already was).
    pub fn eject(&self) -> bool {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
        !self.ejected.swap(true, Ordering::Relaxed)
    }

    /// Records an active check and applies the fall/rise thresholds.
    pub fn observe(&self, ok: bool, detail: Option<String>, fall: u32, rise: u32) -> Transition {
        *self.last_check.lock().unwrap_or_else(|e| e.into_inner()) = Some(CheckRecord {
            at: SystemTime::now(),
            ok,
            detail,
        });
        if ok {
            self.failures.store(0, Ordering::Relaxed);
            let passes = self.passes.fetch_add(1, Ordering::Relaxed) + 1;
            if !self.healthy() && passes >= rise {
                self.fresh_connections();
                self.ejected.store(false, Ordering::Relaxed);
                self.healthy.store(true, Ordering::Relaxed);
                return Transition::Up;
            }
            if self.healthy() && self.ejected.swap(false, Ordering::Relaxed) {
                self.fresh_connections();
                return Transition::Readmitted;
            }
        } else {
            self.passes.store(0, Ordering::Relaxed);
            let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if self.healthy() && failures >= fall {
                self.healthy.store(false, Ordering::Relaxed);
                return Transition::Down;
            }
        }
        Transition::None
    }

    fn fresh_connections(&self) {
        self.pool_key.store(next_pool_key(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Endpoint {
        Endpoint::new("127.0.1.1:8000".parse().unwrap())
    }

    #[test]
    fn fall_and_rise_thresholds_apply() {
        let e = ep();
        assert!(e.usable());
        assert_eq!(e.observe(false, None, 2, 1), Transition::None);
        assert!(e.usable(), "one failure of fall=2 keeps it up");
        assert_eq!(e.observe(false, None, 2, 1), Transition::Down);
        assert!(!e.usable());
        let key = e.pool_key();
        assert_eq!(e.observe(true, None, 2, 1), Transition::Up);
        assert!(e.usable());
        assert_ne!(
            e.pool_key(),
            key,
            "connections pooled before the outage are not reused"
        );
    }

    #[test]
    fn an_ejection_lasts_until_a_check_passes() {
        let e = ep();
        assert!(e.eject());
        assert!(!e.eject(), "second ejection is not a new one");
        assert!(!e.usable());
        assert_eq!(e.observe(false, None, 2, 1), Transition::None);
        assert!(!e.usable());
        assert_eq!(e.observe(true, None, 2, 1), Transition::Readmitted);
        assert!(e.usable());
    }
}
