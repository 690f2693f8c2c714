//! Tables a person reads, and the JSON the README and the test suite read: per proxy and phase,
//! requests, failures by kind, failures while a ready pod existed, the longest error streak, max
//! and p99 latency, and how long a restored pod took to get traffic.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::load::Sample;
use crate::opts::Front;
use crate::scenario::Phase;

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub proxy: &'static str,
    pub db: &'static str,
    pub phases: Vec<PhaseStats>,
    pub total: Stats,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseStats {
    pub name: &'static str,
    pub what: &'static str,
    #[serde(flatten)]
    pub stats: Stats,
    /// Seconds from a restored pod entering DNS to its first response.
    pub first_traffic_s: Option<f64>,
    /// A pod came back in this phase (so `first_traffic_s` is expected).
    pub restored: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub requests: usize,
    pub failed: usize,
    pub failed_while_ready: usize,
    pub failed_by_kind: BTreeMap<String, usize>,
    pub longest_error_streak: usize,
    pub max_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Up to three failures as the client saw them: kind, latency, body.
    pub examples: Vec<String>,
}

impl Stats {
    pub(crate) fn of<'a>(samples: impl Iterator<Item = &'a Sample>) -> Self {
        let mut s = Self::default();
        let mut latencies = Vec::new();
        let mut streak = 0;
        for sample in samples {
            s.requests += 1;
            latencies.push(sample.latency_ms);
            match sample.outcome.kind() {
                Some(kind) => {
                    if s.examples.len() < 3 {
                        s.examples.push(format!(
                            "{kind} after {:.0} ms: {}",
                            sample.latency_ms,
                            sample.error_body.as_deref().unwrap_or("")
                        ));
                    }
                    s.failed += 1;
                    s.failed_while_ready += usize::from(sample.ready);
                    *s.failed_by_kind.entry(kind).or_default() += 1;
                    streak += 1;
                    s.longest_error_streak = s.longest_error_streak.max(streak);
                }
                None => streak = 0,
            }
        }
        latencies.sort_by(f64::total_cmp);
        s.max_ms = latencies.last().copied().unwrap_or(0.0);
        s.p50_ms = percentile(&latencies, 0.5);
        s.p99_ms = percentile(&latencies, 0.99);
        s
    }
}

/// The `q` quantile (0..=1) of sorted values, nearest rank; 0 for none.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

pub fn summarize(front: Front, phases: &[Phase], samples: &[Sample]) -> Run {
    let in_phase = |p: &Phase, s: &Sample| s.sent_ms >= p.start_ms && s.sent_ms < p.end_ms;
    let phases = phases
        .iter()
        .map(|p| {
            let first_traffic_s = p.restored.as_ref().and_then(|r| {
                samples
                    .iter()
                    .filter(|s| s.outcome.kind().is_none() && s.sent_ms >= r.in_dns_ms)
                    .filter(|s| {
                        r.backend.as_deref().is_some_and(|b| s.backend == b)
                            || r.db.as_deref().is_some_and(|d| s.db == d)
                    })
                    .map(|s| (s.sent_ms + s.latency_ms - r.in_dns_ms) / 1000.0)
                    .reduce(f64::min)
            });
            PhaseStats {
                name: p.name,
                what: p.what,
                stats: Stats::of(samples.iter().filter(|s| in_phase(p, s))),
                first_traffic_s,
                restored: p.restored.is_some(),
            }
        })
        .collect();
    Run {
        proxy: front.name(),
        db: front.db().name(),
        phases,
        total: Stats::of(samples.iter()),
    }
}

pub(crate) fn kinds(s: &Stats) -> String {
    if s.failed_by_kind.is_empty() {
        return "-".into();
    }
    s.failed_by_kind
        .iter()
        .map(|(k, n)| format!("{n}×{k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One table for a run: a row per phase and the total.
pub fn table(run: &Run) -> String {
    let mut out = format!(
        "### {} (Postgres via {})\n\n| phase | requests | failed | by kind | failed while ready | longest streak | max ms | p99 ms | restored pod's first traffic |\n|---|---|---|---|---|---|---|---|---|\n",
        run.proxy, run.db
    );
    let row = |out: &mut String, name: &str, s: &Stats, first: String| {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {first} |",
            s.requests,
            s.failed,
            kinds(s),
            s.failed_while_ready,
            s.longest_error_streak,
            s.max_ms,
            s.p99_ms
        );
    };
    for p in &run.phases {
        let first = match (p.restored, p.first_traffic_s) {
            (false, _) => String::new(),
            (true, Some(s)) => format!("{s:.1} s"),
            (true, None) => "never".into(),
        };
        row(&mut out, p.name, &p.stats, first);
    }
    row(&mut out, "**all**", &run.total, String::new());
    out
}

/// One line per proxy, for the README.
pub fn summary(runs: &[Run]) -> String {
    let mut out = String::from(
        "| proxy | Postgres via | requests | failed | failed while a ready pod existed | longest error streak | max ms | p99 ms |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in runs {
        let t = &r.total;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} ({}) | {} | {} | {:.0} | {:.0} |",
            r.proxy,
            r.db,
            t.requests,
            t.failed,
            kinds(t),
            t.failed_while_ready,
            t.longest_error_streak,
            t.max_ms,
            t.p99_ms
        );
    }
    out
}
