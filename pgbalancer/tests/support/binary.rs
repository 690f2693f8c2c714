//! The pgbalancer binary as an operator runs it, with its stderr captured line by line so a test
//! can read the addresses it logged and grep the log.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::task::JoinHandle;

use testkit::{DnsServer, PgCluster};

use super::{http_get, NAME};

pub const BIN: &str = env!("CARGO_BIN_EXE_pgbalancer");

pub struct Binary {
    pub child: Child,
    log: Arc<Mutex<String>>,
    reader: JoinHandle<()>,
}

impl Binary {
    /// Starts `pgbalancer <args>` with `env` and debug logs, on port 0 unless `args` say otherwise.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = tokio::process::Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "debug")
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn pgbalancer");
        let log = Arc::new(Mutex::new(String::new()));
        let reader = tokio::spawn({
            let log = log.clone();
            let stderr = child.stderr.take().unwrap();
            async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        Self { child, log, reader }
    }

    /// The drop-in command line in front of `cluster`'s replicas as `dns` lists them, the check
    /// password in `PGB_TEST_PASSWORD`, checks every 200 ms, plus `extra` flags.
    pub fn in_front_of(
        cluster: &PgCluster,
        dns: &DnsServer,
        password: &str,
        extra: &[&str],
    ) -> Self {
        let upstream = format!("{NAME}:{}", cluster.port());
        let resolver = dns.addr().to_string();
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--upstream",
            &upstream,
            "--check-user",
            cluster.user(),
            "--check-database",
            cluster.database(),
            "--check-password-env",
            "PGB_TEST_PASSWORD",
            "--resolver",
            &resolver,
            "--check-interval",
            "200ms",
        ];
        args.extend_from_slice(extra);
        Self::spawn(&args, &[("PGB_TEST_PASSWORD", password)])
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The `listen` and `admin` addresses from the "pgbalancer started" line, once it is there.
    pub async fn addrs(&self) -> (SocketAddr, SocketAddr) {
        let field = |name: &str| -> Option<SocketAddr> {
            let log = self.log.lock().unwrap();
            let line = log.lines().find(|l| l.contains("pgbalancer started"))?;
            let start = line.find(&format!("{name}="))? + name.len() + 1;
            line[start..].split_whitespace().next()?.parse().ok()
        };
        let admin = testkit::wait::until_some("the started line", Duration::from_secs(20), || {
            field("admin")
        })
        .await;
        (field("listen").unwrap(), admin)
    }

    /// Polls the admin `/status` until its JSON contains `needle`; returns it.
    pub async fn wait_status_text(admin: SocketAddr, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (code, body) = http_get(admin, "/status").await;
            assert_eq!(code, 200);
            if body.contains(needle) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {needle} in: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to exit (after a signal) and for the last log line.
    pub async fn exit(mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .expect("exits in time")
            .unwrap();
        (&mut self.reader).await.unwrap();
        let log = self.log();
        (status, log)
    }
}
