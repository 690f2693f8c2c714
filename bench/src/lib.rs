//! The lab: the k3d cluster played on one machine with real parts, and the original lab's
//! failover demo replayed under steady load through each proxy in turn.
//!
//! [`cluster`] runs the pods (Postgres primary and replicas, backends, a Postgres balancer) and
//! the DNS server; [`fronts`] starts each proxy under test; [`load`] sends the steady load;
//! [`scenario`] plays the phases; [`report`] and [`plot`] turn the samples into tables, JSON and a
//! PNG timeline. [`run`] ties them together.
//!
//! [`containers`] plays the same demo through the images users deploy, in Docker containers.
//!
//! [`speed`] is the other binary, `bench`: the head-to-head benchmarks against nginx and HAProxy,
//! on the same process, config and chart helpers.

pub mod bins;
pub mod blackhole;
pub mod cluster;
pub mod containers;
pub mod dashboard;
pub mod fronts;
pub mod gray;
pub mod load;
pub mod opts;
pub mod plot;
pub mod process;
pub mod report;
pub mod scenario;
pub mod service_ip;
pub mod soak;
pub mod speed;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

pub use opts::{Front, Opts};
pub use report::Run;

use crate::cluster::Cluster;

#[derive(Debug, Serialize)]
pub struct Results {
    pub settings: Settings,
    pub runs: Vec<Run>,
    /// Proxies that were asked for but could not run, with why.
    pub skipped: Vec<(String, String)>,
    /// The dashboard's panels drawn from the Prometheus that scraped our stack's run (none with
    /// `--no-dashboard` or without our proxy).
    pub dashboard: Vec<dashboard::PanelReport>,
}

#[derive(Debug, Serialize)]
pub struct Settings {
    pub phase_s: f64,
    pub rate: u32,
    pub start_delay_s: f64,
    pub request_timeout_s: f64,
    pub shutdown_delay_s: f64,
    pub blackhole: &'static str,
}

/// What the demo and the soak stand on: the cluster, the packet filter's state, and the work
/// directory with every process's log (removed when this is dropped, after the cluster).
pub struct Lab {
    pub cluster: Cluster,
    pub blackhole: Arc<blackhole::Blackhole>,
    _work: tempfile::TempDir,
}

impl Lab {
    /// Starts DNS and Postgres (primary + 2 streaming replicas), and says how pods will behave.
    pub async fn start(common: &opts::Common) -> anyhow::Result<Self> {
        let bins = bins::Bins::locate(common.bin_dir.as_deref())?;
        let blackhole = Arc::new(blackhole::Blackhole::setup());
        println!("lab: {}", blackhole.describe());
        let work = tempfile::Builder::new()
            .prefix("lab-")
            .tempdir()
            .context("creating a work directory")?;
        println!(
            "lab: starting Postgres (primary + 2 streaming replicas) and DNS; logs in {}",
            work.path().display()
        );
        let cluster = Cluster::start(
            bins,
            work.path().to_owned(),
            Arc::clone(&blackhole),
            common.shutdown_delay,
        )
        .await?;
        println!("lab: {}", cluster.service_ips().describe());
        std::fs::create_dir_all(&common.out)
            .with_context(|| format!("creating {}", common.out.display()))?;
        Ok(Self {
            cluster,
            blackhole,
            _work: work,
        })
    }
}

