//! A snapshot of the balancer for `/status` (JSON), the HTML page and the tests. Holds no secret:
//! the check password is shown only as the name of the variable it came from.

use std::net::SocketAddr;
use std::time::SystemTime;

use serde::Serialize;

use crate::config::{OnDown, RoleFilter};
use crate::shared::Shared;
use crate::tls::TlsMode;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub version: &'static str,
    pub started: String,
    pub upstream: String,
    pub listen: SocketAddr,
    pub role: RoleFilter,
    pub on_down: OnDown,
    /// Clients' TLS: the mode, and the certificate's path when terminated here (never its
    /// contents, nor the key's).
    pub tls: TlsSummary,
    pub check: CheckSummary,
    pub dns: DnsSummary,
    pub backends: Vec<BackendStatus>,
    pub healthy: usize,
    pub no_backend_total: u64,
    pub waiting_clients: i64,
    pub client_connections: i64,
    pub max_connections: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckSummary {
    pub user: String,
    pub database: String,
    pub password_env: Option<String>,
    pub interval_ms: u128,
    pub timeout_ms: u128,
    pub fall: u32,
    pub rise: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsSummary {
    pub mode: TlsMode,
    pub cert: Option<String>,
    pub handshakes_ok: u64,
    pub handshakes_failed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DnsSummary {
    pub lookups_ok: u64,
    pub lookups_empty: u64,
    pub lookups_failed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackendStatus {
    pub addr: SocketAddr,
    /// `up` or `down`.
    pub state: &'static str,
    /// When the state last changed.
    pub since: Option<String>,
    /// Why it takes no new clients while up: `busy: …` (a check found it full or slow), or no
    /// answer to a client's first packet. None while it takes them.
    pub ejected: Option<String>,
    /// `replica`, `primary`, or `unknown` before the first answer.
    pub role: &'static str,
    pub lag_seconds: Option<f64>,
    pub lag_bytes: Option<i64>,
    pub last_check: Option<LastCheck>,
    pub active_sessions: i64,
    pub total_sessions: u64,
    pub connect_errors: u64,
    pub bytes_to_backend: u64,
    pub bytes_to_client: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastCheck {
    pub at: String,
    pub duration_ms: f64,
    pub passed: bool,
    pub error: Option<String>,
}

fn time(t: SystemTime) -> String {
    ops::admin::time(t)
}

impl Status {
    pub(crate) fn collect(shared: &Shared) -> Self {
        let backends: Vec<BackendStatus> = shared
            .pool
            .endpoints()
            .iter()
            .map(|b| {
                let h = b.health();
                let d = b.data.details();
                let m = &b.data.metrics;
                BackendStatus {
                    addr: b.addr,
                    state: if h.up { "up" } else { "down" },
                    since: Some(time(h.since)),
                    ejected: h.ejected.filter(|_| h.up).map(|e| e.reason),
                    role: match d.in_recovery {
                        Some(true) => "replica",
                        Some(false) => "primary",
                        None => "unknown",
                    },
                    lag_seconds: d.lag_seconds,
                    lag_bytes: d.lag_bytes,
                    last_check: h.last.map(|c| LastCheck {
                        at: time(c.at),
                        duration_ms: c.duration.as_secs_f64() * 1000.0,
                        passed: c.result.is_ok(),
                        error: c.result.err().map(|f| f.reason),
                    }),
                    active_sessions: m.active.get(),
                    total_sessions: m.connected.get(),
                    connect_errors: m.connect_failed.get(),
                    bytes_to_backend: m.bytes_to_backend.get(),
                    bytes_to_client: m.bytes_to_client.get(),
                }
            })
            .collect();
        let c = &shared.config;
        let stats = shared.discovery.stats();
        Self {
            version: env!("CARGO_PKG_VERSION"),
            started: time(shared.started),
            upstream: c.upstream.to_string(),
            listen: c.listen,
            role: c.check.role,
            on_down: c.on_down,
            tls: TlsSummary {
                mode: c.tls.as_ref().map_or(TlsMode::Off, |t| t.mode),
                cert: c.tls.as_ref().map(|t| t.cert.display().to_string()),
                handshakes_ok: shared.metrics.tls_handshakes_ok.get(),
                handshakes_failed: shared.metrics.tls_handshakes_failed.get(),
            },
            check: CheckSummary {
                user: c.check.user.clone(),
                database: c.check.database.clone(),
                password_env: c.check.password_env.clone(),
                interval_ms: c.check.interval.as_millis(),
                timeout_ms: c.check.timeout.as_millis(),
                fall: c.check.fall,
                rise: c.check.rise,
            },
            dns: DnsSummary {
                lookups_ok: stats.lookups(discovery::LookupResult::Ok),
                lookups_empty: stats.lookups(discovery::LookupResult::Empty),
                lookups_failed: stats.lookups(discovery::LookupResult::Failed),
            },
            healthy: backends.iter().filter(|b| b.state == "up").count(),
            backends,
            no_backend_total: shared.metrics.no_backend.get(),
            waiting_clients: shared.metrics.waiting.get(),
            client_connections: shared.metrics.open_clients.get(),
            max_connections: shared.config.max_connections,
        }
    }

    pub fn backend(&self, addr: SocketAddr) -> Option<&BackendStatus> {
        self.backends.iter().find(|b| b.addr == addr)
    }
}
