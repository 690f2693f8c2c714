//! A real Postgres primary with streaming replicas (made by `pg_basebackup -R`), each on its own
//! loopback IP and all on one port, like the pods behind a headless Service. The primary holds the
//! demo schema and seed rows ([`SCHEMA_SQL`]); an application user with a SCRAM password can log in
//! to every node from 127.0.0.0/8. Everything lives in a temporary directory that is removed, with
//! the servers stopped, when the [`PgCluster`] is dropped (also when a test panics).
//!
//! Uses Debian's server binaries (`/usr/lib/postgresql/<major>/bin`, or [`BIN_ENV`]); as root every
//! program runs as the `postgres` user.

mod addresses;
mod error;
mod node;
mod programs;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Config;

use addresses::{free_port, next_block, offset_ip, port_free};
pub use error::PgError;
pub use node::{Frozen, PgNode, Role};
use programs::Programs;
pub use programs::BIN_ENV;

/// The demo schema and seed rows: the same file the backend and the Postgres image load.
pub const SCHEMA_SQL: &str = include_str!("../../backend/schema.sql");
/// The database that holds [`SCHEMA_SQL`].
pub const DATABASE: &str = "highload";
/// The application (and health-check) login; a member of `pg_monitor`.
pub const APP_USER: &str = "app";
const SUPERUSER: &str = "postgres";

/// Settings every node shares (written to the primary's `postgresql.conf` and copied to the
/// replicas by `pg_basebackup`): small and fast, durability off, no Unix sockets (the nodes share a
/// port, so their socket files would collide).
const SERVER_CONF: &str = "
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 100
max_wal_senders = 10
wal_keep_size = 64MB
hot_standby = on
wal_receiver_status_interval = 1s
unix_socket_directories = ''
log_line_prefix = '%m [%p] %q%a '
";

const HBA_CONF: &str = "
# testkit: password logins from loopback only, replication included.
host all all 127.0.0.0/8 scram-sha-256
host replication all 127.0.0.0/8 scram-sha-256
";

const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Passwords of the cluster's two logins.
#[derive(Debug)]
struct Credentials {
    superuser_password: String,
    app_password: String,
}

impl Credentials {
    fn new() -> Self {
        // Unique per cluster, so a test can look for it where it must never appear.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let salt = format!("{}x{nanos:x}", std::process::id());
        Self {
            superuser_password: format!("su-{salt}"),
            app_password: format!("app-{salt}"),
        }
    }

    fn app_config(&self, addr: SocketAddr) -> Config {
        login(addr, APP_USER, &self.app_password, DATABASE)
    }

    fn superuser_config(&self, addr: SocketAddr) -> Config {
        login(addr, SUPERUSER, &self.superuser_password, "postgres")
    }
}

fn login(addr: SocketAddr, user: &str, password: &str, database: &str) -> Config {
    let mut c = Config::new();
    c.host(addr.ip().to_string())
        .port(addr.port())
        .user(user)
        .password(password)
        .dbname(database);
    c
}

/// How to start a [`PgCluster`].
#[derive(Debug, Clone, Default)]
pub struct PgClusterBuilder {
    replicas: usize,
    first_ip: Option<Ipv4Addr>,
    port: Option<u16>,
    ssl: bool,
    ssl_files: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl PgClusterBuilder {
    /// How many streaming replicas (`pg1`, `pg2`, …) to start with.
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// The primary's IP; replicas take the next addresses. Default: a `127.x.y.0/24` block of its
    /// own per cluster, the primary on `.1`.
    pub fn first_ip(mut self, ip: Ipv4Addr) -> Self {
        self.first_ip = Some(ip);
        self
    }

    /// The port every node listens on. Default: one free on all the nodes' addresses.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Every node with `ssl = on` and a self-signed certificate ([`crate::certs`]); plain
    /// logins are still accepted (`host` lines match both).
    pub fn ssl(mut self, on: bool) -> Self {
        self.ssl = on;
        self
    }

    /// [`Self::ssl`] with this certificate and key (PEM) instead of a new one.
    pub fn ssl_files(mut self, cert: &std::path::Path, key: &std::path::Path) -> Self {
        self.ssl = true;
        self.ssl_files = Some((cert.to_owned(), key.to_owned()));
        self
    }

    pub async fn start(self) -> Result<PgCluster, PgError> {
        PgCluster::launch(self).await
    }
}

/// A primary and its streaming replicas. Dropping it stops every server and removes the data.
#[derive(Debug)]
pub struct PgCluster {
    // Field order is drop order: the servers stop before their directory is removed.
    replicas: Vec<PgNode>,
    primary: PgNode,
    programs: Arc<Programs>,
    creds: Arc<Credentials>,
    dir: tempfile::TempDir,
}

impl PgCluster {
    pub fn builder() -> PgClusterBuilder {
        PgClusterBuilder::default()
    }

