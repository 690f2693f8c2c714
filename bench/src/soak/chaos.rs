//! The chaos loop's actions and how it picks them: every round performs each kind of action
//! once, in an order drawn from a seeded generator, so a short soak still exercises every kind
//! and a seed replays the same run.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::process::{http_get, Process};
use crate::{fronts, load::Load};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Delete a random backend pod; its replacement starts on a new IP after the start delay.
    ReplaceBackend,
    /// With both replicas in DNS, delete one at random; with one, bring the other back. A deleted
    /// replica stays down until the next round, while the other actions go on.
    ToggleReplica,
    /// Restart pgbalancer as a rolling update (a new pod behind the Service IP, then the old
    /// one stopped).
    RestartPgbalancer,
    /// Point the proxy's config at the other Service name of the pods and send SIGHUP.
    ReloadProxy,
}

impl Action {
    pub const ALL: [Self; 4] = [
        Self::ReplaceBackend,
        Self::ToggleReplica,
        Self::RestartPgbalancer,
        Self::ReloadProxy,
    ];
}

/// One action as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub action: Action,
    /// On the load's clock.
    pub at_s: f64,
    pub took_s: f64,
    pub what: String,
}

/// xorshift64*: enough randomness for choosing actions, and no dependency for it.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `mean` scaled by a factor drawn from 0.5..1.5.
    pub fn around(&mut self, mean: Duration) -> Duration {
        mean.mul_f64(0.5 + (self.next_u64() % 1000) as f64 / 1000.0)
    }
}

/// Hands out the actions, every kind once per round, each round shuffled.
#[derive(Default)]
pub struct Bag {
    round: Vec<Action>,
}

impl Bag {
    pub fn next(&mut self, rng: &mut Rng) -> Action {
        if self.round.is_empty() {
            self.round = Action::ALL.to_vec();
        }
        self.round.swap_remove(rng.below(self.round.len()))
    }
}

/// What the chaos loop acts on besides the cluster: our proxy and its config.
pub struct Proxy<'a> {
    pub process: &'a Process,
    pub work: &'a std::path::Path,
    /// Whether the config names the green Service now.
    pub green: bool,
}

/// Performs `action`; the load keeps running meanwhile.
pub async fn perform(
    action: Action,
    cluster: &mut Cluster,
    proxy: &mut Proxy<'_>,
    rng: &mut Rng,
    start_delay: Duration,
    load: &Load,
) -> anyhow::Result<Event> {
    let at_s = load.now_ms() / 1000.0;
    let began = Instant::now();
    let what = match action {
        Action::ReplaceBackend => {
            let i = rng.below(cluster.backends().len());
            let gone = cluster.delete_backend_at(i)?;
            tokio::time::sleep(start_delay).await;
            let new = cluster.add_backend().await?;
            format!("backend {gone} deleted; {new} replaced it")
        }
        Action::ToggleReplica => {
            let in_dns = cluster.replicas_in_dns();
            if in_dns.len() > 1 {
                let name = &in_dns[rng.below(in_dns.len())];
                cluster.delete_replica(name).await?;
                format!("replica {name} deleted")
            } else {
                let name = cluster
                    .replica_names()
                    .into_iter()
                    .find(|n| !in_dns.contains(n))
                    .context("no replica out of DNS")?;
                cluster.restore_replica(&name).await?;
                format!("replica {name} restored")
            }
        }
        Action::RestartPgbalancer => {
            let new = cluster.restart_db().await?;
            format!("pgbalancer restarted: the Service points at {new}")
        }
        Action::ReloadProxy => {
            proxy.green = !proxy.green;
            let service = if proxy.green {
                Cluster::backend_green_fqdn()
            } else {
                Cluster::backend_fqdn()
            };
            let before = reloads_ok(fronts::OURS_ADMIN).await;
            fronts::write_ours_config(proxy.work, &service)?;
            proxy.process.signal(nix::sys::signal::Signal::SIGHUP);
            wait_reloaded(before).await?;
            format!("proxy reloaded: upstream {service}")
        }
    };
    Ok(Event {
        action,
        at_s,
        took_s: began.elapsed().as_secs_f64(),
        what,
    })
}

/// `proxy_config_reloads_total{result="ok"}` from the proxy's metrics.
pub async fn reloads_ok(admin: std::net::SocketAddr) -> Option<u64> {
    let (_, metrics) = http_get(admin, "/metrics").await?;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("proxy_config_reloads_total{result=\"ok\"} "))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until the proxy counted one more applied reload than `before`.
async fn wait_reloaded(before: Option<u64>) -> anyhow::Result<()> {
    let before = before.context("the proxy's metrics have no proxy_config_reloads_total")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloads_ok(fronts::OURS_ADMIN).await.unwrap_or(before) <= before {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the proxy did not apply the new config within 10 s (see its log)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
