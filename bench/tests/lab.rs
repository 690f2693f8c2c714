//! The failover demo, short, through our proxy and pgbalancer: no request fails in any phase, and
//! every restored replica and pod serves again.

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
}
