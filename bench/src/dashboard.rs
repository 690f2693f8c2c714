//! The dashboard of a demo run, as a user sees it: a real Prometheus scrapes our proxy,
//! pgbalancer and every backend pod for the whole run ([`prometheus`]), then every query of the
//! Grafana dashboard users import ([`panels`]) is evaluated against it over the run and each
//! panel drawn as a PNG ([`draw`]) beside the run's timeline. A query that returns no series is
//! reported, and fails the run: a renamed metric cannot leave a panel silently empty.

pub mod draw;
pub mod panels;
pub mod prometheus;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

pub use prometheus::{Prometheus, Target, TargetsFile};

use crate::scenario::Phase;

/// How often the lab's Prometheus scrapes: the demo's phases last seconds, not minutes.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

pub struct Dashboard {
    prometheus: Prometheus,
    panels: Vec<panels::Panel>,
}

/// A panel as drawn: where, and how many series each of its queries returned.
#[derive(Debug, Clone, Serialize)]
pub struct PanelReport {
    pub id: u64,
    pub title: String,
    /// The PNG's file name, in the results directory.
    pub png: String,
    pub queries: Vec<QueryReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueryReport {
    pub expr: String,
    pub legend: String,
    pub series: usize,
}

impl Dashboard {
    /// Reads the dashboard, then starts Prometheus in `work` scraping the proxy's admin listener
    /// (the pods come through [`Dashboard::targets`]).
    pub async fn start(work: &Path, proxy_admin: SocketAddr) -> anyhow::Result<Self> {
        let panels = panels::load(Path::new(panels::DASHBOARD))?;
        let proxy = Target {
            addr: proxy_admin,
            app: "proxy".to_owned(),
            pod: "proxy".to_owned(),
        };
        let prometheus = Prometheus::start(work, SCRAPE_INTERVAL, vec![proxy]).await?;
        Ok(Self { prometheus, panels })
    }

    pub fn targets(&self) -> TargetsFile {
        self.prometheus.targets()
    }

    /// Waits until Prometheus scrapes each of `apps`.
    pub async fn wait_scraping(&mut self, apps: &[&str]) -> anyhow::Result<()> {
        // File discovery hands new targets over every 5 s; then one scrape.
        self.prometheus
            .wait_scraping(apps, Duration::from_secs(20))
            .await
    }

    /// Evaluates every panel's queries over `range` (unix seconds) and draws each panel into
    /// `out/<prefix>-<id>-<slug>.png`. A panel that cannot be drawn is an error; a query with no
    /// series is not (it is in the report, see [`empty`]).
    pub async fn draw(
        &self,
        out: &Path,
        prefix: &str,
        phases: &[Phase],
        range: (f64, f64),
    ) -> anyhow::Result<Vec<PanelReport>> {
        let step = self.prometheus.scrape_interval();
        let mut reports = Vec::new();
        for panel in &self.panels {
            let mut lines = Vec::new();
            let mut queries = Vec::new();
            for query in &panel.queries {
                let expr = panels::expand(&query.expr, step);
                let series = self
                    .prometheus
                    .query_range(&expr, range.0, range.1, step)
                    .await?;
                queries.push(QueryReport {
                    expr: query.expr.clone(),
                    legend: query.legend.clone(),
                    series: series.len(),
                });
                lines.extend(panels::lines(query, series));
            }
            let png = format!("{prefix}-{}-{}.png", panel.id, slug(&panel.title));
            draw::panel(
                &out.join(&png),
                &panel.title,
                panel.unit.as_deref(),
                &lines,
                phases,
                range,
            )?;
            reports.push(PanelReport {
                id: panel.id,
                title: panel.title.clone(),
                png,
                queries,
            });
        }
        Ok(reports)
    }
}

/// The queries that returned no series, as `panel "title": expr`.
pub fn empty(reports: &[PanelReport]) -> Vec<String> {
    reports
        .iter()
        .flat_map(|p| {
            p.queries
                .iter()
                .filter(|q| q.series == 0)
                .map(move |q| format!("panel {} \"{}\": {}", p.id, p.title, q.expr))
        })
        .collect()
}

/// A file-name-safe form of a title: lower case words joined by `-`.
fn slug(title: &str) -> String {
    title
        .to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_slug_keeps_words_only() {
        assert_eq!(
            super::slug("Upstream p99: connect and first byte (without holds)"),
            "upstream-p99-connect-and-first-byte-without-holds"
        );
    }
}
