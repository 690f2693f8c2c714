//! `lab gray`, short, through our stack: a frozen pod costs no request and only the few in flight
//! when it froze wait about a second; a slow pod serves next to nothing and does not set the p99;
//! a frozen replica costs no request and no new session waits for it ~1.5 s or more; a replica
//! lagging past the bound serves no new session within two checks, and serves again once its
//! replay resumed.

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
            "5s",
            "--max-lag",
            "2s",
            "--quiet",
        ],
        out.path(),
    ));
    let Some(bench::opts::Command::Gray(gray)) = opts.command else {
        panic!("parsed as {opts:?}");
    };
    let results = bench::gray::run(gray).await.expect("the lab ran");

    let runs: Vec<_> = results.runs.iter().map(|r| r.run).collect();
    assert_eq!(
        runs,
        ["frozen", "slow", "frozen-replica", "lagging-replica"]
    );
    for run in &results.runs {
        for p in &run.phases {
            // A session whose query was already on the replica when it froze cannot be moved
            // (the backend gives up on it after its 2 s query timeout): at most one in the phase.
            let frozen_replica = (run.run, p.name) == ("frozen-replica", "frozen");
            // The paused phase lasts `--max-lag` (2 s, 40 requests), the others 5 s or more.
            let least = if p.name == "paused" { 30 } else { 50 };
            if !frozen_replica {
                support::assert_served(run.run, p.name, &p.stats, least);
            }
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

    let frozen = &results.runs[2].phases;
    assert_eq!(results.runs[2].pod, "pg1");
    assert!(frozen[0].served_by_pod > 0, "pg1 served before it froze");
    assert!(
        frozen[1].stats.failed <= 1 && frozen[1].stats.requests >= 50,
        "{:?}",
        frozen[1].stats
    );
    // The sessions sent to it before its first one timed out (pgbalancer's first-answer timeout,
    // 1 s) wait that long, then go to the other replica; none waits ~1.5 s or more.
    assert!(
        frozen[1].stats.max_ms < 1500.0,
        "a request waited {:.0} ms while a replica was frozen",
        frozen[1].stats.max_ms
    );
    assert!(
        frozen[2].served_by_pod > 0,
        "the thawed replica serves again"
    );

    let lagging = &results.runs[3].phases;
    let names: Vec<_> = lagging.iter().map(|p| p.name).collect();
    assert_eq!(names, ["0", "paused", "past bound", "resumed"]);
    // The bound is passed as the phase begins; checks run every second, two failures mark it down.
    let past = &lagging[2];
    assert!(
        past.last_served_s.is_none_or(|s| s < 3.0),
        "the lagging replica served {} sessions past the bound, the last {:?} s in",
        past.served_by_pod,
        past.last_served_s
    );
    assert!(
        lagging[3].served_by_pod > 0,
        "the resumed replica serves again"
    );
    assert!(out.path().join("gray.md").is_file());
}
