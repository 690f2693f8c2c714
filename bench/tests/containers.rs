//! The failover demo through the images users deploy (`make demo-containers`, short): the stack in
//! real containers from `k8s/images`, run with the pod templates of `k8s/manifests`. Our stack
//! fails no request in any phase and restored pods serve again; nginx (both ways) and HAProxy run
//! from their images and configs and serve the baseline; Prometheus scraped every target.
//!
//! Needs a Docker engine and the images: `make test` builds them first
//! (`k8s/images/build_and_push.sh --no-push`).

use std::path::Path;

use clap::Parser;

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_images_our_stack_fails_no_request_and_every_contestant_runs() {
    let out = tempfile::tempdir().unwrap();
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../k8s/manifests");
    let opts = bench::Opts::parse_from([
        "lab",
        "containers",
        "--proxies",
        "ours,nginx,nginx-resolver,haproxy",
        "--phase",
        "2s",
        "--rate",
        "25",
        "--quiet",
        "--manifests",
        manifests.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let Some(bench::opts::Command::Containers(opts)) = opts.command else {
        panic!("`lab containers` parses as the containers command");
    };
    let results = bench::containers::run(opts)
        .await
        .expect("the containers demo ran");
    let runs = &results.results.runs;
    let names: Vec<_> = runs.iter().map(|r| r.proxy).collect();
    assert_eq!(names, ["ours", "nginx", "nginx-resolver", "haproxy"]);

    support::assert_every_phase_served(&runs[0]);
    // The others run from their images and configs: the baseline is served.
    for run in &runs[1..] {
        let baseline = &run.phases[0];
        assert!(
            baseline.stats.requests > 20,
            "{}: baseline had load",
            run.proxy
        );
        assert_eq!(
            baseline.stats.failed, 0,
            "{}: the baseline failed: {:?}",
            run.proxy, baseline.stats.examples
        );
    }
    for job in ["backend", "pgbalancer", "proxy"] {
        let up = results
            .prometheus_up
            .iter()
            .find(|(j, _)| j == job)
            .map(|(_, up)| *up);
        assert_eq!(
            up,
            Some(1.0),
            "Prometheus scraped {job}: {:?}",
            results.prometheus_up
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("containers.json")).unwrap())
            .unwrap();
    assert_eq!(json["runs"][0]["total"]["failed"], 0);
    assert!(out.path().join("containers.md").is_file());
    assert!(out.path().join("containers-ours.png").is_file());
}
