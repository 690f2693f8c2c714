//! /users and /readyz against a real Postgres primary with streaming replicas (testkit), in both
//! connection modes: the count comes from the table, `db` names the server that answered, and a
//! server that stops and comes back turns readiness off and on again.

use std::time::Duration;

use axum::http::StatusCode;
use backend::{App, Config, ConnectMode};
use support::{database_url, poll, router_get_json as get_json};
use testkit::{PgCluster, PgNode};

mod support;

fn app_for(cluster: &PgCluster, node: &PgNode, mode: ConnectMode) -> App {
    let mut config = Config::with_database_url(&database_url(cluster, node)).unwrap();
    config.pod = "backend-7f9c-x2".to_owned();
    config.db_connect = mode;
    App::new(&config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_reports_the_count_the_pod_and_the_replica_that_answered() {
    let cluster = PgCluster::start(2).await.expect("start cluster");
    for mode in [ConnectMode::PerRequest, ConnectMode::Pool] {
        for node in cluster.replicas().iter().chain([cluster.primary()]) {
            let app = app_for(&cluster, node, mode);
            // Twice: in pool mode the second request reuses the first one's connection.
            for _ in 0..2 {
                let (status, body) = get_json(&app, "/users").await;
                assert_eq!(status, StatusCode::OK, "{mode:?} {}: {body}", node.name());
                assert_eq!(body["users"], 3, "the seed rows of backend/schema.sql");
                assert_eq!(body["pod"], "backend-7f9c-x2");
                assert_eq!(body["db"], node.name(), "{mode:?}");
            }
        }
    }

    // A row written on the primary is counted once a replica has replayed it.
    let primary = cluster.primary().connect().await.expect("primary login");
    primary
        .execute(
            "INSERT INTO users (name, email) VALUES ('dave', 'dave@example.com')",
            &[],
        )
        .await
        .expect("insert");
    cluster
        .wait_replicated(Duration::from_secs(30))
        .await
        .expect("replicated");
    let app = app_for(&cluster, &cluster.replicas()[1], ConnectMode::PerRequest);
    let (status, body) = get_json(&app, "/users").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["users"], 4);
    assert_eq!(body["db"], "pg2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_users_follow_the_database_going_away_and_back() {
    let cluster = PgCluster::start(1).await.expect("start cluster");
    let replica = &cluster.replicas()[0];
    for mode in [ConnectMode::PerRequest, ConnectMode::Pool] {
        let app = app_for(&cluster, replica, mode);
        let (status, body) = get_json(&app, "/readyz").await;
        assert_eq!(status, StatusCode::OK, "{mode:?}: {body}");
        assert_eq!(body["status"], "ready");
        let (status, _) = get_json(&app, "/users").await;
        assert_eq!(status, StatusCode::OK, "{mode:?}");

        replica.stop().await.expect("stop the replica");
        // In pool mode the idle connection died with the server: the failing request must not
        // hand it out again, so the next request after the restart works.
        let (status, body) = get_json(&app, "/users").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{mode:?}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("database"),
            "{body}"
        );
        let (status, body) = get_json(&app, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{mode:?}: {body}");
        assert_eq!(body["status"], "unready");

        replica.start().await.expect("start the replica again");
        poll("readyz after restart", Duration::from_secs(10), || async {
            (get_json(&app, "/readyz").await.0 == StatusCode::OK).then_some(())
        })
        .await;
        let (status, body) = get_json(&app, "/users").await;
        assert_eq!(status, StatusCode::OK, "{mode:?}: {body}");
        assert_eq!(body["db"], "pg1");
    }
}
