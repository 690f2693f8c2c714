//! One Postgres server of a [`super::PgCluster`]: its address, its data directory, and starting and
//! stopping it with `pg_ctl`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, Config, NoTls};

use super::programs::Programs;
use super::{Credentials, PgError};

/// How long `start` waits for a server to accept logins.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);

/// Whether a node is the primary or a streaming replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

/// Processes stopped by [`PgNode::freeze`]; continued when dropped.
#[derive(Debug)]
pub struct Frozen {
    pids: Vec<i32>,
}

impl Frozen {
    /// Continues the processes now.
    pub fn thaw(self) {}
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for pid in &self.pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
    }
}

/// The processes whose parent is `pid`, read from /proc.
fn children_of(pid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    // The command may hold spaces and parentheses: the fields after the last ')'.
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split(' ').nth(1)?.parse::<i32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// One running (or stopped) Postgres server. Stopped with `-m immediate` when dropped.
#[derive(Debug)]
pub struct PgNode {
    name: String,
    role: Role,
    addr: SocketAddr,
    data_dir: PathBuf,
    log: PathBuf,
    programs: Arc<Programs>,
    creds: Arc<Credentials>,
    running: AtomicBool,
}

impl PgNode {
    pub(super) fn new(
        name: &str,
        role: Role,
        addr: SocketAddr,
        dir: &Path,
        programs: Arc<Programs>,
        creds: Arc<Credentials>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            role,
            addr,
            data_dir: dir.join(name),
            log: dir.join(format!("{name}.log")),
            programs,
            creds,
            running: AtomicBool::new(false),
        }
    }

    /// `primary`, `pg1`, `pg2`, …: also the server's `cluster_name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the server listens (its own loopback IP, the cluster's port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn ip(&self) -> Ipv4Addr {
        match self.addr.ip() {
            std::net::IpAddr::V4(ip) => ip,
            std::net::IpAddr::V6(_) => unreachable!("nodes listen on IPv4 loopback addresses"),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's log file, for a test that failed.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Whether the server was started and not stopped since.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Connection settings for the application user and database.
    pub fn config(&self) -> Config {
        self.creds.app_config(self.addr)
    }

    /// Connection settings for the superuser, database `postgres`.
    pub fn superuser_config(&self) -> Config {
        self.creds.superuser_config(self.addr)
    }

    /// A client logged in as the application user; its connection runs on a spawned task.
    pub async fn connect(&self) -> Result<Client, PgError> {
        connect(&self.config())
            .await
            .map_err(|e| PgError::sql(format!("connecting to {} at {}", self.name, self.addr), e))
    }

    /// Starts the server and waits until it accepts logins.
    pub async fn start(&self) -> Result<(), PgError> {
        let options = format!(
            "-c listen_addresses={} -c port={} -c cluster_name={}",
            self.addr.ip(),
            self.addr.port(),
            self.name
        );
        let mut cmd = self.programs.command("pg_ctl");
        cmd.arg("start")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", "60", "-o", &options]);
        let started = self
            .programs
            .run(&format!("pg_ctl start {}", self.name), cmd, READY_TIMEOUT)
            .await;
        if let Err(e) = started {
            return Err(self.with_log(e));
        }
        self.running.store(true, Ordering::SeqCst);
        self.wait_ready().await
    }

    /// Freezes the server as a node under memory pressure or a SIGSTOP would: the postmaster and
    /// every process it forked stop (SIGSTOP). Its socket stays open, so the kernel still
    /// completes TCP handshakes, but nothing answers. Continued (SIGCONT) when the guard drops.
    pub fn freeze(&self) -> Result<Frozen, PgError> {
        let pid_file = self.data_dir.join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file).map_err(|source| PgError::Io {
            what: format!("reading {}", pid_file.display()),
            source,
        })?;
        let postmaster = text
            .lines()
            .next()
            .and_then(|line| line.trim().parse::<i32>().ok())
            .ok_or_else(|| PgError::Io {
                what: format!("{} holds no pid", pid_file.display()),
                source: std::io::ErrorKind::InvalidData.into(),
            })?;
        let mut pids = vec![postmaster];
        pids.extend(children_of(postmaster));
        for pid in &pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGSTOP,
            );
        }
        Ok(Frozen { pids })
    }

    /// Stops the server the polite way (`pg_ctl stop -m fast`: sessions are closed, a checkpoint
    /// is written). Returns once it has exited.
    pub async fn stop(&self) -> Result<(), PgError> {
        self.stop_mode("fast").await
    }

    /// Stops the server at once (`-m immediate`), as a crash or a killed pod would.
    pub async fn kill(&self) -> Result<(), PgError> {
        self.stop_mode("immediate").await
    }

    async fn stop_mode(&self, mode: &str) -> Result<(), PgError> {
        let mut cmd = self.programs.command("pg_ctl");
        cmd.arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", "60", "-m", mode]);
        self.programs
            .run(&format!("pg_ctl stop {}", self.name), cmd, READY_TIMEOUT)
            .await?;
        self.running.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Polls with a real login until it succeeds; a replica must also be in recovery.
    async fn wait_ready(&self) -> Result<(), PgError> {
        let config = {
            let mut c = self.superuser_config();
            c.connect_timeout(Duration::from_secs(1));
            c
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            match connect(&config).await {
                Ok(client) => match client.query_one("SELECT pg_is_in_recovery()", &[]).await {
                    Ok(row) if row.get::<_, bool>(0) == (self.role == Role::Replica) => {
                        return Ok(())
                    }
                    Ok(_) => last = "not yet in the expected recovery state".into(),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(POLL).await;
        }
        Err(self.with_log(PgError::NotReady {
            node: self.name.clone(),
            after: READY_TIMEOUT,
            last,
        }))
    }

    /// Appends the end of the server log to an error, which is where Postgres says why.
    fn with_log(&self, error: PgError) -> PgError {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        PgError::WithLog {
            source: Box::new(error),
            log: tail,
        }
    }
}

impl Drop for PgNode {
    fn drop(&mut self) {
        if !self.is_running() {
            return;
        }
        // Blocking on purpose: this runs when a test ends or panics, and the data directory is
        // removed right after, so the server must be gone first.
        let result = self
            .programs
            .blocking_command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", "30", "-m", "immediate"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if let Err(e) = result {
            tracing::warn!(node = %self.name, error = %e, "could not stop Postgres on drop");
        }
    }
}

/// Logs in and spawns the connection's task.
pub(super) async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "test Postgres connection ended");
        }
    });
    Ok(client)
}
