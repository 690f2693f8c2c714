//! A CancelRequest through pgbalancer reaches the server that runs the session. A plain
//! round-robin balancer sends it to the next server, which ignores the unknown key, and the query
//! runs on.

mod support;

use std::time::Duration;

use support::Lab;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::{CancelToken, NoTls};

const SLEEP: &str = "SELECT pg_sleep(60)";

async fn wait_sleeping(lab: &Lab, n: i64) {
    lab.wait_running(SLEEP, n).await;
}

/// Runs the sleep on a session through `lab`'s pgbalancer, cancels it with `cancel`, and checks
/// the query ends with 57014 long before the sleep would.
async fn sleep_and_cancel<F, Fut>(lab: &Lab, cancel: F)
where
    F: FnOnce(CancelToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    let client = lab.connect().await.expect("session through pgbalancer");
    let token = client.cancel_token();
    let query = tokio::spawn(async move {
        let started = Instant::now();
        let result = client.simple_query(SLEEP).await;
        (result, started.elapsed())
    });
    wait_sleeping(lab, 1).await;
    cancel(token).await.expect("send the cancel");
    let (result, took) = query.await.unwrap();
    let error = result.expect_err("the query was cancelled");
    assert_eq!(error.code(), Some(&SqlState::QUERY_CANCELED), "{error}");
    assert!(
        took < Duration::from_secs(30),
        "cancelled only after {took:?}"
    );
    wait_sleeping(lab, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_query_cancelled_through_pgbalancer_is_really_cancelled() {
    let lab = Lab::start(2, |_| {}).await;
    lab.wait_up(&["pg1", "pg2"]).await;

    // Two sessions, one on each replica: whichever way a cancel would be misrouted, one of them
    // would be missed. The token dials the host and port the client used: pgbalancer.
    for _ in 0..2 {
        sleep_and_cancel(&lab, |token| async move { token.cancel_query(NoTls).await }).await;
    }
    let metrics = support::http_get(lab.pgb.admin_addr(), "/metrics").await.1;
    assert!(
        metrics.contains("pgbalancer_cancel_requests_total{routing=\"known\"} 2"),
        "{metrics}"
    );
    let status = lab.pgb.status();
    for name in ["pg1", "pg2"] {
        let sessions = status.backend(lab.addr_of(name)).unwrap().total_sessions;
        assert_eq!(sessions, 1, "{name}");
    }
}

/// A cancel whose key pgbalancer never saw (as for a TLS session) goes to every healthy replica;
/// the one running the session acts on it. Here the key is unknown because the cancel arrives at
/// a second pgbalancer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_with_an_unknown_key_is_fanned_out_and_still_works() {
    let lab = Lab::start(2, |_| {}).await;
    let other = pgbalancer::start(support::config(&lab.cluster, &lab.dns))
        .await
        .expect("a second pgbalancer");
    lab.wait_up(&["pg1", "pg2"]).await;
    testkit::wait::until_some("both up in the second", Duration::from_secs(20), || {
        (other.status().healthy == 2).then_some(())
    })
    .await;

    let other_addr = other.listen_addr();
    for _ in 0..2 {
        sleep_and_cancel(&lab, |token| async move {
            let stream = TcpStream::connect(other_addr).await.unwrap();
            token.cancel_query_raw(stream, NoTls).await
        })
        .await;
    }
    let metrics = support::http_get(other.admin_addr(), "/metrics").await.1;
    assert!(
        metrics.contains("pgbalancer_cancel_requests_total{routing=\"fanout\"} 2"),
        "{metrics}"
    );
}
