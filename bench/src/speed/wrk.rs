//! wrk, the HTTP load generator: one run against one URL, its totals and latency percentiles read
//! from a `done()` Lua hook that prints them as JSON ([`SCRIPT`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use tokio::process::Command;

/// The Lua hook, written to the work directory once.
pub const SCRIPT: &str = include_str!("wrk_report.lua");
const MARKER: &str = "BENCH-JSON ";

/// One wrk run as its `done()` hook saw it.
#[derive(Debug, Clone, Deserialize)]
struct Done {
    requests: u64,
    duration_us: u64,
    bytes: u64,
    connect: u64,
    read: u64,
    write: u64,
    status: u64,
    timeout: u64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WrkRun {
    pub requests: u64,
    pub seconds: f64,
    pub req_per_s: f64,
    pub bytes: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Socket errors (connect, read, write, timeout) plus non-2xx/3xx answers.
    pub errors: u64,
    pub errors_by_kind: String,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Load<'a> {
    pub url: &'a str,
    pub connections: usize,
    pub threads: usize,
    pub seconds: u64,
    /// A new connection per request (`Connection: close`).
    pub close: bool,
}

impl Load<'_> {
    /// The command line, as a person would type it (the script path aside).
    pub fn args(&self, script: &Path) -> Vec<String> {
        let mut args = vec![
            format!("-t{}", self.threads.clamp(1, self.connections.max(1))),
            format!("-c{}", self.connections),
            format!("-d{}s", self.seconds),
            "--timeout".into(),
            "5s".into(),
            "-s".into(),
            script.display().to_string(),
        ];
        if self.close {
            args.extend(["-H".into(), "Connection: close".into()]);
        }
        args.push(self.url.to_owned());
        args
    }
}

/// Writes the Lua hook into `dir`.
pub fn install_script(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("wrk_report.lua");
    std::fs::write(&path, SCRIPT).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

pub async fn run(load: &Load<'_>, script: &Path) -> anyhow::Result<WrkRun> {
    let args = load.args(script);
    let limit = Duration::from_secs(load.seconds + 30);
    let out = tokio::time::timeout(
        limit,
        Command::new("wrk").args(&args).kill_on_drop(true).output(),
    )
    .await
    .with_context(|| format!("wrk {} ran over {limit:?}", args.join(" ")))?
    .context("running wrk (apt-get install wrk, or scripts/setup.sh)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix(MARKER)) else {
        bail!(
            "wrk {} printed no result ({}):\n{stdout}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let d: Done = serde_json::from_str(line).with_context(|| format!("wrk's result: {line}"))?;
    Ok(d.into())
}

impl From<Done> for WrkRun {
    fn from(d: Done) -> Self {
        let seconds = d.duration_us as f64 / 1e6;
        let kinds = [
            ("connect", d.connect),
            ("read", d.read),
            ("write", d.write),
            ("timeout", d.timeout),
            ("status", d.status),
        ];
        let errors_by_kind = kinds
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        Self {
            requests: d.requests,
            seconds,
            req_per_s: if seconds > 0.0 {
                d.requests as f64 / seconds
            } else {
                0.0
            },
            bytes: d.bytes,
            p50_ms: d.p50_us / 1000.0,
            p99_ms: d.p99_us / 1000.0,
            p999_ms: d.p999_us / 1000.0,
            max_ms: d.max_us / 1000.0,
            errors: kinds.iter().map(|(_, n)| n).sum(),
            errors_by_kind,
        }
    }
}
