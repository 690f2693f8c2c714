//! Prometheus metrics: one registry per process, families registered once, and per-group children
//! resolved once so the request path never hashes label values.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use discovery::{LookupResult, Stats};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
mod endpoints;
mod refusals;
mod tunnels;

pub use refusals::Refusals;
pub use tunnels::{TunnelEnd, TunnelMetrics};

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Outcome of one attempt to send a request to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// A response came back (any status).
    Ok,
    ConnectRefused,
    ConnectTimeout,
    ConnectError,
    /// No first byte of the answer within the attempt's first-byte deadline (or the read
    /// timeout): the endpoint stalls.
    FirstByteTimeout,
    /// Failed after the connection was made (reset, closed, a read timeout mid-answer).
    UpstreamError,
}

impl Attempt {
    const ALL: [Attempt; 6] = [
        Self::Ok,
        Self::ConnectRefused,
        Self::ConnectTimeout,
        Self::ConnectError,
        Self::FirstByteTimeout,
        Self::UpstreamError,
    ];

    /// The failed attempts that eject their endpoint: the `reason` of
    /// `proxy_endpoint_ejections_total`.
    pub const EJECTING: [Attempt; 4] = [
        Self::ConnectRefused,
        Self::ConnectTimeout,
        Self::ConnectError,
        Self::FirstByteTimeout,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ConnectRefused => "connect_refused",
            Self::ConnectTimeout => "connect_timeout",
            Self::ConnectError => "connect_error",
            Self::FirstByteTimeout => "first_byte_timeout",
            Self::UpstreamError => "upstream_error",
        }
    }
}

/// Each running group's name and its DNS watcher's counters, replaced on reload.
type DnsSources = Arc<ArcSwap<Vec<(String, Arc<Stats>)>>>;

/// The process's metric families.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    connect: HistogramVec,
    first_byte: HistogramVec,
    attempts: IntCounterVec,
    held: IntCounterVec,
    holding: IntGaugeVec,
    hold_timeouts: IntCounterVec,
    ejections: IntCounterVec,
    health_changes: IntCounterVec,
    health_checks: IntCounterVec,
    endpoints: IntGaugeVec,
    pub refusals: Refusals,
    tunnels_open: IntGaugeVec,
    tunnel_bytes: IntCounterVec,
    tunnels_closed: IntCounterVec,
    /// The running groups' DNS watchers, read at scrape time.
    dns: DnsSources,
    /// The running groups, whose endpoints are read at scrape time.
    groups: endpoints::Groups,
    pub config: ConfigMetrics,
}

/// The running configuration: reloads and which generation serves.
pub struct ConfigMetrics {
    pub reloads_ok: IntCounter,
    pub reloads_failed: IntCounter,
    generation: IntGauge,
    loaded: IntGauge,
}

impl ConfigMetrics {
    /// Generation `generation`, applied at `at`, serves from now on.
    pub fn running(&self, generation: u64, at: SystemTime) {
        self.generation.set(generation as i64);
        self.loaded
            .set(at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64);
    }
}

/// The children of one group, resolved once.
#[derive(Clone)]
pub struct GroupMetrics {
    by_class: [IntCounter; 6],
    pub duration: Histogram,
    /// New upstream connections only: a pooled one costs nothing.
    pub connect: Histogram,
    pub first_byte: Histogram,
    attempts: [IntCounter; Attempt::ALL.len()],
    pub held: IntCounter,
    pub holding: IntGauge,
    pub hold_timeouts: IntCounter,
    /// By [`Attempt::EJECTING`].
    ejections: [IntCounter; Attempt::EJECTING.len()],
    pub went_down: IntCounter,
    pub came_up: IntCounter,
    pub checks_passed: IntCounter,
    pub checks_failed: IntCounter,
    pub endpoints_usable: IntGauge,
    pub endpoints_ejected: IntGauge,
    pub endpoints_down: IntGauge,
    pub tunnels: TunnelMetrics,
}

