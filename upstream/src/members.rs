//! The endpoints of one upstream: the set `discovery` published last, one check task per
//! endpoint (started the moment it appears, stopped when it leaves, so a slow check never delays
//! another and DNS never delays a check), the round-robin chooser over the usable ones, the
//! change counter waiting callers watch, and the bounded wait itself.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use discovery::Endpoints;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::check::{Check, Observer};
use crate::endpoint::Endpoint;
use crate::health::{CheckRecord, Initial, Thresholds, Transition};

/// How endpoints are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Time between two checks of one endpoint; the first runs at once.
    pub interval: Duration,
    /// Bound on one check, whatever the check does; past it the check failed.
    pub check_timeout: Duration,
    pub thresholds: Thresholds,
    pub initial: Initial,
}

/// A chosen endpoint, and whether another usable one was left to try.
pub struct Pick<X> {
    pub endpoint: Arc<Endpoint<X>>,
    pub alternatives: bool,
}

/// What the check tasks need; they hold this, never the [`Members`], so dropping the members
/// stops everything.
struct Shared<X> {
    settings: Settings,
    check: Arc<dyn Check<X>>,
    observer: Arc<dyn Observer<X>>,
    /// Bumped on every change of membership, health or an ejection.
    changes: watch::Sender<u64>,
}

impl<X> Shared<X> {
    fn notify(&self) {
        self.changes
            .send_modify(|version| *version = version.wrapping_add(1));
    }
}

type Make<X> = Box<dyn Fn(SocketAddr) -> X + Send + Sync>;

pub struct Members<X> {
    shared: Arc<Shared<X>>,
    make: Make<X>,
    /// Sorted by address.
    table: ArcSwap<Vec<Arc<Endpoint<X>>>>,
    applied: ArcSwapOption<BTreeSet<SocketAddr>>,
    cursor: AtomicUsize,
}

