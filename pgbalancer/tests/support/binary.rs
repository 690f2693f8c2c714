//! The pgbalancer binary as an operator runs it, with its stderr captured line by line so a test
//! can read the addresses it logged and grep the log.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::task::JoinHandle;

use super::wait_for;

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
        let admin = wait_for("the started line", Duration::from_secs(20), || {
            field("admin")
        })
        .await;
        (field("listen").unwrap(), admin)
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
