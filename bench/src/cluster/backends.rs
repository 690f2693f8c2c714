//! Backend pods: our `backend` binary on 127.0.101.N:8000, N new for every pod.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};

use super::Cluster;
use crate::process::{wait_ready, Process};

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
        self.add_backend_with(&[]).await
    }

    /// Sends `signal` to the pod at `index` (oldest first): SIGSTOP freezes it as a long GC pause
    /// or a stuck event loop would (it stays in DNS, its kernel still completes handshakes),
    /// SIGCONT thaws it.
    pub fn signal_backend(
        &self,
        index: usize,
        signal: nix::sys::signal::Signal,
    ) -> anyhow::Result<SocketAddr> {
        let pod = self
            .backends
            .get(index)
            .with_context(|| format!("no backend pod number {index}"))?;
        pod.process.signal(signal);
        Ok(pod.addr())
    }

    /// [`Self::add_backend`] with more backend flags (e.g. `--response-delay 300ms`).
    pub async fn add_backend_with(&mut self, extra: &[String]) -> anyhow::Result<SocketAddr> {
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
            ]
            .into_iter()
            .chain(extra.iter().cloned())
            .collect::<Vec<String>>(),
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
        self.delete_backend_at(0)
    }

    /// Deletes the pod at `index` in [`Cluster::backends`] (oldest first), as [`Self::delete_backend`].
    pub fn delete_backend_at(&mut self, index: usize) -> anyhow::Result<SocketAddr> {
        if index >= self.backends.len() {
            bail!("no backend pod number {index} to delete");
        }
        let mut pod = self.backends.remove(index);
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