/// Runs the demo for every proxy in `opts`, prints the tables, writes the results.
pub async fn run(opts: Opts) -> anyhow::Result<Results> {
    let common = &opts.common;
    let mut lab = Lab::start(common).await?;
    let cluster = &mut lab.cluster;

    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    let mut panels = Vec::new();
    for &front in &opts.proxies {
        if let Some(why) = fronts::missing(front) {
            println!("\nlab: skipping {}: {why}", front.name());
            skipped.push((front.name().to_owned(), why));
            continue;
        }
        println!(
            "\n######## {} (Postgres via {}) ########",
            front.name(),
            front.db().name()
        );
        // Our stack exports metrics: a Prometheus watches it from before its pods start.
        let mut dashboard = None;
        if front == Front::Ours && !opts.no_dashboard {
            let d = dashboard::Dashboard::start(&cluster.work, fronts::OURS_ADMIN).await?;
            cluster.observe(Some(d.targets()));
            dashboard = Some(d);
        }
        cluster.reset(front.db()).await?;
        let (mut proxy, addr) = fronts::start(front, cluster).await?;
        if let Some(d) = &mut dashboard {
            d.wait_scraping(&["proxy", "pgbalancer", "backend"]).await?;
            println!(
                "lab: Prometheus scrapes the proxy, pgbalancer and the backend pods: http://{}/graph",
                dashboard::prometheus::LISTEN
            );
        }
        let started = dashboard::prometheus::unix_now();
        let load = load::Load::start(
            addr,
            common.rate,
            common.request_timeout,
            opts.quiet,
            Arc::clone(&cluster.ready),
        );
        let timing = scenario::Timing {
            phase: opts.phase,
            start_delay: common.start_delay,
        };
        let phases = scenario::run(cluster, &load, timing).await;
        let samples = load.finish().await;
        let ended = dashboard::prometheus::unix_now();
        if dashboard.is_some() {
            // The run's last samples are scraped before anything stops.
            tokio::time::sleep(dashboard::SCRAPE_INTERVAL * 2).await;
        }
        proxy.wait_or_kill(Duration::ZERO).await;
        let phases = phases?;
        let png = common.out.join(format!("lab-{}.png", front.name()));
        let run = record(front, &phases, &samples, &png, "", common.request_timeout);
        runs.push(run);
        if let Some(d) = dashboard {
            cluster.observe(None);
            panels = d
                .draw(&common.out, "dashboard", &phases, (started, ended))
                .await?;
            println!(
                "dashboard: {} panels drawn from Prometheus into {}/dashboard-*.png",
                panels.len(),
                common.out.display()
            );
        }
    }

    let results = Results {
        settings: Settings {
            phase_s: opts.phase.as_secs_f64(),
            rate: common.rate,
            start_delay_s: common.start_delay.as_secs_f64(),
            request_timeout_s: common.request_timeout.as_secs_f64(),
            shutdown_delay_s: common.shutdown_delay.as_secs_f64(),
            blackhole: lab.blackhole.mode(),
        },
        runs,
        skipped,
        dashboard: panels,
    };
    write(&opts, &results)?;
    println!("\n{}", report::summary(&results.runs));
    let empty = dashboard::empty(&results.dashboard);
    if !empty.is_empty() {
        anyhow::bail!(
            "{} dashboard queries returned no series (a metric renamed or never exported?):\n  {}",
            empty.len(),
            empty.join("\n  ")
        );
    }
    Ok(results)
}

/// One proxy's run, summed up: prints its table, draws its timeline to `png` (`where_` goes into
/// the title, e.g. " in containers") and returns it.
pub(crate) fn record(
    front: Front,
    phases: &[scenario::Phase],
    samples: &[load::Sample],
    png: &std::path::Path,
    where_: &str,
    request_timeout: Duration,
) -> Run {
    let run = report::summarize(front, phases, samples);
    println!("\n{}", report::table(&run));
    let title = format!(
        "{}{where_} (Postgres via {}): every request, failures in red",
        front.name(),
        front.db().name()
    );
    match plot::timeline(
        png,
        &title,
        phases,
        samples,
        request_timeout.as_secs_f64() * 1000.0,
    ) {
        Ok(()) => println!("timeline: {}", png.display()),
        Err(e) => println!("timeline not drawn: {e:#}"),
    }
    run
}

/// The panels of our stack's run in lab.md: each image, and what each query returned.
fn dashboard_md(panels: &[dashboard::PanelReport]) -> String {
    let mut md = format!(
        "\n## The dashboard during our stack's run\n\nEvery panel of `k8s/manifests/config/grafana-dashboard.json`, each query evaluated over the run against the Prometheus (Debian's `prometheus`, scraping every {} s) that scraped the proxy, pgbalancer and every backend pod; `$__rate_interval` is {} s. Phases as in the timeline.\n",
        dashboard::SCRAPE_INTERVAL.as_secs_f64(),
        dashboard::SCRAPE_INTERVAL.as_secs_f64() * 4.0
    );
    for p in panels {
        md.push_str(&format!(
            "\n### {}\n\n![{}]({})\n\n",
            p.title, p.title, p.png
        ));
        for q in &p.queries {
            md.push_str(&format!("- `{}`: {} series\n", q.expr, q.series));
        }
    }
    md
}

fn write(opts: &Opts, results: &Results) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(results)?;
    for name in ["lab.json", "latest.json"] {
        let path = opts.common.out.join(name);
        std::fs::write(&path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    let s = &results.settings;
    let mut md = format!(
        "# Failover demo: the original lab's phases under load\n\nCommand: `make demo` (= `target/release/lab --phase {}s --rate {}`). Phase {} s, {} req/s, replacement pods start after {} s, request timeout {} s, backend shutdown delay {} s; deleted pods' IPs: {}.\n\n## Summary\n\n{}\n",
        s.phase_s, s.rate, s.phase_s, s.rate, s.start_delay_s, s.request_timeout_s, s.shutdown_delay_s, s.blackhole,
        report::summary(&results.runs)
    );
    for (proxy, why) in &results.skipped {
        md.push_str(&format!("- {proxy} skipped: {why}\n"));
    }
    for run in &results.runs {
        md.push_str(&format!(
            "\n{}\n![{} timeline](lab-{}.png)\n",
            report::table(run),
            run.proxy,
            run.proxy
        ));
    }
    if !results.dashboard.is_empty() {
        md.push_str(&dashboard_md(&results.dashboard));
    }
    let path = opts.common.out.join("lab.md");
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "\nresults: {}, {}",
        path.display(),
        opts.common.out.join("latest.json").display()
    );
    Ok(())
}
