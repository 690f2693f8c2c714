//! What `/status` and the stats page show: every group with its DNS counters and endpoints, each
//! endpoint's state, since when, its load, response-time estimate and last check.

use std::sync::atomic::Ordering::Relaxed;

use discovery::LookupResult;
use serde::Serialize;

use super::AdminState;
use crate::upstream::Endpoint;

#[derive(Serialize)]
pub struct Status {
    pub version: &'static str,
    pub uptime_seconds: u64,
    pub requests_in_flight: usize,
    pub draining: bool,
    pub config: ConfigStatus,
    pub groups: Vec<GroupStatus>,
}

#[derive(Serialize)]
pub struct ConfigStatus {
    /// 1 at start, one more per applied reload.
    pub generation: u64,
    pub applied_at: String,
}

#[derive(Serialize)]
pub struct GroupStatus {
    pub name: String,
    pub upstream: String,
    pub hosts: Vec<String>,
    pub path_prefix: String,
    pub dns: Option<DnsStatus>,
    pub endpoints: Vec<EndpointStatus>,
}

#[derive(Serialize)]
pub struct DnsStatus {
    pub lookups_ok: u64,
    pub lookups_empty: u64,
    pub lookups_failed: u64,
    pub changes: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

#[derive(Serialize)]
pub struct EndpointStatus {
    pub addr: String,
    /// usable, ejected (a request failed; waiting for a passing check) or down (checks failing).
    pub state: &'static str,
    /// When its checks last changed their verdict (or it appeared).
    pub since: String,
    /// Why it was ejected, while it is.
    pub ejected: Option<String>,
    pub requests: u64,
    pub failed_attempts: u64,
    pub in_flight: usize,
    /// The peak-EWMA time to first byte the balancer prices it by; none before its first answer.
    pub response_time_ms: Option<f64>,
    pub last_check: Option<CheckStatus>,
}

#[derive(Serialize)]
pub struct CheckStatus {
    pub ok: bool,
    pub at: String,
    pub detail: Option<String>,
}

impl Status {
    pub fn of(state: &AdminState) -> Self {
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
                // A fixed IP:PORT is not looked up: no DNS counters to show.
                dns: g
                    .discovery()
                    .filter(|_| g.target().socket_addr().is_none())
                    .map(|d| {
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
                endpoints: g.endpoints().iter().map(|e| endpoint(e)).collect(),
            })
            .collect();
        Self {
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: state.started.elapsed().as_secs(),
            requests_in_flight: state.inflight.count(),
            draining: state.draining.is_draining(),
            config: ConfigStatus {
                generation: live.generation,
                applied_at: ops::admin::time(live.applied_at),
            },
            groups,
        }
    }
}

fn endpoint(e: &Endpoint) -> EndpointStatus {
    let health = e.health();
    let load = e.load();
    EndpointStatus {
        addr: e.addr.to_string(),
        state: if !health.up {
            "down"
        } else if health.ejected.is_some() {
            "ejected"
        } else {
            "usable"
        },
        since: ops::admin::time(health.since),
        ejected: health.ejected.map(|j| j.reason),
        requests: e.data.requests.load(Relaxed),
        failed_attempts: e.data.failed_attempts.load(Relaxed),
        in_flight: load.in_flight(),
        response_time_ms: load.estimate().map(|d| d.as_secs_f64() * 1000.0),
        last_check: health.last.map(|c| CheckStatus {
            ok: c.result.is_ok(),
            at: ops::admin::time(c.at),
            detail: c.result.err().map(|f| f.reason),
        }),
    }
}
