//! Medians, ratios, Markdown tables, and writing a result as `<name>.json` and `<name>.md`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::measure::Machine;
use super::opts::Common;

/// The median of `values` (the mean of the middle two for an even count); 0 for none.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// `a / b` for the tables, `-` when there is no `b`.
pub fn ratio(a: f64, b: Option<f64>) -> Option<f64> {
    b.filter(|b| *b > 0.0).map(|b| a / b)
}

pub fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}×"))
}

/// A number with thousands separators, no decimals: `53,191`.
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// A Markdown table built row by row.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn markdown(&self) -> String {
        let mut out = format!("| {} |\n", self.header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(self.header.len()));
        for r in &self.rows {
            let _ = writeln!(out, "| {} |", r.join(" | "));
        }
        out
    }
}

/// How this process was started, quoted so it can be pasted into a shell.
pub fn command_line() -> String {
    let mut args = std::env::args();
    let program = args.next().unwrap_or_else(|| "bench".into());
    // A path under target/ reads better as the path from the repository root.
    let program = match program.find("target/") {
        Some(i) => program[i..].to_owned(),
        None => program,
    };
    shell_words(std::iter::once(program).chain(args))
}

/// Arguments joined into one shell command line, quoted where a shell would split or expand them.
pub fn shell_words(args: impl IntoIterator<Item = String>) -> String {
    args.into_iter()
        .map(|a| {
            if a.is_empty()
                || a.contains(|c: char| c.is_whitespace() || "'\"$\\*?;&|<>()".contains(c))
            {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What every result starts with: how it was made, where, with how many threads and rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    pub command: String,
    pub machine: Machine,
    pub threads: usize,
    pub rounds: usize,
    /// One run's length (wrk -d, pgbench -T).
    pub seconds: u64,
    /// Contestants that could not run here, with why.
    pub skipped: Vec<(String, String)>,
    /// `--note`: what a reader should know about this run.
    pub note: Option<String>,
}

impl Header {
    /// This process's command line, the machine (with the versions of `tools`) and `common`.
    pub fn new(common: &Common, tools: &[&str]) -> Self {
        Self {
            command: command_line(),
            machine: Machine::describe(tools),
            threads: common.threads,
            rounds: common.rounds,
            seconds: common.seconds(),
            skipped: Vec::new(),
            note: common.note.clone(),
        }
    }

    /// The note, if any, and the command line, for the top of a result.
    pub fn preamble(&self) -> String {
        let note = self
            .note
            .as_ref()
            .map(|n| format!("> **{n}**\n\n"))
            .unwrap_or_default();
        format!("{note}Command: `{}`\n\n", self.command)
    }

    /// The skipped contestants as Markdown list items.
    pub fn skipped_markdown(&self) -> String {
        self.skipped
            .iter()
            .map(|(name, why)| format!("\n- {name} skipped: {why}\n"))
            .collect()
    }
}

/// A temporary directory for configs and logs, removed when dropped.
pub fn work_dir(prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .context("creating a work directory")
}

/// Writes `<out>/<name>.png` with `draw` (a chart that fails to draw is said, not fatal), then
/// `<name>.json` and `<name>.md`.
pub fn publish(
    out: &Path,
    name: &str,
    json: &impl Serialize,
    markdown: &str,
    draw: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let png = out.join(format!("{name}.png"));
    match draw(&png) {
        Ok(()) => println!("chart: {}", png.display()),
        Err(e) => println!("chart not drawn: {e:#}"),
    }
    let json_path = out.join(format!("{name}.json"));
    let md_path = out.join(format!("{name}.md"));
    std::fs::write(&json_path, serde_json::to_string_pretty(json)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    std::fs::write(&md_path, markdown).with_context(|| format!("writing {}", md_path.display()))?;
    println!("results: {}, {}", md_path.display(), json_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median([]), 0.0);
    }

    #[test]
    fn shell_words_quotes_what_a_shell_would_split() {
        let args = ["wrk", "-H", "Connection: close", "it's"].map(str::to_owned);
        assert_eq!(shell_words(args), r"wrk -H 'Connection: close' 'it'\''s'");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(53191.4), "53,191");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000_000.0), "1,000,000");
    }
}
