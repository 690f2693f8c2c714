//! `lab gray`: the failures that are not clean, through each proxy in turn, under the steady
//! load. Two runs per proxy, each on a fresh cluster and a freshly started proxy:
//!
//! - **frozen**: two backend pods; one is stopped with SIGSTOP (a long GC pause, a stuck event
//!   loop) for `--freeze`, then continued. It stays in DNS and its kernel still completes TCP
//!   handshakes, so a TCP check passes and nothing but the requests themselves shows it.
//! - **slow**: three backend pods, one of them answering every request `--slow-by` late
//!   (`backend --response-delay`), present from the proxy's start so that every proxy, nginx's
//!   resolve-once included, balances over the same three.
//!
//! - **frozen-replica**, **lagging-replica** ([`replicas`]): the same for a Postgres replica behind
//!   pgbalancer or HAProxy `mode tcp`: one of two stopped, or its replay paused while the primary
//!   writes.
//!
//! What a user sees is reported per phase: failed requests, requests slower than 1 s, p50, p99,
//! max, and how many the frozen, slow or lagging pod or replica served.

mod replicas;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;
use serde::Serialize;

use crate::load::{Load, Sample};
use crate::opts::{Front, GrayKind, GrayOpts};
use crate::report::Stats;
use crate::scenario::{Phase, Step};
use crate::{fronts, Lab};

