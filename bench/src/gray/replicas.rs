//! The replica runs of `lab gray`, through a stack's Postgres balancer (pgbalancer, or HAProxy
//! `mode tcp` with `pgsql-check`): every request through the HTTP front reaches a backend pod that
//! opens its own database connection through the balancer, so each request is a new Postgres
//! session the balancer routes.
//!
//! - **frozen-replica**: one of the two replicas stopped (postmaster and every process it forked,
//!   SIGSTOP) for `--freeze`. It stays in DNS and its kernel completes handshakes; only the
//!   Postgres protocol shows it.
//! - **lagging-replica**: the primary written every 100 ms; one replica's replay paused for
//!   `--max-lag` (pgbalancer's bound), then `--phase` longer, then resumed. Its reads are stale.

use std::time::Duration;

use anyhow::Context;
use testkit::PgNode;
use tokio_postgres::{Client, NoTls};

use super::{start_load, GrayRun, Run, Served};
use crate::opts::{Front, GrayKind, GrayOpts};
use crate::scenario::Step;
use crate::{fronts, Lab};

pub(super) async fn frozen(
    lab: &mut Lab,
    front: Front,
    opts: &GrayOpts,
) -> anyhow::Result<GrayRun> {
    println!("\n######## {}: a frozen replica ########", front.name());
    let cluster = &mut lab.cluster;
    cluster.reset(front.db()).await?;
    let name = first_replica(cluster)?;
    let (proxy, addr) = fronts::start(front, cluster).await?;
    let load = start_load(addr, opts, cluster);
    let played = async {
        let mut phases = Vec::new();
        let p = Step::begin("0", "baseline: 2 replicas", &load);
        phases.push(p.hold(opts.phase, &load).await);
        let p = Step::begin("frozen", "one of the two replicas stopped (SIGSTOP)", &load);
        let frozen = replica(cluster, &name)?
            .freeze()
            .with_context(|| format!("freezing {name}"))?;
        phases.push(p.hold(opts.freeze, &load).await);
        let p = Step::begin("thawed", "the replica continued (SIGCONT)", &load);
        frozen.thaw();
        phases.push(p.hold(opts.phase, &load).await);
        anyhow::Ok(phases)
    }
    .await;
    // The guard continues the replica's processes whenever it is dropped, failure included.
    let run = Run {
        front,
        kind: GrayKind::FrozenReplica,
        served: Served::Replica(name),
    };
    run.end(played, load, proxy, opts).await
}

pub(super) async fn lagging(
    lab: &mut Lab,
    front: Front,
    opts: &GrayOpts,
) -> anyhow::Result<GrayRun> {
    println!("\n######## {}: a lagging replica ########", front.name());
    let cluster = &mut lab.cluster;
    cluster.reset(front.db()).await?;
    let name = first_replica(cluster)?;
    let writes = Writes::start(cluster.pg.primary()).await?;
    let lagging = superuser(replica(cluster, &name)?).await?;
    let (proxy, addr) = fronts::start(front, cluster).await?;
    let load = start_load(addr, opts, cluster);
    let played = async {
        let mut phases = Vec::new();
        let p = Step::begin("0", "baseline: 2 replicas, the primary written", &load);
        phases.push(p.hold(opts.phase, &load).await);
        let p = Step::begin(
            "paused",
            "one replica's replay paused, lag under the bound",
            &load,
        );
        lagging
            .batch_execute("SELECT pg_wal_replay_pause()")
            .await
            .context("pausing replay")?;
        phases.push(p.hold(opts.max_lag, &load).await);
        let p = Step::begin(
            "past bound",
            "replay still paused, lag past the bound",
            &load,
        );
        phases.push(p.hold(opts.phase, &load).await);
        let p = Step::begin("resumed", "replay resumed", &load);
        lagging
            .batch_execute("SELECT pg_wal_replay_resume()")
            .await
            .context("resuming replay")?;
        phases.push(p.hold(opts.phase, &load).await);
        anyhow::Ok(phases)
    }
    .await;
    // Never leave a replica paused for the runs after this one, whatever happened.
    let _ = lagging.batch_execute("SELECT pg_wal_replay_resume()").await;
    drop(writes);
    let run = Run {
        front,
        kind: GrayKind::LaggingReplica,
        served: Served::Replica(name),
    };
    run.end(played, load, proxy, opts).await
}

fn first_replica(cluster: &crate::cluster::Cluster) -> anyhow::Result<String> {
    cluster
        .replica_names()
        .into_iter()
        .next()
        .context("the cluster has no replica")
}

fn replica<'c>(cluster: &'c crate::cluster::Cluster, name: &str) -> anyhow::Result<&'c PgNode> {
    cluster
        .pg
        .replica(name)
        .with_context(|| format!("no replica {name}"))
}

async fn superuser(node: &PgNode) -> anyhow::Result<Client> {
    let (client, connection) = node
        .superuser_config()
        .connect(NoTls)
        .await
        .with_context(|| format!("logging in to {} as the superuser", node.name()))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Writes on the primary every 100 ms until dropped, so a paused replica falls behind.
struct Writes(tokio::task::JoinHandle<()>);

impl Writes {
    async fn start(primary: &PgNode) -> anyhow::Result<Self> {
        let client = superuser(primary).await?;
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS lab_gray_writes (at timestamptz)")
            .await
            .context("creating the table the lab writes to")?;
        Ok(Self(tokio::spawn(async move {
            loop {
                let _ = client
                    .batch_execute("INSERT INTO lab_gray_writes VALUES (now())")
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })))
    }
}

impl Drop for Writes {
    fn drop(&mut self) {
        self.0.abort();
    }
}
