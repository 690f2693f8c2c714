//! An upstream group: the DNS watcher, the endpoint table with health, the Pingora round-robin
//! selector over it, and the change signal that held requests wait on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};

use arc_swap::{ArcSwap, ArcSwapOption};
use discovery::{Discovery, Endpoints, LookupResult, Target};
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::{Backends, LoadBalancer};
use tokio::sync::watch;
use tracing::{info, warn};

use super::endpoint::Endpoint;
use super::health::{self, CheckTask, Checker};
use super::membership::SharedMembership;
use crate::config::{GroupConfig, HealthSettings};
use crate::metrics::GroupMetrics;

/// What the request path and the check tasks share to report changes.
pub struct GroupEvents {
    pub name: Arc<str>,
    pub metrics: GroupMetrics,
    /// Bumped whenever membership, health or an ejection changes: held requests wake on it.
    changes: watch::Sender<u64>,
}

impl GroupEvents {
    pub fn changed(&self) {
        self.changes.send_modify(|generation| *generation += 1);
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
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
    lb: LoadBalancer<RoundRobin>,
    membership: SharedMembership,
    table: ArcSwap<HashMap<SocketAddr, Arc<Endpoint>>>,
    discovery: OnceLock<Discovery>,
    /// The endpoint set the selector was last rebuilt from.
    applied: ArcSwapOption<std::collections::BTreeSet<SocketAddr>>,
    health: HealthSettings,
    checker: Checker,
}

impl Group {
    pub fn new(
        config: GroupConfig,
        health: HealthSettings,
        metrics: GroupMetrics,
    ) -> Result<Self, GroupError> {
        let membership = SharedMembership::default();
        let lb = LoadBalancer::from_backends(Backends::new(Box::new(membership.clone())));
        let host = match config.target.host() {
            discovery::Host::Name(name) => name.clone(),
            discovery::Host::Ip(ip) => ip.to_string(),
        };
        let checker =
            health::checker(&config.health, &host, health.timeout).map_err(GroupError::Check)?;
        let (changes, _) = watch::channel(0);
        Ok(Self {
            events: Arc::new(GroupEvents {
                name: config.name.as_str().into(),
                metrics,
                changes,
            }),
            config,
            lb,
            membership,
            table: ArcSwap::default(),
            discovery: OnceLock::new(),
            applied: ArcSwapOption::empty(),
            health,
            checker,
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

    /// Starts the DNS watcher and follows it; must run inside the control runtime.
    pub fn start(self: &Arc<Self>, discovery: Discovery) {
        let rx = discovery.subscribe();
        if self.discovery.set(discovery).is_err() {
            panic!("group {} started twice", self.name());
        }
        tokio::spawn(follow(Arc::downgrade(self), rx));
    }

    pub fn discovery(&self) -> Option<&Discovery> {
        self.discovery.get()
    }

    /// Ready to take traffic: DNS has answered (or the target is an IP), the selector holds the
    /// answer, and every endpoint in it has had its first active check. A reload swaps a new
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
                .applied
                .load()
                .as_ref()
                .is_some_and(|applied| **applied == *published)
            && self.table.load().values().all(|e| e.last_check().is_some())
    }

    /// Applies one published endpoint set: new endpoints get a check task (checked at once),
    /// gone ones lose theirs, and the selector is rebuilt before held requests are woken.
    async fn apply(&self, set: Endpoints, checks: &mut HashMap<SocketAddr, CheckTask>) {
        let old = self.table.load_full();
        let table: HashMap<_, _> = set
            .iter()
            .map(|addr| {
                let endpoint = old
                    .get(addr)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Endpoint::new(*addr)));
                (*addr, endpoint)
            })
            .collect();
        checks.retain(|addr, _| table.contains_key(addr));
        for (addr, endpoint) in &table {
            checks.entry(*addr).or_insert_with(|| {
                health::spawn(
                    Arc::clone(endpoint),
                    Arc::clone(&self.checker),
                    self.health.clone(),
                    Arc::clone(&self.events),
                )
            });
        }
        if table.is_empty() && !old.is_empty() {
            warn!(group = %self.name(), "no endpoints: requests are held until one appears");
        } else if !table.is_empty() && old.is_empty() {
            info!(group = %self.name(), endpoints = table.len(), "endpoints available");
        }
        self.table.store(Arc::new(table));
        self.membership.0.set(Arc::clone(&set));
        if let Err(e) = self.lb.update().await {
            warn!(group = %self.name(), error = %e, "rebuilding the selector failed");
        }
        self.applied.store(Some(set));
        self.events.changed();
    }

    /// Round-robin over usable endpoints this request has not tried; when every usable one was
    /// tried, one of those again (a failed endpoint is ejected, so it is only usable again after
    /// an active check passed since).
    pub fn pick(&self, tried: &[SocketAddr]) -> Option<Pick> {
        let table = self.table.load();
        let usable = |addr: &SocketAddr| table.get(addr).is_some_and(|e| e.usable());
        let max_steps = table.len() * 4 + 8;
        let select = |skip_tried: bool| {
            self.lb.select_with(b"", max_steps, |backend, _| {
                backend
                    .addr
                    .as_inet()
                    .is_some_and(|a| usable(a) && !(skip_tried && tried.contains(a)))
            })
        };
        let backend = select(true).or_else(|| {
            if tried.is_empty() {
                None
            } else {
                select(false)
            }
        })?;
        let endpoint = Arc::clone(table.get(backend.addr.as_inet()?)?);
        let alternatives = table
            .values()
            .any(|e| e.addr != endpoint.addr && e.usable() && !tried.contains(&e.addr));
        Some(Pick {
            endpoint,
            alternatives,
        })
    }

    /// A request failed to reach `addr`: eject it until an active check passes, and ask DNS
    /// again at once in case the pod is gone.
    pub fn eject(&self, addr: SocketAddr, reason: &str) {
        let Some(endpoint) = self.table.load().get(&addr).cloned() else {
            return;
        };
        if endpoint.eject() {
            warn!(group = %self.name(), %addr, %reason, "endpoint ejected until an active check passes");
            self.events.metrics.ejections.inc();
            self.events.changed();
            if let Some(d) = self.discovery() {
                d.refresh();
            }
        }
    }

    /// The endpoints as they are now, sorted by address.
    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        let mut all: Vec<_> = self.table.load().values().cloned().collect();
        all.sort_by_key(|e| e.addr);
        all
    }

    /// Sets the endpoint gauges; called at scrape time.
    pub fn update_gauges(&self) {
        let (mut usable, mut ejected, mut down) = (0, 0, 0);
        for e in self.table.load().values() {
            if !e.healthy() {
                down += 1;
            } else if e.ejected() {
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

/// Follows the DNS watcher for as long as the group exists. It holds the group only while
/// applying a change, so dropping the group's last reference drops its watcher, whose channel
/// then closes and ends this loop, and with it every check task in `checks`.
async fn follow(group: Weak<Group>, mut rx: watch::Receiver<Endpoints>) {
    let mut checks: HashMap<SocketAddr, CheckTask> = HashMap::new();
    loop {
        let set = rx.borrow_and_update().clone();
        match group.upgrade() {
            Some(group) => group.apply(set, &mut checks).await,
            None => return,
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
