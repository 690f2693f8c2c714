//! `lab gray`, short, through our stack: a frozen pod costs no request and only the few in flight
//! when it froze wait about a second; a slow pod serves next to nothing and does not set the p99.

use clap::Parser;

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_or_slow_pod_costs_our_stack_no_request() {
    let out = tempfile::tempdir().unwrap();
    let opts = bench::Opts::parse_from(support::lab_args(
        &[
            "gray",
            "--proxies",
            "ours",
            "--freeze",
            "5s",
            "--phase",
            "3s",
            "--quiet",
        ],
        out.path(),
    ));
    let Some(bench::opts::Command::Gray(gray)) = opts.command else {
        panic!("parsed as {opts:?}");
    };
    let results = bench::gray::run(gray).await.expect("the lab ran");

    let runs: Vec<_> = results.runs.iter().map(|r| r.run).collect();
    assert_eq!(runs, ["frozen", "slow"]);
    for run in &results.runs {
        for p in &run.phases {
            support::assert_served(run.run, p.name, &p.stats, 50);
        }
    }
    let frozen = &results.runs[0].phases;
    let names: Vec<_> = frozen.iter().map(|p| p.name).collect();
    assert_eq!(names, ["0", "frozen", "thawed"]);
    assert!(
        frozen[0].served_by_pod > 0,
        "the pod served before it froze"
    );
    assert!(
        frozen[1].slower_than_1s <= 5,
        "{} requests took over 1 s while a pod was frozen",
        frozen[1].slower_than_1s
    );
    assert!(frozen[1].stats.max_ms < 2000.0, "{:?}", frozen[1].stats);
    assert!(frozen[2].served_by_pod > 0, "the thawed pod serves again");

    let slow = &results.runs[1].phases[0];
    assert!(
        slow.served_by_pod * 20 < slow.stats.requests,
        "the slow pod served {} of {}",
        slow.served_by_pod,
        slow.stats.requests
    );
    assert!(
        slow.stats.p99_ms < results.slow_by_ms,
        "the slow pod set the p99: {:?}",
        slow.stats
    );
    assert!(out.path().join("gray.md").is_file());
}
