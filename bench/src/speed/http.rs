//! `bench http`: req/s, latency percentiles, CPU seconds per 100k requests and peak RSS of each
//! proxy in front of the same origin, for every combination of connection mode (keep-alive or a
//! new connection per request), body (small or 64 KiB) and client connections, interleaved rounds,
//! medians, ratios to nginx.

use std::time::Duration;

use serde::Serialize;

use super::chart::{self, Panel};
use super::contestants::{self, Plan, Server};
use super::measure;
use super::opts::{Body, Common, HttpOpts, Mode};
use super::table::{self, fmt_ratio, median, ratio, thousands, Header, Table};
use super::wrk::{self, WrkRun};

/// `127.0.110.x`: origin .1, nginx .2, HAProxy .3, ours .4, baseline .5.
const BLOCK: u8 = 110;

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    #[serde(flatten)]
    pub header: Header,
    pub wrk_threads: usize,
    /// Peak RSS is per run (reset before each); false: since the server started.
    pub peak_per_run: bool,
    pub scenarios: Vec<Scenario>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub mode: Mode,
    pub body: Body,
    pub conns: usize,
    /// wrk's command line for one contestant (`ADDR` for its address).
    pub wrk: String,
    pub contestants: Vec<Summary>,
}

impl Scenario {
    pub fn label(&self) -> String {
        format!("{} {} c{}", self.mode.name(), self.body.name(), self.conns)
    }

    pub fn get(&self, name: &str) -> Option<&Summary> {
        self.contestants.iter().find(|c| c.name == name)
    }
}

/// One contestant in one scenario: medians over the rounds, and every round.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    pub req_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub cpu_s_per_100k: f64,
    /// The largest peak RSS over the rounds.
    pub peak_rss_kib: u64,
    pub requests: u64,
    pub errors: u64,
    pub req_per_s_vs_nginx: Option<f64>,
    pub p99_vs_nginx: Option<f64>,
    pub runs: Vec<Sample>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub wrk: WrkRun,
    pub cpu_s: f64,
    pub peak_rss_kib: u64,
}

