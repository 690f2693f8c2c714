//! Shared parts of the integration tests: a real Postgres cluster, a real DNS server listing its
//! replicas, an in-process pgbalancer in front, and polling helpers (no fixed sleeps).

#![allow(dead_code)] // each test file uses its own subset

mod binary;

#[allow(unused_imports)]
pub use binary::{Binary, BIN};

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use discovery::ResolverSpec;
use pgbalancer::cli::LogFormat;
use pgbalancer::config::{CheckConfig, OnDown, RoleFilter, Secret};
use pgbalancer::{Config, Running, Status};
use testkit::{DnsServer, PgCluster};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

pub const NAME: &str = "postgres-replicas.highload-dns.svc.cluster.local";

/// A primary with one replica, and a DNS server whose [`NAME`] lists it: what the binary's tests
/// put it in front of.
pub async fn one_replica_in_dns() -> (PgCluster, DnsServer) {
    let cluster = PgCluster::start(1).await.expect("start Postgres");
    let dns = DnsServer::start(Ipv4Addr::LOCALHOST).await.unwrap();
    dns.set(NAME, &cluster.replica_ips());
    (cluster, dns)
}

/// Short intervals so the tests stay fast; thresholds at their defaults. No backend: the
/// upstream is a closed port.
pub fn bare_config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: "127.0.0.1:1".parse().unwrap(),
        admin: "127.0.0.1:0".parse().unwrap(),
        discovery: discovery::Settings {
            resolve_interval: Duration::from_millis(100),
            lookup_timeout: Duration::from_millis(500),
            resolver: ResolverSpec::System,
        },
        check: CheckConfig {
            user: "app".into(),
            database: "highload".into(),
            password_env: None,
            password: None,
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(2),
            role: RoleFilter::Replica,
            fall: 2,
            rise: 1,
            max_lag: None,
            max_lag_bytes: None,
        },
        hold_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        first_answer_timeout: Duration::from_secs(1),
        client_timeout: Duration::from_secs(5),
        max_connections: 2000,
        shutdown_grace: Duration::from_secs(1),
        shutdown_delay: Duration::ZERO,
        on_down: OnDown::Keep,
        log_format: LogFormat::Text,
        tls: None,
        server_tls: None,
    }
}

/// [`bare_config`] pointed at the cluster's replicas through the test DNS server.
pub fn config(cluster: &PgCluster, dns: &DnsServer) -> Config {
    let mut c = bare_config();
    c.upstream = format!("{NAME}:{}", cluster.port()).parse().unwrap();
    c.discovery.resolver = ResolverSpec::At(dns.addr());
    c.check.user = cluster.user().to_owned();
    c.check.database = cluster.database().to_owned();
    c.check.password_env = Some("TEST_PASSWORD".into());
    c.check.password = Some(Secret::new(cluster.password()));
    c
}

/// Logs for a failing test: `RUST_LOG=pgbalancer=debug cargo test …`.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A cluster with `replicas` replicas, a DNS server listing them under [`NAME`], and pgbalancer
/// configured by `tweak`.
pub struct Lab {
    pub cluster: PgCluster,
    pub dns: DnsServer,
    pub pgb: Running,
}

impl Lab {
    pub async fn start(replicas: usize, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_on(PgCluster::builder().replicas(replicas), tweak).await
    }

    /// [`Lab::start`] on the cluster `builder` makes (e.g. with `ssl(true)`).
    pub async fn start_on(
        builder: testkit::postgres::PgClusterBuilder,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        init_logs();
        let cluster = builder.start().await.expect("start Postgres");
        let dns = DnsServer::start(Ipv4Addr::LOCALHOST)
            .await
            .expect("start DNS");
        dns.set_ttl(1);
        dns.set(NAME, &cluster.replica_ips());
        let mut config = config(&cluster, &dns);
        tweak(&mut config);
        let pgb = pgbalancer::start(config).await.expect("start pgbalancer");
        Self { cluster, dns, pgb }
    }

    /// Client settings for pgbalancer's listener, as the application user.
    pub fn client_config(&self) -> tokio_postgres::Config {
        client_config(&self.cluster, self.pgb.listen_addr())
    }

