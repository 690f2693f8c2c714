//! `lab containers` (`make demo-containers`): the failover demo through the images users deploy.
//! The original lab's phases run under steady load against the lab's stack in real containers
//! ([`stack`]), through each proxy in turn, with the same table, request lines and timeline as
//! `make demo`; results go to `containers.json` (the shape of `latest.json`), `containers.md` and
//! `containers-<proxy>.png`. Prometheus scrapes the stack for the whole run, and what it scraped is
//! part of the results.

mod configs;
pub mod docker;
mod endpoints;
pub mod manifest;
mod pod;
pub mod stack;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::opts::ContainersOpts;
use crate::{load, report, scenario, Results, Settings};
use docker::Engine;
use stack::{Images, Stack};

#[derive(Debug, Serialize)]
pub struct ContainerResults {
    #[serde(flatten)]
    pub results: Results,
    pub docker_version: String,
    /// Each image the stack ran, with its id.
    pub images: Vec<(String, String)>,
    /// For each scrape job, the highest `up` Prometheus recorded over the run (1: it was scraped).
    pub prometheus_up: Vec<(String, f64)>,
}

pub async fn run(opts: ContainersOpts) -> anyhow::Result<ContainerResults> {
    let engine = Arc::new(Engine::open().await?);
    let manifests = manifest::Manifests::load(&opts.manifests)?;
    let backend = manifests.template("backend")?;
    let shutdown_delay = backend
        .args
        .iter()
        .skip_while(|a| *a != "--shutdown-delay")
        .nth(1)
        .and_then(|d| humantime::parse_duration(d).ok())
        .unwrap_or(Duration::ZERO);
    let images = Images {
        registry: opts.registry.clone(),
        tag: opts.tag.clone(),
    };
    let mut image_ids = Vec::new();
    for image in images.all() {
        let id = engine.image_id(&image).await.unwrap_or_default();
        image_ids.push((image, id));
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let mut stack = Stack::start(Arc::clone(&engine), manifests, images).await?;
    let outcome = runs(&opts, &mut stack).await;
    let prometheus_up = match &outcome {
        Ok(_) => scraped(&stack).await,
        Err(_) => Ok(Vec::new()),
    };
    let blackhole = stack.blackhole();
    stack.stop().await;
    let (runs, skipped) = outcome?;
    let results = ContainerResults {
        results: Results {
            settings: Settings {
                phase_s: opts.phase.as_secs_f64(),
                rate: opts.rate,
                start_delay_s: opts.start_delay.as_secs_f64(),
                request_timeout_s: opts.request_timeout.as_secs_f64(),
                // The backend manifest's own --shutdown-delay.
                shutdown_delay_s: shutdown_delay.as_secs_f64(),
                blackhole,
            },
            runs,
            skipped,
            // The containers' Prometheus is checked for its targets (`prometheus_up`), its
            // panels are drawn by the loopback demo.
            dashboard: Vec::new(),
        },
        docker_version: engine
            .docker(&["version", "--format", "{{.Server.Version}}"])
            .await
            .unwrap_or_default(),
        images: image_ids,
        prometheus_up: prometheus_up?,
    };
    write(&opts, &results)?;
    println!("\n{}", report::summary(&results.results.runs));
    Ok(results)
}

async fn runs(
    opts: &ContainersOpts,
    stack: &mut Stack,
) -> anyhow::Result<(Vec<report::Run>, Vec<(String, String)>)> {
    let mut runs = Vec::new();
    for &front in &opts.proxies {
        println!(
            "\n######## {} in containers (Postgres via {}) ########",
            front.name(),
            front.db().name()
        );
        stack.reset(front.db()).await?;
        let (pod, addr) = stack.start_front(front).await?;
        println!("containers: {} answers on {addr}", front.name());
        let load = load::Load::start(
            addr,
            opts.rate,
            opts.request_timeout,
            opts.quiet,
            Arc::clone(&stack.ready),
        );
        let timing = scenario::Timing {
            phase: opts.phase,
            start_delay: opts.start_delay,
        };
        let phases = scenario::run(stack, &load, timing).await;
        let samples = load.finish().await;
        pod.kill().await;
        let phases = phases?;
        let png = opts.out.join(format!("containers-{}.png", front.name()));
        let run = crate::record(
            front,
            &phases,
            &samples,
            &png,
            " in containers",
            opts.request_timeout,
        );
        runs.push(run);
    }
    Ok((runs, Vec::new()))
}

/// The highest `up` of each scrape job over the run, from the Prometheus that scraped it.
async fn scraped(stack: &Stack) -> anyhow::Result<Vec<(String, f64)>> {
    let (_, addr) = stack.prometheus.as_ref().context("no Prometheus ran")?;
    // max by (job) (max_over_time(up[1h]))
    let path = "/api/v1/query?query=max%20by%20(job)%20(max_over_time(up%5B1h%5D))";
    let (status, body) = crate::process::http_get(*addr, path)
        .await
        .with_context(|| format!("querying Prometheus on {addr}"))?;
    anyhow::ensure!(status == 200, "Prometheus answered {status}: {body}");
    let value: serde_json::Value = serde_json::from_str(&body).context("Prometheus' answer")?;
    let mut out: Vec<(String, f64)> = value["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let job = r["metric"]["job"].as_str()?.to_owned();
            let up = r["value"][1].as_str()?.parse().ok()?;
            Some((job, up))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    for (job, up) in &out {
        println!("prometheus: job {job}: max up {up}");
    }
    Ok(out)
}

fn write(opts: &ContainersOpts, results: &ContainerResults) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(results)?;
    let path = opts.out.join("containers.json");
    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    let s = &results.results.settings;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut md = format!(
        "# Failover demo in containers: the original lab's phases through the images users deploy\n\n\
Command: `make demo-containers` (= `k8s/images/build_and_push.sh --no-push`, then `{command}`). \
Docker engine {}. Phase {} s, {} req/s, request timeout {} s; every pod runs from its image with \
the args, environment, readiness probe, preStop hook, grace period and memory limit of its \
manifest in `k8s/manifests`; a pod is in its Service's DNS name only while its readiness probe \
passes, a deleted pod leaves it and gets its stop signal at the same moment, and its address then \
goes silent ({}).\n\n\
## Summary\n\n{}\n",
        results.docker_version,
        s.phase_s,
        s.rate,
        s.request_timeout_s,
        s.blackhole,
        report::summary(&results.results.runs)
    );
    md.push_str("\nPrometheus (scraping every 2 s), highest `up` per job over the run:\n\n| job | max up |\n|---|---|\n");
    for (job, up) in &results.prometheus_up {
        md.push_str(&format!("| {job} | {up} |\n"));
    }
    md.push_str("\nImages:\n\n");
    for (image, id) in &results.images {
        md.push_str(&format!("- `{image}` {}\n", id.get(..19).unwrap_or(id)));
    }
    for run in &results.results.runs {
        md.push_str(&format!(
            "\n{}\n![{} timeline](containers-{}.png)\n",
            report::table(run),
            run.proxy,
            run.proxy
        ));
    }
    let path = opts.out.join("containers.md");
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "\nresults: {}, {}",
        path.display(),
        opts.out.join("containers.json").display()
    );
    Ok(())
}
