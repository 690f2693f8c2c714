//! What happens to open sessions when their backend is marked down while it still runs: kept by
//! default, closed with `--on-down shutdown`.

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

    // pg1 keeps running, but its health checks now fail: the role's connection limit is taken by
    // the two sessions above.
    let primary = support::connect(&lab.cluster.primary().superuser_config())
        .await
        .expect("superuser login");
    primary
        .batch_execute("ALTER ROLE app CONNECTION LIMIT 2")
        .await
        .unwrap();
    lab.wait_down(&["pg1"]).await;
    let reason = lab.pgb.status().backends[0]
        .last_check
        .clone()
        .and_then(|c| c.error)
        .unwrap_or_default();
    assert!(reason.contains("too many connections"), "{reason}");

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
