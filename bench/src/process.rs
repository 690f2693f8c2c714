//! Child processes of the lab: started with their output in a log file, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

pub struct Process {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
        logs: &Path,
    ) -> anyhow::Result<Self> {
        let log = logs.join(format!("{name}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}: {}", program.display()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends SIGTERM, as the kubelet does to a deleted pod.
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends the signal `name` (`TERM`, `HUP`, ...) if the process still runs.
    pub fn signal(&self, name: &str) {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill")
                .args([&format!("-{name}"), &pid.to_string()])
                .status();
        }
    }

    /// Waits up to `limit` for the process to exit, then kills it.
    pub async fn wait_or_kill(&mut self, limit: Duration) {
        if tokio::time::timeout(limit, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    /// Fails with the end of its log if the process already exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<_> = log.lines().rev().take(15).collect();
            bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }
}

/// Polls `addr` until a TCP connect succeeds, for at most `limit`.
pub async fn wait_listening(
    process: &mut Process,
    addr: std::net::SocketAddr,
    limit: Duration,
) -> anyhow::Result<()> {
    poll(process, limit, &format!("listening on {addr}"), || async {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await
}

/// Polls `GET /readyz` on `addr` until it answers 200, for at most `limit`.
pub async fn wait_ready(
    process: &mut Process,
    addr: std::net::SocketAddr,
    limit: Duration,
) -> anyhow::Result<()> {
    poll(process, limit, &format!("ready on {addr}"), || async {
        http_get(addr, "/readyz")
            .await
            .is_some_and(|(status, _)| status == 200)
    })
    .await
}

/// Checks `done` every 50 ms while `process` runs, for at most `limit`.
async fn poll<F: std::future::Future<Output = bool>>(
    process: &mut Process,
    limit: Duration,
    what: &str,
    mut done: impl FnMut() -> F,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        process.check_running()?;
        if done().await {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{} is not {what} after {limit:?}", process.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET path` over a fresh connection (at most 2 s): the status code and the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.get(9..12)?.parse().ok()?;
        Some((status, body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
}
