//! The two extension points: how an endpoint is checked, and who hears what the core decided.

use async_trait::async_trait;

use crate::endpoint::Endpoint;
use crate::health::{CheckRecord, Transition};

/// One active check of an endpoint (a TCP connect, `GET /healthz`, a Postgres login). `Ok` when it
/// may take traffic, `Err(why)` otherwise. The check task bounds each call by the check timeout,
/// so an implementation that hangs costs one interval, never the endpoint's task.
#[async_trait]
pub trait Check<X>: Send + Sync + 'static {
    async fn check(&self, endpoint: &Endpoint<X>) -> Result<(), Failure>;
}

/// Why a check failed, and whether the endpoint is broken or only busy.
///
/// A broken endpoint (refused, no answer at all, wrong role, lagging) counts against the fall
/// threshold and goes down. A busy one answered, but said it is full (Postgres' "too many
/// clients") or was too slow to finish within the timeout: it is alive, and taking it down would
/// end its sessions and, when every endpoint is busy at once, refuse every client. So a busy
/// endpoint is only taken out of rotation for new traffic until a check passes, and never below
/// the floor ([`crate::Members`]): at least half of the up endpoints, and at least one, stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub busy: bool,
}

impl Failure {
    pub fn broken(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            busy: false,
        }
    }

    pub fn busy(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            busy: true,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Told of every decision, for logs and metrics. Every method does nothing by default.
pub trait Observer<X>: Send + Sync + 'static {
    /// An endpoint appeared in DNS; its first check runs at once.
    fn joined(&self, _endpoint: &Endpoint<X>) {}
    /// An endpoint left DNS; its check task is stopped.
    fn left(&self, _endpoint: &Endpoint<X>) {}
    /// The endpoint set changed; `count` endpoints now.
    fn membership(&self, _count: usize) {}
    /// A check finished, with what it changed.
    fn checked(&self, _endpoint: &Endpoint<X>, _record: &CheckRecord, _transition: Transition) {}
    /// A request ejected the endpoint.
    fn ejected(&self, _endpoint: &Endpoint<X>, _reason: &str) {}
    /// A request would have ejected the endpoint, but it is the last usable one: it stays, and
    /// is checked at once instead.
    fn spared(&self, _endpoint: &Endpoint<X>, _reason: &str) {}
}

/// An observer that ignores everything.
impl<X> Observer<X> for () {}