pub async fn run(common: &Common, opts: &HttpOpts) -> anyhow::Result<Results> {
    let mut header = Header::new(common, &["nginx", "haproxy", "wrk"]);
    let work = table::work_dir("bench-http-")?;
    let max_conns = opts.conns.iter().copied().max().unwrap_or(0);
    let plan = Plan {
        block: BLOCK,
        common,
        max_conns,
        work: work.path(),
    };
    println!(
        "bench http: starting the origin and the proxies; logs in {}",
        work.path().display()
    );
    let fleet = contestants::start(&plan).await?;
    let script = wrk::install_script(work.path())?;
    let servers: Vec<&Server> = std::iter::once(&fleet.origin)
        .chain(&fleet.proxies)
        .collect();
    for (name, why) in &fleet.skipped {
        println!("bench http: skipping {name}: {why}");
    }

    let seconds = header.seconds;
    let mut peak_per_run = true;
    let mut scenarios = Vec::new();
    for &mode in &opts.modes {
        for &body in &opts.bodies {
            for &conns in &opts.conns {
                let mut runs: Vec<Vec<Sample>> = vec![Vec::new(); servers.len()];
                for round in 1..=common.rounds {
                    for (i, server) in servers.iter().enumerate() {
                        let url = format!("http://{}{}", server.addr, body.path());
                        let load = wrk::Load {
                            url: &url,
                            connections: conns,
                            threads: opts.wrk_threads,
                            seconds,
                            close: mode == Mode::Close,
                        };
                        let pid = server.pid();
                        peak_per_run &= measure::reset_peak(pid);
                        let cpu = measure::cpu_seconds(pid);
                        let wrk = wrk::run(&load, &script).await?;
                        let sample = Sample {
                            cpu_s: measure::cpu_seconds(pid) - cpu,
                            peak_rss_kib: measure::peak_rss_kib(pid),
                            wrk,
                        };
                        println!(
                            "{} {} c{conns} round {round} {:>8}: {:>9} req/s, p99 {:.2} ms, {:.2} CPU s, {}{}",
                            mode.name(),
                            body.name(),
                            server.name,
                            thousands(sample.wrk.req_per_s),
                            sample.wrk.p99_ms,
                            sample.cpu_s,
                            if sample.wrk.errors == 0 { "no errors" } else { "errors: " },
                            sample.wrk.errors_by_kind,
                        );
                        runs[i].push(sample);
                        // Let the last run's closing connections settle before the next.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                let wrk_args = wrk::Load {
                    url: &format!("http://ADDR{}", body.path()),
                    connections: conns,
                    threads: opts.wrk_threads,
                    seconds,
                    close: mode == Mode::Close,
                }
                .args(&script);
                let scenario = Scenario {
                    mode,
                    body,
                    conns,
                    wrk: table::shell_words(std::iter::once("wrk".to_owned()).chain(wrk_args))
                        .replace(
                            &script.display().to_string(),
                            "bench/src/speed/wrk_report.lua",
                        ),
                    contestants: summarize(&servers, runs),
                };
                println!("\n{}", scenario_table(&scenario));
                scenarios.push(scenario);
            }
        }
    }

    header.skipped.clone_from(&fleet.skipped);
    let results = Results {
        header,
        wrk_threads: opts.wrk_threads,
        peak_per_run,
        scenarios,
    };
    table::publish(&common.out, "http", &results, &markdown(&results), |png| {
        draw(&results, png)
    })?;
    Ok(results)
}

fn summarize(servers: &[&Server], runs: Vec<Vec<Sample>>) -> Vec<Summary> {
    let mut out: Vec<Summary> = servers
        .iter()
        .zip(runs)
        .map(|(server, runs)| {
            let m = |f: fn(&Sample) -> f64| median(runs.iter().map(f));
            let requests: u64 = runs.iter().map(|r| r.wrk.requests).sum();
            let cpu: f64 = runs.iter().map(|r| r.cpu_s).sum();
            Summary {
                name: server.name.clone(),
                req_per_s: m(|r| r.wrk.req_per_s),
                p50_ms: m(|r| r.wrk.p50_ms),
                p99_ms: m(|r| r.wrk.p99_ms),
                p999_ms: m(|r| r.wrk.p999_ms),
                cpu_s_per_100k: if requests > 0 {
                    cpu / requests as f64 * 100_000.0
                } else {
                    0.0
                },
                peak_rss_kib: runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0),
                requests,
                errors: runs.iter().map(|r| r.wrk.errors).sum(),
                req_per_s_vs_nginx: None,
                p99_vs_nginx: None,
                runs,
            }
        })
        .collect();
    let nginx = out.iter().find(|s| s.name == "nginx").cloned();
    for s in &mut out {
        s.req_per_s_vs_nginx = ratio(s.req_per_s, nginx.as_ref().map(|n| n.req_per_s));
        s.p99_vs_nginx = ratio(s.p99_ms, nginx.as_ref().map(|n| n.p99_ms));
    }
    out
}

fn scenario_table(s: &Scenario) -> String {
    let mut t = Table::new(&[
        "contestant",
        "req/s",
        "× nginx",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "p99 × nginx",
        "CPU s / 100k req",
        "peak RSS MiB",
        "errors",
    ]);
    for c in &s.contestants {
        t.row(vec![
            c.name.clone(),
            thousands(c.req_per_s),
            fmt_ratio(c.req_per_s_vs_nginx),
            format!("{:.2}", c.p50_ms),
            format!("{:.2}", c.p99_ms),
            format!("{:.2}", c.p999_ms),
            fmt_ratio(c.p99_vs_nginx),
            format!("{:.2}", c.cpu_s_per_100k),
            format!("{:.1}", c.peak_rss_kib as f64 / 1024.0),
            c.errors.to_string(),
        ]);
    }
    format!("### {}\n\n`{}`\n\n{}", s.label(), s.wrk, t.markdown())
}

