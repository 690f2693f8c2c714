//! The Grafana dashboard users import (`k8s/manifests/config/grafana-dashboard.json`), read as
//! Grafana reads it: its panels, each query with its legend format and the panel's unit, and
//! `$__rate_interval` as Grafana expands it for this Prometheus.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::prometheus::Series;

/// The dashboard in the repository, which the lab evaluates.
pub const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../k8s/manifests/config/grafana-dashboard.json"
);

#[derive(Debug, Clone, Serialize)]
pub struct Panel {
    pub id: u64,
    pub title: String,
    /// Grafana's unit (`s`, `reqps`, ...), if the panel sets one.
    pub unit: Option<String>,
    pub queries: Vec<Query>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Query {
    pub expr: String,
    pub legend: String,
}

/// Every panel of the dashboard at `path` that has queries, in its order.
pub fn load(path: &Path) -> anyhow::Result<Vec<Panel>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let panels = json["panels"]
        .as_array()
        .with_context(|| format!("{} has no panels", path.display()))?;
    let mut out = Vec::new();
    for p in panels {
        let queries: Vec<Query> = p["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some(Query {
                    expr: t["expr"].as_str()?.to_owned(),
                    legend: t["legendFormat"].as_str().unwrap_or_default().to_owned(),
                })
            })
            .collect();
        if queries.is_empty() {
            continue;
        }
        out.push(Panel {
            id: p["id"].as_u64().context("a panel without an id")?,
            title: p["title"].as_str().unwrap_or("untitled").to_owned(),
            unit: p["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .map(str::to_owned),
            queries,
        });
    }
    Ok(out)
}

/// `expr` with Grafana's `$__rate_interval` expanded as Grafana does for a query step equal to
/// the scrape interval: max(step + scrape interval, 4 × scrape interval) = 4 × scrape interval.
pub fn expand(expr: &str, scrape_interval: Duration) -> String {
    let rate_interval = scrape_interval * 4;
    expr.replace(
        "$__rate_interval",
        &format!("{}ms", rate_interval.as_millis()),
    )
}

/// A series' name in the legend: the query's legend format with `{{label}}` filled in, or the
/// series' labels when the query sets none.
pub fn legend(format: &str, labels: &BTreeMap<String, String>) -> String {
    if format.is_empty() {
        let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        return format!("{{{}}}", inner.join(", "));
    }
    let mut out = String::new();
    let mut rest = format;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = after[..close].trim();
        out.push_str(labels.get(name).map_or("", String::as_str));
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// One query's answer, named for the legend.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

pub fn lines(query: &Query, series: Vec<Series>) -> Vec<Line> {
    series
        .into_iter()
        .map(|s| Line {
            name: legend(&query.legend, &s.labels),
            points: s.points,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_legend_format_is_filled_from_the_labels() {
        let l = labels(&[("outcome", "refused"), ("group", "backend")]);
        assert_eq!(
            legend("proxy attempts {{outcome}}", &l),
            "proxy attempts refused"
        );
        assert_eq!(legend("{{ group }}/{{outcome}}", &l), "backend/refused");
        assert_eq!(legend("p99", &l), "p99");
        assert_eq!(legend("{{missing}}x", &l), "x");
        assert_eq!(legend("", &l), r#"{group="backend", outcome="refused"}"#);
    }

    #[test]
    fn rate_interval_is_four_scrapes() {
        assert_eq!(
            expand("rate(x[$__rate_interval])", Duration::from_millis(1000)),
            "rate(x[4000ms])"
        );
    }

    #[test]
    fn the_repositorys_dashboard_has_panels_with_queries() {
        let panels = load(Path::new(DASHBOARD)).unwrap();
        assert!(panels.len() >= 10, "{panels:?}");
        assert!(panels.iter().all(|p| !p.queries.is_empty()));
    }
}
