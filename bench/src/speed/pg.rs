//! `bench pg`: pgbench select-only TPS and latency against one streaming replica directly, through
//! pgbalancer and through HAProxy `mode tcp`, with a connection per client (`-S`) and a new
//! connection per transaction (`-S -C`), interleaved rounds, medians, ratios to direct.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;
use testkit::PgCluster;

use super::chart::{self, Panel};
use super::measure;
use super::opts::{Common, PgMode, PgOpts};
use super::pgbench::{self, Login, PgbenchRun};
use super::table::{self, fmt_ratio, median, ratio, thousands, Header, Table};
use crate::bins::installed;
use crate::fronts::spawn_haproxy;
use crate::process::{wait_listening, Process};

/// `127.0.111.x`: the primary .1, the replica .2, pgbalancer .10, HAProxy .11.
const PRIMARY: Ipv4Addr = Ipv4Addr::new(127, 0, 111, 1);
const PGBALANCER: Ipv4Addr = Ipv4Addr::new(127, 0, 111, 10);
const HAPROXY: Ipv4Addr = Ipv4Addr::new(127, 0, 111, 11);
const PASSWORD_ENV: &str = "BENCH_CHECK_PASSWORD";

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    #[serde(flatten)]
    pub header: Header,
    pub scale: u32,
    pub scenarios: Vec<Scenario>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub mode: PgMode,
    pub clients: usize,
    /// pgbench's command line for one contestant (`ADDR`/`PORT` for its address).
    pub pgbench: String,
    pub contestants: Vec<Summary>,
}

impl Scenario {
    pub fn label(&self) -> String {
        format!("{} c{}", self.mode.name(), self.clients)
    }

