//! `bench idle`: what an idle keep-alive client connection costs each proxy in memory. Per round,
//! fresh servers; per proxy, N client connections that each did one request and then wait, RSS of
//! the proxy before and after, KiB per connection; then one more request on every connection to
//! show the proxy kept them all.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::chart::{self, Panel};
use super::client;
use super::contestants::{self, Plan};
use super::measure;
use super::opts::{Common, IdleOpts};
use super::table::{self, fmt_ratio, median, ratio, thousands, Header, Table};

/// `127.0.112.x` for the servers (as in `http`); clients connect from `127.0.113.1–16`.
const BLOCK: u8 = 112;
const SOURCES: u8 = 16;
/// Connections being opened (or asked again) at once.
const CONCURRENCY: usize = 200;

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    #[serde(flatten)]
    pub header: Header,
    pub connections: usize,
    pub contestants: Vec<Summary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    /// Median over the rounds.
    pub kib_per_conn: f64,
    pub kib_per_conn_vs_nginx: Option<f64>,
    pub runs: Vec<Sample>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// Connections that did their first request.
    pub opened: usize,
    /// Of those, how many answered a second request after the measurement.
    pub alive: usize,
    pub kib_per_conn: f64,
    /// The first failure, if any connection failed.
    pub first_error: Option<String>,
}

pub async fn run(common: &Common, opts: &IdleOpts) -> anyhow::Result<Results> {
    let mut header = Header::new(common, &["nginx", "haproxy"]);
    let n = opts.idle_conns;
    let mut runs: Vec<(String, Vec<Sample>)> = Vec::new();
    for round in 1..=common.rounds {
        // Fresh servers every round: memory a server freed stays in its allocator and would hide
        // the next round's cost.
        let work = table::work_dir("bench-idle-")?;
        let plan = Plan {
            block: BLOCK,
            common,
            max_conns: n,
            work: work.path(),
        };
        let fleet = contestants::start(&plan).await?;
        header.skipped.clone_from(&fleet.skipped);
        for server in &fleet.proxies {
            let sample = measure_one(server.addr, server.pid(), n).await?;
            println!(
                "idle round {round} {:>8}: {} connections, RSS {:.1} → {:.1} MiB, {:.2} KiB per connection, {} still answering",
                server.name,
                sample.opened,
                sample.rss_before_kib as f64 / 1024.0,
                sample.rss_after_kib as f64 / 1024.0,
                sample.kib_per_conn,
                sample.alive
            );
            match runs.iter_mut().find(|(name, _)| *name == server.name) {
                Some((_, v)) => v.push(sample),
                None => runs.push((server.name.clone(), vec![sample])),
            }
        }
    }
    let mut contestants: Vec<Summary> = runs
        .into_iter()
        .map(|(name, runs)| Summary {
            name,
            kib_per_conn: median(runs.iter().map(|r| r.kib_per_conn)),
            kib_per_conn_vs_nginx: None,
            runs,
        })
        .collect();
    let nginx = contestants
        .iter()
        .find(|c| c.name == "nginx")
        .map(|c| c.kib_per_conn);
    for c in &mut contestants {
        c.kib_per_conn_vs_nginx = ratio(c.kib_per_conn, nginx);
    }
    let results = Results {
        header,
        connections: n,
        contestants,
    };
    println!("\n{}", results_table(&results));
    table::publish(&common.out, "idle", &results, &markdown(&results), |png| {
        draw(&results, png)
    })?;
    Ok(results)
}

/// Opens `n` connections to `addr` that each do one request, measures, asks each once more.
async fn measure_one(addr: SocketAddr, pid: u32, n: usize) -> anyhow::Result<Sample> {
    // Warm up first, so lazily made state (pools, upstream connections) is in "before".
    let warm = open(addr, CONCURRENCY).await;
    drop(warm);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before_kib = measure::rss_kib(pid);
    let (mut streams, mut errors) = open(addr, n).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after_kib = measure::rss_kib(pid);
    let opened = streams.len();
    let (alive, again_errors) = ask_again(&mut streams).await;
    errors.extend(again_errors);
    drop(streams);
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(Sample {
        rss_before_kib,
        rss_after_kib,
        opened,
        alive,
        kib_per_conn: if opened > 0 {
            (rss_after_kib as f64 - rss_before_kib as f64) / opened as f64
        } else {
            0.0
        },
        first_error: errors.into_iter().next(),
    })
}

fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        BLOCK + 1,
        1 + (i % SOURCES as usize) as u8,
    ))
}

