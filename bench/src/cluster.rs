//! The cluster on loopback: a DNS server for `svc.cluster.local`, a Postgres primary with two
//! streaming replicas, a Postgres balancer, and backend pods, each on an IP of its own. Pods
//! behave as in Kubernetes: a deleted pod leaves DNS at once, gets SIGTERM, and once it has
//! exited its IP stops answering; a replacement gets a new IP and enters DNS once ready.

mod backends;
mod db;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use testkit::names::{cluster_fqdn, BACKEND_SERVICE, POSTGRES_REPLICAS_SERVICE};
use testkit::{DnsServer, PgCluster};

pub use backends::Backend;
pub use db::service_addr;

use crate::bins::Bins;
use crate::blackhole::Blackhole;
use crate::dashboard::{Target, TargetsFile};
use crate::opts::Db;
use crate::service_ip::ServiceIps;

pub const DNS_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 100, 53);
/// The second Service name of the backend pods ([`Cluster::backend_green_fqdn`]).
pub const BACKEND_GREEN_SERVICE: &str = "backend-green";
const PG_FIRST_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 102, 1);

/// What is ready now, read by the load at every request.
#[derive(Debug, Default)]
pub struct Readiness {
    pub backends: AtomicUsize,
    pub replicas: AtomicUsize,
}

impl Readiness {
    /// At least one backend and one replica are in DNS.
    pub fn serving(&self) -> bool {
        self.backends.load(Ordering::Relaxed) > 0 && self.replicas.load(Ordering::Relaxed) > 0
    }
}

pub struct Cluster {
    pub dns: DnsServer,
    pub pg: PgCluster,
    pub ready: Arc<Readiness>,
    pub bins: Bins,
    pub work: PathBuf,
    blackhole: Arc<Blackhole>,
    backends: Vec<Backend>,
    next_backend: u8,
    replicas_in_dns: BTreeSet<String>,
    db: Option<db::DbPod>,
    next_db_pod: u8,
    /// More pgbalancer flags ([`Cluster::set_pgbalancer_args`]).
    pgbalancer_args: Vec<String>,
    service_ips: ServiceIps,
    shutdown_delay: Duration,
    /// Where the pods are written for a watching Prometheus ([`Cluster::observe`]).
    scrape: Option<TargetsFile>,
}

impl Cluster {
    pub async fn start(
        bins: Bins,
        work: PathBuf,
        blackhole: Arc<Blackhole>,
        shutdown_delay: Duration,
    ) -> anyhow::Result<Self> {
        let dns = DnsServer::start(DNS_IP)
            .await
            .context("starting the DNS server")?;
        // CoreDNS in k3s answers with TTL 5 s.
        dns.set_ttl(5);
        let pg = PgCluster::builder()
            .replicas(2)
            .first_ip(PG_FIRST_IP)
            .start()
            .await
            .context("starting Postgres (primary + 2 streaming replicas)")?;
        let mut cluster = Self {
            dns,
            pg,
            ready: Arc::default(),
            bins,
            work,
            blackhole,
            backends: Vec::new(),
            next_backend: 1,
            replicas_in_dns: BTreeSet::new(),
            db: None,
            next_db_pod: 1,
            pgbalancer_args: Vec::new(),
            service_ips: ServiceIps::setup(),
            shutdown_delay,
            scrape: None,
        };
        for name in cluster.replica_names() {
            cluster.replicas_in_dns.insert(name);
        }
        cluster.publish_replicas();
        Ok(cluster)
    }

    /// The Service IPs (kube-proxy's DNAT) the Postgres balancer sits behind, if any.
    pub fn service_ips(&self) -> &ServiceIps {
        &self.service_ips
    }

    pub fn dns_addr(&self) -> SocketAddr {
        self.dns.addr()
    }

    pub fn backend_fqdn() -> String {
        cluster_fqdn(BACKEND_SERVICE)
    }

    pub fn replicas_fqdn() -> String {
        cluster_fqdn(POSTGRES_REPLICAS_SERVICE)
    }

    pub fn replica_names(&self) -> Vec<String> {
        self.pg
            .replicas()
            .iter()
            .map(|r| r.name().to_owned())
            .collect()
    }

