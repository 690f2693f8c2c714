//! The Postgres balancer in front of the replicas: pgbalancer, or HAProxy `mode tcp` with
//! `server-template` over the replicas' name and `pgsql-check`, as in the original lab.
//!
//! It runs as a pod on an IP of its own (127.0.103.N) behind a Service IP (127.0.100.5 for
//! pgbalancer, .6 for HAProxy) that the backends dial, so it can be restarted as a Deployment's
//! rolling update does: new pod, ready, Service repointed, old pod stopped.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use anyhow::Context;

use super::Cluster;
use crate::dashboard::Target;
use crate::fronts::spawn_haproxy;
use crate::opts::Db;
use crate::process::{wait_listening, wait_ready, Process};

const PASSWORD_ENV: &str = "LAB_CHECK_PASSWORD";
const PORT: u16 = testkit::names::POSTGRES_PORT;
/// How long a stopped balancer pod may take to finish its open sessions.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// How long after a pod's SIGTERM its Service still sends it connections: Kubernetes tells the
/// kubelet and the endpoints controller at the same time, and kube-proxy moves the Service only
/// once the EndpointSlice changed.
const SERVICE_LAG: Duration = Duration::from_millis(500);

/// A running balancer pod.
pub struct DbPod {
    pub kind: Db,
    pub addr: SocketAddrV4,
    /// The extra flags it was started with (pgbalancer only).
    pub args: Vec<String>,
    process: Process,
}

/// The Service IP the backends dial for `db`.
pub fn service_addr(db: Db) -> SocketAddrV4 {
    let ip = match db {
        Db::Pgbalancer => Ipv4Addr::new(127, 0, 100, 5),
        Db::HaproxyTcp => Ipv4Addr::new(127, 0, 100, 6),
    };
    SocketAddrV4::new(ip, PORT)
}

impl Cluster {
    /// The database address backends use: the Service IP, or without one the pod itself.
    pub fn db_addr(&self) -> Option<SocketAddr> {
        let pod = self.db.as_ref()?;
        Some(if self.service_ips.available() {
            service_addr(pod.kind).into()
        } else {
            pod.addr.into()
        })
    }

    /// The running pgbalancer pod's admin listener as a scrape target (HAProxy exports none).
    pub(super) fn db_target(&self) -> Option<Target> {
        let pod = self.db.as_ref().filter(|pod| pod.kind == Db::Pgbalancer)?;
        Some(Target {
            addr: SocketAddr::from((*pod.addr.ip(), testkit::names::PGBALANCER_ADMIN_PORT)),
            app: "pgbalancer".to_owned(),
            pod: pod_name(pod.kind, *pod.addr.ip()),
        })
    }

    /// The running balancer pod's own address (not the Service IP).
    pub fn db_pod(&self) -> Option<SocketAddrV4> {
        self.db.as_ref().map(|pod| pod.addr)
    }

    /// Runs `db` as the Postgres balancer, replacing whatever ran before.
    pub(super) async fn replace_db(&mut self, db: Db) -> anyhow::Result<()> {
        if let Some(mut old) = self.db.take() {
            old.process.wait_or_kill(Duration::ZERO).await;
        }
        let pod = self.start_db_pod(db).await?;
        self.service_ips.point(service_addr(db), pod.addr);
        self.db = Some(pod);
        self.pods_changed();
        Ok(())
    }

    /// Restarts the Postgres balancer as a Deployment's rolling update does in Kubernetes: a new
    /// pod on a new IP, ready; then the old pod gets SIGTERM while the Service still points at it
    /// for a moment ([`SERVICE_LAG`]), so it must keep accepting through its `--shutdown-delay`;
    /// then the Service moves, and the old pod finishes its open sessions in the background.
    /// Without a Service IP the old pod stops first and the new one takes its address. Returns
    /// the new pod's address.
    pub async fn restart_db(&mut self) -> anyhow::Result<SocketAddrV4> {
        let mut old = self.db.take().context("no Postgres balancer running")?;
        if !self.service_ips.available() {
            old.process.sigterm();
            old.process.wait_or_kill(STOP_GRACE).await;
        }
        let new = match self.start_db_pod(old.kind).await {
            Ok(new) => new,
            Err(e) => {
                self.db = Some(old);
                return Err(e);
            }
        };
        old.process.sigterm();
        tokio::time::sleep(SERVICE_LAG).await;
        self.service_ips.point(service_addr(new.kind), new.addr);
        let addr = new.addr;
        self.db = Some(new);
        self.pods_changed();
        tokio::spawn(async move { old.process.wait_or_kill(STOP_GRACE).await });
        Ok(addr)
    }

