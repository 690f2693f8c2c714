//! The chaos soak: steady load through proxy → backend → pgbalancer → replicas for a bounded
//! time while [`chaos`] replaces backend pods, deletes and restores replicas, restarts pgbalancer
//! and reloads the proxy's config. Every request is counted: sent, answered 2xx, failed by kind,
//! and failed while a backend and a replica existed (the target is zero).

pub mod chaos;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;

use crate::load::{Load, Sample};
use crate::opts::{Db, Front, SoakOpts};
use crate::report::{kinds, Stats};
use crate::scenario::Phase;
use crate::{fronts, plot, Lab};
use chaos::{Action, Bag, Event, Rng};

#[derive(Debug, Serialize)]
pub struct SoakResults {
    pub settings: SoakSettings,
    pub totals: Stats,
    /// Requests answered with a 2xx.
    pub ok: usize,
    /// Distinct backend pods (`X-Upstream-Addr`) that answered: replacements served too.
    pub backends_served: usize,
    pub actions: BTreeMap<String, usize>,
    /// Config reloads the proxy reported as applied (its `proxy_config_reloads_total`).
    pub reloads_applied: Option<u64>,
    pub events: Vec<Event>,
}

#[derive(Debug, Serialize)]
pub struct SoakSettings {
    pub duration_s: f64,
    pub rate: u32,
    pub chaos_interval_s: f64,
    pub seed: u64,
    pub start_delay_s: f64,
    pub shutdown_delay_s: f64,
    pub request_timeout_s: f64,
    pub blackhole: &'static str,
    pub service_ip: bool,
}

