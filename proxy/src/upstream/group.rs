//! An upstream group: its DNS watcher, and the upstream core's endpoint set over it (one check
//! task per endpoint, health, ejection, the chooser), adapted to what the request path asks.

use std::sync::{Arc, OnceLock};

use discovery::{Discovery, LookupResult, Target};
use upstream::{Initial, Members, Settings, Thresholds};

use super::endpoint::{Endpoint, Pod};
use super::health::{self, GroupObserver, PingoraCheck};
use crate::config::{GroupConfig, HealthSettings};
use crate::metrics::{Attempt, GroupMetrics};

/// What the request path reports to.
pub struct GroupEvents {
    pub name: Arc<str>,
    pub metrics: GroupMetrics,
}

/// A chosen endpoint, and whether the request could go elsewhere if it fails.
pub struct Pick {
    pub endpoint: Arc<Endpoint>,
    pub alternatives: bool,
}

/// A group could not start.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("building its health check: {0}")]
    Check(String),
    #[error(transparent)]
    Resolver(#[from] discovery::ResolverError),
}

pub struct Group {
    pub config: GroupConfig,
    pub events: Arc<GroupEvents>,
    members: Arc<Members<Pod>>,
    discovery: OnceLock<Discovery>,
}

impl Group {
    pub fn new(
        config: GroupConfig,
        health: HealthSettings,
        metrics: GroupMetrics,
    ) -> Result<Self, GroupError> {
        let host = match config.target.host() {
            discovery::Host::Name(name) => name.clone(),
            discovery::Host::Ip(ip) => ip.to_string(),
        };
        let checker =
            health::checker(&config.health, &host, health.timeout).map_err(GroupError::Check)?;
        let name: Arc<str> = config.name.as_str().into();
        let members = Members::new(
            Settings {
                interval: health.interval,
                // Pingora's checkers bound connect and read by the timeout each.
                check_timeout: health.timeout * 2,
                thresholds: Thresholds {
                    fall: health.fall,
                    rise: health.rise,
                },
                // Kubernetes lists only ready pods in DNS, and the first check runs at once.
                initial: Initial::Up,
                choice: config.balance.choice(),
            },
            Arc::new(PingoraCheck(checker)),
            Arc::new(GroupObserver::new(Arc::clone(&name), metrics.clone())),
            Pod::new,
        );
        Ok(Self {
            events: Arc::new(GroupEvents { name, metrics }),
            config,
            members,
            discovery: OnceLock::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.events.name
    }

    pub fn target(&self) -> &Target {
        &self.config.target
    }

    /// Builds a group and starts it with a DNS watcher of its own; must run inside the control
    /// runtime. Dropping the last reference stops the watcher and every health check task.
    pub fn spawn(
        config: GroupConfig,
        health: HealthSettings,
        dns: discovery::Settings,
        metrics: GroupMetrics,
    ) -> Result<Arc<Self>, GroupError> {
        let group = Arc::new(Self::new(config, health, metrics)?);
        let watcher = Discovery::spawn(group.target().clone(), dns)?;
        group.start(watcher);
        Ok(group)
    }

    /// Starts following the DNS watcher; must run inside the control runtime.
    pub fn start(&self, discovery: Discovery) {
        self.members.follow(discovery.subscribe());
        if self.discovery.set(discovery).is_err() {
            panic!("group {} started twice", self.name());
        }
    }

    pub fn discovery(&self) -> Option<&Discovery> {
        self.discovery.get()
    }

    /// The core's endpoint set, for the bounded wait.
    pub fn members(&self) -> &Members<Pod> {
        &self.members
    }

    /// Ready to take traffic: DNS has answered (or the target is an IP), the endpoint set holds
    /// the answer, and every endpoint in it has had its first active check. A reload swaps a new
    /// group in once this holds.
    pub fn warm(&self) -> bool {
        let Some(discovery) = self.discovery() else {
            return false;
        };
        let answered = match discovery.target().host() {
            discovery::Host::Ip(_) => true,
            discovery::Host::Name(_) => {
                let stats = discovery.stats();
                stats.lookups(LookupResult::Ok) + stats.lookups(LookupResult::Empty) > 0
            }
        };
        // The watcher counts a lookup just before it publishes the answer, in one poll; on the
        // one-thread control runtime this never runs between the two.
        let published = discovery.endpoints();
        answered
            && self
                .members
                .applied()
                .is_some_and(|applied| *applied == *published)
            && self.members.all_checked()
    }

    /// A usable endpoint this request has not tried, by the group's balance; when every usable
    /// one was tried, one of those again (a failed endpoint is ejected unless it was the last, so
    /// it is only usable again after its checks passed since, or because nothing else is).
    pub fn pick(&self, tried: &[std::net::SocketAddr]) -> Option<Pick> {
        if let Some(pick) = self.members.pick(tried) {
            return Some(Pick {
                endpoint: pick.endpoint,
                alternatives: pick.alternatives,
            });
        }
        if tried.is_empty() {
            return None;
        }
        self.members.pick(&[]).map(|pick| Pick {
            endpoint: pick.endpoint,
            alternatives: false,
        })
    }

    /// An attempt failed on `addr` with `cause`: eject it until it passes its probation checks,
    /// and ask DNS again at once in case the pod is gone. A refused connection takes out even the
    /// last usable endpoint (requests are then held); a doubtful failure (a connect timeout, no
    /// answer in time) spares it, and its check decides.
    pub fn eject(&self, addr: std::net::SocketAddr, reason: &str, cause: Attempt) {
        let Some(endpoint) = self.members.get(&addr) else {
            return;
        };
        endpoint
            .data
            .failed_attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ejected = if cause == Attempt::ConnectRefused {
            self.members.eject(&addr, reason)
        } else {
            self.members.eject_unless_last(&addr, reason)
        };
        if ejected {
            self.events.metrics.ejected(cause);
            if let Some(d) = self.discovery() {
                d.refresh();
            }
        }
    }

    /// The endpoints as they are now, sorted by address.
    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.members.endpoints()
    }

    /// Sets the endpoint gauges; called at scrape time.
    pub fn update_gauges(&self) {
        let (mut usable, mut ejected, mut down) = (0, 0, 0);
        for e in self.members.endpoints().iter() {
            let health = e.health();
            if !health.up {
                down += 1;
            } else if health.ejected.is_some() {
                ejected += 1;
            } else {
                usable += 1;
            }
        }
        let m = &self.events.metrics;
        m.endpoints_usable.set(usable);
        m.endpoints_ejected.set(ejected);
        m.endpoints_down.set(down);
    }
}
