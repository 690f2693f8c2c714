//! pgbench, the Postgres load generator: `-i` to load the tables, and one `-S` run against one
//! address, its TPS from the summary and its latency percentiles from the per-transaction log
//! (`-l`), since the summary has only the average.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::process::Command;

use crate::report::percentile;

/// pgbench on PATH, or Debian's copy beside the server binaries.
pub fn program() -> PathBuf {
    if crate::bins::installed("pgbench") {
        return "pgbench".into();
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("bin/pgbench"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| "pgbench".into())
}

/// Who logs in where.
#[derive(Debug, Clone)]
pub struct Login {
    pub addr: SocketAddr,
    pub user: String,
    pub password: String,
    pub database: String,
}

impl Login {
    fn command(&self) -> Command {
        let mut cmd = Command::new(program());
        cmd.args(["-h", &self.addr.ip().to_string()])
            .args(["-p", &self.addr.port().to_string()])
            .args(["-U", &self.user])
            .env("PGPASSWORD", &self.password)
            .kill_on_drop(true);
        cmd
    }
}

/// `pgbench -i -s scale -q`: the tables and rows the select-only script reads.
pub async fn init(login: &Login, scale: u32) -> anyhow::Result<()> {
    let out = login
        .command()
        .args(["-i", "-q", "-s", &scale.to_string(), &login.database])
        .output()
        .await
        .context("running pgbench -i (apt-get install postgresql-contrib)")?;
    if !out.status.success() {
        bail!(
            "pgbench -i failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// One select-only run.
#[derive(Debug, Clone)]
pub struct Load {
    pub clients: usize,
    pub seconds: u64,
    /// A new connection per transaction (`-C`).
    pub connect: bool,
}

impl Load {
    /// The arguments after the login, as a person would type them (log prefix aside).
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "-S".to_owned(),
            "-n".to_owned(), // no VACUUM first: the target is a replica, read-only
            "-c".to_owned(),
            self.clients.to_string(),
            "-j".to_owned(),
            self.clients.clamp(1, 2).to_string(),
            "-T".to_owned(),
            self.seconds.to_string(),
        ];
        if self.connect {
            args.push("-C".to_owned());
        }
        args
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PgbenchRun {
    pub transactions: u64,
    pub failed: u64,
    pub tps: f64,
    pub latency_avg_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// Runs `load` against `login`, its per-transaction log under `logs` (removed afterwards).
pub async fn run(login: &Login, load: &Load, logs: &Path) -> anyhow::Result<PgbenchRun> {
    let dir = tempfile::Builder::new()
        .prefix("pgbench-")
        .tempdir_in(logs)
        .context("creating a directory for pgbench's log")?;
    let prefix = dir.path().join("tx");
    let limit = Duration::from_secs(load.seconds + 60);
    let out = tokio::time::timeout(
        limit,
        login
            .command()
            .args(load.args())
            .arg("-l")
            .arg(format!("--log-prefix={}", prefix.display()))
            .arg(&login.database)
            .output(),
    )
    .await
    .with_context(|| format!("pgbench ran over {limit:?}"))?
    .context("running pgbench")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let after = |key: &str| -> Option<f64> {
        stdout.lines().find_map(|l| {
            l.strip_prefix(key)?
                .trim_start_matches([' ', '=', ':'])
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    };
    let Some(tps) = after("tps") else {
        bail!(
            "pgbench {} printed no tps ({}):\n{stdout}{stderr}",
            load.args().join(" "),
            out.status
        );
    };
    let transactions = after("number of transactions actually processed").unwrap_or(0.0) as u64;
    let failed = after("number of failed transactions").unwrap_or(0.0) as u64
        + u64::from(!out.status.success());
    let mut latencies = read_log(dir.path())?;
    latencies.sort_by(f64::total_cmp);
    Ok(PgbenchRun {
        transactions,
        failed,
        tps,
        latency_avg_ms: after("latency average").unwrap_or(0.0),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        p999_ms: percentile(&latencies, 0.999),
    })
}

/// Latencies in ms from every thread's log: `client_id transaction_no time_us script_no …`.
fn read_log(dir: &Path) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        latencies.extend(text.lines().filter_map(|l| {
            let us: f64 = l.split_whitespace().nth(2)?.parse().ok()?;
            Some(us / 1000.0)
        }));
    }
    Ok(latencies)
}
