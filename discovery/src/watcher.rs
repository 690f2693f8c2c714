//! The watch loop: resolve, publish changes, sleep min(TTL, interval), again.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::resolver::{self, ResolverError, ResolverSpec};
use crate::stats::{LookupResult, Stats};
use crate::target::{Host, Target};

/// Lookups never run closer together than this, whatever the TTL says.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// A published set of endpoints, sorted. Cheap to clone.
pub type Endpoints = Arc<BTreeSet<SocketAddr>>;

/// How to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Upper bound between lookups; a shorter record TTL re-resolves sooner.
    pub resolve_interval: Duration,
    /// One lookup gives up after this long; the last good set stays.
    pub lookup_timeout: Duration,
    /// Where lookups go.
    pub resolver: ResolverSpec,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resolve_interval: Duration::from_secs(1),
            lookup_timeout: Duration::from_secs(1),
            resolver: ResolverSpec::System,
        }
    }
}

/// A running watch of one [`Target`]. Dropping it stops the lookups.
#[derive(Debug)]
pub struct Discovery {
    target: Target,
    rx: watch::Receiver<Endpoints>,
    stats: Arc<Stats>,
    refresh: Arc<Notify>,
    /// Keeps an IP literal's channel open, so `changed()` waits instead of failing.
    _fixed: Option<watch::Sender<Endpoints>>,
    task: Option<JoinHandle<()>>,
}

impl Discovery {
    /// Starts watching `target` on the current Tokio runtime. The set starts empty and the first
    /// lookup runs at once; an IP-literal target publishes its one endpoint and never changes.
    pub fn spawn(target: Target, settings: Settings) -> Result<Self, ResolverError> {
        let stats = Arc::new(Stats::default());
        let refresh = Arc::new(Notify::new());
        let (fixed, rx, task) = match target.host() {
            Host::Ip(_) => {
                let fixed = target.socket_addr().into_iter().collect::<BTreeSet<_>>();
                let (tx, rx) = watch::channel(Arc::new(fixed));
                (Some(tx), rx, None)
            }
            Host::Name(name) => {
                let resolver = resolver::build(&settings.resolver, settings.lookup_timeout)?;
                let (tx, rx) = watch::channel(Endpoints::default());
                let task = Watch {
                    name: name.clone(),
                    port: target.port(),
                    settings,
                    resolver,
                    stats: stats.clone(),
                    refresh: refresh.clone(),
                    tx,
                };
                (None, rx, Some(tokio::spawn(task.run())))
            }
        };
        Ok(Self {
            target,
            rx,
            stats,
            refresh,
            _fixed: fixed,
            task,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// A receiver that sees every change as it is published.
    pub fn subscribe(&self) -> watch::Receiver<Endpoints> {
        self.rx.clone()
    }

    /// The set as published now.
    pub fn endpoints(&self) -> Endpoints {
        self.rx.borrow().clone()
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Asks for a lookup now instead of at the next interval (still no sooner than
    /// [`MIN_INTERVAL`] after the last one): a consumer that just saw an endpoint fail learns
    /// sooner whether it left DNS.
    pub fn refresh(&self) {
        self.refresh.notify_one();
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The delay before the next lookup: the record TTL when it is shorter than the interval, never
/// below [`MIN_INTERVAL`].
pub fn next_delay(ttl: Option<Duration>, interval: Duration) -> Duration {
    ttl.map_or(interval, |ttl| ttl.min(interval))
        .max(MIN_INTERVAL)
}

struct Watch {
    name: String,
    port: u16,
    settings: Settings,
    resolver: TokioResolver,
    stats: Arc<Stats>,
    refresh: Arc<Notify>,
    tx: watch::Sender<Endpoints>,
}

/// What one lookup produced.
enum Answer {
    Set(BTreeSet<SocketAddr>, Option<Duration>),
    Failed(String),
}

impl Watch {
    async fn run(self) {
        let mut failing = false;
        loop {
            let ttl = match self.lookup().await {
                Answer::Set(set, ttl) => {
                    if failing {
                        info!(name = %self.name, "DNS lookups succeed again");
                        failing = false;
                    }
                    self.stats.record(if set.is_empty() {
                        LookupResult::Empty
                    } else {
                        LookupResult::Ok
                    });
                    self.publish(set);
                    ttl
                }
                Answer::Failed(error) => {
                    // The resolver being down says nothing about the pods: keep the last set.
                    if failing {
                        debug!(name = %self.name, %error, "DNS lookup failed again; keeping the last endpoints");
                    } else {
                        warn!(name = %self.name, %error, kept = self.tx.borrow().len(), "DNS lookup failed; keeping the last endpoints");
                        failing = true;
                    }
                    self.stats.record_failure(error);
                    None
                }
            };
            let delay = next_delay(ttl, self.settings.resolve_interval);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.refresh.notified() => tokio::time::sleep(MIN_INTERVAL).await,
            }
        }
    }

    async fn lookup(&self) -> Answer {
        // The resolver has its own timeout per attempt; this bounds the whole lookup, search list
        // included.
        let limit = self.settings.lookup_timeout * 2;
        match tokio::time::timeout(limit, self.resolver.lookup_ip(self.name.as_str())).await {
            Err(_) => Answer::Failed(format!("no answer within {limit:?}")),
            Ok(Ok(lookup)) => {
                let ttl = lookup
                    .valid_until()
                    .checked_duration_since(std::time::Instant::now());
                let set = lookup
                    .iter()
                    .map(|ip| SocketAddr::new(ip, self.port))
                    .collect();
                Answer::Set(set, ttl)
            }
            Ok(Err(e)) if e.is_no_records_found() => Answer::Set(BTreeSet::new(), None),
            Ok(Err(e)) => Answer::Failed(e.to_string()),
        }
    }

    fn publish(&self, set: BTreeSet<SocketAddr>) {
        let current = self.tx.borrow().clone();
        if *current == set {
            return;
        }
        let added: Vec<_> = set.difference(&current).collect();
        let removed: Vec<_> = current.difference(&set).collect();
        info!(name = %self.name, ?added, ?removed, total = set.len(), "endpoints changed");
        self.stats.record_change();
        self.tx.send_replace(Arc::new(set));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_delay_is_the_shorter_of_ttl_and_interval_but_never_below_the_floor() {
        let s = Duration::from_secs;
        assert_eq!(next_delay(Some(s(5)), s(1)), s(1));
        assert_eq!(next_delay(Some(s(1)), s(30)), s(1));
        assert_eq!(next_delay(None, s(2)), s(2));
        assert_eq!(next_delay(Some(Duration::ZERO), s(1)), MIN_INTERVAL);
        assert_eq!(next_delay(None, Duration::from_millis(10)), MIN_INTERVAL);
    }
}
