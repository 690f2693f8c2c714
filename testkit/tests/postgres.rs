//! The Postgres harness against Debian's real server: a primary and streaming replicas.

use std::time::Duration;

use testkit::postgres::SCHEMA_SQL;
use testkit::{PgCluster, Role};

async fn cluster_name(client: &tokio_postgres::Client) -> String {
    client
        .query_one("SHOW cluster_name", &[])
        .await
        .expect("SHOW cluster_name")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_and_two_replicas_replicate_and_name_themselves() {
    let cluster = PgCluster::start(2).await.expect("start cluster");
    assert!(SCHEMA_SQL.contains("CREATE TABLE"));

    let primary = cluster.primary().connect().await.expect("primary login");
    assert_eq!(cluster_name(&primary).await, "primary");
    let seeded: i64 = primary
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(seeded, 3, "the seed rows of backend/schema.sql");

    let names: Vec<&str> = cluster.replicas().iter().map(|r| r.name()).collect();
    assert_eq!(names, ["pg1", "pg2"]);
    let ips = cluster.replica_ips();
    assert_ne!(ips[0], ips[1], "each replica has its own address");
    assert_ne!(cluster.primary().ip(), ips[0]);

    primary
        .execute(
            "INSERT INTO users (name, email) VALUES ('dave', 'dave@example.com')",
            &[],
        )
        .await
        .expect("insert on the primary");
    cluster
        .wait_replicated(Duration::from_secs(30))
        .await
        .expect("replicas catch up");

    for replica in cluster.replicas() {
        assert_eq!(replica.role(), Role::Replica);
        assert_eq!(
            replica.addr().port(),
            cluster.port(),
            "one port, like pods of a Service"
        );
        let client = replica.connect().await.expect("replica login");
        assert_eq!(cluster_name(&client).await, replica.name());
        let row = client
            .query_one(
                "SELECT pg_is_in_recovery(), (SELECT count(*) FROM users WHERE name = 'dave')",
                &[],
            )
            .await
            .expect("query replica");
        assert!(row.get::<_, bool>(0), "{} is a standby", replica.name());
        assert_eq!(
            row.get::<_, i64>(1),
            1,
            "{} has the new row",
            replica.name()
        );
        let write = client
            .execute("INSERT INTO users (name, email) VALUES ('x', 'x@x')", &[])
            .await
            .expect_err("a replica is read-only");
        assert_eq!(
            write.code(),
            Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stops_starts_and_one_more_is_added_later() {
    let mut cluster = PgCluster::start(1).await.expect("start cluster");
    let pg1 = &cluster.replicas()[0];
    pg1.stop().await.expect("stop pg1");
    assert!(!pg1.is_running());
    assert!(
        pg1.connect().await.is_err(),
        "a stopped replica refuses logins"
    );
    pg1.start().await.expect("restart pg1");
    assert_eq!(
        cluster_name(&pg1.connect().await.expect("login")).await,
        "pg1"
    );

    let pg2 = cluster.add_replica().await.expect("add pg2");
    assert_eq!(pg2.name(), "pg2");
    let client = pg2.connect().await.expect("pg2 login");
    assert_eq!(cluster_name(&client).await, "pg2");
    assert_eq!(cluster.replicas().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_cluster_stops_the_servers_and_removes_the_data() {
    let cluster = PgCluster::start(1).await.expect("start cluster");
    let data = cluster.primary().data_dir().to_owned();
    let config = cluster.replicas()[0].config();
    drop(cluster);
    assert!(!data.exists(), "data directory removed");
    let mut config = config;
    config.connect_timeout(Duration::from_secs(1));
    assert!(
        config.connect(tokio_postgres::NoTls).await.is_err(),
        "the replica no longer answers"
    );
}
