//! What happens to open sessions when their backend is marked down while it still runs: kept by
//! default, closed with `--on-down shutdown`; and with `shutdown`, when it leaves DNS.

mod support;

use std::time::Duration;

use pgbalancer::config::OnDown;
use support::Lab;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_a_backend_marked_down_are_kept_or_shut_down() {
    let lab = Lab::start(1, |c| c.on_down = OnDown::Shutdown).await;
    let keep = pgbalancer::start(support::config(&lab.cluster, &lab.dns))
        .await
        .expect("a second pgbalancer, on-down keep");
    lab.wait_up(&["pg1"]).await;
    let keep_config = support::client_config(&lab.cluster, keep.listen_addr());
    testkit::wait::until_some("keep's pg1 up", Duration::from_secs(20), || {
        (keep.status().healthy == 1).then_some(())
    })
    .await;

    let shut = lab
        .connect()
        .await
        .expect("session through on-down shutdown");
    let kept = support::connect(&keep_config)
        .await
        .expect("session through on-down keep");
    for client in [&shut, &kept] {
        client
            .simple_query("SELECT 1")
            .await
            .expect("session works");
    }

    // pg1 keeps running, but its health checks now fail: the role may no longer log in (open
    // sessions stay). A full server would not do: that is busy, never down (tests/storm.rs).
    let primary = lab.superuser("primary").await;
    primary
        .batch_execute("ALTER ROLE app NOLOGIN")
        .await
        .unwrap();
    lab.wait_down(&["pg1"]).await;
    let reason = lab.pgb.status().backends[0]
        .last_check
        .clone()
        .and_then(|c| c.error)
        .unwrap_or_default();
    assert!(reason.contains("not permitted to log in"), "{reason}");

    testkit::wait::until_some(
        "the on-down shutdown session closed",
        Duration::from_secs(10),
        || shut.is_closed().then_some(()),
    )
    .await;
    assert!(shut.simple_query("SELECT 1").await.is_err());
    testkit::wait::until_some("keep's pg1 down", Duration::from_secs(20), || {
        (keep.status().healthy == 0).then_some(())
    })
    .await;
    kept.simple_query("SELECT 1")
        .await
        .expect("on-down keep leaves the session alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_a_replica_that_left_dns_are_shut_down_too() {
    let lab = Lab::start(2, |c| c.on_down = OnDown::Shutdown).await;
    lab.wait_up(&["pg1", "pg2"]).await;
    // Round-robin: two sessions, one on each replica.
    let (a, b) = (lab.connect().await.unwrap(), lab.connect().await.unwrap());
    let name = |messages: Vec<tokio_postgres::SimpleQueryMessage>| {
        messages
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .expect("a row")
    };
    let served_a = name(a.simple_query("SHOW cluster_name").await.unwrap());
    let served_b = name(b.simple_query("SHOW cluster_name").await.unwrap());
    assert_ne!(served_a, served_b, "round-robin puts them on both replicas");
    let (on_pg1, on_pg2) = if served_a == "pg1" { (a, b) } else { (b, a) };

    // pg1 is deleted from the Service: out of DNS, while the server itself runs on (a replica
    // whose pod is gone, or a silent address): its sessions must not hang on it.
    lab.dns
        .set(support::NAME, &[lab.cluster.replica("pg2").unwrap().ip()]);
    testkit::wait::until_some(
        "the session on the replica that left DNS closed",
        Duration::from_secs(10),
        || on_pg1.is_closed().then_some(()),
    )
    .await;
    on_pg2
        .simple_query("SELECT 1")
        .await
        .expect("the session on the replica still in DNS goes on");
}
