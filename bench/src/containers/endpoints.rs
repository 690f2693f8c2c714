//! The Services' DNS: what the EndpointSlice controller and CoreDNS are to a cluster. Each
//! Service name (`backend-headless.highload-dns.svc.cluster.local`, …) answers with the addresses
//! of its ready pods, TTL 5 s as CoreDNS in k3s; a pod enters when its readiness probe passes and
//! leaves when it fails or the pod is deleted, while its address stays up for its grace period.
//!
//! Containers ask Docker's embedded DNS (127.0.0.11, their resolv.conf), which answers the pods'
//! own names and forwards the rest here (`docker run --dns`, this server listening on the
//! network's gateway). Why not network aliases, which the embedded DNS would answer itself:
//! Docker changes a container's aliases only by detaching it from the network and attaching it
//! again, and in between the pod has no network at all; a connection it opens in that moment
//! fails with ENETUNREACH (seen: a backend's database connect while it was being deleted), which
//! no Kubernetes pod ever sees when it leaves an EndpointSlice.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;

use anyhow::Context;
use testkit::DnsServer;

/// CoreDNS' TTL in k3s.
const TTL: u32 = 5;

pub struct Endpoints {
    dns: DnsServer,
    /// Service name → ready pods and their addresses.
    services: Mutex<BTreeMap<String, BTreeMap<String, Ipv4Addr>>>,
}

impl Endpoints {
    /// Serves DNS on port 53 of `ip` (the run network's gateway, this host's side of the bridge).
    pub async fn start(ip: Ipv4Addr) -> anyhow::Result<Self> {
        let addr = SocketAddr::from((ip, 53));
        let dns = DnsServer::start_on(addr)
            .await
            .with_context(|| format!("serving the Services' DNS on {addr}"))?;
        dns.set_ttl(TTL);
        Ok(Self {
            dns,
            services: Mutex::default(),
        })
    }

    pub fn ip(&self) -> Ipv4Addr {
        match self.dns.addr() {
            SocketAddr::V4(a) => *a.ip(),
            SocketAddr::V6(_) => unreachable!("bound to an IPv4 address"),
        }
    }

    /// Puts `pod` (at `ip`) in `service` or takes it out.
    pub fn set(&self, service: &str, pod: &str, ip: Ipv4Addr, ready: bool) {
        let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        let pods = services.entry(service.to_owned()).or_default();
        if ready {
            pods.insert(pod.to_owned(), ip);
        } else {
            pods.remove(pod);
        }
        let ips: Vec<_> = pods.values().copied().collect();
        // No ready pod: a name with no records, as the local lab's DNS answers.
        self.dns.set(service, &ips);
    }
}