/// Runs the soak, prints the table, writes `soak.md`, `soak.json` and `soak.png`.
pub async fn run(opts: SoakOpts) -> anyhow::Result<SoakResults> {
    let common = &opts.common;
    let seed = opts.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let mut lab = Lab::start(common).await?;
    let blackhole = lab.blackhole.mode();
    let cluster = &mut lab.cluster;
    cluster.reset(Db::Pgbalancer).await?;
    let (mut process, addr) = fronts::start(Front::Ours, cluster).await?;
    println!(
        "\nsoak: {} at {} req/s through our proxy and pgbalancer; a chaos action every ~{} (seed {seed}: --seed {seed} replays it)",
        humantime::format_duration(opts.duration),
        common.rate,
        humantime::format_duration(opts.chaos_interval),
    );
    let load = Load::start(
        addr,
        common.rate,
        common.request_timeout,
        !opts.verbose,
        Arc::clone(&cluster.ready),
    );

    let mut rng = Rng::new(seed);
    let mut bag = Bag::default();
    let mut proxy = chaos::Proxy {
        process: &process,
        work: &cluster.work.clone(),
        green: false,
    };
    let mut events = Vec::new();
    let started = Instant::now();
    let mut next_status = Duration::from_secs(10);
    let outcome: anyhow::Result<()> = async {
        while started.elapsed() < opts.duration {
            let pause = rng.around(opts.chaos_interval);
            let until = (started.elapsed() + pause).min(opts.duration);
            while started.elapsed() < until {
                tokio::time::sleep((until - started.elapsed()).min(Duration::from_secs(1))).await;
                if started.elapsed() >= next_status {
                    status_line(&load, started.elapsed(), opts.duration, events.len());
                    next_status += Duration::from_secs(10);
                }
            }
            if started.elapsed() >= opts.duration {
                break;
            }
            let action = bag.next(&mut rng);
            let event = chaos::perform(
                action,
                cluster,
                &mut proxy,
                &mut rng,
                common.start_delay,
                &load,
            )
            .await
            .with_context(|| format!("chaos action {action:?}"))?;
            println!(
                "  chaos {:>6.1}s  {} ({:.1} s)",
                event.at_s, event.what, event.took_s
            );
            events.push(event);
        }
        Ok(())
    }
    .await;
    let samples = load.finish().await;
    let reloads_applied = chaos::reloads_ok(fronts::OURS_ADMIN).await;
    process.wait_or_kill(Duration::ZERO).await;
    outcome?;

    let mut actions = BTreeMap::new();
    for action in Action::ALL {
        let name = serde_json::to_value(action)?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        actions.insert(name, events.iter().filter(|e| e.action == action).count());
    }
    let results = SoakResults {
        settings: SoakSettings {
            duration_s: opts.duration.as_secs_f64(),
            rate: common.rate,
            chaos_interval_s: opts.chaos_interval.as_secs_f64(),
            seed,
            start_delay_s: common.start_delay.as_secs_f64(),
            shutdown_delay_s: common.shutdown_delay.as_secs_f64(),
            request_timeout_s: common.request_timeout.as_secs_f64(),
            blackhole,
            service_ip: lab.cluster.service_ips().available(),
        },
        totals: Stats::of(samples.iter()),
        ok: samples
            .iter()
            .filter(|s| s.outcome.kind().is_none())
            .count(),
        backends_served: samples
            .iter()
            .filter(|s| s.outcome.kind().is_none())
            .map(|s| s.backend.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        actions,
        reloads_applied,
        events,
    };
    let md = markdown(&results, &opts);
    println!("\n{md}");
    write(&opts, &results, &md, &samples)?;
    Ok(results)
}

fn status_line(load: &Load, elapsed: Duration, total: Duration, actions: usize) {
    let (answered, failed) = load.tally();
    println!(
        "soak {:>4}s/{}s: {answered} answered, {} ok, {failed} failed; {actions} chaos actions",
        elapsed.as_secs(),
        total.as_secs(),
        answered - failed,
    );
}

fn markdown(r: &SoakResults, opts: &SoakOpts) -> String {
    let s = &r.settings;
    let t = &r.totals;
    let mut md = format!(
        "# Chaos soak: proxy → backend → pgbalancer → replicas\n\n\
         Command: `{}`. {} s at {} req/s, a chaos action every {} s on average (seed {}), \
         replacement pods start after {} s, deleted pods' grace {} s, request timeout {} s; \
         deleted pods' IPs: {}; pgbalancer behind a Service IP: {}.\n\n\
         | sent | answered 2xx | failed | by kind | failed while a backend and a replica existed | p50 ms | p99 ms | max ms |\n\
         |---|---|---|---|---|---|---|---|\n| {} | {} | {} | {} | {} | {:.1} | {:.0} | {:.0} |\n\n\
         | chaos action | times |\n|---|---|\n",
        command(opts, s.seed),
        s.duration_s,
        s.rate,
        s.chaos_interval_s,
        s.seed,
        s.start_delay_s,
        s.shutdown_delay_s,
        s.request_timeout_s,
        s.blackhole,
        if s.service_ip { "yes (iptables DNAT)" } else { "no" },
        t.requests,
        r.ok,
        t.failed,
        kinds(t),
        t.failed_while_ready,
        t.p50_ms,
        t.p99_ms,
        t.max_ms,
    );
    for (action, n) in &r.actions {
        let _ = writeln!(md, "| {action} | {n} |");
    }
    let _ = writeln!(
        md,
        "\nBackend pods that answered (replacements included): {}.",
        r.backends_served
    );
    let _ = writeln!(
        md,
        "Config reloads the proxy applied (`proxy_config_reloads_total{{result=\"ok\"}}`): {}.",
        r.reloads_applied
            .map_or_else(|| "unknown (no metric)".to_owned(), |n| n.to_string())
    );
    for example in &t.examples {
        let _ = writeln!(md, "- failure: {example}");
    }
    md.push_str("\n![latency of every request](soak.png)\n\n<details><summary>Every chaos action</summary>\n\n| at s | took s | what |\n|---|---|---|\n");
    for e in &r.events {
        let _ = writeln!(md, "| {:.1} | {:.1} | {} |", e.at_s, e.took_s, e.what);
    }
    md.push_str("\n</details>\n");
    md
}

/// The command line that repeats this soak.
fn command(opts: &SoakOpts, seed: u64) -> String {
    let c = &opts.common;
    format!(
        "target/release/lab soak --duration {} --rate {} --chaos-interval {} --start-delay {} --shutdown-delay {} --seed {seed}",
        humantime::format_duration(opts.duration),
        c.rate,
        humantime::format_duration(opts.chaos_interval),
        humantime::format_duration(c.start_delay),
        humantime::format_duration(c.shutdown_delay),
    )
}

fn write(opts: &SoakOpts, r: &SoakResults, md: &str, samples: &[Sample]) -> anyhow::Result<()> {
    let out = &opts.common.out;
    let json = out.join("soak.json");
    std::fs::write(&json, serde_json::to_string_pretty(r)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let path = out.join("soak.md");
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    let whole = Phase {
        name: "soak",
        what: "chaos",
        start_ms: 0.0,
        end_ms: samples.last().map_or(1000.0, |s| s.sent_ms + s.latency_ms),
        restored: None,
    };
    let png = out.join("soak.png");
    if let Err(e) = plot::timeline(
        &png,
        "chaos soak, ours: every request, failures in red",
        &[whole],
        samples,
        opts.common.request_timeout.as_secs_f64() * 1000.0,
    ) {
        println!("timeline not drawn: {e:#}");
    }
    println!("results: {}, {}", path.display(), json.display());
    Ok(())
}