#[derive(Debug, Serialize)]
pub struct GrayResults {
    pub freeze_s: f64,
    pub slow_by_ms: f64,
    pub phase_s: f64,
    pub rate: u32,
    pub request_timeout_s: f64,
    pub max_lag_s: f64,
    pub runs: Vec<GrayRun>,
    pub skipped: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
pub struct GrayRun {
    pub proxy: &'static str,
    pub db: &'static str,
    /// `frozen`, `slow`, `frozen-replica` or `lagging-replica` ([`GrayKind::name`]).
    pub run: &'static str,
    /// The pod (address) or replica (name) frozen, slowed or lagging.
    pub pod: String,
    pub phases: Vec<GrayPhase>,
}

#[derive(Debug, Serialize)]
pub struct GrayPhase {
    pub name: &'static str,
    pub what: &'static str,
    #[serde(flatten)]
    pub stats: Stats,
    pub slower_than_1s: usize,
    /// Requests the frozen, slow or lagging pod or replica answered in this phase.
    pub served_by_pod: usize,
    /// When the last of those was sent, seconds into the phase (none if it served nothing).
    pub last_served_s: Option<f64>,
}

pub async fn run(opts: GrayOpts) -> anyhow::Result<GrayResults> {
    let common = &opts.common;
    let mut lab = Lab::start(common).await?;
    let mut results = GrayResults {
        freeze_s: opts.freeze.as_secs_f64(),
        slow_by_ms: opts.slow_by.as_secs_f64() * 1000.0,
        phase_s: opts.phase.as_secs_f64(),
        rate: common.rate,
        request_timeout_s: common.request_timeout.as_secs_f64(),
        max_lag_s: opts.max_lag.as_secs_f64(),
        runs: Vec::new(),
        skipped: Vec::new(),
    };
    lab.cluster.set_pgbalancer_args(vec![
        "--max-lag".into(),
        humantime::format_duration(opts.max_lag).to_string(),
    ]);
    for &front in &opts.proxies {
        if let Some(why) = fronts::missing(front) {
            println!("\nlab: skipping {}: {why}", front.name());
            results.skipped.push((front.name().to_owned(), why));
            continue;
        }
        for &kind in &opts.runs {
            if kind.replica() && !matches!(front, Front::Ours | Front::Haproxy) {
                continue;
            }
            let run = match kind {
                GrayKind::Frozen => frozen(&mut lab, front, &opts).await?,
                GrayKind::Slow => slow(&mut lab, front, &opts).await?,
                GrayKind::FrozenReplica => replicas::frozen(&mut lab, front, &opts).await?,
                GrayKind::LaggingReplica => replicas::lagging(&mut lab, front, &opts).await?,
            };
            results.runs.push(run);
        }
    }
    write(&opts, &results)?;
    println!("\n{}", table(&results));
    Ok(results)
}

async fn frozen(lab: &mut Lab, front: Front, opts: &GrayOpts) -> anyhow::Result<GrayRun> {
    println!("\n######## {}: a frozen pod ########", front.name());
    let cluster = &mut lab.cluster;
    cluster.reset(front.db()).await?;
    let pod = cluster.backends().first().context("no backend pod")?.addr();
    let (proxy, addr) = fronts::start(front, cluster).await?;
    let load = start_load(addr, opts, cluster);
    let played = async {
        let mut phases = Vec::new();
        let p = Step::begin("0", "baseline: 2 backend pods", &load);
        phases.push(p.hold(opts.phase, &load).await);
        let p = Step::begin("frozen", "one of the two pods stopped (SIGSTOP)", &load);
        cluster.signal_backend(0, Signal::SIGSTOP)?;
        phases.push(p.hold(opts.freeze, &load).await);
        let p = Step::begin("thawed", "the pod continued (SIGCONT)", &load);
        cluster.signal_backend(0, Signal::SIGCONT)?;
        phases.push(p.hold(opts.phase, &load).await);
        anyhow::Ok(phases)
    }
    .await;
    // Never leave a stopped process behind, whatever happened.
    let _ = cluster.signal_backend(0, Signal::SIGCONT);
    let run = Run {
        front,
        kind: GrayKind::Frozen,
        served: Served::Pod(pod),
    };
    run.end(played, load, proxy, opts).await
}

async fn slow(lab: &mut Lab, front: Front, opts: &GrayOpts) -> anyhow::Result<GrayRun> {
    println!("\n######## {}: a slow pod ########", front.name());
    let cluster = &mut lab.cluster;
    cluster.reset(front.db()).await?;
    let delay = humantime::format_duration(opts.slow_by).to_string();
    let pod = cluster
        .add_backend_with(&["--response-delay".into(), delay])
        .await
        .context("starting the slow pod")?;
    let (proxy, addr) = fronts::start(front, cluster).await?;
    let load = start_load(addr, opts, cluster);
    let p = Step::begin("slow", "3 backend pods, one answering late", &load);
    let phases = vec![p.hold(opts.phase * 2, &load).await];
    let run = Run {
        front,
        kind: GrayKind::Slow,
        served: Served::Pod(pod),
    };
    run.end(Ok(phases), load, proxy, opts).await
}

fn start_load(addr: SocketAddr, opts: &GrayOpts, cluster: &crate::cluster::Cluster) -> Load {
    let common = &opts.common;
    Load::start(
        addr,
        common.rate,
        common.request_timeout,
        opts.quiet,
        Arc::clone(&cluster.ready),
    )
}

/// Whose answers a run counts: a backend pod's, or a replica's.
enum Served {
    Pod(SocketAddr),
    Replica(String),
}

impl Served {
    fn by(&self, sample: &Sample) -> bool {
        match self {
            Self::Pod(addr) => sample.backend == addr.to_string(),
            Self::Replica(name) => sample.db == *name,
        }
    }

    fn name(&self) -> String {
        match self {
            Self::Pod(addr) => addr.to_string(),
            Self::Replica(name) => name.clone(),
        }
    }
}

/// One run of one proxy: what was done, and whose answers count.
struct Run {
    front: Front,
    kind: GrayKind,
    served: Served,
}

impl Run {
    /// Stops the load and the proxy, then summarizes what was `played`.
    async fn end(
        self,
        played: anyhow::Result<Vec<Phase>>,
        load: Load,
        mut proxy: crate::process::Process,
        opts: &GrayOpts,
    ) -> anyhow::Result<GrayRun> {
        let samples = load.finish().await;
        proxy.wait_or_kill(Duration::ZERO).await;
        Ok(self.summarize(&played?, &samples, opts))
    }

