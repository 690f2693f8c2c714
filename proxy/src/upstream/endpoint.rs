//! What the proxy keeps with each endpoint of the upstream core: its `X-Upstream-Addr` value,
//! formatted once, and the counters /status shows. Health, ejection and the incarnation that keys
//! its connection pool are the core's ([`upstream::Endpoint`]).

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;

use http::HeaderValue;

/// One endpoint (pod IP:port) of a group.
pub type Endpoint = upstream::Endpoint<Pod>;

#[derive(Debug)]
pub struct Pod {
    /// `X-Upstream-Addr` value.
    pub header_value: HeaderValue,
    pub requests: AtomicU64,
    pub failed_attempts: AtomicU64,
}

impl Pod {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            header_value: HeaderValue::from_str(&addr.to_string()).expect("an address is ASCII"),
            requests: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
        }
    }
}
