//! The two extension points: how an endpoint is checked, and who hears what the core decided.

use async_trait::async_trait;

use crate::endpoint::Endpoint;
use crate::health::{CheckRecord, Transition};

/// One active check of an endpoint (a TCP connect, `GET /healthz`, a Postgres login). `Ok` when it
/// may take traffic, `Err(why)` otherwise. The check task bounds each call by the check timeout,
/// so an implementation that hangs costs one interval, never the endpoint's task.
#[async_trait]
pub trait Check<X>: Send + Sync + 'static {
    async fn check(&self, endpoint: &Endpoint<X>) -> Result<(), String>;
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
