//! `bench instr`: user-space instructions per proxied request, counted by callgrind. Wall-clock
//! figures move ±20 % between runs on shared cores; instruction counts repeat, so this is the
//! number a speed change is judged by.
//!
//! Each contestant runs under `valgrind --tool=callgrind` (one worker thread; nginx without a
//! master), in front of the same nginx origin (not under valgrind). After a warm-up its counters
//! are zeroed (`callgrind_control -z`), `--requests` requests go through it over
//! `--connections` connections, and the counters are dumped (`callgrind_control -d`): the total
//! instructions of that dump over the requests is the figure, startup and warm-up excluded. The
//! costliest functions (their own instructions) are read from the dump.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;

use super::client;
use super::contestants::{self, Plan};
use super::opts::{Body, Common, Contestant, InstrOpts, Mode};
use super::table;
use crate::bins::installed;
use crate::fronts::{nginx_args, Nginx};
use crate::process::{wait_listening, Process};

const BLOCK: u8 = 114;
/// Requests before the counters are zeroed: pools filled, caches warm, lazy statics built.
const WARMUP: usize = 200;

#[derive(Debug, Serialize)]
pub struct Results {
    pub requests: usize,
    pub connections: usize,
    pub scenarios: Vec<Scenario>,
}

#[derive(Debug, Serialize)]
pub struct Scenario {
    pub contestant: &'static str,
    pub body: &'static str,
    pub mode: &'static str,
    /// User-space instructions (callgrind `Ir`) per request.
    pub instructions_per_request: f64,
    pub total_instructions: u64,
    /// The functions with the most instructions of their own, `(instructions per request, name)`.
    pub top: Vec<(f64, String)>,
}

pub async fn run(common: &Common, opts: &InstrOpts) -> anyhow::Result<Results> {
    for tool in [
        "valgrind",
        "callgrind_control",
        "callgrind_annotate",
        "nginx",
    ] {
        if !installed(tool) {
            bail!("{tool} is not installed: apt-get install valgrind nginx-light, or scripts/setup.sh");
        }
    }
    let work = table::work_dir("bench-instr-")?;
    let plan = Plan {
        block: BLOCK,
        common,
        max_conns: opts.connections,
        work: work.path(),
    };
    let origin = contestants::origin(&plan).await?;
    let ours = crate::bins::binary(common.bin_dir.as_deref(), "proxy")?;
    let mut results = Results {
        requests: opts.requests,
        connections: opts.connections,
        scenarios: Vec::new(),
    };
    for &contestant in &opts.contestants {
        for &body in &opts.instr_bodies {
            for &mode in &opts.instr_modes {
                let scenario = measure(&plan, &ours, origin.addr, contestant, body, mode, opts)
                    .await
                    .with_context(|| {
                        format!("{} {} {}", contestant.name(), body.name(), mode.name())
                    })?;
                println!(
                    "bench instr: {:<14} {:<5} {:<9} {:>9.0} instructions/request",
                    scenario.contestant,
                    scenario.body,
                    scenario.mode,
                    scenario.instructions_per_request
                );
                results.scenarios.push(scenario);
            }
        }
    }
    write(&common.out, common, opts, &results)?;
    Ok(results)
}

