//! Prometheus metrics: one registry per running pgbalancer, passed around, never global. Each
//! per-backend series is removed when its backend leaves DNS, so label values stay bounded by the
//! servers that exist.

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// The `reason` label values of the ejection counters.
const EJECTION_REASONS: [&str; 2] = ["busy", "no_answer"];

/// Every metric pgbalancer exports (documented in README.md).
/// How a client connection ended: the `outcome` label of `pgbalancer_client_connections_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Relayed to a backend until one side closed.
    Relayed,
    /// A CancelRequest, forwarded.
    Cancel,
    /// No healthy backend within the hold timeout: 57P03.
    NoBackend,
    /// Closed before a whole first packet.
    Closed,
    /// A packet that is not the protocol: 08P01.
    BadRequest,
    /// No first packet within the client timeout.
    Timeout,
    /// Over `max_connections`: 53300.
    Refused,
}

impl Outcome {
    pub const ALL: [Self; 7] = [
        Self::Relayed,
        Self::Cancel,
        Self::NoBackend,
        Self::Closed,
        Self::BadRequest,
        Self::Timeout,
        Self::Refused,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Relayed => "relayed",
            Self::Cancel => "cancel",
            Self::NoBackend => "no_backend",
            Self::Closed => "closed",
            Self::BadRequest => "bad_request",
            Self::Timeout => "timeout",
            Self::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    connections: IntCounterVec,
    active: IntGaugeVec,
    up: IntGaugeVec,
    in_recovery: IntGaugeVec,
    lag_seconds: GaugeVec,
    lag_bytes: IntGaugeVec,
    checks: IntCounterVec,
    check_duration: HistogramVec,
    bytes: IntCounterVec,
    pub clients: IntCounterVec,
    pub open_clients: IntGauge,
    pub no_backend: IntCounter,
    pub waiting: IntGauge,
    pub cancels: IntCounterVec,
    pub backends: IntGauge,
    ejections: IntCounterVec,
    spared: IntCounterVec,
    /// `pgbalancer_tls_handshakes_total{result="ok"}` and `{result="failed"}`.
    pub tls_handshakes_ok: IntCounter,
    pub tls_handshakes_failed: IntCounter,
}

/// The series of one backend, looked up once so the relay's hot path is a single atomic add.
#[derive(Debug, Clone)]
pub struct BackendMetrics {
    pub connected: IntCounter,
    pub connect_failed: IntCounter,
    pub no_answer: IntCounter,
    pub active: IntGauge,
    pub up: IntGauge,
    pub in_recovery: IntGauge,
    pub lag_seconds: Gauge,
    pub lag_bytes: IntGauge,
    pub checks_passed: IntCounter,
    pub checks_failed: IntCounter,
    pub checks_busy: IntCounter,
    pub check_duration: Histogram,
    pub bytes_to_backend: IntCounter,
    pub bytes_to_client: IntCounter,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let tls = IntCounterVec::new(
            opts("pgbalancer_tls_handshakes_total", "Client TLS handshakes pgbalancer made (with --tls-cert), by result: ok, failed (a client that refused the certificate, spoke no TLS or timed out)."),
            &["result"],
        )?;
        let m = Self {
            connections: IntCounterVec::new(
                opts("pgbalancer_backend_connections_total", "Connections pgbalancer opened to a backend for a client, by result (ok, connect_error, no_answer: connected, but the client's first packet got no answer in time)."),
                &["backend", "result"],
            )?,
            active: IntGaugeVec::new(
                opts("pgbalancer_backend_active_connections", "Client sessions relayed to a backend right now."),
                &["backend"],
            )?,
            up: IntGaugeVec::new(
                opts("pgbalancer_backend_up", "1 if the backend passes its health checks and takes new clients, else 0."),
                &["backend"],
            )?,
            in_recovery: IntGaugeVec::new(
                opts("pgbalancer_backend_in_recovery", "pg_is_in_recovery() at the last successful check: 1 replica, 0 primary."),
                &["backend"],
            )?,
            lag_seconds: GaugeVec::new(
                opts("pgbalancer_backend_replication_lag_seconds", "Replay lag at the last successful check (0 when all received WAL is replayed)."),
                &["backend"],
            )?,
            lag_bytes: IntGaugeVec::new(
                opts("pgbalancer_backend_replication_lag_bytes", "WAL received but not yet replayed at the last successful check."),
                &["backend"],
            )?,
            checks: IntCounterVec::new(
                opts("pgbalancer_health_checks_total", "Health checks run, by result: pass, fail (broken: counts toward fall), busy (full or slow: set aside, never below the floor)."),
                &["backend", "result"],
            )?,
            check_duration: HistogramVec::new(
                HistogramOpts::new("pgbalancer_health_check_duration_seconds", "Time a health check took: login plus query.")
                    .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
                &["backend"],
            )?,
            bytes: IntCounterVec::new(
                opts("pgbalancer_relayed_bytes_total", "Bytes relayed, by backend and direction (to_backend, to_client)."),
                &["backend", "direction"],
            )?,
            clients: IntCounterVec::new(
                opts("pgbalancer_client_connections_total", "Client connections accepted, by outcome (relayed, no_backend, cancel, bad_request, timeout, closed, refused)."),
                &["result"],
            )?,
            open_clients: IntGauge::with_opts(opts(
                "pgbalancer_client_connections",
                "Client connections open right now (at most max_connections).",
            ))?,
            no_backend: IntCounter::with_opts(opts(
                "pgbalancer_no_backend_total",
                "Clients that found no healthy backend within the hold timeout and got SQLSTATE 57P03.",
            ))?,
            waiting: IntGauge::with_opts(opts(
                "pgbalancer_waiting_clients",
                "Clients held right now waiting (up to the hold timeout) for a healthy backend.",
            ))?,
            cancels: IntCounterVec::new(
                opts("pgbalancer_cancel_requests_total", "CancelRequests, by routing: known (sent to the session's server) or fanout (key unknown, sent to every healthy server)."),
                &["routing"],
            )?,
            backends: IntGauge::with_opts(opts(
                "pgbalancer_backends",
                "Backends DNS lists right now.",
            ))?,
            ejections: IntCounterVec::new(
                opts("pgbalancer_ejections_total", "Backends taken out of rotation for new clients while up, by reason: busy (a check found it full or slow; back after one passing check) or no_answer (a client's first packet got no answer in time)."),
                &["reason"],
            )?,
            spared: IntCounterVec::new(
                opts("pgbalancer_ejections_spared_total", "Ejections not made because the backend was among the last in rotation (busy: the floor of half the up backends; no_answer: the last one), by reason."),
                &["reason"],
            )?,
            tls_handshakes_ok: tls.with_label_values(&["ok"]),
            tls_handshakes_failed: tls.with_label_values(&["failed"]),
            registry,
        };
        m.registry.register(Box::new(tls))?;
        m.registry.register(Box::new(m.connections.clone()))?;
        m.registry.register(Box::new(m.active.clone()))?;
        m.registry.register(Box::new(m.up.clone()))?;
        m.registry.register(Box::new(m.in_recovery.clone()))?;
        m.registry.register(Box::new(m.lag_seconds.clone()))?;
        m.registry.register(Box::new(m.lag_bytes.clone()))?;
        m.registry.register(Box::new(m.checks.clone()))?;
        m.registry.register(Box::new(m.check_duration.clone()))?;
        m.registry.register(Box::new(m.bytes.clone()))?;
        m.registry.register(Box::new(m.clients.clone()))?;
        m.registry.register(Box::new(m.open_clients.clone()))?;
        m.registry.register(Box::new(m.no_backend.clone()))?;
        m.registry.register(Box::new(m.waiting.clone()))?;
        m.registry.register(Box::new(m.cancels.clone()))?;
        m.registry.register(Box::new(m.backends.clone()))?;
        m.registry.register(Box::new(m.ejections.clone()))?;
        m.registry.register(Box::new(m.spared.clone()))?;
        ops::metrics::register_process(&m.registry, "pgbalancer", env!("CARGO_PKG_VERSION"))?;
        // Every series of a bounded label exists from the start at 0, so a dashboard's rate()
        // has a line before the first event and the scrape shows every metric.
        for outcome in Outcome::ALL {
            m.clients.with_label_values(&[outcome.label()]);
        }
        for routing in ["known", "fanout"] {
            m.cancels.with_label_values(&[routing]);
        }
        for reason in EJECTION_REASONS {
            m.ejections.with_label_values(&[reason]);
            m.spared.with_label_values(&[reason]);
        }
        Ok(m)
    }