const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let requests = counter(
            "proxy_requests_total",
            "Requests answered, by upstream group and status class.",
            &["group", "class"],
        );
        let attempts = counter(
            "proxy_upstream_attempts_total",
            "Attempts to send a request to an endpoint, by outcome.",
            &["group", "outcome"],
        );
        let held = counter(
            "proxy_held_requests_total",
            "Requests that had to wait for an endpoint to become available.",
            &["group"],
        );
        let holding = gauge(
            "proxy_held_requests",
            "Requests waiting for an endpoint right now.",
            &["group"],
        );
        let hold_timeouts = counter(
            "proxy_hold_timeouts_total",
            "Held requests answered 503 because no endpoint appeared in time.",
            &["group"],
        );
        let ejections = counter(
            "proxy_endpoint_ejections_total",
            "Endpoints taken out of rotation by a failed request (passive health), by the failure.",
            &["group", "reason"],
        );
        let health_changes = counter(
            "proxy_endpoint_health_changes_total",
            "Active health check verdict changes, by new state (up, down).",
            &["group", "state"],
        );
        let health_checks = counter(
            "proxy_health_checks_total",
            "Active health checks run, by result (pass, fail).",
            &["group", "result"],
        );
        let endpoints = gauge(
            "proxy_endpoints",
            "Known endpoints by state: usable, ejected (passive), down (active checks).",
            &["group", "state"],
        );
        let refused = counter(
            "proxy_requests_refused_total",
            "Requests the proxy answered itself before any upstream saw them, by reason (bad_request 400, unrouted 404, body_too_large 413, uri_too_long 414, header_too_large 431).",
            &["reason"],
        );
        let refusals = Refusals::new(&refused);
        let tunnels_open = gauge(
            "proxy_tunnels_open",
            "Upgraded connections (websocket, any Upgrade) open now.",
            &["group"],
        );
        let tunnel_bytes = counter(
            "proxy_tunnel_bytes_total",
            "Bytes relayed through upgraded connections, by direction (from_client, to_client).",
            &["group", "direction"],
        );
        let tunnels_closed = counter(
            "proxy_tunnels_closed_total",
            "Upgraded connections ended, by reason (closed: by either side; idle_timeout; error).",
            &["group", "reason"],
        );
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), &["group"])
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("registered once");
            h
        };
        let seconds = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let duration = histogram(
            "proxy_request_duration_seconds",
            "Time from request start to the last response byte, holds and retries included.",
            seconds.clone(),
        );
        let connect = histogram(
            "proxy_upstream_connect_seconds",
            "Time to open a new upstream connection (endpoint picked to connected); pooled connections are not observed.",
            vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0, 2.0,
            ],
        );
        let first_byte = histogram(
            "proxy_upstream_first_byte_seconds",
            "Time from an attempt's start (endpoint picked, connect included) to its response header, for every answered attempt.",
            seconds,
        );
        let reloads = counter(
            "proxy_config_reloads_total",
            "Configuration reloads (SIGHUP), by result: ok (applied) or failed (running config kept).",
            &["result"],
        );
        let single_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let config = ConfigMetrics {
            reloads_ok: reloads.with_label_values(&["ok"]),
            reloads_failed: reloads.with_label_values(&["failed"]),
            generation: single_gauge(
                "proxy_config_generation",
                "Generation of the running configuration: 1 at start, one more per applied reload.",
            ),
            loaded: single_gauge(
                "proxy_config_loaded_timestamp_seconds",
                "Unix time the running configuration was applied.",
            ),
        };
        ops::metrics::register_process(&registry, "proxy", env!("CARGO_PKG_VERSION"))
            .expect("registered once");
        let dns = Arc::new(ArcSwap::default());
        registry
            .register(Box::new(DnsLookups::new(Arc::clone(&dns))))
            .expect("registered once");
        let groups = Arc::new(ArcSwap::default());
        registry
            .register(Box::new(endpoints::EndpointSeries::new(Arc::clone(
                &groups,
            ))))
            .expect("registered once");
        Self {
            registry,
            requests,
            duration,
            connect,
            first_byte,
            attempts,
            held,
            holding,
            hold_timeouts,
            ejections,
            health_changes,
            health_checks,
            endpoints,
            refusals,
            tunnels_open,
            tunnel_bytes,
            tunnels_closed,
            dns,
            groups,
            config,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Resolves the children of group `name`.
    pub fn group(&self, name: &str) -> GroupMetrics {
        GroupMetrics {
            by_class: CLASSES.map(|class| self.requests.with_label_values(&[name, class])),
            duration: self.duration.with_label_values(&[name]),
            connect: self.connect.with_label_values(&[name]),
            first_byte: self.first_byte.with_label_values(&[name]),
            attempts: Attempt::ALL.map(|a| self.attempts.with_label_values(&[name, a.as_str()])),
            held: self.held.with_label_values(&[name]),
            holding: self.holding.with_label_values(&[name]),
            hold_timeouts: self.hold_timeouts.with_label_values(&[name]),
            ejections: Attempt::EJECTING
                .map(|a| self.ejections.with_label_values(&[name, a.as_str()])),
            went_down: self.health_changes.with_label_values(&[name, "down"]),
            came_up: self.health_changes.with_label_values(&[name, "up"]),
            checks_passed: self.health_checks.with_label_values(&[name, "pass"]),
            checks_failed: self.health_checks.with_label_values(&[name, "fail"]),
            endpoints_usable: self.endpoints.with_label_values(&[name, "usable"]),
            endpoints_ejected: self.endpoints.with_label_values(&[name, "ejected"]),
            endpoints_down: self.endpoints.with_label_values(&[name, "down"]),
            tunnels: TunnelMetrics::new(
                name,
                &self.tunnels_open,
                &self.tunnel_bytes,
                &self.tunnels_closed,
            ),
        }
    }

    /// Exports these watchers' counters as `proxy_dns_lookups_total{group,result}` from now on.
    pub fn set_dns(&self, groups: Vec<(String, Arc<Stats>)>) {
        self.dns.store(Arc::new(groups));
    }

    /// Exports the `proxy_endpoint_*` series of these groups' endpoints from now on.
    pub fn set_groups(&self, groups: Vec<Arc<crate::upstream::Group>>) {
        self.groups.store(Arc::new(groups));
    }

    /// A group left the configuration: its gauges go, so no dashboard shows endpoints of a group
    /// that no longer exists. Its counters stay: requests still in flight on it count, and
    /// `rate()` falls to zero instead of the series vanishing.
    pub fn forget_group(&self, name: &str) {
        for state in ["usable", "ejected", "down"] {
            let _ = self.endpoints.remove_label_values(&[name, state]);
        }
        let _ = self.holding.remove_label_values(&[name]);
        // `proxy_tunnels_open` stays: tunnels opened through the group live on after the reload
        // (each request keeps the routes it started with) and fall to 0 as they close.
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GroupMetrics {
    pub fn response(&self, status: u16) {
        let i = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            500..=599 => 4,
            _ => 5,
        };
        self.by_class[i].inc();
    }

    /// An endpoint was ejected after an attempt failed with `cause`.
    pub fn ejected(&self, cause: Attempt) {
        if let Some(i) = Attempt::EJECTING.iter().position(|a| *a == cause) {
            self.ejections[i].inc();
        }
    }

    pub fn attempt(&self, outcome: Attempt) {
        let i = Attempt::ALL
            .iter()
            .position(|a| *a == outcome)
            .expect("listed");
        self.attempts[i].inc();
    }
}

/// Reads the lookup counters of each running group's watcher at scrape time.
struct DnsLookups {
    groups: DnsSources,
    template: IntCounterVec,
}

impl DnsLookups {
    fn new(groups: DnsSources) -> Self {
        let template = IntCounterVec::new(
            Opts::new(
                "proxy_dns_lookups_total",
                "DNS lookups of each group's upstream name, by result (ok, empty, failed).",
            ),
            &["group", "result"],
        )
        .expect("valid metric");
        Self { groups, template }
    }
}

impl Collector for DnsLookups {
    fn desc(&self) -> Vec<&Desc> {
        self.template.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.template.reset();
        for (group, stats) in self.groups.load().iter() {
            for result in LookupResult::ALL {
                self.template
                    .with_label_values(&[group, result.as_str()])
                    .inc_by(stats.lookups(result));
            }
        }
        self.template.collect()
    }
}
