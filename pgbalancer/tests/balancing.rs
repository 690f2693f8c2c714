//! Round-robin over healthy replicas, against a real primary with two streaming replicas, a real
//! DNS server and real tokio-postgres clients.

mod support;

use std::time::Duration;

use support::{Lab, NAME};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_alternate_between_the_replicas() {
    let lab = Lab::start(2, |_| {}).await;
    lab.wait_up(&["pg1", "pg2"]).await;

    let mut served = Vec::new();
    for _ in 0..6 {
        served.push(lab.served_by().await.expect("a session through pgbalancer"));
    }
    for pair in served.windows(2) {
        assert_ne!(pair[0], pair[1], "round-robin alternates: {served:?}");
    }
    assert!(served.iter().any(|s| s == "pg1") && served.iter().any(|s| s == "pg2"));
    assert!(
        served.iter().all(|s| s == "pg1" || s == "pg2"),
        "{served:?}"
    );

    let status = lab.pgb.status();
    for name in ["pg1", "pg2"] {
        let b = status.backend(lab.addr_of(name)).unwrap();
        assert_eq!(b.role, "replica");
        assert_eq!(b.total_sessions, 3, "{name}");
        assert!(b.bytes_to_client > 0 && b.bytes_to_backend > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_gets_no_new_connections_and_no_client_fails() {
    let lab = Lab::start(2, |_| {}).await;
    lab.wait_up(&["pg1", "pg2"]).await;

    // Still in DNS and, for a check interval or two, still marked up: connects to it are refused
    // and go to the next replica before the client has seen a byte.
    lab.stop("pg1").await;
    for i in 0..10 {
        let served = lab
            .served_by()
            .await
            .unwrap_or_else(|e| panic!("connection {i} failed: {e}"));
        assert_eq!(served, "pg2", "connection {i}");
    }
    let status = lab.wait_down(&["pg1"]).await;
    assert_eq!(status.backend(lab.addr_of("pg1")).unwrap().role, "replica");
    assert_eq!(lab.served_by().await.unwrap(), "pg2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_listed_under_the_replicas_name_gets_no_traffic() {
    let lab = Lab::start(2, |_| {}).await;
    let mut ips = lab.cluster.replica_ips();
    ips.push(lab.cluster.primary().ip());
    lab.dns.set(NAME, &ips);
    let primary = lab.addr_of("primary");

    // The primary has answered a check (and failed it for its role) before clients come.
    lab.wait_up(&["pg1", "pg2"]).await;
    let status = lab
        .wait_status("the primary checked", |s| {
            s.backend(primary)
                .and_then(|b| b.last_check.as_ref())
                .is_some()
        })
        .await;
    let p = status.backend(primary).unwrap();
    assert_eq!((p.state, p.role), ("down", "primary"));
    let error = p.last_check.as_ref().unwrap().error.clone().unwrap();
    assert!(error.contains("wrong role"), "{error}");

    for _ in 0..9 {
        let served = lab.served_by().await.expect("a session");
        assert_ne!(
            served, "primary",
            "role replica never routes to the primary"
        );
    }
    let status = lab.pgb.status();
    assert_eq!(status.backend(primary).unwrap().total_sessions, 0);
    assert_eq!(status.backend(primary).unwrap().state, "down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_added_to_dns_serves_within_2s_of_passing_its_first_check() {
    let mut lab = Lab::start(1, |_| {}).await;
    lab.wait_up(&["pg1"]).await;

    let pg2 = lab.cluster.add_replica().await.expect("add pg2").addr();
    lab.dns.set(NAME, &lab.cluster.replica_ips());
    lab.wait_status("pg2 up", |s| {
        s.backend(pg2).is_some_and(|b| b.state == "up")
    })
    .await;
    let up_seen = Instant::now();

    let mut served = Vec::new();
    while !served.iter().any(|s| s == "pg2") {
        served.push(lab.served_by().await.expect("a session"));
        assert!(
            up_seen.elapsed() < Duration::from_secs(2),
            "pg2 passed its check but served nothing within 2 s: {served:?}"
        );
    }
    assert!(
        served.len() <= 2,
        "round-robin reaches the new replica on the next connection or the one after: {served:?}"
    );
}
