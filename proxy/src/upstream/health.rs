//! The proxy's side of the upstream core: its active checks (a TCP connect, or `GET path`
//! expecting 2xx, through Pingora's checkers) as an [`upstream::Check`], and what the core decides
//! turned into log lines and metrics ([`GroupObserver`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_http::ResponseHeader;
use pingora_load_balancing::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora_load_balancing::Backend;
use tracing::{info, warn};
use upstream::{CheckRecord, Transition};

use super::endpoint::{Endpoint, Pod};
use crate::config::HealthKind;
use crate::metrics::GroupMetrics;

/// The check shared by every endpoint of a group.
pub type Checker = Arc<dyn HealthCheck + Send + Sync>;

/// Builds the check: a TCP connect, or `GET path` with `Host: host` expecting 2xx (`Http`) or
/// any answer (`Responds`), each on a new connection and within `timeout` per step.
pub fn checker(kind: &HealthKind, host: &str, timeout: Duration) -> Result<Checker, String> {
    let http = |path: &str, any_status: bool| -> Result<Checker, String> {
        let mut check = HttpHealthCheck::new(host, false);
        check.req = crate::check_request::build(path, host)?;
        check.peer_template.options.connection_timeout = Some(timeout);
        check.peer_template.options.read_timeout = Some(timeout);
        check.validator = Some(Box::new(move |resp: &ResponseHeader| {
            if any_status || resp.status.is_success() {
                Ok(())
            } else {
                pingora_core::Error::e_explain(
                    pingora_core::ErrorType::HTTPStatus(resp.status.as_u16()),
                    "health check answered non-2xx",
                )
            }
        }));
        Ok(Arc::new(check))
    };
    match kind {
        HealthKind::Tcp => {
            let mut check = TcpHealthCheck::new();
            check.peer_template.options.connection_timeout = Some(timeout);
            Ok(Arc::from(check as Box<dyn HealthCheck + Send + Sync>))
        }
        HealthKind::Http { path } => http(path, false),
        HealthKind::Responds { path } => http(path, true),
    }
}

/// A Pingora checker as the core's [`upstream::Check`].
pub struct PingoraCheck(pub Checker);

#[async_trait]
impl upstream::Check<Pod> for PingoraCheck {
    async fn check(&self, endpoint: &Endpoint) -> Result<(), upstream::Failure> {
        let backend = Backend {
            addr: pingora_core::protocols::l4::socket::SocketAddr::Inet(endpoint.addr),
            weight: 1,
            ext: Default::default(),
        };
        // A check here cannot tell a busy pod from a frozen one (neither answers): every failure
        // counts as broken.
        self.0
            .check(&backend)
            .await
            .map_err(|e| upstream::Failure::broken(e.to_string()))
    }
}

/// Logs and metrics of one group's endpoints.
pub struct GroupObserver {
    pub group: Arc<str>,
    pub metrics: GroupMetrics,
    /// Whether the last set had endpoints, to say so once when it empties or fills.
    had_endpoints: AtomicBool,
}

impl GroupObserver {
    pub fn new(group: Arc<str>, metrics: GroupMetrics) -> Self {
        Self {
            group,
            metrics,
            had_endpoints: AtomicBool::new(false),
        }
    }
}

impl upstream::Observer<Pod> for GroupObserver {
    fn membership(&self, count: usize) {
        let had = self.had_endpoints.swap(count > 0, Ordering::Relaxed);
        let group = &self.group;
        if had && count == 0 {
            warn!(%group, "no endpoints: requests are held until one appears");
        } else if !had && count > 0 {
            info!(%group, endpoints = count, "endpoints available");
        }
    }

    fn checked(&self, endpoint: &Endpoint, record: &CheckRecord, transition: Transition) {
        let (group, addr) = (&self.group, endpoint.addr);
        match record.result {
            Ok(()) => self.metrics.checks_passed.inc(),
            Err(_) => self.metrics.checks_failed.inc(),
        }
        match transition {
            Transition::None => {}
            Transition::Down => {
                let error = record
                    .result
                    .as_ref()
                    .err()
                    .map_or("", |f| f.reason.as_str());
                warn!(%group, %addr, %error, "endpoint down: active health check failed");
                self.metrics.went_down.inc();
            }
            Transition::Up => {
                info!(%group, %addr, "endpoint up: active health check passed");
                self.metrics.came_up.inc();
            }
            Transition::Readmitted => {
                info!(%group, %addr, "endpoint re-admitted: active health check passed after an ejection");
            }
        }
    }

    fn ejected(&self, endpoint: &Endpoint, reason: &str) {
        let (group, addr) = (&self.group, endpoint.addr);
        warn!(%group, %addr, %reason, "endpoint ejected until it passes its probation checks");
    }

    fn spared(&self, endpoint: &Endpoint, reason: &str) {
        let (group, addr) = (&self.group, endpoint.addr);
        warn!(%group, %addr, %reason, "request failed on the last usable endpoint: kept in rotation, checked now");
    }
}
