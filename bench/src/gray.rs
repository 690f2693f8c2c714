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
//! What a user sees is reported per phase: failed requests, requests slower than 1 s, p50, p99,
//! max, and how many the frozen or slow pod served.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;
use serde::Serialize;

use crate::load::{Load, Sample};
use crate::opts::{Front, GrayOpts};
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
    pub runs: Vec<GrayRun>,
    pub skipped: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
pub struct GrayRun {
    pub proxy: &'static str,
    pub db: &'static str,
    /// `frozen` or `slow`.
    pub run: &'static str,
    /// The pod frozen or slowed.
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
    /// Requests the frozen or slow pod answered in this phase.
    pub served_by_pod: usize,
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
        runs: Vec::new(),
        skipped: Vec::new(),
    };
    for &front in &opts.proxies {
        if let Some(why) = fronts::missing(front) {
            println!("\nlab: skipping {}: {why}", front.name());
            results.skipped.push((front.name().to_owned(), why));
            continue;
        }
        results.runs.push(frozen(&mut lab, front, &opts).await?);
        results.runs.push(slow(&mut lab, front, &opts).await?);
    }
    write(&opts, &results)?;
    println!("\n{}", table(&results));
    Ok(results)
}

async fn frozen(lab: &mut Lab, front: Front, opts: &GrayOpts) -> anyhow::Result<GrayRun> {
    println!("\n######## {}: a frozen pod ########", front.name());
    let cluster = &mut lab.cluster;
    cluster.reset(front.db()).await?;
    let (mut proxy, addr) = fronts::start(front, cluster).await?;
    let load = start_load(addr, opts, cluster);
    let played = async {
        let mut phases = Vec::new();
        let p = Step::begin("0", "baseline: 2 backend pods", &load);
        phases.push(p.hold(opts.phase, &load).await);
        let p = Step::begin("frozen", "one of the two pods stopped (SIGSTOP)", &load);
        let pod = cluster.signal_backend(0, Signal::SIGSTOP)?;
        phases.push(p.hold(opts.freeze, &load).await);
        let p = Step::begin("thawed", "the pod continued (SIGCONT)", &load);
        cluster.signal_backend(0, Signal::SIGCONT)?;
        phases.push(p.hold(opts.phase, &load).await);
        anyhow::Ok((pod, phases))
    }
    .await;
    // Never leave a stopped process behind, whatever happened.
    let _ = cluster.signal_backend(0, Signal::SIGCONT);
    let samples = load.finish().await;
    proxy.wait_or_kill(Duration::ZERO).await;
    let (pod, phases) = played?;
    Ok(summarize(front, "frozen", pod, &phases, &samples, opts))
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
    let (mut proxy, addr) = fronts::start(front, cluster).await?;
    let load = start_load(addr, opts, cluster);
    let p = Step::begin("slow", "3 backend pods, one answering late", &load);
    let phases = vec![p.hold(opts.phase * 2, &load).await];
    let samples = load.finish().await;
    proxy.wait_or_kill(Duration::ZERO).await;
    Ok(summarize(front, "slow", pod, &phases, &samples, opts))
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

fn summarize(
    front: Front,
    run: &'static str,
    pod: SocketAddr,
    phases: &[Phase],
    samples: &[Sample],
    opts: &GrayOpts,
) -> GrayRun {
    let pod = pod.to_string();
    let png = opts
        .common
        .out
        .join(format!("gray-{}-{run}.png", front.name()));
    let title = format!(" ({run} pod {pod})");
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
                served_by_pod: within().filter(|s| s.backend == pod).count(),
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

fn table(results: &GrayResults) -> String {
    let mut md = String::from(
        "| proxy | run | phase | requests | failed | slower than 1 s | p50 ms | p99 ms | max ms | served by the pod |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for run in &results.runs {
        for p in &run.phases {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.0} | {} |\n",
                run.proxy,
                run.run,
                p.name,
                p.stats.requests,
                p.stats.failed,
                p.slower_than_1s,
                p.stats.p50_ms,
                p.stats.p99_ms,
                p.stats.max_ms,
                p.served_by_pod
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
    let mut md = format!(
        "# Gray failures: a frozen pod, a slow pod\n\nCommand: `make gray` (= `target/release/lab gray --freeze {}s --slow-by {}ms --phase {}s --rate {}`). {} req/s; a request without an answer after {} s counts as a timeout. `frozen`: two backend pods, one stopped with SIGSTOP for {} s (it stays in DNS; its kernel still completes handshakes), then SIGCONT. `slow`: three backend pods, one answering every request {} ms late, for {} s.\n\n{}\n",
        results.freeze_s,
        results.slow_by_ms,
        results.phase_s,
        results.rate,
        results.rate,
        results.request_timeout_s,
        results.freeze_s,
        results.slow_by_ms,
        results.phase_s * 2.0,
        table(results),
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