/// `n` connections that each did `GET /small`, and the errors of those that failed.
async fn open(addr: SocketAddr, n: usize) -> (Vec<TcpStream>, Vec<String>) {
    let limit = Arc::new(Semaphore::new(CONCURRENCY));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let limit = Arc::clone(&limit);
            tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                let attempt = async {
                    let mut s = client::connect(Some(source(i)), addr).await?;
                    client::get(&mut s, "/small").await?;
                    anyhow::Ok(s)
                };
                tokio::time::timeout(Duration::from_secs(10), attempt)
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within 10 s")))
            })
        })
        .collect();
    let mut streams = Vec::with_capacity(n);
    let mut errors = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(s)) => streams.push(s),
            Ok(Err(e)) => errors.push(format!("{e:#}")),
            Err(e) => errors.push(e.to_string()),
        }
    }
    (streams, errors)
}

/// One more request on every connection: how many the proxy kept.
async fn ask_again(streams: &mut Vec<TcpStream>) -> (usize, Vec<String>) {
    let limit = Arc::new(Semaphore::new(CONCURRENCY));
    let tasks: Vec<_> = std::mem::take(streams)
        .into_iter()
        .map(|mut s| {
            let limit = Arc::clone(&limit);
            tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                let r =
                    tokio::time::timeout(Duration::from_secs(10), client::get(&mut s, "/small"))
                        .await;
                (
                    s,
                    r.unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within 10 s"))),
                )
            })
        })
        .collect();
    let mut alive = 0;
    let mut errors = Vec::new();
    for t in tasks {
        if let Ok((s, r)) = t.await {
            match r {
                Ok(()) => alive += 1,
                Err(e) => errors.push(format!("second request: {e:#}")),
            }
            streams.push(s);
        }
    }
    (alive, errors)
}

fn results_table(r: &Results) -> String {
    let mut t = Table::new(&[
        "proxy",
        "KiB per idle connection",
        "× nginx",
        "RSS before MiB",
        "RSS after MiB",
        "connections",
        "still answering",
    ]);
    for c in &r.contestants {
        let last = c.runs.last();
        let mib = |f: fn(&Sample) -> u64| {
            last.map_or("-".into(), |s| format!("{:.1}", f(s) as f64 / 1024.0))
        };
        t.row(vec![
            c.name.clone(),
            format!("{:.2}", c.kib_per_conn),
            fmt_ratio(c.kib_per_conn_vs_nginx),
            mib(|s| s.rss_before_kib),
            mib(|s| s.rss_after_kib),
            last.map_or("-".into(), |s| thousands(s.opened as f64)),
            last.map_or("-".into(), |s| thousands(s.alive as f64)),
        ]);
    }
    t.markdown()
}

fn markdown(r: &Results) -> String {
    let mut md = format!(
        "# Idle memory: RSS per idle keep-alive client connection\n\n{}\
Each proxy ({} thread(s), connection limits above {}, idle timeouts 300 s) in front of the same nginx \
origin. Per round, fresh processes; per proxy: {} warm-up connections, then RSS (VmRSS of the process \
tree), then {} client connections from 127.0.113.1–16 that each did one `GET /small` and stay open, \
one second to settle, RSS again; (after − before) / connections. Then a second request on every \
connection shows the proxy kept them (`still answering`). Median of {} round(s); the RSS columns are \
the last round's. Kernel socket buffers are not in RSS and not counted.\n\n{}\n\n{}\n",
        r.header.preamble(),
        r.header.threads,
        r.connections,
        CONCURRENCY,
        r.connections,
        r.header.rounds,
        r.header.machine.markdown(),
        results_table(r)
    );
    md.push_str(&r.header.skipped_markdown());
    for c in &r.contestants {
        if let Some(e) = c.runs.iter().find_map(|s| s.first_error.as_deref()) {
            md.push_str(&format!("\n- {}: a connection failed: {e}\n", c.name));
        }
    }
    md.push_str("\n![KiB per idle connection](idle.png)\n");
    md
}

fn draw(r: &Results, png: &std::path::Path) -> anyhow::Result<()> {
    let series = r
        .contestants
        .iter()
        .map(|c| (c.name.as_str(), vec![c.kib_per_conn]))
        .collect();
    chart::bars(
        png,
        &format!(
            "Memory per idle keep-alive connection, {} thread(s)",
            r.header.threads
        ),
        &[format!("{} idle connections", r.connections)],
        &[Panel {
            y_desc: "KiB per connection",
            series,
        }],
    )
}
