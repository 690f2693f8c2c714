//! The failover demo, short, through our proxy and pgbalancer: no request fails in any phase,
//! every restored replica and pod serves again, and the Prometheus that scraped the run draws
//! every dashboard panel with data.

use clap::Parser;

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_stack_fails_no_request_in_any_phase_and_restored_pods_serve() {
    let out = tempfile::tempdir().unwrap();
    let opts = bench::Opts::parse_from(support::lab_args(
        &["--proxies", "ours", "--phase", "2s", "--quiet"],
        out.path(),
    ));
    let results = bench::run(opts).await.expect("the lab ran");

    assert_eq!(results.runs.len(), 1);
    let run = &results.runs[0];
    let names: Vec<_> = run.phases.iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            "0",
            "A",
            "A.restore",
            "B",
            "B.restore",
            "C",
            "C.drop",
            "C.restore"
        ]
    );
    support::assert_every_phase_served(run);
    // Both backends and both replicas served after the restores.
    let latest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("latest.json")).unwrap())
            .unwrap();
    assert_eq!(latest["runs"][0]["proxy"], "ours");
    assert_eq!(latest["runs"][0]["total"]["failed"], 0);
    assert!(out.path().join("lab.md").is_file());

    // Every panel of the dashboard users import, drawn from what Prometheus scraped; every query
    // answered with a series (the run fails otherwise, so this is what it leaves behind).
    let dashboard =
        bench::dashboard::panels::load(std::path::Path::new(bench::dashboard::panels::DASHBOARD))
            .unwrap();
    assert_eq!(results.dashboard.len(), dashboard.len());
    for panel in &results.dashboard {
        let png = out.path().join(&panel.png);
        let size = std::fs::metadata(&png).map_or(0, |m| m.len());
        assert!(size > 10_000, "{} is {size} bytes", png.display());
        for q in &panel.queries {
            assert!(q.series > 0, "panel {}: {} has no series", panel.id, q.expr);
        }
    }
    let by_title = |t: &str| {
        results
            .dashboard
            .iter()
            .find(|p| p.title.starts_with(t))
            .unwrap_or_else(|| panic!("no panel {t}"))
    };
    // Per pod: both first pods at least. A replacement shows once Prometheus' discovery hands it
    // over (every 5 s) and it was scraped twice, which 2 s phases may not leave time for.
    assert!(by_title("Backend /users per pod").queries[0].series >= 2);
    let md = std::fs::read_to_string(out.path().join("lab.md")).unwrap();
    assert!(
        md.contains("## The dashboard during our stack's run"),
        "{md}"
    );
}
