//! The admin listener: `/metrics` (Prometheus text), `/healthz` (alive), `/readyz` (503 once
//! SIGTERM arrived), `/status` (JSON: groups, endpoints, health, counters). Runs on the control runtime, apart from the proxy's threads.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use discovery::LookupResult;
use prometheus::{Encoder, TextEncoder};
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
    if state.draining.is_draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "draining: shutting down after SIGTERM\n",
        )
            .into_response()
    } else {
        "ready\n".into_response()
    }
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    for group in state.live.load().router.groups() {
        group.update_gauges();
    }
    let mut body = Vec::new();
    let families = state.metrics.registry().gather();
    match TextEncoder::new().encode(&families, &mut body) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                TextEncoder::new().format_type().to_owned(),
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
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
    applied_unix_ms: u128,
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
    last_error_unix_ms: Option<u128>,
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
    unix_ms: u128,
    detail: Option<String>,
}

fn unix_ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
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
            unix_ms: unix_ms(c.at),
            detail: c.result.err(),
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
                    last_error_unix_ms: last.as_ref().map(|(t, _)| unix_ms(*t)),
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
            applied_unix_ms: unix_ms(live.applied_at),
        },
        groups,
    })
}
