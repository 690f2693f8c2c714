//! A replica that is there but does not answer: its postmaster and every backend process stopped
//! (SIGSTOP, as a node under memory pressure or a stuck process). It stays in DNS and its kernel
//! still completes TCP handshakes, so only the Postgres protocol shows it. Real primary, real
//! streaming replicas, real tokio-postgres clients. Also a replica whose replay is paused while the
//! primary writes, and one promoted out from under the balancer.

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
    let (_, metrics) = support::http_get(lab.pgb.admin_addr(), "/metrics").await;
    let passed_over = metrics
        .lines()
        .find(|l| {
            l.starts_with("pgbalancer_backend_connections_total")
                && l.contains(&format!("backend=\"{}\"", lab.addr_of("pg1")))
                && l.contains("result=\"no_answer\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert!(
        passed_over.is_some_and(|n| n >= 1.0),
        "counted as no_answer: {passed_over:?}"
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

/// Writes on the primary every 100 ms until dropped, so a replica has WAL to replay.
struct Writes(tokio::task::JoinHandle<()>);

impl Writes {
    async fn start(lab: &Lab) -> Self {
        let primary = lab.superuser("primary").await;
        primary
            .batch_execute("CREATE TABLE IF NOT EXISTS gray_writes (at timestamptz)")
            .await
            .unwrap();
        Self(tokio::spawn(async move {
            loop {
                let _ = primary
                    .batch_execute("INSERT INTO gray_writes VALUES (now())")
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }))
    }
}

impl Drop for Writes {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_replay_is_paused_gets_no_new_clients_past_the_lag_bound() {
    let lab = Lab::start(2, |c| c.check.max_lag = Some(Duration::from_secs(2))).await;
    lab.wait_up(&["pg1", "pg2"]).await;
    let _writes = Writes::start(&lab).await;
    let pg1 = lab.superuser("pg1").await;

    pg1.batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    let status = lab.wait_down(&["pg1"]).await;
    let error = status
        .backend(lab.addr_of("pg1"))
        .and_then(|b| b.last_check.as_ref()?.error.clone())
        .unwrap_or_default();
    assert!(error.contains("replication lag"), "{error}");
    for i in 0..6 {
        assert_eq!(lab.served_by().await.unwrap(), "pg2", "connection {i}");
    }

    pg1.batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    lab.wait_up(&["pg1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_replica_is_out_at_its_next_check() {
    let lab = Lab::start(2, |_| {}).await;
    lab.wait_up(&["pg1", "pg2"]).await;
    let pg1 = lab.superuser("pg1").await;

    pg1.batch_execute("SELECT pg_promote(true, 30)")
        .await
        .unwrap();
    let promoted = Instant::now();
    let status = lab.wait_down(&["pg1"]).await;
    assert!(
        promoted.elapsed() < Duration::from_secs(3),
        "out {:?} after the promotion",
        promoted.elapsed()
    );
    let b = status.backend(lab.addr_of("pg1")).unwrap();
    assert_eq!(b.role, "primary");
    let error = b
        .last_check
        .as_ref()
        .and_then(|c| c.error.clone())
        .unwrap_or_default();
    assert!(error.contains("wrong role"), "{error}");
    for i in 0..6 {
        assert_eq!(lab.served_by().await.unwrap(), "pg2", "connection {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_on_a_replica_whose_address_went_silent_fails_within_seconds() {
    let lab = Lab::start(1, |_| {}).await;
    lab.wait_up(&["pg1"]).await;
    let session = lab.connect().await.expect("a session on pg1");
    session.simple_query("SELECT 1").await.expect("it works");

    // The pod is gone and its address answers nothing (on-down keep: the session is not closed
    // for a check verdict); the session's next query must fail, not wait for minutes.
    let silenced =
        testkit::netfilter::silence(lab.cluster.replica("pg1").unwrap().ip()).expect("iptables");
    let started = Instant::now();
    let result =
        tokio::time::timeout(Duration::from_secs(30), session.simple_query("SELECT 1")).await;
    let took = started.elapsed();
    drop(silenced);
    assert!(
        matches!(result, Ok(Err(_))),
        "the query neither failed nor hung up: {result:?}"
    );
    // TCP_USER_TIMEOUT is 5 s; the kernel acts on it at its next retransmission (they double
    // from ~200 ms on loopback: 6.2 s, 12.6 s, ...). Without it: about 15 minutes.
    assert!(
        took < Duration::from_secs(15),
        "it failed only after {took:?}"
    );
}
