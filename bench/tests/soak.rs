//! A short chaos soak through our stack: while backends are replaced, replicas deleted and
//! restored, pgbalancer restarted and the proxy's config reloaded, no request fails, and every
//! kind of chaos action ran and every reload was applied.

use clap::Parser;

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_while_pods_pgbalancer_and_the_config_change() {
    let out = tempfile::tempdir().unwrap();
    let opts = bench::Opts::parse_from(support::lab_args(
        &[
            "soak",
            "--duration",
            "25s",
            "--chaos-interval",
            "1s",
            "--seed",
            "20261121",
        ],
        out.path(),
    ));
    let Some(bench::opts::Command::Soak(soak)) = opts.command else {
        panic!("`lab soak` parses as the soak");
    };
    let results = bench::soak::run(soak).await.expect("the soak ran");

    let t = &results.totals;
    assert!(t.requests > 400, "the load ran: {} requests", t.requests);
    assert_eq!(t.failed, 0, "failed requests: {:?}", t.examples);
    assert_eq!(results.ok, t.requests);
    for (action, times) in &results.actions {
        assert!(*times >= 1, "chaos action {action} never ran");
    }
    assert_eq!(
        results.reloads_applied,
        Some(results.actions["reload-proxy"] as u64),
        "every SIGHUP applied a config"
    );
    // Replacement pods served: answers came from more pods than the two the soak started with.
    assert!(
        results.backends_served > 2,
        "pods that answered: {}",
        results.backends_served
    );
    let soak: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("soak.json")).unwrap())
            .unwrap();
    assert_eq!(soak["totals"]["failed"], 0);
    assert!(out.path().join("soak.md").is_file());
}