    /// A primary and `replicas` streaming replicas on addresses and a port of their own.
    pub async fn start(replicas: usize) -> Result<Self, PgError> {
        Self::builder().replicas(replicas).start().await
    }

    pub fn primary(&self) -> &PgNode {
        &self.primary
    }

    /// The replicas, in the order they were made (`pg1` first).
    pub fn replicas(&self) -> &[PgNode] {
        &self.replicas
    }

    /// The replica whose `cluster_name` is `name`.
    pub fn replica(&self, name: &str) -> Option<&PgNode> {
        self.replicas.iter().find(|n| n.name() == name)
    }

    /// The replicas' IPs: what DNS lists for the replicas' Service.
    pub fn replica_ips(&self) -> Vec<Ipv4Addr> {
        self.replicas.iter().map(PgNode::ip).collect()
    }

    /// The port every node listens on.
    pub fn port(&self) -> u16 {
        self.primary.addr().port()
    }

    /// Settings to log in as the application user at `addr`: a balancer or proxy in front of the
    /// cluster. (Use this rather than changing a node's [`PgNode::config`]: tokio-postgres adds
    /// hosts and ports to a list, so the node would still be tried first.)
    pub fn app_config_at(&self, addr: SocketAddr) -> Config {
        self.creds.app_config(addr)
    }

    pub fn user(&self) -> &str {
        APP_USER
    }

    /// The application user's password.
    pub fn password(&self) -> &str {
        &self.creds.app_password
    }

    pub fn database(&self) -> &str {
        DATABASE
    }

    /// Makes one more replica (`pg<N+1>`, on the next IP) from the primary and starts it.
    pub async fn add_replica(&mut self) -> Result<&PgNode, PgError> {
        let n = self.replicas.len() + 1;
        let ip = offset_ip(self.primary.ip(), n);
        let port = self.port();
        if !port_free(ip, port) {
            return Err(PgError::NoPort(vec![ip]));
        }
        let node = PgNode::new(
            &format!("pg{n}"),
            Role::Replica,
            SocketAddr::from((ip, port)),
            self.dir.path(),
            self.programs.clone(),
            self.creds.clone(),
        );
        self.base_backup(&node).await?;
        node.start().await?;
        self.replicas.push(node);
        Ok(&self.replicas[n - 1])
    }