async fn measure(
    plan: &Plan<'_>,
    ours: &Path,
    origin: SocketAddr,
    contestant: Contestant,
    body: Body,
    mode: Mode,
    opts: &InstrOpts,
) -> anyhow::Result<Scenario> {
    let addr = SocketAddr::from((Ipv4Addr::new(127, 0, BLOCK, 10), 8080));
    let admin = SocketAddr::from((Ipv4Addr::new(127, 0, BLOCK, 10), 9091));
    let name = format!("{}-{}-{}", contestant.name(), body.name(), mode.name());
    let out = plan.work.join(format!("{name}.callgrind"));
    let mut valgrind = vec![
        "--tool=callgrind".to_owned(),
        // Names in full in every dump: a dump after `-z` may refer to names compressed before it.
        "--compress-strings=no".to_owned(),
        format!("--callgrind-out-file={}", out.display()),
    ];
    let mut env = Vec::new();
    match contestant {
        Contestant::Nginx => {
            let size = Nginx {
                workers: 1,
                worker_connections: opts.connections + 64,
            };
            let http = contestants::nginx_proxy_http(addr, origin);
            valgrind.push("nginx".to_owned());
            valgrind.extend(nginx_args(&name, &size, &http, plan.work)?);
        }
        Contestant::Ours | Contestant::OursTextLog => {
            valgrind.push(ours.display().to_string());
            let mut args = contestants::ours_args(addr, admin, origin, plan);
            // One worker, as nginx here, whatever `--threads` says.
            if let Some(i) = args.iter().position(|a| a == "--threads") {
                args[i + 1] = "1".to_owned();
            }
            valgrind.extend(args);
            let log = if contestant == Contestant::Ours {
                "off"
            } else {
                "text"
            };
            env.push(("PROXY_ACCESS_LOG", log.to_owned()));
            env.push(("RUST_LOG", "warn".to_owned()));
        }
    }
    let mut process = Process::spawn(&name, Path::new("valgrind"), &valgrind, &env, plan.work)?;
    // Under callgrind a program starts some 50 times slower.
    let limit = Duration::from_secs(120);
    wait_listening(&mut process, addr, limit).await?;
    client::wait_answering(addr, body.path(), limit)
        .await
        .with_context(|| format!("{name} does not answer under callgrind"))?;
    let pid = process.pid().context("no pid")?;

    drive(addr, body, mode, WARMUP, opts.connections).await?;
    callgrind_control(&["-z", &pid.to_string()])?;
    drive(addr, body, mode, opts.requests, opts.connections).await?;
    callgrind_control(&["-d", &pid.to_string()])?;
    process.wait_or_kill(Duration::ZERO).await;

    let dump = newest_dump(plan.work, &name)?;
    if let Ok(dir) = std::env::var("BENCH_INSTR_KEEP") {
        let _ = std::fs::copy(&dump, Path::new(&dir).join(format!("{name}.callgrind")));
    }
    let (total, top) = annotate(&dump, opts.requests)?;
    Ok(Scenario {
        contestant: contestant.name(),
        body: body.name(),
        mode: mode.name(),
        instructions_per_request: total as f64 / opts.requests as f64,
        total_instructions: total,
        top,
    })
}

