//! Service discovery by DNS, the way a pod finds the pods behind a headless Service.
//!
//! [`Discovery::spawn`] watches a `name:port` [`Target`]: it re-resolves the name at
//! min(record TTL, resolve interval), never faster than [`MIN_INTERVAL`], and publishes the set of
//! endpoints on a [`tokio::sync::watch`] channel the moment it changes. A lookup that *fails*
//! (timeout, SERVFAIL, resolver unreachable) keeps the last good set; NXDOMAIN or an empty answer
//! means zero endpoints, which is what Kubernetes answers when no pod is ready. An IP literal is a
//! target too: a set of one that never changes.
//!
//! No HTTP and no Pingora here: both balancers build on this crate.

mod resolver;
mod stats;
mod target;
mod watcher;

pub use resolver::{ResolverError, ResolverSpec};
pub use stats::{LookupResult, Stats};
pub use target::{Host, Target, TargetError};
pub use watcher::{next_delay, Discovery, Endpoints, Settings, MIN_INTERVAL};
