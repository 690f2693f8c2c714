//! What a server costs, read from /proc for its whole process tree (nginx's master and workers
//! count together): CPU seconds (utime + stime), resident memory now and at its peak; and the facts
//! about the machine a result needs beside it.

use std::collections::BTreeMap;
use std::process::Command;

use serde::Serialize;

use crate::process::{nofile_limit, stat_fields, tree};

/// CPU seconds `pid` and its descendants have used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let ticks: u64 = tree(pid)
        .into_iter()
        .filter_map(stat_fields)
        .map(|f| {
            let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            field(11) + field(12)
        })
        .sum();
    ticks as f64 / clock_ticks()
}

/// Clock ticks per second, the unit of utime and stime.
fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Sum of a `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`) over the tree.
fn status_kib(pid: u32, field: &str) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .sum()
}

/// Resident memory of the tree now, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// Peak resident memory of the tree since the last [`reset_peak`] (or since start), KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM")
}

/// Resets the tree's peak RSS to its RSS now (`echo 5 > /proc/<pid>/clear_refs`), so a run's peak
/// is its own; false if the kernel refused (then peaks are since the server started).
pub fn reset_peak(pid: u32) -> bool {
    tree(pid)
        .into_iter()
        .all(|p| std::fs::write(format!("/proc/{p}/clear_refs"), "5").is_ok())
}

/// The machine and tool versions a result was taken with.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub date: String,
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    /// 1-minute load average when the run started: others' work on a shared machine shows here.
    pub load_at_start: String,
    pub nofile_limit: u64,
    pub versions: BTreeMap<String, String>,
}

impl Machine {
    pub fn describe(tools: &[&str]) -> Self {
        let versions = tools.iter().map(|&t| (t.to_owned(), version(t))).collect();
        Self {
            date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|c| {
                    c.lines()
                        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                        .map(|(_, v)| v.trim().to_owned())
                })
                .unwrap_or_default(),
            kernel: first_line("uname", &["-r"]),
            load_at_start: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
                .unwrap_or_default(),
            nofile_limit: nofile_limit(),
            versions,
        }
    }

    /// One Markdown paragraph.
    pub fn markdown(&self) -> String {
        let versions: Vec<String> = self
            .versions
            .iter()
            .map(|(t, v)| format!("{t}: {v}"))
            .collect();
        format!(
            "Machine: {} cores ({}), Linux {}, load average {} at the start, open-files limit {}; {}. Taken {}.",
            self.nproc,
            self.cpu,
            self.kernel,
            self.load_at_start,
            self.nofile_limit,
            versions.join("; "),
            self.date
        )
    }
}

/// A tool's version line, whichever stream it prints it on.
fn version(tool: &str) -> String {
    let args: &[&str] = match tool {
        "nginx" => &["-v"],
        "wrk" => &["-v"],
        "haproxy" => &["-v"],
        _ => &["--version"],
    };
    let program = if tool == "pgbench" {
        crate::speed::pgbench::program()
    } else {
        tool.into()
    };
    first_line(&program.to_string_lossy(), args)
}

fn first_line(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(o) => {
            let text = [o.stdout, o.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_owned()
        }
        Err(_) => "not installed".into(),
    }
}