/// `requests` GETs of `body` through `addr`, spread over `connections` clients: each keeps one
/// connection (`keepalive`) or opens one per request (`close`).
async fn drive(
    addr: SocketAddr,
    body: Body,
    mode: Mode,
    requests: usize,
    connections: usize,
) -> anyhow::Result<()> {
    let connections = connections.clamp(1, requests.max(1));
    let mut tasks = Vec::new();
    for i in 0..connections {
        let share = requests / connections + usize::from(i < requests % connections);
        tasks.push(tokio::spawn(async move {
            let mut stream = None;
            for _ in 0..share {
                if stream.is_none() || mode == Mode::Close {
                    stream = Some(client::connect(None, addr).await?);
                }
                client::get(stream.as_mut().expect("connected"), body.path()).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await.context("a client task panicked")??;
    }
    Ok(())
}

fn callgrind_control(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("callgrind_control")
        .args(args)
        .output()
        .context("running callgrind_control")?;
    if !out.status.success() {
        bail!(
            "callgrind_control {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The dump `callgrind_control -d` wrote last for `name` (`<name>.callgrind.<n>`).
fn newest_dump(work: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let prefix = format!("{name}.callgrind.");
    let mut dumps: Vec<(u32, PathBuf)> = std::fs::read_dir(work)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let n = file.strip_prefix(&prefix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    dumps.sort();
    dumps
        .pop()
        .map(|(_, path)| path)
        .with_context(|| format!("no callgrind dump {prefix}* in {}", work.display()))
}

/// The dump's total instructions (its `summary:`), and its ten costliest functions by their own
/// instructions, per request. Read from the callgrind format directly: `callgrind_annotate` puts
/// every cost of a dump taken after `-z` on `__libc_start_main` (its calls were counted before
/// the zero, so the call lines say `calls=0`).
fn annotate(dump: &Path, requests: usize) -> anyhow::Result<(u64, Vec<(f64, String)>)> {
    let text =
        std::fs::read_to_string(dump).with_context(|| format!("reading {}", dump.display()))?;
    let mut total = None;
    let mut own: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    let mut function = "";
    let mut call_cost_next = false;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("summary:") {
            total = v.trim().parse::<u64>().ok();
        } else if let Some(name) = line.strip_prefix("fn=") {
            function = name;
        } else if line.starts_with("calls=") {
            // The next cost line is the call's, inclusive of the callee: not this function's own.
            call_cost_next = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '*')) {
            if std::mem::take(&mut call_cost_next) {
                continue;
            }
            // `<position> <Ir>`: one event recorded, so the last number is the cost.
            let cost = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse::<u64>().ok());
            *own.entry(function).or_default() += cost.unwrap_or(0);
        }
    }
    let total = total.with_context(|| format!("no summary line in {}", dump.display()))?;
    let mut top: Vec<_> = own.into_iter().collect();
    top.sort_by_key(|&(_, ir)| std::cmp::Reverse(ir));
    let top = top
        .into_iter()
        .take(10)
        .map(|(name, ir)| (ir as f64 / requests as f64, name.to_owned()))
        .collect();
    Ok((total, top))
}

fn write(out: &Path, common: &Common, opts: &InstrOpts, results: &Results) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("instr.json"),
        serde_json::to_string_pretty(results)?,
    )?;
    let mut md = String::from("# Instructions per proxied request (callgrind)\n\n");
    if let Some(note) = &common.note {
        md.push_str(&format!("{note}\n\n"));
    }
    let list = |names: Vec<&str>| names.join(",");
    md.push_str(&format!(
        "Command: `target/release/bench instr --requests {} --connections {} --contestants {} \
         --instr-bodies {} --instr-modes {}`. Each contestant runs \
         under `valgrind --tool=callgrind` with one worker (nginx: `master_process off`, upstream \
         keepalive; ours: `--threads 1`) in front of the same nginx origin; after {WARMUP} warm-up \
         requests its counters are zeroed, then {} requests go through it over {} connections \
         and the counters are dumped. User-space instructions (`Ir`) of the proxy process only; \
         the kernel's share (the same syscalls for everyone) is not counted. `ours+textlog` is \
         ours with its access log on (`--access-log text`, to a file).\n\n",
        results.requests,
        results.connections,
        list(opts.contestants.iter().map(|c| c.name()).collect()),
        list(opts.instr_bodies.iter().map(|b| b.name()).collect()),
        list(opts.instr_modes.iter().map(|m| m.name()).collect()),
        results.requests,
        results.connections
    ));
    md.push_str(
        "| contestant | body | mode | instructions / request | vs nginx |\n|---|---|---|---|---|\n",
    );
    for s in &results.scenarios {
        let nginx = results
            .scenarios
            .iter()
            .find(|n| n.contestant == "nginx" && n.body == s.body && n.mode == s.mode);
        let ratio = nginx.map_or_else(
            || "-".to_owned(),
            |n| {
                format!(
                    "{:.2}×",
                    s.instructions_per_request / n.instructions_per_request
                )
            },
        );
        md.push_str(&format!(
            "| {} | {} | {} | {:.0} | {ratio} |\n",
            s.contestant, s.body, s.mode, s.instructions_per_request
        ));
    }
    for s in &results.scenarios {
        md.push_str(&format!(
            "\n**{} {} {}**, the costliest functions (own instructions per request):\n\n",
            s.contestant, s.body, s.mode
        ));
        for (ir, function) in &s.top {
            md.push_str(&format!("- {ir:.0} `{function}`\n"));
        }
    }
    std::fs::write(out.join("instr.md"), md)?;
    println!("results: {}", out.join("instr.md").display());
    Ok(())
}
