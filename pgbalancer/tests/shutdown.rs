//! Graceful shutdown: stop accepting at once, let open sessions finish within the grace period.

mod support;

use std::time::Duration;

use support::Lab;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_lets_open_sessions_finish() {
    let Lab { cluster, dns, pgb } =
        Lab::start(1, |c| c.shutdown_grace = Duration::from_secs(30)).await;
    let lab_status = || pgb.status();
    testkit::wait::until_some("pg1 up", Duration::from_secs(20), || {
        (lab_status().healthy == 1).then_some(())
    })
    .await;
    let listen = pgb.listen_addr();
    let config = support::client_config(&cluster, listen);
    let session = support::connect(&config).await.expect("session");

    let shutdown = tokio::spawn(pgb.shutdown());
    testkit::wait::until_some("the listener closed", Duration::from_secs(10), || {
        std::net::TcpStream::connect(listen).is_err().then_some(())
    })
    .await;
    assert!(TcpStream::connect(listen).await.is_err(), "no new clients");

    // The open session still works while shutdown waits for it.
    let row = session.query_one("SHOW cluster_name", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "pg1");
    assert!(!shutdown.is_finished(), "shutdown waits for the session");
    drop(session);
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown ends once the last session has")
        .unwrap();
    drop(dns);
}
