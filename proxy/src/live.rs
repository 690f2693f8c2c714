//! What requests are served with right now: the routes with their upstream groups and the
//! per-request settings. Built at start and again by every reload ([`crate::reload`]) and swapped
//! whole; each request takes the one current when it arrives and keeps it to the end, so a request
//! in flight during a reload finishes on the groups and settings it started with.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::access_log::AccessLog;
use crate::config::{Config, Limits, UpstreamSettings};
use crate::forwarding::Forwarding;
use crate::router::Router;

pub struct Live {
    pub router: Router,
    pub upstream: UpstreamSettings,
    pub limits: Limits,
    pub access_log: AccessLog,
    pub forwarding: Forwarding,
    /// 1 at start, one more per applied reload.
    pub generation: u64,
    /// When this generation was applied.
    pub applied_at: SystemTime,
}

impl Live {
    /// Generation `generation` of the routes `router`, with `config`'s per-request settings,
    /// applied now.
    pub fn new(router: Router, config: &Config, generation: u64) -> Self {
        Self {
            router,
            upstream: config.upstream.clone(),
            limits: config.limits.clone(),
            access_log: config.access_log,
            forwarding: config.forwarding,
            generation,
            applied_at: SystemTime::now(),
        }
    }
}

/// The current [`Live`], read once per request and replaced by a reload.
pub type SharedLive = Arc<ArcSwap<Live>>;
