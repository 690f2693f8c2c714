//! What Prometheus would scrape, from the running binaries: the proxy, pgbalancer and a backend
//! of the loopback lab after traffic through them. Every metric a Grafana panel queries is
//! exported, every exported metric is documented in its crate's README, and every documented one
//! is exported. A renamed metric can no longer leave a panel empty or a README wrong.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use clap::Parser;

mod support;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Metric names (`proxy_…`, `pgbalancer_…`, `backend_…`) in `text`, histogram suffixes stripped.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices(['p', 'b']) {
        let before = i.checked_sub(1).map(|p| text.as_bytes()[p]);
        if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        let rest = &text[i..];
        if !["proxy_", "pgbalancer_", "backend_"]
            .iter()
            .any(|p| rest.starts_with(p))
        {
            continue;
        }
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..len];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(base.to_owned());
    }
    names
}

/// The families a `/metrics` text exports (its `# TYPE` lines).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The metrics a crate README documents: the first cell of its metric table rows.
fn documented(krate: &str) -> BTreeSet<String> {
    let readme = std::fs::read_to_string(format!("{ROOT}/{krate}/README.md")).unwrap();
    readme
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("| `{krate}_")))
        .filter_map(|l| l.split('`').next())
        .map(|rest| format!("{krate}_{rest}"))
        .collect()
}

async fn scrape(addr: SocketAddr) -> String {
    let answer = testkit::http::get(addr, "/metrics")
        .await
        .expect("a /metrics answer");
    assert_eq!(answer.status, 200, "{addr}/metrics");
    answer.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_the_readmes_and_the_binaries_agree_on_every_metric() {
    let out = tempfile::tempdir().unwrap();
    let opts = bench::Opts::parse_from(support::lab_args(&["--quiet"], out.path()));
    let mut lab = bench::Lab::start(&opts.common)
        .await
        .expect("the lab starts");
    let cluster = &mut lab.cluster;
    cluster
        .reset(bench::opts::Db::Pgbalancer)
        .await
        .expect("backends and pgbalancer");
    let (_proxy, addr) = bench::fronts::start(bench::Front::Ours, cluster)
        .await
        .expect("the proxy");
    for _ in 0..5 {
        let answer = testkit::http::get(addr, "/users").await.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let db = cluster.db_pod().expect("pgbalancer runs");
    let pgbalancer_admin = SocketAddr::from((*db.ip(), testkit::names::PGBALANCER_ADMIN_PORT));
    let backend = cluster.backends()[0].addr();
    let scraped = [
        ("proxy", scrape(bench::fronts::OURS_ADMIN).await),
        ("pgbalancer", scrape(pgbalancer_admin).await),
        ("backend", scrape(backend).await),
    ];

    let mut all = BTreeSet::new();
    for (krate, text) in &scraped {
        let ours: BTreeSet<String> = exported(text)
            .into_iter()
            .filter(|n| n.starts_with(&format!("{krate}_")))
            .collect();
        let docs = documented(krate);
        let undocumented: Vec<_> = ours.difference(&docs).collect();
        assert!(
            undocumented.is_empty(),
            "{krate} exports metrics its README does not list: {undocumented:?}"
        );
        let missing: Vec<_> = docs.difference(&ours).collect();
        assert!(
            missing.is_empty(),
            "{krate}/README.md lists metrics the running {krate} does not export: {missing:?}"
        );
        all.extend(ours);
    }
    let dashboard = std::fs::read_to_string(
        Path::new(ROOT).join("k8s/manifests/config/grafana-dashboard.json"),
    )
    .unwrap();
    let exprs: String = dashboard
        .lines()
        .filter(|l| l.contains("\"expr\""))
        .collect::<Vec<_>>()
        .join("\n");
    let queried = names_in(&exprs);
    assert!(
        queried.len() >= 5,
        "the dashboard queries metrics: {queried:?}"
    );
    let absent: Vec<_> = queried.difference(&all).collect();
    assert!(
        absent.is_empty(),
        "dashboard panels query metrics no binary exports: {absent:?}"
    );
}