    pub async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        connect(&self.client_config()).await
    }

    /// `SHOW cluster_name` over a new connection through pgbalancer.
    pub async fn served_by(&self) -> Result<String, tokio_postgres::Error> {
        let client = self.connect().await?;
        let row = client.query_one("SHOW cluster_name", &[]).await?;
        Ok(row.get(0))
    }

    /// Waits until exactly `n` sessions run `query` on the replicas (seen directly, not through
    /// pgbalancer).
    pub async fn wait_running(&self, query: &str, n: i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut running = 0;
            for replica in self.cluster.replicas() {
                let client = replica.connect().await.expect("direct login");
                let row = client
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1",
                        &[&query],
                    )
                    .await
                    .expect("pg_stat_activity");
                running += row.get::<_, i64>(0);
            }
            if running == n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{n} sessions running {query} never showed up (now {running})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The address pgbalancer knows a node by.
    pub fn addr_of(&self, name: &str) -> SocketAddr {
        self.node(name).addr()
    }

    /// The node named `primary`, `pg1`, `pg2`, …
    pub fn node(&self, name: &str) -> &testkit::postgres::PgNode {
        if name == "primary" {
            self.cluster.primary()
        } else {
            self.cluster.replica(name).expect("no such replica")
        }
    }

    /// Waits until `pred` holds for pgbalancer's status.
    pub async fn wait_status(&self, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
        testkit::wait::until_some(what, Duration::from_secs(20), || {
            let s = self.pgb.status();
            pred(&s).then_some(s)
        })
        .await
    }

    /// Waits until each named node is up in pgbalancer.
    pub async fn wait_up(&self, names: &[&str]) -> Status {
        self.wait_state(names, "up").await
    }

    /// Waits until each named node is marked down in pgbalancer.
    pub async fn wait_down(&self, names: &[&str]) -> Status {
        self.wait_state(names, "down").await
    }

    async fn wait_state(&self, names: &[&str], state: &str) -> Status {
        let addrs: Vec<SocketAddr> = names.iter().map(|n| self.addr_of(n)).collect();
        self.wait_status(&format!("{names:?} {state}"), |s| {
            addrs
                .iter()
                .all(|a| s.backend(*a).is_some_and(|b| b.state == state))
        })
        .await
    }

    /// A superuser session straight to a node (`primary`, `pg1`, …), past pgbalancer.
    pub async fn superuser(&self, name: &str) -> Client {
        connect(&self.node(name).superuser_config())
            .await
            .unwrap_or_else(|e| panic!("superuser login on {name}: {e}"))
    }

    /// Stops a replica (`pg_ctl stop -m fast`); it stays in DNS.
    pub async fn stop(&self, name: &str) {
        let node = self.cluster.replica(name).expect("no such replica");
        node.stop()
            .await
            .unwrap_or_else(|e| panic!("stop {name}: {e}"));
    }

    /// Starts a stopped replica again and waits until it accepts logins.
    pub async fn restart(&self, name: &str) {
        let node = self.cluster.replica(name).expect("no such replica");
        node.start()
            .await
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
    }
}

/// Settings to log in as the cluster's application user at `addr` (a pgbalancer listener).
pub fn client_config(cluster: &PgCluster, addr: SocketAddr) -> tokio_postgres::Config {
    let mut c = cluster.app_config_at(addr);
    c.ssl_mode(SslMode::Disable)
        .connect_timeout(Duration::from_secs(10));
    c
}

pub async fn connect(config: &tokio_postgres::Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A FATAL ErrorResponse as a client receives it: (SQLSTATE, message).
pub async fn read_error_response(stream: &mut TcpStream) -> (String, String) {
    let kind = stream.read_u8().await.expect("a message");
    assert_eq!(kind, b'E', "an ErrorResponse");
    let len = stream.read_u32().await.expect("length") as usize;
    let mut body = vec![0; len - 4];
    stream.read_exact(&mut body).await.expect("body");
    let mut code = String::new();
    let mut message = String::new();
    for field in body.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let value = String::from_utf8_lossy(&field[1..]).into_owned();
        match field[0] {
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
    }
    (code, message)
}

/// A plain HTTP/1.1 GET (testkit's raw client): (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let answer = testkit::http::get(addr, path)
        .await
        .unwrap_or_else(|e| panic!("GET {path} on {addr}: {e}"));
    (answer.status, answer.body)
}