    /// Replicas in DNS now, by name.
    pub fn replicas_in_dns(&self) -> Vec<String> {
        self.replicas_in_dns.iter().cloned().collect()
    }

    /// Backends in DNS now, oldest first.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// A second headless Service over the same pods, as in a blue/green switch: the soak
    /// reloads the proxy's config from one name to the other.
    pub fn backend_green_fqdn() -> String {
        cluster_fqdn(BACKEND_GREEN_SERVICE)
    }

    fn publish_backends(&self) {
        let ips: Vec<_> = self.backends.iter().map(|b| b.ip).collect();
        self.dns.set(&Self::backend_fqdn(), &ips);
        self.dns.set(&Self::backend_green_fqdn(), &ips);
        self.ready.backends.store(ips.len(), Ordering::Relaxed);
        self.pods_changed();
    }

    /// From now on (or, with `None`, no longer) keeps `targets` listing every pod with metrics:
    /// the backends and pgbalancer, as Kubernetes pod discovery lists them for Prometheus.
    pub fn observe(&mut self, targets: Option<TargetsFile>) {
        self.scrape = targets;
        self.pods_changed();
    }

    fn pods_changed(&self) {
        let Some(file) = &self.scrape else { return };
        let backends = self.backends.iter().map(|b| Target {
            addr: b.addr(),
            app: "backend".to_owned(),
            pod: b.name.clone(),
        });
        let pods: Vec<Target> = backends.chain(self.db_target()).collect();
        if let Err(e) = file.write(&pods) {
            println!("lab: Prometheus' targets not updated: {e:#}");
        }
    }

    fn publish_replicas(&self) {
        let ips: Vec<_> = self
            .pg
            .replicas()
            .iter()
            .filter(|r| self.replicas_in_dns.contains(r.name()))
            .map(|r| r.ip())
            .collect();
        self.dns.set(&Self::replicas_fqdn(), &ips);
        self.ready.replicas.store(ips.len(), Ordering::Relaxed);
    }

    /// Deletes replica `name` as Kubernetes does with a grace period: out of DNS at once, stopped
    /// after the shutdown delay (a preStop sleep, so balancers stop routing to it first), then its
    /// IP silent. The load keeps running meanwhile.
    pub async fn delete_replica(&mut self, name: &str) -> anyhow::Result<()> {
        self.replicas_in_dns.remove(name);
        self.publish_replicas();
        tokio::time::sleep(self.shutdown_delay).await;
        let node = self.pg.replica(name).context("no such replica")?;
        node.stop()
            .await
            .with_context(|| format!("stopping replica {name}"))?;
        self.blackhole.drop_ip(node.ip());
        Ok(())
    }

    /// Brings replica `name` back (same data directory and IP) and puts it in DNS once it runs.
    pub async fn restore_replica(&mut self, name: &str) -> anyhow::Result<()> {
        let node = self.pg.replica(name).context("no such replica")?;
        self.blackhole.restore_ip(node.ip());
        if !node.is_running() {
            node.start()
                .await
                .with_context(|| format!("starting replica {name}"))?;
        }
        self.replicas_in_dns.insert(name.to_owned());
        self.publish_replicas();
        Ok(())
    }

    /// More flags for every pgbalancer pod started from now on (e.g. `--max-lag 5s`); a running
    /// pgbalancer started with other flags is replaced at the next [`Cluster::reset`].
    pub fn set_pgbalancer_args(&mut self, args: Vec<String>) {
        self.pgbalancer_args = args;
    }

    /// Resets to the baseline for a new run: the Postgres balancer `db` (started with the current
    /// [`Cluster::set_pgbalancer_args`]), both replicas in DNS, and two fresh backend pods.
    pub async fn reset(&mut self, db: Db) -> anyhow::Result<()> {
        for backend in std::mem::take(&mut self.backends) {
            backend.kill().await;
        }
        self.publish_backends();
        for name in self.replica_names() {
            self.restore_replica(&name).await?;
        }
        let current = self.db.as_ref().is_some_and(|pod| {
            pod.kind == db && (db != Db::Pgbalancer || pod.args == self.pgbalancer_args)
        });
        if !current {
            self.replace_db(db).await?;
        }
        for _ in 0..2 {
            self.add_backend().await?;
        }
        Ok(())
    }
}