fn markdown(r: &Results) -> String {
    let mut md = format!(
        "# HTTP: our proxy vs nginx vs HAProxy, same origin\n\n\
{}\
Every contestant: {} worker thread(s) (nginx: worker processes; `direct` is wrk straight at the \
origin, the ceiling). {} interleaved round(s) of {} s per scenario (direct, nginx, haproxy, ours, … \
then again), medians; wrk -t{} with a Lua `done()` hook for p99.9. CPU: utime+stime of the server's \
process tree (the proxy's alone; the origin's for `direct`) over a run, per 100k requests answered. \
Peak RSS: VmHWM of the tree, {}.\n\n{}\n",
        r.header.preamble(),
        r.header.threads,
        r.header.rounds,
        r.header.seconds,
        r.wrk_threads,
        if r.peak_per_run {
            "reset before each run (clear_refs), the largest over the rounds"
        } else {
            "since the server started (the kernel refused to reset it)"
        },
        r.header.machine.markdown()
    );
    md.push_str(
        "\nOrigin: nginx answering `/small` (a 37-byte JSON, `return 200`) and `/64k` (a 64 KiB file, \
sendfile). Proxies: nginx (upstream keepalive 1024, proxy_buffers 8×16k so 64 KiB stays in memory), \
HAProxy (`mode http`, keep-alive both sides, `http-reuse safe`), ours (`--threads`, `RUST_LOG=warn`); \
all add `X-Upstream-Addr`, none logs access; idle timeouts 300 s, keepalive_requests unlimited.\n",
    );
    md.push_str(&r.header.skipped_markdown());
    if r.scenarios.iter().any(|s| s.get("ours").is_some()) {
        md.push_str("\n## Ours against nginx\n\n");
        let mut t = Table::new(&[
            "scenario",
            "req/s × nginx",
            "p99 × nginx",
            "CPU/100k × nginx",
            "peak RSS × nginx",
        ]);
        for s in &r.scenarios {
            if let (Some(o), Some(n)) = (s.get("ours"), s.get("nginx")) {
                t.row(vec![
                    s.label(),
                    fmt_ratio(o.req_per_s_vs_nginx),
                    fmt_ratio(o.p99_vs_nginx),
                    fmt_ratio(ratio(o.cpu_s_per_100k, Some(n.cpu_s_per_100k))),
                    fmt_ratio(ratio(o.peak_rss_kib as f64, Some(n.peak_rss_kib as f64))),
                ]);
            }
        }
        md.push_str(&t.markdown());
    }
    md.push_str("\n## Every scenario\n\n");
    for s in &r.scenarios {
        md.push_str(&scenario_table(s));
        md.push('\n');
    }
    md.push_str("![req/s and p99 per scenario](http.png)\n");
    md
}

fn draw(r: &Results, png: &std::path::Path) -> anyhow::Result<()> {
    let groups: Vec<String> = r.scenarios.iter().map(Scenario::label).collect();
    let names: Vec<&str> = r
        .scenarios
        .first()
        .map(|s| s.contestants.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let series = |f: fn(&Summary) -> f64| -> Vec<(&str, Vec<f64>)> {
        names
            .iter()
            .map(|&n| {
                let v = r
                    .scenarios
                    .iter()
                    .map(|s| s.get(n).map_or(0.0, f))
                    .collect();
                (n, v)
            })
            .collect()
    };
    chart::bars(
        png,
        &format!(
            "HTTP, {} thread(s), medians of {} round(s) × {} s",
            r.header.threads, r.header.rounds, r.header.seconds
        ),
        &groups,
        &[
            Panel {
                y_desc: "req/s",
                series: series(|s| s.req_per_s),
            },
            Panel {
                y_desc: "p99 ms",
                series: series(|s| s.p99_ms),
            },
        ],
    )
}
