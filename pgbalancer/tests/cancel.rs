//! A CancelRequest through pgbalancer reaches the server that runs the session. A plain
//! round-robin balancer sends it to the next server, which ignores the unknown key, and the query
//! runs on.

mod support;

use std::time::Duration;

use support::Lab;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

const SLEEP: &str = "SELECT pg_sleep(60)";

/// Waits until `n` sessions run the sleep on the replicas (seen directly, not through pgbalancer).
async fn wait_sleeping(lab: &Lab, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut sleeping = 0;
        for replica in lab.cluster.replicas() {
            let client = replica.connect().await.expect("direct login");
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1",
                    &[&SLEEP],
                )
                .await
                .expect("pg_stat_activity");
            sleeping += row.get::<_, i64>(0);
        }
        if sleeping == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} sleeping sessions never showed up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_query_cancelled_through_pgbalancer_is_really_cancelled() {
    let lab = Lab::start(2, |_| {}).await;
    lab.wait_up(&["pg1", "pg2"]).await;

    // Two sessions, one on each replica: whichever way a cancel would be misrouted, one of them
    // would be missed.
    for _ in 0..2 {
        let client = lab.connect().await.expect("session through pgbalancer");
        let token = client.cancel_token();
        let query = tokio::spawn(async move {
            let started = Instant::now();
            let result = client.simple_query(SLEEP).await;
            (result, started.elapsed())
        });
        wait_sleeping(&lab, 1).await;

        // The token dials the host and port the client used: pgbalancer.
        token.cancel_query(NoTls).await.expect("send the cancel");
        let (result, took) = query.await.unwrap();
        let error = result.expect_err("the query was cancelled");
        assert_eq!(error.code(), Some(&SqlState::QUERY_CANCELED), "{error}");
        assert!(
            took < Duration::from_secs(30),
            "cancelled only after {took:?}"
        );
        wait_sleeping(&lab, 0).await;
    }
    let metrics = support::http_get(lab.pgb.admin_addr(), "/metrics").await.1;
    assert!(
        metrics.contains("pgbalancer_cancel_requests_total{routing=\"known\"} 2"),
        "{metrics}"
    );
    let status = lab.pgb.status();
    for name in ["pg1", "pg2"] {
        assert_eq!(
            status.backend(lab.addr_of(name)).unwrap().total_sessions,
            1,
            "{name}"
        );
    }
}