    pub fn get(&self, name: &str) -> Option<&Summary> {
        self.contestants.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    pub tps: f64,
    pub latency_avg_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub transactions: u64,
    pub failed: u64,
    /// The balancer's CPU (none for direct) per 100k transactions.
    pub cpu_s_per_100k: Option<f64>,
    /// The balancer's largest peak RSS over the rounds (none for direct).
    pub peak_rss_kib: Option<u64>,
    /// What one client session costs the balancer: (peak RSS during the run − RSS before) /
    /// clients, median over the rounds. Meaningful with a connection per client (`select`): the
    /// sessions are all open at once.
    pub kib_per_session: Option<f64>,
    pub tps_vs_direct: Option<f64>,
    pub runs: Vec<Sample>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub pgbench: PgbenchRun,
    pub cpu_s: Option<f64>,
    /// The balancer's RSS before the run and its peak during it (KiB).
    pub rss_before_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
}

struct Contestant {
    name: &'static str,
    addr: SocketAddr,
    process: Option<Process>,
}

pub async fn run(common: &Common, opts: &PgOpts) -> anyhow::Result<Results> {
    let mut header = Header::new(common, &["haproxy", "pgbench"]);
    let work = table::work_dir("bench-pg-")?;
    println!(
        "bench pg: starting Postgres (primary + 1 streaming replica); logs in {}",
        work.path().display()
    );
    let cluster = PgCluster::builder()
        .replicas(1)
        .first_ip(PRIMARY)
        .start()
        .await
        .context("starting Postgres")?;
    let login = |addr| Login {
        addr,
        user: cluster.user().to_owned(),
        password: cluster.password().to_owned(),
        database: cluster.database().to_owned(),
    };
    println!("bench pg: pgbench -i -s {} on the primary", opts.scale);
    pgbench::init(&login(cluster.primary().addr()), opts.scale).await?;
    cluster
        .wait_replicated(Duration::from_secs(120))
        .await
        .context("waiting for the replica to replay pgbench -i")?;
    let replica = cluster.replicas()[0].addr();

    let mut contestants = vec![Contestant {
        name: "direct",
        addr: replica,
        process: None,
    }];
    contestants.push(pgbalancer(common, &cluster, replica, work.path()).await?);
    if installed("haproxy") {
        contestants.push(haproxy(common, &cluster, replica, work.path()).await?);
    } else {
        header.skipped.push((
            "haproxy".to_owned(),
            "not installed: apt-get install haproxy, or scripts/setup.sh".to_owned(),
        ));
    }
    for c in &contestants {
        wait_login(&cluster, c).await?;
    }

    let seconds = header.seconds;
    let mut scenarios = Vec::new();
    for &mode in &opts.pg_modes {
        for &clients in &opts.clients {
            let load = pgbench::Load {
                clients,
                seconds,
                connect: mode == PgMode::Connect,
            };
            let mut runs: Vec<Vec<Sample>> = vec![Vec::new(); contestants.len()];
            for round in 1..=common.rounds {
                for (i, c) in contestants.iter().enumerate() {
                    let pid = c.process.as_ref().and_then(Process::pid);
                    let cpu = pid.map(measure::cpu_seconds);
                    // A run's peak is its own only where the kernel lets us reset it.
                    let rss_before = pid
                        .filter(|p| measure::reset_peak(*p))
                        .map(measure::rss_kib);
                    let pgbench = pgbench::run(&login(c.addr), &load, work.path()).await?;
                    let sample = Sample {
                        cpu_s: pid
                            .zip(cpu)
                            .map(|(p, before)| measure::cpu_seconds(p) - before),
                        rss_before_kib: rss_before,
                        peak_rss_kib: pid
                            .filter(|_| rss_before.is_some())
                            .map(measure::peak_rss_kib),
                        pgbench,
                    };
                    println!(
                        "{} c{clients} round {round} {:>10}: {:>8} TPS, p99 {:.2} ms, {} failed",
                        mode.name(),
                        c.name,
                        thousands(sample.pgbench.tps),
                        sample.pgbench.p99_ms,
                        sample.pgbench.failed
                    );
                    runs[i].push(sample);
                }
            }
            let scenario = Scenario {
                mode,
                clients,
                pgbench: format!(
                    "PGPASSWORD=… pgbench -h ADDR -p PORT -U {} {} -l {}",
                    cluster.user(),
                    load.args().join(" "),
                    cluster.database()
                ),
                contestants: summarize(&contestants, runs, clients),
            };
            println!("\n{}", scenario_table(&scenario));
            scenarios.push(scenario);
        }
    }
    let results = Results {
        header,
        scale: opts.scale,
        scenarios,
    };
    table::publish(&common.out, "pg", &results, &markdown(&results), |png| {
        draw(&results, png)
    })?;
    Ok(results)
}

async fn pgbalancer(
    common: &Common,
    cluster: &PgCluster,
    replica: SocketAddr,
    work: &Path,
) -> anyhow::Result<Contestant> {
    let addr = SocketAddr::from((PGBALANCER, 5432));
    let binary = crate::bins::binary(common.bin_dir.as_deref(), "pgbalancer")?;
    let args = [
        "--listen",
        &addr.to_string(),
        "--admin",
        &SocketAddr::from((PGBALANCER, 9187)).to_string(),
        "--upstream",
        &replica.to_string(),
        "--check-user",
        cluster.user(),
        "--check-database",
        cluster.database(),
        "--check-password-env",
        PASSWORD_ENV,
    ]
    .map(str::to_owned);
    let env = [
        (PASSWORD_ENV, cluster.password().to_owned()),
        ("RUST_LOG", "warn".to_owned()),
        // Tokio's default is one worker per core; the same count as the others instead.
        ("TOKIO_WORKER_THREADS", common.threads.to_string()),
    ];
    let process = Process::spawn("pgbalancer", &binary, &args, &env, work)?;
    listening("pgbalancer", addr, process).await
}

/// HAProxy `mode tcp` to the replica, `pgsql-check` every second as pgbalancer checks.
async fn haproxy(
    common: &Common,
    cluster: &PgCluster,
    replica: SocketAddr,
    work: &Path,
) -> anyhow::Result<Contestant> {
    let addr = SocketAddr::from((HAPROXY, 5432));
    let config = format!(
        "global\n  nbthread {}\n  maxconn 4000\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1m\n  timeout server 1m\n\n\
listen postgres\n  bind {addr}\n  option pgsql-check user {}\n  server replica {replica} check inter 1s fall 2 rise 1\n",
        common.threads,
        cluster.user()
    );
    let process = spawn_haproxy("haproxy-tcp", &config, work)?;
    listening("haproxy", addr, process).await
}

async fn listening(
    name: &'static str,
    addr: SocketAddr,
    mut process: Process,
) -> anyhow::Result<Contestant> {
    wait_listening(&mut process, addr, Duration::from_secs(15)).await?;
    Ok(Contestant {
        name,
        addr,
        process: Some(process),
    })
}

/// Polls until a login and `SELECT 1` work through `c` (a balancer serves once its check passed).
async fn wait_login(cluster: &PgCluster, c: &Contestant) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = async {
            let (client, conn) = cluster
                .app_config_at(c.addr)
                .connect(tokio_postgres::NoTls)
                .await?;
            tokio::spawn(conn);
            client.simple_query("SELECT 1").await.map(|_| ())
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) if tokio::time::Instant::now() > deadline => {
                bail!("{} at {}: no login: {e}", c.name, c.addr)
            }
            Err(_) if tokio::time::Instant::now() > deadline => {
                bail!("{} at {}: no login within 5 s", c.name, c.addr)
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn summarize(contestants: &[Contestant], runs: Vec<Vec<Sample>>, clients: usize) -> Vec<Summary> {
    let mut out: Vec<Summary> = contestants
        .iter()
        .zip(runs)
        .map(|(c, runs)| {
            let m = |f: fn(&PgbenchRun) -> f64| median(runs.iter().map(|r| f(&r.pgbench)));
            let transactions: u64 = runs.iter().map(|r| r.pgbench.transactions).sum();
            let cpu: Option<f64> = runs.iter().map(|r| r.cpu_s).sum();
            let per_session: Option<Vec<f64>> = runs
                .iter()
                .map(|r| {
                    let (before, peak) = (r.rss_before_kib?, r.peak_rss_kib?);
                    Some(peak.saturating_sub(before) as f64 / clients.max(1) as f64)
                })
                .collect();
            Summary {
                name: c.name.to_owned(),
                tps: m(|r| r.tps),
                latency_avg_ms: m(|r| r.latency_avg_ms),
                p50_ms: m(|r| r.p50_ms),
                p99_ms: m(|r| r.p99_ms),
                p999_ms: m(|r| r.p999_ms),
                transactions,
                failed: runs.iter().map(|r| r.pgbench.failed).sum(),
                cpu_s_per_100k: cpu
                    .filter(|_| transactions > 0)
                    .map(|c| c / transactions as f64 * 100_000.0),
                peak_rss_kib: runs.iter().filter_map(|r| r.peak_rss_kib).max(),
                kib_per_session: per_session.map(median),
                tps_vs_direct: None,
                runs,
            }
        })
        .collect();
    let direct = out.iter().find(|s| s.name == "direct").map(|d| d.tps);
    for s in &mut out {
        s.tps_vs_direct = ratio(s.tps, direct);
    }
    out
}

fn scenario_table(s: &Scenario) -> String {
    let mut t = Table::new(&[
        "contestant",
        "TPS",
        "× direct",
        "avg ms",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "balancer CPU s / 100k tx",
        "balancer peak RSS MiB",
        "KiB per session",
        "failed",
    ]);
    for c in &s.contestants {
        t.row(vec![
            c.name.clone(),
            thousands(c.tps),
            fmt_ratio(c.tps_vs_direct),
            format!("{:.3}", c.latency_avg_ms),
            format!("{:.3}", c.p50_ms),
            format!("{:.3}", c.p99_ms),
            format!("{:.3}", c.p999_ms),
            c.cpu_s_per_100k.map_or("-".into(), |v| format!("{v:.2}")),
            c.peak_rss_kib
                .map_or("-".into(), |v| format!("{:.1}", v as f64 / 1024.0)),
            c.kib_per_session.map_or("-".into(), |v| format!("{v:.1}")),
            c.failed.to_string(),
        ]);
    }
    format!("### {}\n\n`{}`\n\n{}", s.label(), s.pgbench, t.markdown())
}

fn markdown(r: &Results) -> String {
    let mut md = format!(
        "# Postgres: pgbalancer vs HAProxy `mode tcp` vs direct, pgbench select-only\n\n\
{}\
A Postgres primary and one streaming replica (`testkit::postgres`: Debian's server, fsync off), \
`pgbench -i -s {}` on the primary, every run against the replica: `direct`, through pgbalancer \
(`TOKIO_WORKER_THREADS={}`, health check every 1 s) and through HAProxy (`mode tcp`, `nbthread {}`, \
`pgsql-check` every 1 s). `select`: `pgbench -S`, one connection per client; `connect`: `-S -C`, a \
new connection (and SCRAM login) per transaction. {} interleaved round(s) of {} s, medians. `avg \
ms` is pgbench's latency average (with `-C` it includes connecting and logging in); the percentiles \
come from pgbench's per-transaction log (`-l`), which times the transaction alone, also with `-C`. \
Balancer CPU: utime+stime per 100k transactions. Balancer peak RSS: the largest VmHWM of the process tree over the rounds (reset before each run); KiB per session: (peak RSS during the run − RSS before it) / clients, median over the rounds, meaningful for `select`, where every client holds its session for the whole run.\n\n{}\n",
        r.header.preamble(),
        r.scale,
        r.header.threads,
        r.header.threads,
        r.header.rounds,
        r.header.seconds,
        r.header.machine.markdown()
    );
    md.push_str(&r.header.skipped_markdown());
    md.push_str("\n## Summary: TPS as a fraction of direct\n\n");
    let mut t = Table::new(&[
        "scenario",
        "pgbalancer × direct",
        "haproxy × direct",
        "pgbalancer × haproxy",
    ]);
    for s in &r.scenarios {
        let tps = |n: &str| s.get(n).map(|c| c.tps);
        t.row(vec![
            s.label(),
            fmt_ratio(s.get("pgbalancer").and_then(|c| c.tps_vs_direct)),
            fmt_ratio(s.get("haproxy").and_then(|c| c.tps_vs_direct)),
            fmt_ratio(tps("pgbalancer").and_then(|p| ratio(p, tps("haproxy")))),
        ]);
    }
    md.push_str(&t.markdown());
    md.push_str("\n## Every scenario\n\n");
    for s in &r.scenarios {
        md.push_str(&scenario_table(s));
        md.push('\n');
    }
    md.push_str("![TPS and p99 per scenario](pg.png)\n");
    md
}

fn draw(r: &Results, png: &Path) -> anyhow::Result<()> {
    let groups: Vec<String> = r.scenarios.iter().map(Scenario::label).collect();
    let names = ["direct", "pgbalancer", "haproxy"];
    let series = |f: fn(&Summary) -> f64| -> Vec<(&str, Vec<f64>)> {
        names
            .iter()
            .filter(|n| r.scenarios.iter().any(|s| s.get(n).is_some()))
            .map(|&n| {
                (
                    n,
                    r.scenarios
                        .iter()
                        .map(|s| s.get(n).map_or(0.0, f))
                        .collect(),
                )
            })
            .collect()
    };
    chart::bars(
        png,
        &format!(
            "pgbench -S, {} thread(s), medians of {} round(s) × {} s",
            r.header.threads, r.header.rounds, r.header.seconds
        ),
        &groups,
        &[
            Panel {
                y_desc: "TPS",
                series: series(|s| s.tps),
            },
            Panel {
                y_desc: "p99 ms",
                series: series(|s| s.p99_ms),
            },
        ],
    )
}
