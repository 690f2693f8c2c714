//! Active health checks: one task per endpoint, started the moment the endpoint appears (so a new
//! pod is checked at once) and stopped when it leaves. Checks never wait on DNS and a slow check of
//! one endpoint never delays another's, unlike Pingora's single update-then-check loop.

use std::sync::Arc;
use std::time::Duration;

use pingora_http::ResponseHeader;
use pingora_load_balancing::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora_load_balancing::Backend;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::endpoint::{Endpoint, Transition};
use super::group::GroupEvents;
use crate::config::{HealthKind, HealthSettings};

/// The check shared by every endpoint of a group.
pub type Checker = Arc<dyn HealthCheck + Send + Sync>;

/// The request of an HTTP check, `GET path` with `Host: host`: the config's validation builds it
/// too, so a path that passes `--check-config` is one the checker can send.
pub fn check_request(path: &str, host: &str) -> Result<pingora_http::RequestHeader, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` must start with `/`"));
    }
    // Pingora takes any bytes here; the URI parser is what rejects spaces and the like.
    path.parse::<http::uri::PathAndQuery>()
        .map_err(|e| format!("`{path}` is not a valid request path: {e}"))?;
    let mut req = pingora_http::RequestHeader::build("GET", path.as_bytes(), None)
        .map_err(|e| format!("`{path}` is not a valid request path: {e}"))?;
    req.insert_header("Host", host)
        .map_err(|e| format!("`{host}` is not a valid Host header: {e}"))?;
    req.insert_header("User-Agent", "proxy-health-check")
        .map_err(|e| e.to_string())?;
    Ok(req)
}

/// Builds the check: a TCP connect, or `GET path` expecting 2xx with `Host: host`.
pub fn checker(kind: &HealthKind, host: &str, timeout: Duration) -> Result<Checker, String> {
    Ok(match kind {
        HealthKind::Tcp => {
            let mut check = TcpHealthCheck::new();
            check.peer_template.options.connection_timeout = Some(timeout);
            Arc::from(check as Box<dyn HealthCheck + Send + Sync>)
        }
        HealthKind::Http { path } => {
            let mut check = HttpHealthCheck::new(host, false);
            check.req = check_request(path, host)?;
            check.peer_template.options.connection_timeout = Some(timeout);
            check.peer_template.options.read_timeout = Some(timeout);
            check.validator = Some(Box::new(|resp: &ResponseHeader| {
                if resp.status.is_success() {
                    Ok(())
                } else {
                    pingora_core::Error::e_explain(
                        pingora_core::ErrorType::HTTPStatus(resp.status.as_u16()),
                        "health check answered non-2xx",
                    )
                }
            }));
            Arc::new(check)
        }
    })
}

/// Aborts the check task when the endpoint leaves the group.
pub struct CheckTask(JoinHandle<()>);

impl Drop for CheckTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub fn spawn(
    endpoint: Arc<Endpoint>,
    checker: Checker,
    settings: HealthSettings,
    events: Arc<GroupEvents>,
) -> CheckTask {
    CheckTask(tokio::spawn(run(endpoint, checker, settings, events)))
}

async fn run(
    endpoint: Arc<Endpoint>,
    checker: Checker,
    settings: HealthSettings,
    events: Arc<GroupEvents>,
) {
    let backend = Backend {
        addr: pingora_core::protocols::l4::socket::SocketAddr::Inet(endpoint.addr),
        weight: 1,
        ext: Default::default(),
    };
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // The checker has its own connect/read timeouts; this bounds anything else.
        let result = tokio::time::timeout(settings.timeout * 2, checker.check(&backend)).await;
        let (ok, detail) = match result {
            Ok(Ok(())) => (true, None),
            Ok(Err(e)) => (false, Some(e.to_string())),
            Err(_) => (false, Some("check timed out".to_owned())),
        };
        let transition = endpoint.observe(ok, detail.clone(), settings.fall, settings.rise);
        let group = &events.name;
        let addr = endpoint.addr;
        match transition {
            Transition::None => continue,
            Transition::Down => {
                warn!(%group, %addr, error = detail.as_deref().unwrap_or(""), "endpoint down: active health check failed");
                events.metrics.went_down.inc();
            }
            Transition::Up => {
                info!(%group, %addr, "endpoint up: active health check passed");
                events.metrics.came_up.inc();
            }
            Transition::Readmitted => {
                info!(%group, %addr, "endpoint re-admitted: active health check passed after an ejection");
            }
        }
        events.changed();
    }
}
