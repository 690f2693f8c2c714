//! Backend pods: our `backend` binary on 127.0.101.N:8000, N new for every pod.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Cluster;
use crate::process::Process;

pub struct Backend {
    pub name: String,
    pub ip: Ipv4Addr,
    process: Process,
}

impl Backend {
    pub fn addr(&self) -> SocketAddr {
        (self.ip, testkit::names::BACKEND_PORT).into()
    }

    pub async fn kill(mut self) {
        self.process.wait_or_kill(Duration::ZERO).await;
    }
}

impl Cluster {
    /// Starts a pod on a new IP, waits until `/readyz` answers 200, then puts it in DNS.
    pub async fn add_backend(&mut self) -> anyhow::Result<SocketAddr> {
        let n = self.next_backend;
        self.next_backend = self
            .next_backend
            .checked_add(1)
            .context("out of backend IPs")?;
        let ip = Ipv4Addr::new(127, 0, 101, n);
        let name = format!("backend-{n}");
        let db = self.db_addr().context("no database balancer running")?;
        let url = format!(
            "postgres://{}:{}@{db}/{}?connect_timeout=2",
            self.pg.user(),
            self.pg.password(),
            self.pg.database()
        );
        let addr = SocketAddr::from((ip, testkit::names::BACKEND_PORT));
        self.blackhole.restore_ip(ip);
        let mut process = Process::spawn(
            &name,
            &self.bins.backend,
            &[
                "--listen".into(),
                addr.to_string(),
                "--shutdown-delay".into(),
                humantime::format_duration(self.shutdown_delay).to_string(),
            ],
            &[
                ("DATABASE_URL", url),
                ("HOSTNAME", name.clone()),
                ("RUST_LOG", "warn".into()),
            ],
            &self.work,
        )?;
        wait_ready(&mut process, addr, Duration::from_secs(20)).await?;
        self.backends.push(Backend { name, ip, process });
        self.publish_backends();
        Ok(addr)
    }

    /// Deletes the oldest pod, as `kubectl delete pod` or a scale-down does: out of DNS at once,
    /// SIGTERM, and once it exited its IP goes silent (in the background; the phase goes on).
    pub fn delete_backend(&mut self) -> anyhow::Result<SocketAddr> {
        if self.backends.is_empty() {
            bail!("no backend pod to delete");
        }
        let mut pod = self.backends.remove(0);
        self.publish_backends();
        let addr = pod.addr();
        pod.process.sigterm();
        let blackhole = self.blackhole.clone();
        let grace = self.shutdown_delay + Duration::from_secs(10);
        tokio::spawn(async move {
            pod.process.wait_or_kill(grace).await;
            blackhole.drop_ip(pod.ip);
        });
        Ok(addr)
    }
}

/// Polls `GET /readyz` until it answers 200.
async fn wait_ready(
    process: &mut Process,
    addr: SocketAddr,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        process.check_running()?;
        if readyz(addr).await {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{} is not ready on {addr} after {limit:?}", process.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn readyz(addr: SocketAddr) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        Some(buf.starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