    pub fn backend(&self, backend: &str) -> BackendMetrics {
        BackendMetrics {
            connected: self.connections.with_label_values(&[backend, "ok"]),
            connect_failed: self
                .connections
                .with_label_values(&[backend, "connect_error"]),
            no_answer: self.connections.with_label_values(&[backend, "no_answer"]),
            active: self.active.with_label_values(&[backend]),
            up: self.up.with_label_values(&[backend]),
            in_recovery: self.in_recovery.with_label_values(&[backend]),
            lag_seconds: self.lag_seconds.with_label_values(&[backend]),
            lag_bytes: self.lag_bytes.with_label_values(&[backend]),
            checks_passed: self.checks.with_label_values(&[backend, "pass"]),
            checks_failed: self.checks.with_label_values(&[backend, "fail"]),
            checks_busy: self.checks.with_label_values(&[backend, "busy"]),
            check_duration: self.check_duration.with_label_values(&[backend]),
            bytes_to_backend: self.bytes.with_label_values(&[backend, "to_backend"]),
            bytes_to_client: self.bytes.with_label_values(&[backend, "to_client"]),
        }
    }

    /// A backend left rotation (`spared`: would have, but was among the last) for `reason` as
    /// the upstream core words it.
    pub fn ejection(&self, reason: &str, spared: bool) {
        let label = if reason.starts_with(upstream::BUSY_PREFIX) {
            "busy"
        } else {
            "no_answer"
        };
        let family = if spared {
            &self.spared
        } else {
            &self.ejections
        };
        family.with_label_values(&[label]).inc();
    }

    /// Drops every series of a backend that left DNS.
    pub fn forget_backend(&self, backend: &str) {
        // Errors only say a series was never created; nothing to do then.
        for result in ["ok", "connect_error", "no_answer"] {
            let _ = self.connections.remove_label_values(&[backend, result]);
        }
        for result in ["pass", "fail", "busy"] {
            let _ = self.checks.remove_label_values(&[backend, result]);
        }
        for direction in ["to_backend", "to_client"] {
            let _ = self.bytes.remove_label_values(&[backend, direction]);
        }
        let _ = self.active.remove_label_values(&[backend]);
        let _ = self.up.remove_label_values(&[backend]);
        let _ = self.in_recovery.remove_label_values(&[backend]);
        let _ = self.lag_seconds.remove_label_values(&[backend]);
        let _ = self.lag_bytes.remove_label_values(&[backend]);
        let _ = self.check_duration.remove_label_values(&[backend]);
    }

    /// The Prometheus text format.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}