    /// Waits until every running replica has replayed everything the primary wrote so far.
    pub async fn wait_replicated(&self, limit: Duration) -> Result<(), PgError> {
        let primary = node::connect(&self.primary.superuser_config())
            .await
            .map_err(|e| PgError::sql("connecting to the primary", e))?;
        // The insert position, not the write position: with synchronous_commit off a commit
        // record may still sit in the WAL buffers.
        let lsn: String = primary
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .map_err(|e| PgError::sql("reading the primary's WAL position", e))?
            .get(0);
        let deadline = Instant::now() + limit;
        for replica in self.replicas.iter().filter(|r| r.is_running()) {
            let client = node::connect(&replica.superuser_config())
                .await
                .map_err(|e| PgError::sql(format!("connecting to {}", replica.name()), e))?;
            loop {
                let caught_up: bool = client
                    .query_one(
                        "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)",
                        &[&lsn],
                    )
                    .await
                    .map_err(|e| PgError::sql(format!("reading {}'s replay", replica.name()), e))?
                    .get(0);
                if caught_up {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(PgError::Timeout {
                        what: format!("{} replaying up to {lsn}", replica.name()),
                        after: limit,
                    });
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    async fn launch(builder: PgClusterBuilder) -> Result<Self, PgError> {
        let programs = Arc::new(Programs::find().await?);
        let dir = tempfile::Builder::new()
            .prefix("testkit-pg-")
            .tempdir()
            .map_err(|e| PgError::io("creating the cluster directory", e))?;
        programs.own(dir.path())?;
        let first_ip = builder.first_ip.unwrap_or_else(next_block);
        let ips: Vec<Ipv4Addr> = (0..=builder.replicas)
            .map(|i| offset_ip(first_ip, i))
            .collect();
        let port = match builder.port {
            Some(port) => port,
            None => free_port(&ips)?,
        };
        let creds = Arc::new(Credentials::new());
        let primary = PgNode::new(
            "primary",
            Role::Primary,
            SocketAddr::from((first_ip, port)),
            dir.path(),
            programs.clone(),
            creds.clone(),
        );
        let mut cluster = Self {
            replicas: Vec::new(),
            primary,
            programs,
            creds,
            dir,
        };
        let ssl = builder
            .ssl
            .then(|| builder.ssl_files.clone().unwrap_or_default());
        cluster.init_primary(ssl).await?;
        for _ in 0..builder.replicas {
            cluster.add_replica().await?;
        }
        Ok(cluster)
    }

    /// `ssl`: the certificate and key to serve TLS with (empty paths: a new self-signed pair).
    async fn init_primary(
        &self,
        ssl: Option<(std::path::PathBuf, std::path::PathBuf)>,
    ) -> Result<(), PgError> {
        let pwfile = self.dir.path().join("superuser.pw");
        write_owned(&self.programs, &pwfile, &self.creds.superuser_password)?;
        let mut cmd = self.programs.command("initdb");
        cmd.arg("-D")
            .arg(self.primary.data_dir())
            .args(["-U", SUPERUSER, "-A", "scram-sha-256", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()));
        self.programs.run("initdb", cmd, SETUP_TIMEOUT).await?;
        let data = self.primary.data_dir();
        write_owned(&self.programs, &data.join("pg_hba.conf"), HBA_CONF)?;
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)
            .map_err(|e| PgError::io(format!("reading {}", conf.display()), e))?;
        text.push_str(SERVER_CONF);
        if let Some((cert, key)) = ssl {
            // In the data directory, so pg_basebackup gives every replica the same.
            let (cert, key) = if cert.as_os_str().is_empty() {
                crate::certs::self_signed(self.dir.path())
            } else {
                (cert, key)
            };
            for (from, to) in [(cert, "server.crt"), (key, "server.key")] {
                let dest = data.join(to);
                std::fs::copy(&from, &dest)
                    .map_err(|e| PgError::io(format!("copying {}", from.display()), e))?;
                self.programs.own(&dest)?;
            }
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .map_err(|e| PgError::io("restricting server.key", e))?;
            text.push_str("ssl = on\n");
        }
        write_owned(&self.programs, &conf, &text)?;
        self.primary.start().await?;

        let su = node::connect(&self.primary.superuser_config())
            .await
            .map_err(|e| PgError::sql("connecting to the new primary", e))?;
        // The password goes in as a literal: utility statements take no parameters. It is ours,
        // made of letters, digits and dashes.
        // One statement per call: CREATE DATABASE refuses to run in the implicit transaction of
        // a multi-statement query.
        for statement in [
            format!(
                "CREATE ROLE {APP_USER} LOGIN PASSWORD '{}'",
                self.creds.app_password
            ),
            format!("GRANT pg_monitor TO {APP_USER}"),
            format!("CREATE DATABASE {DATABASE} OWNER {APP_USER}"),
        ] {
            su.batch_execute(&statement)
                .await
                .map_err(|e| PgError::sql("creating the application user and database", e))?;
        }
        self.primary
            .connect()
            .await?
            .batch_execute(SCHEMA_SQL)
            .await
            .map_err(|e| PgError::sql("loading backend/schema.sql", e))
    }

    async fn base_backup(&self, node: &PgNode) -> Result<(), PgError> {
        let primary = self.primary.addr();
        let mut cmd = self.programs.command("pg_basebackup");
        cmd.arg("-D")
            .arg(node.data_dir())
            .args(["-h", &primary.ip().to_string()])
            .args(["-p", &primary.port().to_string()])
            .args([
                "-U",
                SUPERUSER,
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ])
            // -R writes these connection settings, password included, into the replica's
            // postgresql.auto.conf as its primary_conninfo.
            .env("PGPASSWORD", &self.creds.superuser_password);
        self.programs
            .run(
                &format!("pg_basebackup for {}", node.name()),
                cmd,
                SETUP_TIMEOUT,
            )
            .await?;
        Ok(())
    }
}

fn write_owned(programs: &Programs, path: &std::path::Path, text: &str) -> Result<(), PgError> {
    std::fs::write(path, text)
        .map_err(|e| PgError::io(format!("writing {}", path.display()), e))?;
    programs.own(path)
}