    fn summarize(self, phases: &[Phase], samples: &[Sample], opts: &GrayOpts) -> GrayRun {
        let Self {
            front,
            kind,
            served,
        } = self;
        let run = kind.name();
        let pod = served.name();
        let png = opts
            .common
            .out
            .join(format!("gray-{}-{run}.png", front.name()));
        let what = if kind.replica() { "replica" } else { "pod" };
        let title = format!(" ({run}: {what} {pod})");
        crate::record(
            front,
            phases,
            samples,
            &png,
            &title,
            opts.common.request_timeout,
        );
        let phases = phases
            .iter()
            .map(|p| {
                let within = || {
                    samples
                        .iter()
                        .filter(move |s| s.sent_ms >= p.start_ms && s.sent_ms < p.end_ms)
                };
                GrayPhase {
                    name: p.name,
                    what: p.what,
                    stats: Stats::of(within()),
                    slower_than_1s: within().filter(|s| s.latency_ms > 1000.0).count(),
                    served_by_pod: within().filter(|s| served.by(s)).count(),
                    last_served_s: within()
                        .filter(|s| served.by(s))
                        .map(|s| (s.sent_ms - p.start_ms) / 1000.0)
                        .reduce(f64::max),
                }
            })
            .collect();
        GrayRun {
            proxy: front.name(),
            db: front.db().name(),
            run,
            pod,
            phases,
        }
    }
}

fn table(results: &GrayResults) -> String {
    let mut md = String::from(
        "| proxy | run | phase | requests | failed | slower than 1 s | p50 ms | p99 ms | max ms | served by the pod or replica | its last, s into the phase |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for run in &results.runs {
        for p in &run.phases {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.0} | {} | {} |\n",
                run.proxy,
                run.run,
                p.name,
                p.stats.requests,
                p.stats.failed,
                p.slower_than_1s,
                p.stats.p50_ms,
                p.stats.p99_ms,
                p.stats.max_ms,
                p.served_by_pod,
                p.last_served_s
                    .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}"))
            ));
        }
    }
    md
}

fn write(opts: &GrayOpts, results: &GrayResults) -> anyhow::Result<()> {
    let out = &opts.common.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json = serde_json::to_string_pretty(results)?;
    let path = out.join("gray.json");
    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    let runs: Vec<_> = opts.runs.iter().map(|k| k.name()).collect();
    let mut md = format!(
        "# Gray failures: a frozen pod, a slow pod, a frozen replica, a lagging replica\n\n\
Command: `make gray` (= `target/release/lab gray --freeze {freeze}s --slow-by {slow}ms --phase {phase}s --max-lag {lag}s --rate {rate} --runs {runs}`). \
{rate} req/s; a request without an answer after {timeout} s counts as a timeout.\n\n\
- `frozen`: two backend pods, one stopped with SIGSTOP for {freeze} s (it stays in DNS; its kernel still completes handshakes), then SIGCONT.\n\
- `slow`: three backend pods, one answering every request {slow} ms late, for {slow_for} s.\n\
- `frozen-replica`: two replicas, one stopped (its postmaster and every process it forked, SIGSTOP) for {freeze} s, then continued. Each request opens its own database connection through the stack's Postgres balancer (pgbalancer for `ours`, HAProxy `mode tcp` with `pgsql-check` for `haproxy`; the backend gives up on a connection after 2 s).\n\
- `lagging-replica`: two replicas, the primary written every 100 ms; one replica's replay paused for {lag} s (`paused`: its lag grows up to pgbalancer's `--max-lag` {lag} s), then {phase} s more (`past bound`), then resumed. \"Served\" counts the reads the lagging replica answered.\n\n{table}\n",
        freeze = results.freeze_s,
        slow = results.slow_by_ms,
        phase = results.phase_s,
        lag = results.max_lag_s,
        rate = results.rate,
        runs = runs.join(","),
        timeout = results.request_timeout_s,
        slow_for = results.phase_s * 2.0,
        table = table(results),
    );
    for (proxy, why) in &results.skipped {
        md.push_str(&format!("- {proxy} skipped: {why}\n"));
    }
    for run in &results.runs {
        md.push_str(&format!(
            "\n![{} {}](gray-{}-{}.png)\n",
            run.proxy, run.run, run.proxy, run.run
        ));
    }
    let path = out.join("gray.md");
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "\nresults: {}, {}",
        path.display(),
        out.join("gray.json").display()
    );
    Ok(())
}
