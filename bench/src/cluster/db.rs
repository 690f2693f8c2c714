//! The Postgres balancer in front of the replicas: pgbalancer, or HAProxy `mode tcp` with
//! `server-template` over the replicas' name and `pgsql-check`, as in the original lab.

use std::net::SocketAddr;
use std::time::Duration;

use super::Cluster;
use crate::fronts::spawn_haproxy;
use crate::opts::Db;
use crate::process::{wait_listening, Process};

const PASSWORD_ENV: &str = "LAB_CHECK_PASSWORD";

pub async fn start(db: Db, cluster: &Cluster) -> anyhow::Result<(Process, SocketAddr)> {
    let upstream = format!("{}:{}", Cluster::replicas_fqdn(), cluster.pg.port());
    let (mut process, addr) = match db {
        Db::Pgbalancer => {
            let addr: SocketAddr = "127.0.100.5:5432".parse().expect("valid");
            let args = [
                "--listen",
                &addr.to_string(),
                "--admin",
                "127.0.100.5:9187",
                "--upstream",
                &upstream,
                "--resolver",
                &cluster.dns_addr().to_string(),
                "--check-user",
                cluster.pg.user(),
                "--check-database",
                cluster.pg.database(),
                "--check-password-env",
                PASSWORD_ENV,
            ]
            .map(str::to_owned);
            let env = [
                (PASSWORD_ENV, cluster.pg.password().to_owned()),
                ("RUST_LOG", "warn".to_owned()),
            ];
            (
                Process::spawn(
                    "pgbalancer",
                    &cluster.bins.pgbalancer,
                    &args,
                    &env,
                    &cluster.work,
                )?,
                addr,
            )
        }
        Db::HaproxyTcp => {
            let addr: SocketAddr = "127.0.100.6:5432".parse().expect("valid");
            let config = haproxy_tcp(addr, &upstream, cluster.dns_addr(), cluster.pg.user());
            (spawn_haproxy("haproxy-tcp", &config, &cluster.work)?, addr)
        }
    };
    wait_listening(&mut process, addr, Duration::from_secs(10)).await?;
    Ok((process, addr))
}

/// As the original lab's HAProxy: round-robin over `server-template` slots filled by DNS.
fn haproxy_tcp(listen: SocketAddr, upstream: &str, dns: SocketAddr, user: &str) -> String {
    let (name, port) = upstream.rsplit_once(':').expect("NAME:PORT");
    format!(
        "global\n  maxconn 4000\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1m\n  timeout server 1m\n\n\
resolvers lab\n  nameserver dns {dns}\n  hold valid 1s\n  timeout resolve 1s\n  timeout retry 1s\n  resolve_retries 2\n\n\
listen postgres\n  bind {listen}\n  balance roundrobin\n  option pgsql-check user {user}\n  \
server-template pg 2 {name}:{port} check inter 1s fall 2 rise 1 resolvers lab init-addr none\n"
    )
}
