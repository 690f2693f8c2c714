//! Pingora's [`ServiceDiscovery`] on top of the `discovery` crate: the load balancer's membership
//! is whatever the DNS watcher published last. The group calls `LoadBalancer::update` the moment
//! the watcher publishes, instead of on Pingora's polling timer.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use discovery::Endpoints;
use pingora_core::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora_load_balancing::discovery::ServiceDiscovery;
use pingora_load_balancing::Backend;

/// The endpoint set the group last applied, shared with the load balancer.
#[derive(Debug, Default)]
pub struct DnsMembership {
    current: ArcSwap<BTreeSet<std::net::SocketAddr>>,
}

impl DnsMembership {
    pub fn set(&self, endpoints: Endpoints) {
        self.current.store(endpoints);
    }
}

#[async_trait]
impl ServiceDiscovery for DnsMembership {
    async fn discover(&self) -> pingora_core::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let backends = self
            .current
            .load()
            .iter()
            .map(|addr| Backend {
                addr: PingoraAddr::Inet(*addr),
                weight: 1,
                ext: Default::default(),
            })
            .collect();
        Ok((backends, HashMap::new()))
    }
}

/// Shared handle, so the group keeps writing what the load balancer reads.
#[derive(Debug, Default, Clone)]
pub struct SharedMembership(pub Arc<DnsMembership>);

#[async_trait]
impl ServiceDiscovery for SharedMembership {
    async fn discover(&self) -> pingora_core::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        self.0.discover().await
    }
}
