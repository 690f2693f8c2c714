//! A connection storm: more clients at once than the replicas take. Every replica is full, so
//! every login check is refused with "too many connections" (SQLSTATE 53300) as the clients are.
//! A full replica is busy, not broken: it must not be marked down (that would end its sessions
//! under `on-down shutdown` and, with every replica down at once, refuse every client with
//! 57P03). Real primary, two real streaming replicas whose application role has a connection
//! limit (the same refusal as `max_connections`, without restarting the servers), real clients.

mod support;

use std::time::Duration;

use futures::future::join_all;
use pgbalancer::config::OnDown;
use support::Lab;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;

/// Sessions each replica takes for the application role (the health check uses it too).
const LIMIT: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_that_fills_every_replica_takes_none_down_and_ends_no_session() {
    let lab = Lab::start(2, |c| {
        // A single broken check would take a replica down: only busy can keep it.
        c.check.fall = 1;
        c.check.interval = Duration::from_millis(100);
        c.hold_timeout = Duration::from_secs(1);
        c.on_down = OnDown::Shutdown;
    })
    .await;
    lab.wait_up(&["pg1", "pg2"]).await;
    lab.superuser("primary")
        .await
        .batch_execute(&format!(
            "ALTER ROLE {} CONNECTION LIMIT {LIMIT}",
            lab.cluster.user()
        ))
        .await
        .expect("set the role's connection limit");
    lab.cluster
        .wait_replicated(Duration::from_secs(20))
        .await
        .expect("the limit reaches the replicas");

    // The storm: forty clients at once; each keeps the session it gets.
    let attempts = join_all((0..40).map(|_| lab.connect())).await;
    let (sessions, refused): (Vec<_>, Vec<_>) = attempts.into_iter().partition(Result::is_ok);
    let sessions: Vec<_> = sessions.into_iter().map(Result::unwrap).collect();
    assert!(
        sessions.len() >= 2 * LIMIT - 2,
        "the replicas took {} sessions",
        sessions.len()
    );
    for error in refused.iter().map(|r| r.as_ref().unwrap_err()) {
        let code = error.as_db_error().map(|e| e.code().clone());
        assert_eq!(
            code,
            Some(SqlState::TOO_MANY_CONNECTIONS),
            "a client over capacity gets the server's own answer: {error}"
        );
    }

    // Both stay full for two seconds (twenty check intervals, each check refused): a replica is
    // always in rotation, none goes down, and a new client hears the server, not pgbalancer.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let status = lab.pgb.status();
        assert!(
            status.backends.iter().all(|b| b.state == "up"),
            "a full replica was marked down: {:?}",
            status.backends
        );
        assert!(
            status.backends.iter().any(|b| b.ejected.is_none()),
            "no replica left in rotation: {:?}",
            status.backends
        );
        match lab.connect().await {
            Ok(_) => panic!("a client got in while both replicas were full"),
            Err(e) => assert_eq!(
                e.as_db_error().map(|e| e.code().clone()),
                Some(SqlState::TOO_MANY_CONNECTIONS),
                "{e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, metrics) = support::http_get(lab.pgb.admin_addr(), "/metrics").await;
    let busy_checks: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("pgbalancer_health_checks_total") && l.contains("result=\"busy\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(busy_checks >= 10.0, "checks counted busy: {busy_checks}");

    // Every session survived the storm, `on-down shutdown` notwithstanding.
    for (i, session) in sessions.iter().enumerate() {
        session
            .simple_query("SELECT 1")
            .await
            .unwrap_or_else(|e| panic!("session {i} ended: {e}"));
    }

    // Room again: a few sessions end, and a new client gets in within a few check intervals.
    let mut sessions = sessions;
    sessions.truncate(sessions.len() - 4);
    let started = Instant::now();
    let served = testkit::wait::poll(
        "a client served after the storm",
        Duration::from_secs(10),
        || async { lab.served_by().await.ok() },
    )
    .await;
    assert!(served.starts_with("pg"), "{served}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "got in after {:?}",
        started.elapsed()
    );
    drop(sessions);
}
