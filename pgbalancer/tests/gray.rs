//! A replica that is there but does not answer: its postmaster and every backend process stopped
//! (SIGSTOP, as a node under memory pressure or a stuck process). It stays in DNS and its kernel
//! still completes TCP handshakes, so only the Postgres protocol shows it. Real primary, real
//! streaming replicas, real tokio-postgres clients.

mod support;

use std::time::Duration;

use support::Lab;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_replica_costs_no_connection_and_none_waits_long() {
    let lab = Lab::start(2, |_| {}).await;
    lab.wait_up(&["pg1", "pg2"]).await;

    let frozen = lab
        .cluster
        .replica("pg1")
        .expect("pg1")
        .freeze()
        .expect("freeze pg1");
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let started = Instant::now();
        let served = lab
            .served_by()
            .await
            .unwrap_or_else(|e| panic!("connection {i} failed: {e}"));
        slowest = slowest.max(started.elapsed());
        assert_eq!(served, "pg2", "connection {i}");
    }
    assert!(
        slowest < Duration::from_millis(1500),
        "a new connection waited {slowest:?} on the frozen replica"
    );
    // Its login checks time out: it is marked down, not only passed over.
    let status = lab.wait_down(&["pg1"]).await;
    let pg1 = status.backend(lab.addr_of("pg1")).unwrap();
    let error = pg1.last_check.as_ref().and_then(|c| c.error.clone());
    assert!(error.is_some(), "{pg1:?}");

    frozen.thaw();
    lab.wait_up(&["pg1"]).await;
    let mut served = Vec::new();
    for _ in 0..4 {
        served.push(lab.served_by().await.expect("a session after the thaw"));
    }
    assert!(
        served.iter().any(|s| s == "pg1"),
        "pg1 serves again: {served:?}"
    );
}
