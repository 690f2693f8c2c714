//! The original lab's `demo_failover.sh`, phase by phase, under the steady load: 0 baseline (2
//! backends, 2 replicas); A one replica deleted; A.restore; B one backend deleted; B.restore (a
//! new pod after the start delay); C scale to 1 backend + 1 replica; C.drop the only backend pod
//! deleted and replaced; C.restore.
//!
//! The phases act on [`Pods`]: the loopback cluster of `make demo` and the containers stack of
//! `make demo-containers` both implement it, so both play exactly the same demo.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::cluster::Cluster;
use crate::load::Load;

/// What the phases do to a cluster, as `kubectl scale` and `kubectl delete pod` would.
#[allow(async_fn_in_trait)] // used only through generics here, never as `dyn`
pub trait Pods {
    /// Deletes the replica running as `cluster_name`: out of DNS at once, then stopped.
    async fn delete_replica(&mut self, name: &str) -> anyhow::Result<()>;
    /// Brings a replica named `name` back and returns once it is in DNS.
    async fn restore_replica(&mut self, name: &str) -> anyhow::Result<()>;
    /// Deletes the oldest backend pod (a scale-down): out of DNS at once, SIGTERM, gone after its
    /// grace, in the background. Returns its address.
    async fn delete_backend(&mut self) -> anyhow::Result<SocketAddr>;
    /// Starts a backend pod on a new address and returns that address once it is in DNS.
    async fn add_backend(&mut self) -> anyhow::Result<SocketAddr>;
}

impl Pods for Cluster {
    async fn delete_replica(&mut self, name: &str) -> anyhow::Result<()> {
        Cluster::delete_replica(self, name).await
    }
    async fn restore_replica(&mut self, name: &str) -> anyhow::Result<()> {
        Cluster::restore_replica(self, name).await
    }
    async fn delete_backend(&mut self) -> anyhow::Result<SocketAddr> {
        Cluster::delete_backend(self)
    }
    async fn add_backend(&mut self) -> anyhow::Result<SocketAddr> {
        Cluster::add_backend(self).await
    }
}

/// How long each phase lasts and how long a replacement pod takes before it starts.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub phase: Duration,
    pub start_delay: Duration,
}

/// A phase as it happened, on the load's clock.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub what: &'static str,
    pub start_ms: f64,
    pub end_ms: f64,
    /// A pod that came back or was added in this phase, and when it entered DNS.
    pub restored: Option<Restored>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// `backend=<addr>` or `db=<cluster_name>`, matched against what responses report.
    pub backend: Option<String>,
    pub db: Option<String>,
    pub in_dns_ms: f64,
}

const REPLICA: &str = "pg2";

pub async fn run(
    cluster: &mut impl Pods,
    load: &Load,
    timing: Timing,
) -> anyhow::Result<Vec<Phase>> {
    let mut phases = Vec::new();
    let phase = |name, what| Step::begin(name, what, load);

    let p = phase("0", "baseline: 2 backends, 2 replicas");
    phases.push(p.hold(timing.phase, load).await);

    let p = phase("A", "one replica deleted (replicas 2 -> 1)");
    cluster.delete_replica(REPLICA).await?;
    phases.push(p.hold(timing.phase, load).await);

    let mut p = phase("A.restore", "replicas back to 2");
    cluster.restore_replica(REPLICA).await?;
    p.restored(None, Some(REPLICA.to_owned()), load);
    phases.push(p.hold(timing.phase, load).await);

    let p = phase("B", "one backend pod deleted (backends 2 -> 1)");
    cluster.delete_backend().await?;
    phases.push(p.hold(timing.phase, load).await);

    let mut p = phase("B.restore", "backends back to 2: a new pod on a new IP");
    if !timing.start_delay.is_zero() {
        progress("pod starting", timing.start_delay).await;
    }
    let addr = cluster.add_backend().await?;
    p.restored(Some(addr.to_string()), None, load);
    phases.push(p.hold(timing.phase, load).await);

    let p = phase("C", "scale to 1 backend + 1 replica");
    cluster.delete_backend().await?;
    cluster.delete_replica(REPLICA).await?;
    phases.push(p.hold(timing.phase, load).await);

    let mut p = phase(
        "C.drop",
        "the only backend pod deleted; its replacement starts",
    );
    cluster.delete_backend().await?;
    if !timing.start_delay.is_zero() {
        progress("replacement starting", timing.start_delay).await;
    }
    let addr = cluster.add_backend().await?;
    p.restored(Some(addr.to_string()), None, load);
    phases.push(p.hold(timing.phase / 2, load).await);

    let p = phase("C.restore", "rollout done: served by the new pod");
    phases.push(p.hold(timing.phase, load).await);
    Ok(phases)
}

pub(crate) struct Step {
    phase: Phase,
}

impl Step {
    pub(crate) fn begin(name: &'static str, what: &'static str, load: &Load) -> Self {
        println!("\n===== phase {name}: {what} =====");
        Self {
            phase: Phase {
                name,
                what,
                start_ms: load.now_ms(),
                end_ms: 0.0,
                restored: None,
            },
        }
    }

    fn restored(&mut self, backend: Option<String>, db: Option<String>, load: &Load) {
        self.phase.restored = Some(Restored {
            backend,
            db,
            in_dns_ms: load.now_ms(),
        });
    }

    /// Keeps the load running for `duration` after the phase's actions, then closes the phase.
    pub(crate) async fn hold(mut self, duration: Duration, load: &Load) -> Phase {
        tokio::time::sleep(duration).await;
        self.phase.end_ms = load.now_ms();
        self.phase
    }
}

/// Waits `duration`, drawing a progress bar when stderr is a terminal.
async fn progress(what: &str, duration: Duration) {
    use std::io::IsTerminal;
    const WIDTH: usize = 30;
    if !std::io::stderr().is_terminal() {
        println!("  {what}: waiting {duration:?}");
        tokio::time::sleep(duration).await;
        return;
    }
    let steps = 30u32;
    for i in 1..=steps {
        tokio::time::sleep(duration / steps).await;
        let done = WIDTH * i as usize / steps as usize;
        eprint!(
            "\r  {what} [{}{}] {:.1}s",
            "#".repeat(done),
            " ".repeat(WIDTH - done),
            (duration * i / steps).as_secs_f64()
        );
    }
    eprintln!();
}
