//! The admin listener: `/metrics` (Prometheus text), `/healthz` (alive), `/readyz` (503 once
//! SIGTERM arrived), `/status` (JSON: groups, endpoints, health, counters). Runs on the control runtime, apart from the proxy's threads.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use discovery::LookupResult;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::drain::Draining;
use crate::inflight::InFlight;
use crate::live::SharedLive;
use crate::metrics::Metrics;
use crate::upstream::Endpoint;

pub struct AdminState {
    /// The running groups and configuration generation; follows every reload.
    pub live: SharedLive,
    pub metrics: Arc<Metrics>,
    pub inflight: InFlight,
    /// Set by SIGTERM: `/readyz` answers 503 through the shutdown delay and the drain.
    pub draining: Draining,
    pub started: Instant,
}

pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "admin listener failed");
    }
}

/// Ready unless shutting down. Upstreams do not count: with none, the proxy holds requests
/// (and then answers 503 itself); taking it out of its Service would only turn that into refused
/// connections.
async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    ops::admin::readiness(if state.draining.is_draining() {
        Err(ops::admin::DRAINING.to_owned())
    } else {
        Ok(format!("{} in flight", state.inflight.count()))
    })
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    for group in state.live.load().router.groups() {
        group.update_gauges();
    }
    ops::admin::metrics(state.metrics.registry())
}

#[derive(Serialize)]
struct Status {
    uptime_seconds: u64,
    requests_in_flight: usize,
    config: ConfigStatus,
    groups: Vec<GroupStatus>,
}

#[derive(Serialize)]
struct ConfigStatus {
    /// 1 at start, one more per applied reload.
    generation: u64,
    applied_at: String,
}

#[derive(Serialize)]
struct GroupStatus {
    name: String,
    upstream: String,
    hosts: Vec<String>,
    path_prefix: String,
    dns: Option<DnsStatus>,
    endpoints: Vec<EndpointStatus>,
}

#[derive(Serialize)]
struct DnsStatus {
    lookups_ok: u64,
    lookups_empty: u64,
    lookups_failed: u64,
    changes: u64,
    last_error: Option<String>,
    last_error_at: Option<String>,
}

#[derive(Serialize)]
struct EndpointStatus {
    addr: String,
    /// usable, ejected (a request failed; waiting for a passing check) or down (checks failing).
    state: &'static str,
    requests: u64,
    failed_attempts: u64,
    last_check: Option<CheckStatus>,
}

#[derive(Serialize)]
struct CheckStatus {
    ok: bool,
    at: String,
    detail: Option<String>,
}

fn endpoint_status(e: &Endpoint) -> EndpointStatus {
    use std::sync::atomic::Ordering::Relaxed;
    let health = e.health();
    EndpointStatus {
        addr: e.addr.to_string(),
        state: if !health.up {
            "down"
        } else if health.ejected.is_some() {
            "ejected"
        } else {
            "usable"
        },
        requests: e.data.requests.load(Relaxed),
        failed_attempts: e.data.failed_attempts.load(Relaxed),
        last_check: health.last.map(|c| CheckStatus {
            ok: c.result.is_ok(),
            at: ops::admin::time(c.at),
            detail: c.result.err().map(|f| f.reason),
        }),
    }
}

async fn status(State(state): State<Arc<AdminState>>) -> Json<Status> {
    let live = state.live.load_full();
    let groups = live
        .router
        .groups()
        .iter()
        .map(|g| GroupStatus {
            name: g.name().to_owned(),
            upstream: g.target().to_string(),
            hosts: g.config.hosts.clone(),
            path_prefix: g.config.path_prefix.clone(),
            dns: g.discovery().map(|d| {
                let s = d.stats();
                let last = s.last_error();
                DnsStatus {
                    lookups_ok: s.lookups(LookupResult::Ok),
                    lookups_empty: s.lookups(LookupResult::Empty),
                    lookups_failed: s.lookups(LookupResult::Failed),
                    changes: s.changes(),
                    last_error_at: last.as_ref().map(|(t, _)| ops::admin::time(*t)),
                    last_error: last.map(|(_, e)| e),
                }
            }),
            endpoints: g.endpoints().iter().map(|e| endpoint_status(e)).collect(),
        })
        .collect();
    Json(Status {
        uptime_seconds: state.started.elapsed().as_secs(),
        requests_in_flight: state.inflight.count(),
        config: ConfigStatus {
            generation: live.generation,
            applied_at: ops::admin::time(live.applied_at),
        },
        groups,
    })
}
