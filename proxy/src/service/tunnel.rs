//! Upgraded connections (websocket, any `Upgrade` answered `101`) are tunnels, not requests: the
//! request body limits (size, time between reads) do not apply to what crosses them, and they
//! may stay quiet for long by design. Both directions wait up to `tunnel_idle_timeout` (default
//! 1 h) between reads. Each is counted while open, its bytes by direction, and how it ended.
//!
//! The upstream side's read timeout is fixed when the attempt connects, before the `101` is
//! known: an upgrade request's attempts get the tunnel idle timeout from the start, so one sent
//! to a pod that accepts but never answers waits that long for its handshake (active checks
//! take such a pod out for every request after it).

use pingora_core::{Error, ErrorType};
use pingora_http::RequestHeader;

use crate::metrics::{TunnelEnd, TunnelMetrics};

/// The request asks to switch protocols (`Upgrade` with `Connection: upgrade`).
pub fn requested(req: &RequestHeader) -> bool {
    let headers = &req.headers;
    headers.contains_key(http::header::UPGRADE)
        && headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// An open tunnel: counted in `proxy_tunnels_open` until dropped.
pub struct Tunnel {
    metrics: TunnelMetrics,
}

impl Tunnel {
    pub fn open(metrics: &TunnelMetrics) -> Self {
        metrics.open.inc();
        Self {
            metrics: metrics.clone(),
        }
    }

    pub fn relayed_from_client(&self, bytes: usize) {
        self.metrics.bytes_from_client.inc_by(bytes as u64);
    }

    pub fn relayed_to_client(&self, bytes: usize) {
        self.metrics.bytes_to_client.inc_by(bytes as u64);
    }

    /// Counts how the tunnel ended: `error` is what ended the request, if anything did.
    pub fn ended(self, error: Option<&Error>) {
        let end = match error.map(|e| e.etype()) {
            None => TunnelEnd::Closed,
            Some(ErrorType::ReadTimedout | ErrorType::WriteTimedout) => TunnelEnd::IdleTimeout,
            Some(_) => TunnelEnd::Error,
        };
        self.metrics.closed(end);
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.metrics.open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/ws", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn an_upgrade_needs_both_headers() {
        assert!(requested(&req(&[
            ("Upgrade", "websocket"),
            ("Connection", "keep-alive, Upgrade")
        ])));
        assert!(!requested(&req(&[("Upgrade", "websocket")])));
        assert!(!requested(&req(&[("Connection", "upgrade")])));
    }
}