    async fn start_db_pod(&mut self, db: Db) -> anyhow::Result<DbPod> {
        let ip = if self.service_ips.available() {
            let n = self.next_db_pod;
            self.next_db_pod = n.checked_add(1).context("out of balancer pod IPs")?;
            Ipv4Addr::new(127, 0, 103, n)
        } else {
            *service_addr(db).ip()
        };
        let addr = SocketAddrV4::new(ip, PORT);
        let name = pod_name(db, ip);
        let upstream = format!("{}:{}", Cluster::replicas_fqdn(), self.pg.port());
        let process = match db {
            Db::Pgbalancer => {
                let admin = SocketAddr::from((ip, testkit::names::PGBALANCER_ADMIN_PORT));
                let args = [
                    "--listen",
                    &addr.to_string(),
                    "--admin",
                    &admin.to_string(),
                    "--upstream",
                    &upstream,
                    "--resolver",
                    &self.dns_addr().to_string(),
                    "--check-user",
                    self.pg.user(),
                    "--check-database",
                    self.pg.database(),
                    "--check-password-env",
                    PASSWORD_ENV,
                    // As the manifest: keep accepting after SIGTERM until the Service moved.
                    "--shutdown-delay",
                    &humantime::format_duration(self.shutdown_delay.max(SERVICE_LAG * 2))
                        .to_string(),
                ]
                .map(str::to_owned)
                .into_iter()
                .chain(self.pgbalancer_args.iter().cloned())
                .collect::<Vec<_>>();
                let env = [
                    (PASSWORD_ENV, self.pg.password().to_owned()),
                    ("RUST_LOG", "warn".to_owned()),
                ];
                let mut process =
                    Process::spawn(&name, &self.bins.pgbalancer, &args, &env, &self.work)?;
                // A readiness probe: clients only once a replica passed its checks.
                wait_ready(&mut process, admin, Duration::from_secs(20)).await?;
                process
            }
            Db::HaproxyTcp => {
                let config = haproxy_tcp(addr, &upstream, self.dns_addr(), self.pg.user());
                let mut process = spawn_haproxy(&name, &config, &self.work)?;
                wait_listening(&mut process, addr.into(), Duration::from_secs(10)).await?;
                process
            }
        };
        let args = match db {
            Db::Pgbalancer => self.pgbalancer_args.clone(),
            Db::HaproxyTcp => Vec::new(),
        };
        Ok(DbPod {
            kind: db,
            addr,
            args,
            process,
        })
    }
}

fn pod_name(db: Db, ip: Ipv4Addr) -> String {
    format!("{}-{}", db.name(), ip.octets()[3])
}

/// As the original lab's HAProxy: round-robin over `server-template` slots filled by DNS.
fn haproxy_tcp(listen: SocketAddrV4, upstream: &str, dns: SocketAddr, user: &str) -> String {
    let (name, port) = upstream.rsplit_once(':').expect("NAME:PORT");
    format!(
        "global\n  maxconn 4000\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1m\n  timeout server 1m\n\n\
resolvers lab\n  nameserver dns {dns}\n  hold valid 1s\n  timeout resolve 1s\n  timeout retry 1s\n  resolve_retries 2\n\n\
listen postgres\n  bind {listen}\n  balance roundrobin\n  option pgsql-check user {user}\n  \
server-template pg 2 {name}:{port} check inter 1s fall 2 rise 1 resolvers lab init-addr none\n"
    )
}