impl<X: Send + Sync + 'static> Members<X> {
    /// An empty set; `make` builds the binary's data for each new endpoint.
    pub fn new(
        settings: Settings,
        check: Arc<dyn Check<X>>,
        observer: Arc<dyn Observer<X>>,
        make: impl Fn(SocketAddr) -> X + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            shared: Arc::new(Shared {
                settings,
                check,
                observer,
                changes: watch::channel(0).0,
            }),
            make: Box::new(make),
            table: ArcSwap::default(),
            applied: ArcSwapOption::empty(),
            cursor: AtomicUsize::new(0),
        })
    }

    /// Follows the endpoint sets on `endpoints` (a discovery watch) in a task of the current
    /// runtime. The task holds the members only while applying a set: it ends, and every check
    /// task with it, when the channel closes or the last other reference is dropped.
    pub fn follow(self: &Arc<Self>, endpoints: watch::Receiver<Endpoints>) -> JoinHandle<()> {
        tokio::spawn(follow(Arc::downgrade(self), endpoints))
    }

    /// The endpoints now, sorted by address.
    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint<X>>>> {
        self.table.load_full()
    }

    pub fn get(&self, addr: &SocketAddr) -> Option<Arc<Endpoint<X>>> {
        let table = self.table.load();
        table
            .binary_search_by_key(addr, |e| e.addr)
            .ok()
            .map(|i| Arc::clone(&table[i]))
    }

    /// The usable endpoints, sorted by address.
    pub fn usable(&self) -> Vec<Arc<Endpoint<X>>> {
        self.table
            .load()
            .iter()
            .filter(|e| e.usable())
            .cloned()
            .collect()
    }

    /// The next usable endpoint not in `tried`, round-robin over those.
    pub fn pick(&self, tried: &[SocketAddr]) -> Option<Pick<X>> {
        let table = self.table.load();
        let candidate = |e: &&Arc<Endpoint<X>>| e.usable() && !tried.contains(&e.addr);
        let count = table.iter().filter(candidate).count();
        if count == 0 {
            return None;
        }
        let nth = self.cursor.fetch_add(1, Ordering::Relaxed) % count;
        let endpoint = Arc::clone(table.iter().filter(candidate).nth(nth)?);
        Some(Pick {
            endpoint,
            alternatives: count > 1,
        })
    }

    /// A request could not use `addr`: out of rotation until a check passes. True when this
    /// call ejected it.
    pub fn eject(&self, addr: &SocketAddr, reason: &str) -> bool {
        let Some(endpoint) = self.get(addr) else {
            return false;
        };
        if !endpoint.eject(reason) {
            return false;
        }
        self.shared.observer.ejected(&endpoint, reason);
        self.shared.notify();
        true
    }

    /// The endpoint set last applied (None before the first).
    pub fn applied(&self) -> Option<Endpoints> {
        self.applied.load_full()
    }

    /// Every endpoint has had its first check.
    pub fn all_checked(&self) -> bool {
        self.table.load().iter().all(|e| e.health().last.is_some())
    }

    /// The change counter: compare with [`Members::subscribe`] to see what changed since.
    pub fn version(&self) -> u64 {
        *self.shared.changes.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Calls `attempt` until it returns `Some`, or until `deadline`: at once, after every change
    /// of the set or of an endpoint's health, and every `nudge_every` (after calling `nudge`, which
    /// can ask DNS again). `attempt` gets `true` on the first call and after a change, when every
    /// endpoint deserves a new try; `false` when only the timer woke it.
    ///
    /// (`attempt` returns a future rather than being an async closure: the futures of async
    /// closures are not yet provably `Send`, which a server's request path needs.)
    pub async fn wait_for<T, F>(
        &self,
        deadline: Instant,
        nudge_every: Duration,
        mut nudge: impl FnMut(),
        mut attempt: impl FnMut(bool) -> F,
    ) -> Option<T>
    where
        F: std::future::Future<Output = Option<T>>,
    {
        let mut changes = self.subscribe();
        let mut fresh = true;
        loop {
            changes.borrow_and_update();
            if let Some(found) = attempt(fresh).await {
                return Some(found);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            nudge();
            let wake = deadline.min(now + nudge_every);
            fresh = match tokio::time::timeout_at(wake, changes.changed()).await {
                Ok(Ok(())) => true,
                Ok(Err(_)) => return None,
                Err(_) => false,
            };
        }
    }

    fn apply(&self, set: &Endpoints, tasks: &mut HashMap<SocketAddr, CheckTask>) {
        let old = self.table.load_full();
        let shared = &self.shared;
        let mut table = Vec::with_capacity(set.len());
        for addr in set.iter() {
            let existing = old
                .binary_search_by_key(addr, |e| e.addr)
                .ok()
                .map(|i| Arc::clone(&old[i]));
            let endpoint = existing.unwrap_or_else(|| {
                let e = Arc::new(Endpoint::new(
                    *addr,
                    shared.settings.initial,
                    (self.make)(*addr),
                ));
                shared.observer.joined(&e);
                tasks.insert(
                    *addr,
                    CheckTask(tokio::spawn(checks(Arc::clone(&e), Arc::clone(shared)))),
                );
                e
            });
            table.push(endpoint);
        }
        for gone in old.iter().filter(|e| !set.contains(&e.addr)) {
            tasks.remove(&gone.addr);
            shared.observer.left(gone);
        }
        self.table.store(Arc::new(table));
        self.applied.store(Some(Arc::clone(set)));
        shared.observer.membership(set.len());
        shared.notify();
    }
}

impl<X> std::fmt::Debug for Members<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let table = self.table.load();
        f.debug_struct("Members")
            .field(
                "endpoints",
                &table.iter().map(|e| e.addr).collect::<Vec<_>>(),
            )
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

async fn follow<X: Send + Sync + 'static>(
    members: Weak<Members<X>>,
    mut endpoints: watch::Receiver<Endpoints>,
) {
    let mut tasks: HashMap<SocketAddr, CheckTask> = HashMap::new();
    loop {
        let set = endpoints.borrow_and_update().clone();
        match members.upgrade() {
            Some(members) => members.apply(&set, &mut tasks),
            None => return,
        }
        if endpoints.changed().await.is_err() {
            return;
        }
    }
}

/// Aborts an endpoint's check task when it leaves (or when its members are dropped).
struct CheckTask(JoinHandle<()>);

impl Drop for CheckTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn checks<X: Send + Sync + 'static>(endpoint: Arc<Endpoint<X>>, shared: Arc<Shared<X>>) {
    let settings = shared.settings;
    let mut ticks = tokio::time::interval(settings.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let at = SystemTime::now();
        let started = Instant::now();
        let result = tokio::time::timeout(settings.check_timeout, shared.check.check(&endpoint))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", settings.check_timeout)));
        let record = CheckRecord {
            at,
            duration: started.elapsed(),
            result,
        };
        let transition = endpoint.observe(record.clone(), settings.thresholds);
        shared.observer.checked(&endpoint, &record, transition);
        if transition != Transition::None {
            shared.notify();
        }
    }
}

#[cfg(test)]
mod tests;
